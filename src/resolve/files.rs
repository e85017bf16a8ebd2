//! `file` and `dir`, declared by a host or by an agent.

use super::Resolver;
use super::schema::NodeKind;
use crate::diagnostic::Diagnostic;
use crate::model::values::{check_account, check_mode_literal, check_remote_path};
use crate::model::{
    DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, DEFAULT_OWNER, DEFAULT_SECRET_FILE_MODE, DirDecl,
    FileContent, FileDecl, Files, Mode, Perms,
};
use crate::syntax::Node;

/// A block that declares files and directories of its own.
pub(super) trait HoldsFiles {
    fn files(&mut self) -> &mut Files;
}

const FILE_USAGE: &str = "`file \"/etc/x\" content=\"…\"` (or `source=\"files/x\"`, or `template=\"templates/x.tera\"`) with optional owner, group, mode and secret=#true";

/// `file "/etc/x" content="…"`, in any block that holds files.
pub(super) const fn file<T: HoldsFiles>() -> NodeKind<T> {
    NodeKind {
        name: "file",
        args: 1..=1,
        props: &[
            "content", "source", "template", "owner", "group", "mode", "secret",
        ],
        children: false,
        usage: FILE_USAGE,
        decode: decode_file::<T>,
    }
}

/// `dir "/srv/x" owner="agent" mode=0o750`, in any block that holds files.
pub(super) const fn dir<T: HoldsFiles>() -> NodeKind<T> {
    NodeKind {
        name: "dir",
        args: 1..=1,
        props: &["owner", "group", "mode"],
        children: false,
        usage: "`dir \"/srv/x\" owner=\"agent\" mode=0o750`",
        decode: decode_dir::<T>,
    }
}

fn decode_dir<T: HoldsFiles>(r: &mut Resolver<'_, '_>, c: Node<'_>, block: &mut T) {
    if let Some(path) = r.dec.arg_parsed(c, 0, "path", |s| {
        check_remote_path(s).map(|()| s.to_string())
    }) {
        let perms = perms(r, c, DEFAULT_DIR_MODE);
        block.files().dirs.push(DirDecl {
            path,
            span: c.span(),
            perms,
        });
    }
}

fn decode_file<T: HoldsFiles>(r: &mut Resolver<'_, '_>, c: Node<'_>, block: &mut T) {
    let Some(path) = r.dec.arg_parsed(c, 0, "path", |s| {
        check_remote_path(s).map(|()| s.to_string())
    }) else {
        return;
    };
    let inline = r.dec.prop_text(c, "content");
    let source = r.dec.prop_parsed(c, "source", check_repo_path);
    let template = r.dec.prop_parsed(c, "template", check_repo_path);
    let given = [c.prop("content"), c.prop("source"), c.prop("template")]
        .iter()
        .filter(|p| p.is_some())
        .count();
    if given != 1 {
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("file `{path}` needs exactly one of `content`, `source` and `template`"),
            )
            .label(if given == 0 {
                "no content"
            } else {
                "several contents"
            })
            .help(format!("write {FILE_USAGE}")),
        );
        return;
    }
    let content = match (inline, source, template) {
        (Some(s), _, _) => FileContent::Inline(s),
        (_, Some(p), _) => FileContent::Repo(p),
        (_, _, Some(p)) => FileContent::Template(p),
        _ => return,
    };
    // A file that holds a secret is root's alone unless its mode says
    // otherwise, and is handled like an agent's secrets.
    let secret = r.dec.prop_bool(c, "secret").unwrap_or(false);
    let default_mode = if secret {
        DEFAULT_SECRET_FILE_MODE
    } else {
        DEFAULT_FILE_MODE
    };
    let perms = perms(r, c, default_mode);
    block.files().files.push(FileDecl {
        path,
        span: c.span(),
        content,
        perms,
        secret,
    });
}

fn perms(r: &mut Resolver<'_, '_>, c: Node<'_>, default_mode: Mode) -> Perms {
    let owner = r
        .dec
        .prop_parsed(c, "owner", |s| check_account(s).map(|()| s.to_string()))
        .unwrap_or_else(|| DEFAULT_OWNER.into());
    let group = r
        .dec
        .prop_parsed(c, "group", |s| check_account(s).map(|()| s.to_string()))
        .unwrap_or_else(|| owner.clone());
    let mode = c
        .prop("mode")
        .and_then(|e| match e.value().as_integer() {
            Some(i) => match check_mode_literal(e.format().map(|f| f.value_repr.as_str()), i)
                .and_then(|()| Mode::new(i))
            {
                Ok(m) => Some(m),
                Err(h) => {
                    r.dec.error({
                        let (msg, help) = h.split_once("; ").unwrap_or((&h, ""));
                        Diagnostic::error(c.entry_span(e), format!("bad mode: {msg}"))
                            .label("invalid mode")
                            .help(help)
                    });
                    None
                }
            },
            None => {
                r.dec.error(
                    Diagnostic::error(c.entry_span(e), "`mode` must be an octal integer")
                        .label("expected an integer")
                        .help("write it without quotes, in octal: `mode=0o640`"),
                );
                None
            }
        })
        .unwrap_or(default_mode);
    Perms { owner, group, mode }
}

/// A path inside the operator's repository: relative, without `..`.
pub(super) fn check_repo_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') || s.split('/').any(|p| p == ".." || p == "." || p.is_empty()) {
        return Err(format!(
            "`{s}` must be a path inside the repository, relative to its root, without `.`, `..` or `//`"
        ));
    }
    Ok(s.to_string())
}
