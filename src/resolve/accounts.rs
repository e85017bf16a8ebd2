//! A host's declared system users and groups.

use super::Resolver;
use super::host::HostDraft;
use super::schema::NodeKind;
use crate::diagnostic::Diagnostic;
use crate::model::values::{check_account, check_home_path, check_program_path};
use crate::model::{Group, User};
use crate::syntax::Node;

/// `groups "adm" "systemd-journal"`, the one node of a user's block.
pub(super) const GROUPS: NodeKind<Vec<String>> = NodeKind {
    name: "groups",
    args: 1..=usize::MAX,
    props: &[],
    children: false,
    usage: "`groups \"adm\" \"systemd-journal\"`",
    decode: groups,
};

pub(super) fn user<'a>(r: &mut Resolver<'a, '_>, c: Node<'a>, h: &mut HostDraft) {
    let Some(name) = r.dec.arg_parsed(c, 0, "user name", |s| {
        check_account(s).map(|()| s.to_string())
    }) else {
        return;
    };
    let mut groups = Vec::new();
    for g in c.children() {
        if g.name() != GROUPS.name {
            r.dec.error(
                Diagnostic::error(g.span(), format!("unknown node `{}` in a user", g.name()))
                    .help("a user's block holds `groups \"a\" \"b\"`"),
            );
            continue;
        }
        GROUPS.read(r, g, &mut groups);
    }
    h.host.users.push(User {
        name,
        span: c.span(),
        uid: r.dec.prop_int::<u32>(c, "uid", "a uid is a whole number"),
        group: r
            .dec
            .prop_parsed(c, "group", |s| check_account(s).map(|()| s.to_string())),
        home: r
            .dec
            .prop_parsed(c, "home", |s| check_home_path(s).map(|()| s.to_string())),
        shell: r.dec.prop_parsed(c, "shell", |s| {
            check_program_path(s).map(|()| s.to_string())
        }),
        groups,
        declared: true,
    });
}

fn groups(r: &mut Resolver<'_, '_>, g: Node<'_>, groups: &mut Vec<String>) {
    for (e, name) in g.args().zip(r.dec.args_str(g, "a group name")) {
        match check_account(&name) {
            Ok(()) => groups.push(name),
            Err(hint) => r.dec.error(
                Diagnostic::error(g.entry_span(e), format!("bad group name: {hint}"))
                    .label("invalid group name"),
            ),
        }
    }
}

pub(super) fn group(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    if let Some(name) = r.dec.arg_parsed(c, 0, "group name", |s| {
        check_account(s).map(|()| s.to_string())
    }) {
        let gid = r.dec.prop_int::<u32>(c, "gid", "a gid is a whole number");
        h.host.groups.push(Group {
            name,
            span: c.span(),
            gid,
        });
    }
}
