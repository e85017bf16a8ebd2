//! KDL text to documents, and the small decoding vocabulary the resolver uses
//! on nodes: arguments, properties, their types and spans.
//!
//! This module knows KDL, not hosts or agents. It never stops at the first
//! problem: everything it finds goes into a [`Diagnostics`] list.

use std::collections::BTreeMap;

mod fast;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::values::forbidden_char;
use crate::source::{SourceId, SourceKind, SourceSet, Span};

/// Parsed KDL documents, by source.
pub type Documents = BTreeMap<SourceId, KdlDocument>;

/// Parses every KDL file of the set. Files that fail to parse are left out of
/// the result and reported, each KDL parser message at its own place.
pub fn parse(sources: &SourceSet, diags: &mut Diagnostics) -> Documents {
    let mut files: Vec<(SourceId, &str)> = Vec::new();
    for (id, s) in sources
        .iter()
        .filter(|(_, s)| s.kind != SourceKind::Template)
    {
        // The KDL parser recurses once per block level and would overflow
        // its stack on a deeply nested file; the language needs four levels.
        match too_deep(&s.text) {
            Some(offset) => diags.push(
                Diagnostic::error(
                    Span { source: id, offset, len: 1 },
                    format!("blocks nest more than {MAX_NESTING} levels deep"),
                )
                .label("too deep")
                .help("the language needs four levels at most (`host { agent { auth { rotate … } } }`); close the blocks that were left open"),
            ),
            None => files.push((id, s.text.as_str())),
        }
    }
    // KDL parsing dominates `check` on large fleets; files are independent,
    // so parse them on every core. Results are keyed by source id, so the
    // outcome does not depend on which thread finished first.
    let parsed: Vec<(SourceId, Result<KdlDocument, kdl::KdlError>)> =
        crate::parallel::by_chunks(&files, |part| {
            part.iter()
                .map(|(id, text)| {
                    // The quick reader handles plain files; the full parser
                    // takes the rest and every error.
                    let doc = fast::parse(text).map_or_else(|| text.parse(), Ok);
                    (*id, doc)
                })
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
    let mut docs = Documents::new();
    for (id, result) in parsed {
        let src = sources.get(id);
        match result {
            Ok(doc) => {
                docs.insert(id, doc);
            }
            Err(err) => {
                for d in err.diagnostics {
                    let mut message = d.message.clone().unwrap_or_else(|| "invalid KDL".into());
                    if let Some(first) = message.get(..1) {
                        message = first.to_lowercase() + &message[1..];
                    }
                    let diag = Diagnostic::error(narrow(&src.text, Span::from_kdl(id, d.span)), format!("KDL syntax: {message}"))
                        .label("invalid KDL")
                        .help(d.help.clone().unwrap_or_else(|| {
                            "see https://kdl.dev for the syntax; strings need double quotes, booleans are `#true`/`#false`".into()
                        }));
                    diags.push(diag);
                }
            }
        }
    }
    docs
}

/// Deepest block nesting a file may have.
pub const MAX_NESTING: usize = 16;

/// Offset of the first `{` that opens a block deeper than [`MAX_NESTING`],
/// skipping strings and comments. `None` when the file is shallow enough, or
/// when it cannot be scanned (an unterminated string: the parser reports it).
fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest in KDL.
                let mut level = 0usize;
                loop {
                    if i >= b.len() {
                        return None;
                    }
                    if b[i..].starts_with(b"/*") {
                        level += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        level -= 1;
                        i += 2;
                        if level == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                let triple = b[i..].starts_with(b"\"\"\"");
                i += if triple { 3 } else { 1 };
                loop {
                    if i >= b.len() {
                        return None;
                    }
                    if b[i] == b'\\' {
                        i += 2;
                    } else if triple && b[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else if !triple && b[i] == b'"' {
                        i += 1;
                        break;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'#' => {
                let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
                i += hashes;
                if b.get(i) == Some(&b'"') {
                    // A raw string ends at its quote(s) followed by as many `#`.
                    let triple = b[i..].starts_with(b"\"\"\"");
                    let quotes = if triple { 3 } else { 1 };
                    let mut close = vec![b'"'; quotes];
                    close.extend(std::iter::repeat_n(b'#', hashes));
                    let start = i + quotes;
                    let end = b[start..].windows(close.len()).position(|w| w == close)?;
                    i = start + end + close.len();
                }
                continue;
            }
            b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The parser's spans sometimes cover a whole node over several lines when
/// the mistake is at its end (`port=0o9` marks `host … {` to there): point at
/// the last line of the span, without its indentation.
fn narrow(text: &str, mut span: Span) -> Span {
    let Some(covered) = text.get(span.offset..span.offset + span.len) else {
        return span;
    };
    let trimmed = covered.trim_end();
    if let Some(nl) = trimmed.rfind('\n') {
        let line = &trimmed[nl + 1..];
        let indent = line.len() - line.trim_start().len();
        span.offset += nl + 1 + indent;
        span.len = line.trim_start().len();
    }
    span
}

/// A node and the file it came from.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The KDL node.
    pub node: &'a KdlNode,
    /// Its file.
    pub src: SourceId,
}

impl<'a> Node<'a> {
    /// Node name.
    pub fn name(&self) -> &'a str {
        self.node.name().value()
    }

    /// Span of the node's name: where messages about the whole node point.
    pub fn span(&self) -> Span {
        Span::from_kdl(self.src, self.node.name().span())
    }

    /// Span of an entry.
    pub fn entry_span(&self, e: &KdlEntry) -> Span {
        Span::from_kdl(self.src, e.span())
    }

    /// Positional arguments.
    pub fn args(&self) -> impl Iterator<Item = &'a KdlEntry> {
        self.node.entries().iter().filter(|e| e.name().is_none())
    }

    /// Child nodes (empty when the node has no block).
    pub fn children(&self) -> Vec<Node<'a>> {
        let src = self.src;
        self.node
            .children()
            .map(|d| d.nodes().iter().map(|node| Node { node, src }).collect())
            .unwrap_or_default()
    }

    /// The property with this name (the last, should it repeat: `shape` reports repeats).
    pub fn prop(&self, key: &str) -> Option<&'a KdlEntry> {
        self.node
            .entries()
            .iter()
            .rev()
            .find(|e| e.name().is_some_and(|n| n.value() == key))
    }

    /// The first argument as a string, when it is one (used as merge key).
    pub fn key_arg(&self) -> Option<&'a str> {
        self.args().next().and_then(|e| e.value().as_string())
    }
}

/// Decoding helpers that report into a diagnostics list.
pub struct Decoder<'d> {
    /// Where problems go.
    pub diags: &'d mut Diagnostics,
}

/// A name for a KDL value's type, for messages.
fn type_name(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

impl Decoder<'_> {
    /// Reports an error.
    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Checks the number of arguments, the property names (unknown, repeated)
    /// and whether a child block is allowed. Returns false when the node is
    /// unusable (too few arguments).
    pub fn shape(
        &mut self,
        n: Node<'_>,
        args: std::ops::RangeInclusive<usize>,
        props: &[&str],
        children: bool,
        usage: &str,
    ) -> bool {
        let mut ok = true;
        let given: Vec<_> = n.args().collect();
        if given.len() < *args.start() {
            self.error(
                Diagnostic::error(
                    n.span(),
                    format!("`{}` needs {}", n.name(), plural(*args.start(), "argument")),
                )
                .label("missing value")
                .help(format!("write it as {usage}")),
            );
            ok = false;
        } else if given.len() > *args.end() {
            let extra = given[*args.end()];
            self.error(
                Diagnostic::error(
                    n.entry_span(extra),
                    format!("`{}` takes {}", n.name(), plural(*args.end(), "argument")),
                )
                .label("unexpected argument")
                .help(format!("write it as {usage}")),
            );
        }
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for e in n.node.entries() {
            let Some(key) = e.name() else { continue };
            let key = key.value();
            if !props.contains(&key) {
                let mut d = Diagnostic::error(
                    n.entry_span(e),
                    format!("unknown property `{key}` on `{}`", n.name()),
                )
                .label("unknown property");
                d = match did_you_mean(key, props.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`? ({usage})")),
                    None if props.is_empty() => d.help(format!(
                        "`{}` takes no properties; write it as {usage}",
                        n.name()
                    )),
                    None => d.help(format!("`{}` knows {}", n.name(), list(props))),
                };
                self.error(d);
            } else if let Some(first) = seen.insert(key, n.entry_span(e)) {
                self.error(
                    Diagnostic::error(n.entry_span(e), format!("property `{key}` given twice"))
                        .label("second value")
                        .related(first, "first value")
                        .help("keep one of them"),
                );
            }
        }
        if !children && n.node.children().is_some() {
            let span = n
                .node
                .children()
                .map(|c| Span::from_kdl(n.src, c.span()))
                .unwrap_or(n.span());
            self.error(
                Diagnostic::error(span, format!("`{}` takes no block", n.name()))
                    .label("unexpected block")
                    .help(format!("write it as {usage}")),
            );
        }
        ok
    }

    /// The `i`-th argument as a string.
    pub fn arg_str(&mut self, n: Node<'_>, i: usize, what: &str) -> Option<String> {
        let e = n.args().nth(i)?;
        self.entry_str(n, e, what)
    }

    /// A property as a string.
    pub fn prop_str(&mut self, n: Node<'_>, key: &str) -> Option<String> {
        let e = n.prop(key)?;
        self.entry_str(n, e, &format!("`{key}`"))
    }

    /// A property as a string that may span lines (file contents): newline,
    /// carriage return and tab are allowed, other control characters are not.
    pub fn prop_text(&mut self, n: Node<'_>, key: &str) -> Option<String> {
        let e = n.prop(key)?;
        self.entry_text(n, e, &format!("`{key}`"), true)
    }

    /// Every positional argument as a string, in order (one pass: a node may
    /// carry many).
    pub fn args_str(&mut self, n: Node<'_>, what: &str) -> Vec<String> {
        n.args()
            .filter_map(|e| self.entry_text(n, e, what, false))
            .collect()
    }

    fn entry_str(&mut self, n: Node<'_>, e: &KdlEntry, what: &str) -> Option<String> {
        self.entry_text(n, e, what, false)
    }

    /// The one place string values leave the KDL: every string argument and
    /// property passes here, so no value reaches a generated file with a
    /// character that would change that file's meaning (a newline starting
    /// a new unit-file line, an escape sequence, a NUL).
    fn entry_text(
        &mut self,
        n: Node<'_>,
        e: &KdlEntry,
        what: &str,
        multiline: bool,
    ) -> Option<String> {
        match e.value() {
            KdlValue::String(s) => {
                if let Some((name, code, help)) = forbidden_char(s, multiline) {
                    self.error(
                        Diagnostic::error(
                            n.entry_span(e),
                            format!("{what} of `{}` holds {name} (U+{code:04X})", n.name()),
                        )
                        .label("control character")
                        .help(help),
                    );
                    return None;
                }
                Some(s.clone())
            }
            v => {
                self.error(
                    Diagnostic::error(
                        n.entry_span(e),
                        format!(
                            "{what} of `{}` must be a string, not {}",
                            n.name(),
                            type_name(v)
                        ),
                    )
                    .label("expected a string")
                    .help(format!(
                        "put the value in double quotes: \"{}\"",
                        v.to_string().trim_start_matches('#')
                    )),
                );
                None
            }
        }
    }

    /// A property as a non-negative integer that fits `T`.
    pub fn prop_int<T: TryFrom<i128>>(
        &mut self,
        n: Node<'_>,
        key: &str,
        range_hint: &str,
    ) -> Option<T> {
        let e = n.prop(key)?;
        match e.value() {
            KdlValue::Integer(i) => match T::try_from(*i) {
                Ok(v) if *i >= 0 => Some(v),
                _ => {
                    self.error(
                        Diagnostic::error(n.entry_span(e), format!("`{key}` is out of range"))
                            .label("out of range")
                            .help(range_hint.to_string()),
                    );
                    None
                }
            },
            v => {
                self.error(
                    Diagnostic::error(
                        n.entry_span(e),
                        format!("`{key}` must be an integer, not {}", type_name(v)),
                    )
                    .label("expected an integer")
                    .help(range_hint.to_string()),
                );
                None
            }
        }
    }

    /// The `i`-th argument as a boolean (`#true` / `#false`).
    pub fn arg_bool(&mut self, n: Node<'_>, i: usize) -> Option<bool> {
        let e = n.args().nth(i)?;
        self.bool_entry(n, e, n.name())
    }

    /// A property as a boolean (`#true` / `#false`).
    pub fn prop_bool(&mut self, n: Node<'_>, key: &str) -> Option<bool> {
        let e = n.prop(key)?;
        self.bool_entry(n, e, key)
    }

    /// Entry `e` of `n`, named `what` in the error, as a boolean.
    fn bool_entry(&mut self, n: Node<'_>, e: &KdlEntry, what: &str) -> Option<bool> {
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            v => {
                self.error(
                    Diagnostic::error(
                        n.entry_span(e),
                        format!("`{what}` takes #true or #false, not {}", type_name(v)),
                    )
                    .label("expected a boolean")
                    .help("KDL booleans are written `#true` and `#false`"),
                );
                None
            }
        }
    }

    /// Parses a string property with `parse`, reporting its error at the value.
    pub fn prop_parsed<T>(
        &mut self,
        n: Node<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.prop_str(n, key)?;
        let span = n.entry_span(n.prop(key)?);
        self.parsed(span, &text, key, parse)
    }

    /// Parses the `i`-th argument with `parse`.
    pub fn arg_parsed<T>(
        &mut self,
        n: Node<'_>,
        i: usize,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.arg_str(n, i, what)?;
        let span = n.entry_span(n.args().nth(i)?);
        self.parsed(span, &text, what, parse)
    }

    fn parsed<T>(
        &mut self,
        span: Span,
        text: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(text) {
            Ok(v) => Some(v),
            Err(hint) => {
                let (msg, help) = match hint.split_once("; ") {
                    Some((m, h)) => (m.to_string(), Some(h.to_string())),
                    None => (hint.clone(), None),
                };
                let mut d = Diagnostic::error(span, format!("bad {what}: {msg}"))
                    .label(format!("invalid {what}"));
                if let Some(h) = help {
                    d = d.help(h);
                }
                self.error(d);
                None
            }
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    match n {
        0 => format!("no {word}s"),
        1 => format!("one {word}"),
        n => format!("{n} {word}s"),
    }
}

/// `a`, `b` and `c`.
pub fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        let deep = "a {".repeat(MAX_NESTING + 1);
        assert_eq!(too_deep(&deep), Some(MAX_NESTING * 3 + 2));
        assert_eq!(too_deep(&"a {".repeat(MAX_NESTING)), None);
        let braces = "{".repeat(40);
        for shallow in [
            format!("n \"{braces}\""),
            format!("n \"\\\"{braces}\""),
            format!("n \"\"\"\n{braces}\n\"\"\""),
            format!("n #\"{braces}\"#"),
            format!("n ##\"\"#{braces}\"##"),
            format!("// {braces}\nn 1"),
            format!("/* /* {braces} */ {braces} */ n 1"),
        ] {
            assert_eq!(too_deep(&shallow), None, "{shallow}");
        }
        // An unterminated string is left to the parser to report.
        assert_eq!(too_deep("n \"{{{{"), None);
    }
}
