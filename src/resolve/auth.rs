//! An agent's `auth` nodes: the accounts it depends on, how to check them,
//! how their credentials are rotated, and how the host learns when they
//! expire.

use super::Resolver;
use super::agent::AgentDraft;
use super::schema::NodeKind;
use crate::date;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::values::check_name;
use crate::model::{
    Auth, DEFAULT_WARN_BEFORE, Duration, EXPIRY_CHECK_EVERY, Expiry, ExpirySource, Rotate, Setting,
};
use crate::syntax::Node;

/// `rotate every="45d" run="…" notify="ops"`, the one node of an auth's block.
pub(super) const ROTATE: NodeKind<Option<Rotate>> = NodeKind {
    name: "rotate",
    args: 0..=0,
    props: &["every", "run", "notify"],
    children: false,
    usage: "`rotate every=\"45d\" run=\"/usr/local/bin/renew\" notify=\"ops\"`",
    decode: rotate,
};

pub(super) fn auth<'a>(r: &mut Resolver<'a, '_>, c: Node<'a>, d: &mut AgentDraft) {
    let Some(name) = r
        .dec
        .arg_parsed(c, 0, "auth name", |s| check_name(s).map(|()| s.to_string()))
    else {
        return;
    };
    let check = r.dec.prop_str(c, "check");
    let expiry = expiry(r, c);
    let mut rotate = None;
    for n in c.children() {
        if n.name() != ROTATE.name {
            let mut e =
                Diagnostic::error(n.span(), format!("unknown node `{}` in an auth", n.name()))
                    .label("unknown node");
            e = e.help(match did_you_mean(n.name(), [ROTATE.name]) {
                Some(_) => "did you mean `rotate`?".into(),
                None => "an auth's block holds `rotate every=\"45d\" run=\"…\" notify=\"CHANNEL\"`"
                    .to_string(),
            });
            r.dec.error(e);
            continue;
        }
        ROTATE.read(r, n, &mut rotate);
    }
    d.agent.auths.push(Auth {
        name,
        span: c.span(),
        check,
        rotate,
        expiry,
    });
}

/// How `expires`, `expires-at` and `warn-before` are written.
const EXPIRY_USAGE: &str =
    "`expires=\"command printing a date\" warn-before=\"7d\"` or `expires-at=\"2027-02-01\"`";

/// `expires="…"` or `expires-at="…"`, and `warn-before="…"`, of an auth.
fn expiry(r: &mut Resolver<'_, '_>, c: Node<'_>) -> Option<Expiry> {
    let command = r.dec.prop_str(c, "expires");
    let at = r.dec.prop_parsed(c, "expires-at", date::parse);
    let warn = r.dec.prop_parsed(c, "warn-before", Duration::parse);
    if c.prop("expires").is_some() && c.prop("expires-at").is_some() {
        r.dec.error(
            Diagnostic::error(c.span(), "`expires` and `expires-at` both say when it expires")
                .label("two expiries")
                .help("keep `expires=\"…\"` (a command that prints the date) or `expires-at=\"…\"` (a known date), not both"),
        );
        return None;
    }
    if let Some(w) = warn
        && w.secs < EXPIRY_CHECK_EVERY.secs
    {
        let span = c.prop("warn-before").map_or(c.span(), |e| c.entry_span(e));
        r.dec.error(
            Diagnostic::error(span, "warning less than an hour before the expiry")
                .label("too short")
                .help("the expiry is checked hourly; use `warn-before` of at least `1h`"),
        );
    }
    if command.as_deref().is_some_and(|s| s.trim().is_empty()) {
        let span = c.prop("expires").map_or(c.span(), |e| c.entry_span(e));
        r.dec.error(
            Diagnostic::error(span, "`expires` is an empty command")
                .label("empty")
                .help(format!("write {EXPIRY_USAGE}")),
        );
        return None;
    }
    let source = match (command, at) {
        (Some(cmd), _) => ExpirySource::Command(cmd),
        (None, Some(at)) => ExpirySource::At(at),
        (None, None) => {
            if c.prop("warn-before").is_some()
                && c.prop("expires").is_none()
                && c.prop("expires-at").is_none()
            {
                r.dec.error(
                    Diagnostic::error(c.span(), "`warn-before` without an expiry")
                        .label("nothing to warn about")
                        .help(format!(
                            "add how the expiry is learned: {EXPIRY_USAGE}; or remove `warn-before`"
                        )),
                );
            }
            return None;
        }
    };
    Some(Expiry {
        span: c.span(),
        source,
        warn_before: warn.unwrap_or(DEFAULT_WARN_BEFORE),
    })
}

/// Decodes a `rotate`; a later complete one replaces an earlier one.
fn rotate(r: &mut Resolver<'_, '_>, n: Node<'_>, rotate: &mut Option<Rotate>) {
    let every = r.dec.prop_parsed(n, "every", Duration::parse);
    let run = r.dec.prop_str(n, "run");
    if n.prop("every").is_none() || n.prop("run").is_none() {
        r.dec.error(
            Diagnostic::error(n.span(), "`rotate` needs `every` and `run`")
                .label("incomplete")
                .help("write `rotate every=\"45d\" run=\"/usr/local/bin/renew\"`"),
        );
    }
    let notify = r.dec.prop_str(n, "notify").map(|v| Setting {
        value: v,
        span: n.span(),
    });
    if let (Some(every), Some(run)) = (every, run) {
        if every.secs < 3600 {
            r.dec.error(
                Diagnostic::error(n.span(), "rotation more often than hourly")
                    .help("rotation is checked hourly; use `every` of at least `1h`"),
            );
        }
        *rotate = Some(Rotate {
            span: n.span(),
            every,
            run,
            notify,
        });
    }
}
