//! From parsed KDL to the typed [`Fleet`]: modules spliced in by `use`,
//! overrides applied, every value decoded and checked, cross-references
//! (alert names, duplicate paths) verified.
//!
//! Merge rule, in one place: a block's nodes are the nodes of the modules it
//! `use`s (in order, later ones overriding earlier ones), overridden by the
//! block's own nodes. Nodes that can appear once (`exec`, `heartbeat`, …)
//! override by name; nodes that name something (`secret "X"`, `agent "y"`,
//! `file "/p"`) override by name and first argument. An overriding node
//! replaces the whole node, children included. The same node twice in one
//! block is an error.
//!
//! Pure: works on the documents `syntax::parse` produced.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::values::{
    check_account, check_chat_id, check_home_path, check_mode_literal, check_name,
    check_program_path, check_remote_path, check_url,
};
use crate::model::*;
use crate::secret::{SecretRef, SecretSource, is_env_name};
use crate::source::{SourceKind, SourceSet, Span};
use crate::syntax::{Decoder, Documents, Node, list};

/// A `webhook=` value as written, before it becomes a [`WebhookUrl`].
enum WebhookSource {
    Literal(String),
    Secret(SecretSource),
}

/// Which block a node sits in; decides which nodes are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ctx {
    Host,
    Agent,
}

/// Nodes allowed once per block, and nodes keyed by their first argument.
fn schema(ctx: Ctx) -> (&'static [&'static str], &'static [&'static str]) {
    match ctx {
        Ctx::Host => (
            &["ssh", "local", "host-key", "tags", "journald"],
            &["alert", "user", "group", "file", "dir", "agent"],
        ),
        Ctx::Agent => (
            &[
                "description",
                "exec",
                "user",
                "group",
                "workdir",
                "heartbeat",
                "restart",
                "kill-mode",
                "timeout-stop",
                "alert",
                "workstate",
            ],
            &[
                "env",
                "secret",
                "auth",
                "failure-mode",
                "waive",
                "note",
                "file",
                "dir",
            ],
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Once(String),
    Named(String, String),
    /// A keyed node without a usable key: never merged, reported by its decoder.
    Unique(Span),
}

/// A module: its file and top-level nodes.
struct Module<'a> {
    nodes: Vec<Node<'a>>,
}

/// A module's nodes once expanded for one kind of block.
struct Expanded<'a> {
    /// Merged nodes with their keys.
    nodes: Vec<(Key, Node<'a>)>,
    /// Modules it pulled in, outermost first, each once.
    used: Vec<String>,
    /// A `use` inside it could not be expanded.
    broken: bool,
}

/// How deep `use` may nest: far beyond any hand-written repository, and
/// shallow enough that expansion never exhausts the stack.
pub const MAX_USE_DEPTH: usize = 64;

/// `a → b → c`, with the middle of a long chain left out.
fn abbreviate(chain: &[String]) -> String {
    if chain.len() <= 8 {
        return chain.join(" → ");
    }
    format!(
        "{} → … ({} more) … → {}",
        chain[..3].join(" → "),
        chain.len() - 6,
        chain[chain.len() - 3..].join(" → ")
    )
}

struct Resolver<'a, 'd> {
    modules: BTreeMap<String, Module<'a>>,
    /// Expanded modules, by kind of block and name.
    memo: BTreeMap<(Ctx, String), Rc<Expanded<'a>>>,
    /// Set when a `use` could not be expanded: the block then lacks what the
    /// module would have given, and "missing" errors would only echo it.
    broken_use: bool,
    dec: Decoder<'d>,
}

/// Builds the fleet. Problems go to `diags`; the fleet holds what could be
/// decoded (callers stop when `diags` has errors).
pub fn resolve(sources: &SourceSet, docs: &Documents, diags: &mut Diagnostics) -> Fleet {
    let mut modules = BTreeMap::new();
    let mut module_files: BTreeMap<String, Span> = BTreeMap::new();
    for (id, doc) in docs {
        let src = sources.get(*id);
        if src.kind != SourceKind::Module {
            continue;
        }
        let name = module_name(&src.path);
        let span = Span {
            source: *id,
            offset: 0,
            len: 0,
        };
        if let Some(first) = module_files.insert(name.clone(), span) {
            diags.push(
                Diagnostic::error(span, format!("module `{name}` is defined twice"))
                    .related(first, "also defined here")
                    .help(format!(
                        "keep either `modules/{name}.kdl` or `modules/{name}/module.kdl`"
                    )),
            );
            continue;
        }
        let nodes = doc
            .nodes()
            .iter()
            .map(|node| Node { node, src: *id })
            .collect();
        modules.insert(name, Module { nodes });
    }

    let mut r = Resolver {
        modules,
        memo: BTreeMap::new(),
        broken_use: false,
        dec: Decoder { diags },
    };
    let mut hosts: Vec<Host> = Vec::new();
    let mut seen: BTreeMap<String, Span> = BTreeMap::new();
    for (id, doc) in docs {
        if sources.get(*id).kind != SourceKind::Host {
            continue;
        }
        for node in doc.nodes() {
            let n = Node { node, src: *id };
            if n.name() != "host" {
                let mut d =
                    Diagnostic::error(n.span(), format!("unknown top-level node `{}`", n.name()))
                        .label("expected `host`");
                d = d.help(match did_you_mean(n.name(), ["host"]) {
                    Some(_) => "did you mean `host`? files in hosts/ hold `host \"NAME\" { … }` nodes".to_string(),
                    None => "files in hosts/ hold `host \"NAME\" { … }` nodes; shared settings belong in modules/".to_string(),
                });
                r.dec.error(d);
                continue;
            }
            let Some(host) = r.host(n) else { continue };
            if let Some(first) = seen.get(&host.name) {
                r.dec.error(
                    Diagnostic::error(host.span, format!("duplicate host `{}`", host.name))
                        .label("second definition")
                        .related(*first, "first defined here")
                        .help("host names must be unique across hosts/; rename or remove one"),
                );
                continue;
            }
            seen.insert(host.name.clone(), host.span);
            hosts.push(host);
        }
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Fleet { hosts }
}

/// `modules/a.kdl` → `a`; `modules/a/module.kdl` → `a`.
fn module_name(path: &str) -> String {
    let p = path.strip_prefix("modules/").unwrap_or(path);
    let p = p.strip_suffix(".kdl").unwrap_or(p);
    p.strip_suffix("/module").unwrap_or(p).to_string()
}

impl<'a> Resolver<'a, '_> {
    /// Splices modules into a block and applies the override rule.
    fn expand(
        &mut self,
        ctx: Ctx,
        own: Vec<Node<'a>>,
        stack: &mut Vec<String>,
        used: &mut Vec<String>,
    ) -> Vec<Node<'a>> {
        self.merge(ctx, own, stack, used)
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }

    /// The merged nodes of a block, with their keys, in first-seen order.
    /// `used` receives the modules it pulls in, outermost first, each once.
    fn merge(
        &mut self,
        ctx: Ctx,
        own: Vec<Node<'a>>,
        stack: &mut Vec<String>,
        used: &mut Vec<String>,
    ) -> Vec<(Key, Node<'a>)> {
        // An index by key keeps overriding linear in the block's size (a
        // generated block may hold very many nodes).
        let mut merged: Vec<(Key, Node<'a>)> = Vec::new();
        let mut index: BTreeMap<Key, usize> = BTreeMap::new();
        let mut upsert = |k: Key, n: Node<'a>| match index.get(&k) {
            Some(&i) => merged[i].1 = n,
            None => {
                index.insert(k.clone(), merged.len());
                merged.push((k, n));
            }
        };
        let mut used_seen: BTreeSet<String> = used.iter().cloned().collect();
        for n in own.iter().filter(|n| n.name() == "use") {
            if !self.dec.shape(*n, 1..=1, &[], false, "`use \"MODULE\"`") {
                continue;
            }
            let Some(name) = self.dec.arg_str(*n, 0, "the module name") else {
                continue;
            };
            if stack.contains(&name) {
                let mut chain = stack.clone();
                chain.push(name.clone());
                self.dec.error(
                    Diagnostic::error(n.span(), format!("module cycle: {}", chain.join(" → ")))
                        .label("uses a module that is already being expanded")
                        .help("a module may not use itself, directly or through others; remove one `use`"),
                );
                self.broken_use = true;
                continue;
            }
            if stack.len() >= MAX_USE_DEPTH {
                let mut chain = stack.clone();
                chain.push(name.clone());
                self.dec.error(
                    Diagnostic::error(
                        n.span(),
                        format!(
                            "modules nest more than {MAX_USE_DEPTH} deep: {}",
                            abbreviate(&chain)
                        ),
                    )
                    .label("one `use` too many")
                    .help(format!("a chain of more than {MAX_USE_DEPTH} modules is a mistake or generated; let the block `use` the modules it needs directly")),
                );
                self.broken_use = true;
                continue;
            }
            if !self.modules.contains_key(&name) {
                let names: Vec<&str> = self.modules.keys().map(String::as_str).collect();
                let mut d = Diagnostic::error(n.span(), format!("unknown module `{name}`"))
                    .label("no such module");
                d = d.help(match did_you_mean(&name, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => {
                        format!("create `modules/{name}.kdl`; modules/ has none yet")
                    }
                    None => format!(
                        "create `modules/{name}.kdl`, or use one of {}",
                        list(&names)
                    ),
                });
                self.dec.error(d);
                self.broken_use = true;
                continue;
            }
            let expanded = self.module(ctx, &name, stack);
            for m in std::iter::once(&name).chain(&expanded.used) {
                if used_seen.insert(m.clone()) {
                    used.push(m.clone());
                }
            }
            for (k, m) in &expanded.nodes {
                upsert(k.clone(), *m);
            }
        }
        let mut own_seen: BTreeMap<Key, Span> = BTreeMap::new();
        for n in own.into_iter().filter(|n| n.name() != "use") {
            let Some(k) = self.key(ctx, n) else { continue };
            if let Some(first) = own_seen.insert(k.clone(), n.span()) {
                let what = match &k {
                    Key::Named(name, key) => format!("duplicate `{name} \"{key}\"`"),
                    _ => format!("`{}` given twice", n.name()),
                };
                self.dec.error(
                    Diagnostic::error(n.span(), what)
                        .label("second definition")
                        .related(first, "first defined here")
                        .help("keep one of them; to override a module's value, write it once in this block"),
                );
                continue;
            }
            upsert(k, n);
        }
        merged
    }

    /// A module's merged nodes in a kind of block, expanded once and then
    /// remembered: a module reached along many paths (a diamond of `use`s)
    /// costs one expansion, not one per path.
    fn module(&mut self, ctx: Ctx, name: &str, stack: &mut Vec<String>) -> Rc<Expanded<'a>> {
        let key = (ctx, name.to_string());
        if let Some(e) = self.memo.get(&key) {
            self.broken_use |= e.broken;
            return Rc::clone(e);
        }
        let nodes = self.modules[name].nodes.clone();
        let outer_broken = std::mem::replace(&mut self.broken_use, false);
        stack.push(name.to_string());
        let mut used = Vec::new();
        let merged = self.merge(ctx, nodes, stack, &mut used);
        stack.pop();
        let broken = self.broken_use;
        self.broken_use = outer_broken || broken;
        let e = Rc::new(Expanded {
            nodes: merged,
            used,
            broken,
        });
        self.memo.insert(key, Rc::clone(&e));
        e
    }

    /// The merge key of a node, or `None` (reported) when the node is unknown here.
    fn key(&mut self, ctx: Ctx, n: Node<'a>) -> Option<Key> {
        let (once, named) = schema(ctx);
        let name = n.name();
        if once.contains(&name) {
            return Some(Key::Once(name.to_string()));
        }
        if named.contains(&name) {
            return Some(match n.key_arg() {
                Some(k) => Key::Named(name.to_string(), k.to_string()),
                None => Key::Unique(n.span()),
            });
        }
        {
            let all: Vec<&str> = once.iter().chain(named).chain(&["use"]).copied().collect();
            let place = if ctx == Ctx::Host {
                "a host"
            } else {
                "an agent"
            };
            let mut d = Diagnostic::error(n.span(), format!("unknown node `{name}` in {place}"))
                .label("unknown node");
            d = d.help(match did_you_mean(name, all.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{place} may hold {}", list(&all)),
            });
            self.dec.error(d);
        }
        None
    }

    fn host(&mut self, n: Node<'a>) -> Option<Host> {
        self.dec.shape(n, 1..=1, &[], true, "`host \"NAME\" { … }`");
        let name = self.dec.arg_str(n, 0, "the host name")?;
        if let Err(e) = check_host_name(&name) {
            self.dec.error(
                Diagnostic::error(n.span(), e)
                    .label("invalid host name")
                    .help("use letters, digits, `-`, `_` and `.`"),
            );
        }
        let mut used = Vec::new();
        let children = self.expand(Ctx::Host, n.children(), &mut Vec::new(), &mut used);
        let mut host = Host {
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
        };
        let mut connection: Option<(Connection, Span)> = None;
        let mut broken_alerts: BTreeSet<String> = BTreeSet::new();
        for c in children {
            match c.name() {
                "ssh" => {
                    self.dec.shape(
                        c,
                        1..=1,
                        &["port", "identity"],
                        false,
                        "`ssh \"user@address\" port=22`",
                    );
                    if let Some(dest) = self.dec.arg_str(c, 0, "the destination") {
                        let port = self
                            .dec
                            .prop_int::<u16>(c, "port", "a TCP port is 1 to 65535");
                        let identity = self.dec.prop_str(c, "identity");
                        if dest.trim().is_empty() || dest.contains(char::is_whitespace) {
                            self.dec.error(
                                Diagnostic::error(
                                    c.span(),
                                    "the ssh destination is empty or has spaces",
                                )
                                .help("write `ssh \"user@address\"`"),
                            );
                        } else if dest.starts_with('-') {
                            // ssh would read it as an option (`-oProxyCommand=…`).
                            self.dec.error(
                                Diagnostic::error(
                                    c.span(),
                                    format!("the ssh destination `{dest}` starts with `-`"),
                                )
                                .label("read as an option")
                                .help("write `ssh \"user@address\"`; options belong in ssh_config"),
                            );
                        }
                        self.set_connection(
                            &mut connection,
                            Connection::Ssh {
                                destination: dest,
                                port,
                                identity,
                            },
                            c.span(),
                        );
                    }
                }
                "local" => {
                    self.dec.shape(c, 1..=1, &[], false, "`local \"DIR\"` (a directory of the repository standing in for the host's /)");
                    if let Some(root) = self.dec.arg_parsed(c, 0, "local root", check_repo_path) {
                        self.set_connection(&mut connection, Connection::Local { root }, c.span());
                    }
                }
                "host-key" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`host-key \"ssh-ed25519 AAAA…\"`");
                    host.host_key = self.dec.arg_parsed(c, 0, "host key", check_host_key);
                    if let Some(key) = &host.host_key
                        && !key_blob_looks_complete(key)
                    {
                        // Kept (an example may carry a placeholder), but said:
                        // the SSH transport refuses to connect with it.
                        self.dec.error(
                            Diagnostic::warning(c.span(), format!("host key `{key}` is not a complete public key"))
                                .label("incomplete key")
                                .help("connecting will be refused until it holds the host's whole key: paste `/etc/ssh/ssh_host_ed25519_key.pub`"),
                        );
                    }
                }
                "tags" => {
                    self.dec
                        .shape(c, 0..=usize::MAX, &[], false, "`tags \"prod\" \"eu\"`");
                    host.tags = self.dec.args_str(c, "a tag");
                }
                "journald" => host.journald = self.journald(c),
                "alert" => match self.alert_channel(c) {
                    Some(ch) => host.alerts.push(ch),
                    // Declared but broken (reported): references to it are
                    // not also "unknown".
                    None => broken_alerts.extend(c.key_arg().map(str::to_string)),
                },
                "user" => host.users.extend(self.user(c)),
                "group" => {
                    self.dec
                        .shape(c, 1..=1, &["gid"], false, "`group \"NAME\" gid=990`");
                    if let Some(name) = self.dec.arg_parsed(c, 0, "group name", |s| {
                        check_account(s).map(|()| s.to_string())
                    }) {
                        let gid = self
                            .dec
                            .prop_int::<u32>(c, "gid", "a gid is a whole number");
                        host.groups.push(Group {
                            name,
                            span: c.span(),
                            gid,
                        });
                    }
                }
                "file" | "dir" => self.file_or_dir(c, &mut host.files),
                "agent" => host.agents.extend(self.agent(c)),
                _ => {}
            }
        }
        match connection {
            Some((c, _)) => host.connection = c,
            None => self.dec.error(
                Diagnostic::error(n.span(), format!("host `{}` says neither how to reach it", host.name))
                    .label("no `ssh` or `local`")
                    .help("add `ssh \"user@address\"` (or `local \"DIR\"` for a directory standing in for the host)"),
            ),
        }
        self.check_host(&mut host, &broken_alerts);
        Some(host)
    }

    fn set_connection(&mut self, slot: &mut Option<(Connection, Span)>, c: Connection, span: Span) {
        if let Some((_, first)) = slot {
            self.dec.error(
                Diagnostic::error(
                    span,
                    "a host is reached either by `ssh` or by `local`, not both",
                )
                .related(*first, "already set here")
                .help("remove one of them"),
            );
        } else {
            *slot = Some((c, span));
        }
    }

    fn journald(&mut self, c: Node<'a>) -> Option<Journald> {
        let props = ["max-use", "keep-free", "retention", "max-file-size"];
        self.dec.shape(
            c,
            0..=0,
            &props,
            false,
            "`journald max-use=\"2G\" keep-free=\"500M\" retention=\"1week\"`",
        );
        Some(Journald {
            span: c.span(),
            max_use: self.dec.prop_parsed(c, "max-use", Size::parse),
            keep_free: self.dec.prop_parsed(c, "keep-free", Size::parse),
            retention: self.dec.prop_parsed(c, "retention", Duration::parse),
            max_file_size: self.dec.prop_parsed(c, "max-file-size", Size::parse),
        })
    }

    fn alert_channel(&mut self, c: Node<'a>) -> Option<AlertChannel> {
        let usage = "`alert \"NAME\" webhook=\"https://…\"`, `alert \"NAME\" telegram-chat=\"-100…\" bot-token=\"env:VAR\"` or `alert \"NAME\" command=\"…\"`";
        self.dec.shape(
            c,
            1..=1,
            &[
                "telegram-chat",
                "bot-token",
                "api",
                "webhook",
                "command",
                "repeat",
                "insecure",
            ],
            false,
            usage,
        );
        let name = self.dec.arg_parsed(c, 0, "alert name", |s| {
            check_name(s).map(|()| s.to_string())
        })?;
        let repeat = self
            .dec
            .prop_parsed(c, "repeat", Duration::parse)
            .unwrap_or(DEFAULT_ALERT_REPEAT);
        let insecure = self.dec.prop_bool(c, "insecure").unwrap_or(false);
        let url = |s: &str| check_url(s, insecure).map(|()| s.to_string());
        let chat = self.dec.prop_parsed(c, "telegram-chat", |s| {
            check_chat_id(s).map(|()| s.to_string())
        });
        let token = self.dec.prop_parsed(c, "bot-token", SecretSource::parse);
        // A webhook URL is a credential: `env:`/`file:`/`cmd:`/`age:` name a
        // secret source (no URL starts with those), anything else is the URL.
        let webhook = self.dec.prop_parsed(c, "webhook", |s| {
            if ["env:", "file:", "cmd:", "age:"]
                .iter()
                .any(|p| s.starts_with(p))
            {
                SecretSource::parse(s).map(WebhookSource::Secret)
            } else {
                url(s).map(WebhookSource::Literal)
            }
        });
        let command = self.dec.prop_str(c, "command");
        let api = match c.prop("api") {
            Some(_) => self.dec.prop_parsed(c, "api", url),
            None => Some(DEFAULT_TELEGRAM_API.into()),
        };
        // Counted by what was written, so a value that failed to decode
        // (reported already) is not also "no channel".
        let kinds = usize::from(c.prop("telegram-chat").is_some() || c.prop("bot-token").is_some())
            + usize::from(c.prop("webhook").is_some())
            + usize::from(c.prop("command").is_some());
        if kinds != 1 {
            self.dec.error(
                Diagnostic::error(
                    c.span(),
                    format!("alert `{name}` needs exactly one kind of channel"),
                )
                .label(if kinds == 0 {
                    "no channel"
                } else {
                    "several channels"
                })
                .help(format!("write {usage}")),
            );
            return None;
        }
        let kind = if c.prop("webhook").is_some() {
            AlertKind::Webhook {
                url: match webhook? {
                    WebhookSource::Literal(u) => WebhookUrl::Literal(u),
                    WebhookSource::Secret(source) => WebhookUrl::Secret(SecretRef {
                        name: format!("{name}-webhook"),
                        source,
                        span: c.span(),
                    }),
                },
                insecure,
            }
        } else if c.prop("command").is_some() {
            AlertKind::Command { command: command? }
        } else {
            let (Some(chat), Some(token), Some(api)) = (chat, token, api) else {
                if c.prop("telegram-chat").is_none() || c.prop("bot-token").is_none() {
                    self.dec.error(
                        Diagnostic::error(c.span(), format!("telegram alert `{name}` needs both `telegram-chat` and `bot-token`"))
                            .help("write `alert \"NAME\" telegram-chat=\"-100…\" bot-token=\"env:TELEGRAM_BOT_TOKEN\"`"),
                    );
                }
                return None;
            };
            AlertKind::Telegram {
                chat,
                token: SecretRef {
                    name: format!("{name}-bot-token"),
                    source: token,
                    span: c.span(),
                },
                api,
            }
        };
        Some(AlertChannel {
            name,
            span: c.span(),
            kind,
            repeat,
        })
    }

    fn user(&mut self, c: Node<'a>) -> Option<User> {
        self.dec.shape(
            c,
            1..=1,
            &["uid", "group", "home", "shell"],
            true,
            "`user \"NAME\" uid=990 home=\"/var/lib/NAME\" { groups \"adm\" }`",
        );
        let name = self.dec.arg_parsed(c, 0, "user name", |s| {
            check_account(s).map(|()| s.to_string())
        })?;
        let mut groups = Vec::new();
        for g in c.children() {
            if g.name() != "groups" {
                self.dec.error(
                    Diagnostic::error(g.span(), format!("unknown node `{}` in a user", g.name()))
                        .help("a user's block holds `groups \"a\" \"b\"`"),
                );
                continue;
            }
            self.dec.shape(
                g,
                1..=usize::MAX,
                &[],
                false,
                "`groups \"adm\" \"systemd-journal\"`",
            );
            for (e, name) in g.args().zip(self.dec.args_str(g, "a group name")) {
                match check_account(&name) {
                    Ok(()) => groups.push(name),
                    Err(hint) => self.dec.error(
                        Diagnostic::error(g.entry_span(e), format!("bad group name: {hint}"))
                            .label("invalid group name"),
                    ),
                }
            }
        }
        Some(User {
            name,
            span: c.span(),
            uid: self
                .dec
                .prop_int::<u32>(c, "uid", "a uid is a whole number"),
            group: self
                .dec
                .prop_parsed(c, "group", |s| check_account(s).map(|()| s.to_string())),
            home: self
                .dec
                .prop_parsed(c, "home", |s| check_home_path(s).map(|()| s.to_string())),
            shell: self.dec.prop_parsed(c, "shell", |s| {
                check_program_path(s).map(|()| s.to_string())
            }),
            groups,
            declared: true,
        })
    }

    fn perms(&mut self, c: Node<'a>, default_mode: Mode) -> Perms {
        let owner = self
            .dec
            .prop_parsed(c, "owner", |s| check_account(s).map(|()| s.to_string()))
            .unwrap_or_else(|| DEFAULT_OWNER.into());
        let group = self
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
                        self.dec.error({
                            let (msg, help) = h.split_once("; ").unwrap_or((&h, ""));
                            Diagnostic::error(c.entry_span(e), format!("bad mode: {msg}"))
                                .label("invalid mode")
                                .help(help)
                        });
                        None
                    }
                },
                None => {
                    self.dec.error(
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

    fn file_or_dir(&mut self, c: Node<'a>, files: &mut Files) {
        if c.name() == "dir" {
            self.dec.shape(
                c,
                1..=1,
                &["owner", "group", "mode"],
                false,
                "`dir \"/srv/x\" owner=\"agent\" mode=0o750`",
            );
            if let Some(path) = self.dec.arg_parsed(c, 0, "path", |s| {
                check_remote_path(s).map(|()| s.to_string())
            }) {
                let perms = self.perms(c, DEFAULT_DIR_MODE);
                files.dirs.push(DirDecl {
                    path,
                    span: c.span(),
                    perms,
                });
            }
            return;
        }
        let usage = "`file \"/etc/x\" content=\"…\"` (or `source=\"files/x\"`, or `template=\"templates/x.tera\"`) with optional owner, group, mode and secret=#true";
        self.dec.shape(
            c,
            1..=1,
            &[
                "content", "source", "template", "owner", "group", "mode", "secret",
            ],
            false,
            usage,
        );
        let Some(path) = self.dec.arg_parsed(c, 0, "path", |s| {
            check_remote_path(s).map(|()| s.to_string())
        }) else {
            return;
        };
        let inline = self.dec.prop_text(c, "content");
        let source = self.dec.prop_parsed(c, "source", check_repo_path);
        let template = self.dec.prop_parsed(c, "template", check_repo_path);
        let given = [c.prop("content"), c.prop("source"), c.prop("template")]
            .iter()
            .filter(|p| p.is_some())
            .count();
        if given != 1 {
            self.dec.error(
                Diagnostic::error(
                    c.span(),
                    format!(
                        "file `{path}` needs exactly one of `content`, `source` and `template`"
                    ),
                )
                .label(if given == 0 {
                    "no content"
                } else {
                    "several contents"
                })
                .help(format!("write {usage}")),
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
        let secret = self.dec.prop_bool(c, "secret").unwrap_or(false);
        let perms = self.perms(
            c,
            if secret {
                DEFAULT_SECRET_FILE_MODE
            } else {
                DEFAULT_FILE_MODE
            },
        );
        files.files.push(FileDecl {
            path,
            span: c.span(),
            content,
            perms,
            secret,
        });
    }

    fn agent(&mut self, n: Node<'a>) -> Option<Agent> {
        self.dec.shape(
            n,
            1..=1,
            &[],
            true,
            "`agent \"NAME\" { exec \"…\" user \"…\" … }`",
        );
        let name = self.dec.arg_parsed(n, 0, "agent name", |s| {
            check_name(s).map(|()| s.to_string())
        })?;
        let mut used = Vec::new();
        self.broken_use = false;
        let children = self.expand(Ctx::Agent, n.children(), &mut Vec::new(), &mut used);
        let broken_use = self.broken_use;
        let span = n.span();
        let mut a = Agent {
            workdir: format!("{DEFAULT_WORKDIR_PARENT}/{name}"),
            workdir_span: span,
            name,
            span: n.span(),
            description: None,
            exec: String::new(),
            user: String::new(),
            group: None,
            env: BTreeMap::new(),
            secrets: Vec::new(),
            auths: Vec::new(),
            heartbeat: None,
            failure_modes: Vec::new(),
            restart: Restart {
                policy: DEFAULT_RESTART_POLICY.into(),
                delay: DEFAULT_RESTART_DELAY,
                span: n.span(),
            },
            kill_mode: Setting {
                value: DEFAULT_KILL_MODE.to_string(),
                span,
            },
            timeout_stop: DEFAULT_TIMEOUT_STOP,
            alert: None,
            workstate: Setting {
                value: DEFAULT_WORKSTATE,
                span,
            },
            waivers: Vec::new(),
            notes: Vec::new(),
            files: Files::default(),
            modules: used,
        };
        let mut have_exec = false;
        let mut have_user = false;
        for c in children {
            match c.name() {
                "description" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`description \"what it does\"`");
                    a.description = self.dec.arg_str(c, 0, "the description");
                    if a.description.as_ref().is_some_and(|d| d.ends_with('\\')) {
                        let span = c.entry_span(c.args().next().expect("an argument was decoded"));
                        self.dec.error(unit_line_end(span, "the description"));
                    }
                }
                "exec" => {
                    // Present counts: a value that failed to decode is
                    // reported as such, not also as a missing `exec`.
                    have_exec = true;
                    self.dec
                        .shape(c, 1..=1, &[], false, "`exec \"/opt/agent/bin/run --flag\"`");
                    if let Some(e) = self.dec.arg_str(c, 0, "the command") {
                        let span = c.entry_span(c.args().next().expect("an argument was decoded"));
                        let program = e.split_whitespace().next().unwrap_or("");
                        if !program.starts_with('/') {
                            self.dec.error(
                                Diagnostic::error(span, "`exec` must start with an absolute path")
                                    .label("relative command")
                                    .help("systemd runs the command without a shell; write the full path, such as `/usr/bin/python3 /opt/x/run.py`"),
                            );
                        } else if let Err(hint) = check_program_path(program) {
                            self.dec.error(
                                Diagnostic::error(span, format!("bad program of `exec`: {hint}"))
                                    .label("invalid program path")
                                    .help("write the program's plain absolute path first, then its arguments"),
                            );
                        } else if e.ends_with('\\') {
                            self.dec.error(unit_line_end(span, "`exec`"));
                        }
                        a.exec = e;
                    }
                }
                "user" => {
                    have_user = true;
                    self.dec.shape(c, 1..=1, &[], false, "`user \"agent\"`");
                    if let Some(u) = self.dec.arg_parsed(c, 0, "user name", |s| {
                        check_account(s).map(|()| s.to_string())
                    }) {
                        a.user = u;
                    }
                }
                "group" => {
                    self.dec.shape(c, 1..=1, &[], false, "`group \"agents\"`");
                    a.group = self.dec.arg_parsed(c, 0, "group name", |s| {
                        check_account(s).map(|()| s.to_string())
                    });
                }
                "workdir" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`workdir \"/srv/agents/NAME\"`");
                    if let Some(w) = self.dec.arg_parsed(c, 0, "workdir", |s| {
                        check_remote_path(s).map(|()| s.to_string())
                    }) {
                        a.workdir = w;
                        a.workdir_span = c.span();
                    }
                }
                "env" => {
                    self.dec
                        .shape(c, 2..=2, &[], false, "`env \"NAME\" \"value\"`");
                    if let (Some(k), Some(v)) = (
                        self.dec.arg_str(c, 0, "the variable name"),
                        self.dec.arg_str(c, 1, "the value"),
                    ) {
                        if is_env_name(&k) {
                            a.env.insert(k, v);
                        } else {
                            self.dec.error(
                                Diagnostic::error(
                                    c.span(),
                                    format!("`{k}` is not an environment variable name"),
                                )
                                .help("use letters, digits and `_`, not starting with a digit"),
                            );
                        }
                    }
                }
                "secret" => {
                    self.dec.shape(
                        c,
                        1..=1,
                        &["from"],
                        false,
                        "`secret \"NAME\" from=\"env:VAR\"` (or file:, cmd:, age:)",
                    );
                    let name = self.dec.arg_str(c, 0, "the secret name");
                    let source = self.dec.prop_parsed(c, "from", SecretSource::parse);
                    if c.prop("from").is_none() {
                        self.dec.error(
                            Diagnostic::error(c.span(), "`secret` needs `from`")
                                .label("missing source")
                                .help("write `secret \"NAME\" from=\"env:VAR\"` (or file:PATH, cmd:COMMAND, age:PATH)"),
                        );
                    }
                    if let (Some(name), Some(source)) = (name, source) {
                        if is_env_name(&name) {
                            a.secrets.push(SecretRef {
                                name,
                                source,
                                span: c.span(),
                            });
                        } else {
                            self.dec.error(Diagnostic::error(c.span(), format!("secret name `{name}` is not an environment variable name")).help("secrets reach the agent as environment variables: use letters, digits and `_`"));
                        }
                    }
                }
                "auth" => a.auths.extend(self.auth(c)),
                "heartbeat" => a.heartbeat = self.heartbeat(c),
                "failure-mode" => {
                    self.dec.shape(
                        c,
                        2..=2,
                        &["tool"],
                        false,
                        "`failure-mode \"what goes wrong\" \"what to do\" tool=\"mog\"`",
                    );
                    if let (Some(when), Some(then)) = (
                        self.dec.arg_str(c, 0, "the failure"),
                        self.dec.arg_str(c, 1, "the response"),
                    ) {
                        a.failure_modes.push(FailureMode {
                            when,
                            then,
                            tool: self.dec.prop_str(c, "tool"),
                        });
                    }
                }
                "restart" => {
                    self.dec.shape(
                        c,
                        1..=1,
                        &["delay"],
                        false,
                        "`restart \"on-failure\" delay=\"10s\"`",
                    );
                    if let Some(policy) = self.dec.arg_parsed(c, 0, "restart policy", parse_restart)
                    {
                        let delay = self
                            .dec
                            .prop_parsed(c, "delay", Duration::parse)
                            .unwrap_or(DEFAULT_RESTART_DELAY);
                        a.restart = Restart {
                            policy,
                            delay,
                            span: c.span(),
                        };
                    }
                }
                "kill-mode" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`kill-mode \"control-group\"`");
                    if let Some(m) = self.dec.arg_parsed(c, 0, "kill mode", parse_kill_mode) {
                        a.kill_mode = Setting {
                            value: m,
                            span: c.span(),
                        };
                    }
                }
                "timeout-stop" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`timeout-stop \"30s\"`");
                    if let Some(d) = self.dec.arg_parsed(c, 0, "duration", Duration::parse) {
                        a.timeout_stop = d;
                    }
                }
                "alert" => {
                    self.dec.shape(
                        c,
                        1..=1,
                        &[],
                        false,
                        "`alert \"CHANNEL\"` (a channel declared on the host)",
                    );
                    if let Some(ch) = self.dec.arg_str(c, 0, "the channel") {
                        a.alert = Some(Setting {
                            value: ch,
                            span: c.span(),
                        });
                    }
                }
                "workstate" => {
                    self.dec.shape(c, 1..=1, &[], false, "`workstate #true`");
                    if let Some(b) = self.dec.arg_bool(c, 0) {
                        a.workstate = Setting {
                            value: b,
                            span: c.span(),
                        };
                    }
                }
                "waive" => {
                    self.dec.shape(
                        c,
                        1..=1,
                        &["reason"],
                        false,
                        "`waive \"heartbeat\" reason=\"why\"`",
                    );
                    let item = self.dec.arg_str(c, 0, "the checklist item");
                    let reason = self.dec.prop_str(c, "reason");
                    match (item, reason) {
                        (Some(item), Some(reason)) if !reason.trim().is_empty() => {
                            if crate::lint::ITEMS.contains(&item.as_str()) {
                                a.waivers.push(Waiver { item, reason, span: c.span() });
                            } else {
                                let mut d = Diagnostic::error(c.span(), format!("`{item}` is not a checklist item")).label("unknown item");
                                d = d.help(match did_you_mean(&item, crate::lint::ITEMS.iter().copied()) {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None => format!("the items are {}", list(crate::lint::ITEMS)),
                                });
                                self.dec.error(d);
                            }
                        }
                        (Some(_), _) => self.dec.error(
                            Diagnostic::error(c.span(), "a waiver needs a reason")
                                .label("no reason")
                                .help("write `waive \"ITEM\" reason=\"why this agent does without it\"`"),
                        ),
                        _ => {}
                    }
                }
                "note" => {
                    self.dec
                        .shape(c, 1..=1, &[], false, "`note \"text for AGENTS.md\"`");
                    a.notes.extend(self.dec.arg_str(c, 0, "the note"));
                }
                "file" | "dir" => self.file_or_dir(c, &mut a.files),
                _ => {}
            }
        }
        if !have_exec && !broken_use {
            self.dec.error(
                Diagnostic::error(n.span(), format!("agent `{}` has no `exec`", a.name))
                    .label("missing `exec`")
                    .help("add `exec \"/opt/…/run\"`: the command the agent's unit runs"),
            );
        }
        if !have_user && !broken_use {
            self.dec.error(
                Diagnostic::error(n.span(), format!("agent `{}` has no `user`", a.name))
                    .label("missing `user`")
                    .help("add `user \"agent\"` (created as a system user when the host lacks it), or `use` a module that sets one"),
            );
        }
        Some(a)
    }

    fn auth(&mut self, c: Node<'a>) -> Option<Auth> {
        let usage = "`auth \"NAME\" check=\"command that exits 0 when logged in\" { rotate every=\"45d\" run=\"…\" }`";
        self.dec.shape(c, 1..=1, &["check"], true, usage);
        let name = self
            .dec
            .arg_parsed(c, 0, "auth name", |s| check_name(s).map(|()| s.to_string()))?;
        let check = self.dec.prop_str(c, "check");
        let mut rotate = None;
        for r in c.children() {
            if r.name() != "rotate" {
                let mut d =
                    Diagnostic::error(r.span(), format!("unknown node `{}` in an auth", r.name()))
                        .label("unknown node");
                d = d.help(match did_you_mean(r.name(), ["rotate"]) {
                    Some(_) => "did you mean `rotate`?".into(),
                    None => {
                        "an auth's block holds `rotate every=\"45d\" run=\"…\" notify=\"CHANNEL\"`"
                            .to_string()
                    }
                });
                self.dec.error(d);
                continue;
            }
            self.dec.shape(
                r,
                0..=0,
                &["every", "run", "notify"],
                false,
                "`rotate every=\"45d\" run=\"/usr/local/bin/renew\" notify=\"ops\"`",
            );
            let every = self.dec.prop_parsed(r, "every", Duration::parse);
            let run = self.dec.prop_str(r, "run");
            if r.prop("every").is_none() || r.prop("run").is_none() {
                self.dec.error(
                    Diagnostic::error(r.span(), "`rotate` needs `every` and `run`")
                        .label("incomplete")
                        .help("write `rotate every=\"45d\" run=\"/usr/local/bin/renew\"`"),
                );
            }
            let notify = self.dec.prop_str(r, "notify").map(|v| Setting {
                value: v,
                span: r.span(),
            });
            if let (Some(every), Some(run)) = (every, run) {
                if every.secs < 3600 {
                    self.dec.error(
                        Diagnostic::error(r.span(), "rotation more often than hourly")
                            .help("rotation is checked hourly; use `every` of at least `1h`"),
                    );
                }
                rotate = Some(Rotate {
                    span: r.span(),
                    every,
                    run,
                    notify,
                });
            }
        }
        Some(Auth {
            name,
            span: c.span(),
            check,
            rotate,
        })
    }

    fn heartbeat(&mut self, c: Node<'a>) -> Option<Heartbeat> {
        let usage =
            "`heartbeat every=\"30m\" grace=\"5m\" active-hours=\"07:00-19:00\" alert=\"ops\"`";
        self.dec.shape(
            c,
            0..=0,
            &[
                "every",
                "grace",
                "active-hours",
                "alert",
                "probe",
                "verify-timeout",
            ],
            false,
            usage,
        );
        let verify_timeout = self.dec.prop_parsed(c, "verify-timeout", Duration::parse);
        let every = self.dec.prop_parsed(c, "every", Duration::parse);
        if c.prop("every").is_none() {
            self.dec.error(
                Diagnostic::error(c.span(), "`heartbeat` needs `every`")
                    .label("missing `every`")
                    .help(format!("write {usage}")),
            );
        }
        let grace = self.dec.prop_parsed(c, "grace", Duration::parse);
        let active_hours = self.dec.prop_parsed(c, "active-hours", ActiveHours::parse);
        let probe = self.dec.prop_str(c, "probe");
        let alert = self.dec.prop_str(c, "alert").map(|v| Setting {
            value: v,
            span: c.span(),
        });
        let every = every?;
        if every.secs < 60 {
            self.dec.error(
                Diagnostic::error(c.span(), "heartbeat interval under a minute")
                    .help("the checker runs every minute at most; use `every` of at least `1m`"),
            );
        }
        let grace = grace.unwrap_or_else(|| default_grace(every));
        Some(Heartbeat {
            span: c.span(),
            every,
            grace,
            active_hours,
            alert,
            probe,
            verify_timeout,
        })
    }

    /// Cross-references within one host: alert names, users, duplicate paths.
    fn check_host(&mut self, host: &mut Host, broken_alerts: &BTreeSet<String>) {
        let names: Vec<String> = host.alerts.iter().map(|a| a.name.clone()).collect();
        let mut refs: Vec<Setting<String>> = Vec::new();
        for a in &host.agents {
            refs.extend(a.alert.clone());
            refs.extend(a.heartbeat.as_ref().and_then(|h| h.alert.clone()));
            refs.extend(
                a.auths
                    .iter()
                    .filter_map(|x| x.rotate.as_ref()?.notify.clone()),
            );
        }
        let declared: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        for r in refs {
            if declared.contains(r.value.as_str()) || broken_alerts.contains(&r.value) {
                continue;
            }
            let mut d = Diagnostic::error(r.span, format!("unknown alert channel `{}`", r.value))
                .label("not declared on this host");
            d = d.help(
                match did_you_mean(&r.value, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => format!(
                        "declare it on the host: `alert \"{}\" webhook=\"https://…\"`",
                        r.value
                    ),
                    None => format!(
                        "the host declares {}",
                        list(&names.iter().map(String::as_str).collect::<Vec<_>>())
                    ),
                },
            );
            self.dec.error(d);
        }

        let mut agents: BTreeMap<&str, Span> = BTreeMap::new();
        for a in &host.agents {
            agents.entry(a.name.as_str()).or_insert(a.span);
        }

        // Agents' users exist on the host: declared, or created for them.
        let mut accounts: BTreeSet<String> = host.users.iter().map(|u| u.name.clone()).collect();
        for a in &host.agents {
            if a.user.is_empty() || a.user == "root" || !accounts.insert(a.user.clone()) {
                continue;
            }
            host.users.push(User {
                name: a.user.clone(),
                span: a.span,
                uid: None,
                group: None,
                home: None,
                shell: None,
                groups: Vec::new(),
                declared: false,
            });
        }
        host.users.sort_by(|a, b| a.name.cmp(&b.name));

        let mut paths: BTreeMap<String, Span> = BTreeMap::new();
        let decls = host
            .files
            .files
            .iter()
            .map(|f| (&f.path, f.span))
            .chain(host.files.dirs.iter().map(|d| (&d.path, d.span)))
            .chain(host.agents.iter().flat_map(|a| {
                a.files
                    .files
                    .iter()
                    .map(|f| (&f.path, f.span))
                    .chain(a.files.dirs.iter().map(|d| (&d.path, d.span)))
            }));
        let mut dups = Vec::new();
        for (path, span) in decls {
            if let Some(first) = paths.insert(path.clone(), span) {
                dups.push(
                    Diagnostic::error(
                        span,
                        format!("`{path}` is declared twice on host `{}`", host.name),
                    )
                    .label("second declaration")
                    .related(first, "first declared here")
                    .help("a path has one owner; keep one declaration"),
                );
            }
        }
        for d in dups {
            self.dec.error(d);
        }
    }
}

/// A value that would end a unit-file line with `\`, which systemd reads as
/// "the line continues", swallowing the next setting.
fn unit_line_end(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(span, format!("{what} ends with a backslash"))
        .label("continues the unit-file line")
        .help("systemd joins a line ending in `\\` with the next one, so the next setting would be lost; remove the trailing backslash")
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

/// A path inside the operator's repository: relative, without `..`.
fn check_repo_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') || s.split('/').any(|p| p == ".." || p == "." || p.is_empty()) {
        return Err(format!(
            "`{s}` must be a path inside the repository, relative to its root, without `.`, `..` or `//`"
        ));
    }
    Ok(s.to_string())
}

fn parse_restart(s: &str) -> Result<String, String> {
    const OK: &[&str] = &[
        "no",
        "on-success",
        "on-failure",
        "on-abnormal",
        "on-watchdog",
        "on-abort",
        "always",
    ];
    if OK.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a systemd restart policy; use one of {}",
            list(OK)
        ))
    }
}

fn parse_kill_mode(s: &str) -> Result<String, String> {
    const OK: &[&str] = &["control-group", "mixed", "process", "none"];
    if OK.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a systemd kill mode; use one of {}",
            list(OK)
        ))
    }
}
