//! A host and the nodes of its own: how it is reached, its pinned key, its
//! tags and journal caps. Its alert channels, accounts, files and agents have
//! modules of their own.

use std::collections::BTreeSet;

use super::schema::{Block, NodeKind};
use super::{Hosts, Resolver, accounts, agent, alert, files};
use crate::diagnostic::Diagnostic;
use crate::model::{Connection, Duration, Files, Host, Journald, Size};
use crate::source::Span;
use crate::syntax::Node;

/// `host "NAME" { … }`, the one top-level node of a file in hosts/.
pub(super) const HOST: NodeKind<Hosts> = NodeKind {
    name: "host",
    args: 1..=1,
    props: &[],
    children: true,
    usage: "`host \"NAME\" { … }`",
    decode: host,
};

/// The nodes of a host's block.
pub(super) static BLOCK: Block<HostDraft> = Block {
    place: "a host",
    once: &[
        NodeKind {
            name: "ssh",
            args: 1..=1,
            props: &["port", "identity", "sudo"],
            children: false,
            usage: "`ssh \"user@address\" port=22` (`sudo=#true` for a login other than root)",
            decode: ssh,
        },
        NodeKind {
            name: "local",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`local \"DIR\"` (a directory of the repository standing in for the host's /)",
            decode: local,
        },
        NodeKind {
            name: "host-key",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`host-key \"ssh-ed25519 AAAA…\"`",
            decode: host_key,
        },
        NodeKind {
            name: "tags",
            args: 0..=usize::MAX,
            props: &[],
            children: false,
            usage: "`tags \"prod\" \"eu\"`",
            decode: tags,
        },
        NodeKind {
            name: "journald",
            args: 0..=0,
            props: &["max-use", "keep-free", "retention", "max-file-size"],
            children: false,
            usage: "`journald max-use=\"2G\" keep-free=\"500M\" retention=\"1week\"`",
            decode: journald,
        },
    ],
    named: &[
        NodeKind {
            name: "alert",
            args: 1..=1,
            props: &[
                "telegram-chat",
                "bot-token",
                "api",
                "webhook",
                "command",
                "repeat",
                "insecure",
            ],
            children: false,
            usage: alert::USAGE,
            decode: alert::alert,
        },
        NodeKind {
            name: "user",
            args: 1..=1,
            props: &["uid", "group", "home", "shell"],
            children: true,
            usage: "`user \"NAME\" uid=990 home=\"/var/lib/NAME\" { groups \"adm\" }`",
            decode: accounts::user,
        },
        NodeKind {
            name: "group",
            args: 1..=1,
            props: &["gid"],
            children: false,
            usage: "`group \"NAME\" gid=990`",
            decode: accounts::group,
        },
        files::file(),
        files::dir(),
        NodeKind {
            name: "agent",
            args: 1..=1,
            props: &[],
            children: true,
            usage: "`agent \"NAME\" { exec \"…\" user \"…\" … }`",
            decode: agent::agent,
        },
    ],
};

/// A host while its nodes are decoded.
pub(super) struct HostDraft {
    pub(super) host: Host,
    /// How it is reached, and where that was said.
    connection: Option<(Connection, Span)>,
    /// Channels declared but broken (reported): references to them are not
    /// also "unknown".
    pub(super) broken_alerts: BTreeSet<String>,
}

impl files::HoldsFiles for HostDraft {
    fn files(&mut self) -> &mut Files {
        &mut self.host.files
    }
}

fn host<'a>(r: &mut Resolver<'a, '_>, n: Node<'a>, hosts: &mut Hosts) {
    let Some(name) = r.dec.arg_str(n, 0, "the host name") else {
        return;
    };
    if let Err(e) = check_host_name(&name) {
        r.dec.error(
            Diagnostic::error(n.span(), e)
                .label("invalid host name")
                .help("use letters, digits, `-`, `_` and `.`"),
        );
    }
    let mut used = Vec::new();
    let children = r.expand(&BLOCK, n.children(), &mut Vec::new(), &mut used);
    let mut draft = HostDraft {
        host: Host {
            name,
            span: n.span(),
            connection: Connection::Local {
                root: String::new(),
            },
            host_key: None,
            tags: Vec::new(),
            journald: None,
            alerts: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            files: Files::default(),
            agents: Vec::new(),
            modules: used,
        },
        connection: None,
        broken_alerts: BTreeSet::new(),
    };
    r.decode_all(&BLOCK, children, &mut draft);
    let HostDraft {
        mut host,
        connection,
        broken_alerts,
    } = draft;
    match connection {
        Some((c, _)) => host.connection = c,
        None => r.dec.error(
            Diagnostic::error(n.span(), format!("host `{}` says neither how to reach it", host.name))
                .label("no `ssh` or `local`")
                .help("add `ssh \"user@address\"` (or `local \"DIR\"` for a directory standing in for the host)"),
        ),
    }
    r.check_host(&mut host, &broken_alerts);
    if let Some(first) = hosts.seen.get(&host.name) {
        r.dec.error(
            Diagnostic::error(host.span, format!("duplicate host `{}`", host.name))
                .label("second definition")
                .related(*first, "first defined here")
                .help("host names must be unique across hosts/; rename or remove one"),
        );
        return;
    }
    hosts.seen.insert(host.name.clone(), host.span);
    hosts.list.push(host);
}

fn ssh(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    let Some(dest) = r.dec.arg_str(c, 0, "the destination") else {
        return;
    };
    let port = r.dec.prop_int::<u16>(c, "port", "a TCP port is 1 to 65535");
    let identity = r.dec.prop_str(c, "identity");
    if dest.trim().is_empty() || dest.contains(char::is_whitespace) {
        r.dec.error(
            Diagnostic::error(c.span(), "the ssh destination is empty or has spaces")
                .help("write `ssh \"user@address\"`"),
        );
    } else if dest.starts_with('-') {
        // ssh would read it as an option (`-oProxyCommand=…`).
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("the ssh destination `{dest}` starts with `-`"),
            )
            .label("read as an option")
            .help("write `ssh \"user@address\"`; options belong in ssh_config"),
        );
    }
    let sudo = r.dec.prop_bool(c, "sudo");
    // A `sudo=` that is not a boolean was reported; judging the login
    // without it would only add a second error.
    if sudo.is_some() || c.prop("sudo").is_none() {
        check_login(r, c, &dest, sudo.unwrap_or(false));
    }
    let sudo = sudo.unwrap_or(false);
    let ssh = Connection::Ssh {
        declared_at: r.sources.location(c.span()),
        destination: dest,
        port,
        identity,
        sudo,
    };
    h.connect(r, ssh, c.span());
}

/// Every script runs as root, so the login says how it gets there: as root,
/// or through passwordless `sudo -n` when `sudo=#true` says so. A user named
/// in the destination who is not root, without `sudo=#true`, is an error
/// here rather than a refused connection later. A destination without a user
/// (`ssh "web-1"`, the user from ssh_config) cannot be judged here: the
/// connection checks it.
fn check_login(r: &mut Resolver<'_, '_>, c: Node<'_>, dest: &str, sudo: bool) {
    let Some((user, _)) = dest.rsplit_once('@') else {
        return;
    };
    if user.is_empty() {
        return;
    }
    if user != "root" && !sudo {
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("`{user}` is not root, and the ssh node does not say `sudo=#true`"),
            )
            .label("every script runs as root")
            .help(format!(
                "add `sudo=#true` to this node and give {user} passwordless sudo \
                 (`{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/{user}), or log in as `root@…`"
            )),
        );
    } else if user == "root" && sudo {
        // A warning, not an error: nothing goes wrong (root's scripts run
        // directly, never through sudo, which a minimal image may not even
        // have), but the file says two things at once, and one of them is
        // likely a leftover of a change of login the operator meant to make.
        r.dec.error(
            Diagnostic::warning(c.span(), "`sudo=#true` on a root login does nothing")
                .label("root needs no sudo")
                .help("remove `sudo=#true`, or log in as the deploy user (`ssh \"deploy@…\" sudo=#true`)"),
        );
    }
}

fn local(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    if let Some(root) = r.dec.arg_parsed(c, 0, "local root", files::check_repo_path) {
        h.connect(r, Connection::Local { root }, c.span());
    }
}

impl HostDraft {
    fn connect(&mut self, r: &mut Resolver<'_, '_>, c: Connection, span: Span) {
        if let Some((_, first)) = &self.connection {
            r.dec.error(
                Diagnostic::error(
                    span,
                    "a host is reached either by `ssh` or by `local`, not both",
                )
                .related(*first, "already set here")
                .help("remove one of them"),
            );
        } else {
            self.connection = Some((c, span));
        }
    }
}

fn host_key(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    h.host.host_key = r.dec.arg_parsed(c, 0, "host key", check_host_key);
    if let Some(key) = &h.host.host_key
        && !key_blob_looks_complete(key)
    {
        // Kept (an example may carry a placeholder), but said:
        // the SSH transport refuses to connect with it.
        r.dec.error(
            Diagnostic::warning(c.span(), format!("host key `{key}` is not a complete public key"))
                .label("incomplete key")
                .help("connecting will be refused until it holds the host's whole key: paste `/etc/ssh/ssh_host_ed25519_key.pub`"),
        );
    }
}

fn tags(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    h.host.tags = r.dec.args_str(c, "a tag");
}

fn journald(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    h.host.journald = Some(Journald {
        span: c.span(),
        max_use: r.dec.prop_parsed(c, "max-use", Size::parse),
        keep_free: r.dec.prop_parsed(c, "keep-free", Size::parse),
        retention: r.dec.prop_parsed(c, "retention", Duration::parse),
        max_file_size: r.dec.prop_parsed(c, "max-file-size", Size::parse),
    });
}

fn check_host_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a valid host name"))
    }
}

fn check_host_key(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    match parts.as_slice() {
        [kind, key, ..] if kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-") => Ok(format!("{kind} {key}")),
        _ => Err("a host key is written `ssh-ed25519 AAAA…`; paste the host's `/etc/ssh/ssh_host_ed25519_key.pub` (or `ssh-keyscan` output without the host name)".into()),
    }
}

/// True when the key part of `TYPE KEY` is plausible base64 of a key blob.
fn key_blob_looks_complete(key: &str) -> bool {
    let blob = key.split_whitespace().nth(1).unwrap_or("");
    blob.len() >= 60
        && blob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
}
