//! An agent's `auth` nodes: the accounts it depends on, how to check them,
//! and how their credentials are rotated.

use super::Resolver;
use super::agent::AgentDraft;
use super::schema::NodeKind;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::values::check_name;
use crate::model::{Auth, Duration, Rotate, Setting};
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
    });
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
