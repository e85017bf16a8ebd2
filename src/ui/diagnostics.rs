//! Diagnostics for people (miette's caret reports, with file:line:col) and
//! for machines (JSON objects).

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::source::SourceSet;

/// Renders diagnostics as caret reports.
pub fn human(diags: &[Diagnostic], sources: &SourceSet, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let mut md = MietteDiagnostic::new(d.message.clone()).with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
        let mut help = d.help.clone();
        let Some(span) = d.span else {
            out.push_str(&format!("{}: {}\n", severity_word(d.severity), d.message));
            continue;
        };
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(d.label.clone()),
            (span.offset, span.len),
        )];
        if let Some((rel, label)) = &d.related {
            if rel.source == span.source {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.clone()),
                    (rel.offset, rel.len),
                ));
            } else {
                let loc = location(sources, *rel);
                let note = format!("{label}: {}:{}:{}", loc.file, loc.line, loc.column);
                help = Some(match help {
                    Some(h) => format!("{h}\n{note}"),
                    None => note,
                });
            }
        }
        md = md.with_labels(labels);
        if let Some(h) = help {
            md = md.with_help(h);
        }
        let src = sources.get(span.source);
        let report =
            Report::new(md).with_source_code(NamedSource::new(src.path.clone(), src.text.clone()));
        let _ = handler.render_report(&mut out, report.as_ref());
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn location(sources: &SourceSet, span: crate::source::Span) -> Location {
    let src = sources.get(span.source);
    let (line, column) = crate::source::line_col(&src.text, span.offset);
    Location {
        file: src.path.clone(),
        line,
        column,
    }
}

/// A diagnostic as JSON.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    severity: Severity,
    #[serde(flatten)]
    location: Option<Location>,
    message: String,
    label: String,
    help: Option<String>,
    related: Option<Location>,
}

/// Diagnostics as JSON values.
pub fn json(diags: &[Diagnostic], sources: &SourceSet) -> Vec<JsonDiagnostic> {
    diags
        .iter()
        .map(|d| JsonDiagnostic {
            severity: d.severity,
            location: d.location(sources),
            message: d.message.clone(),
            label: d.label.clone(),
            help: d.help.clone(),
            related: d.related.as_ref().map(|(s, _)| location(sources, *s)),
        })
        .collect()
}
