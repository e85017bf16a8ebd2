//! From a typed [`Host`] to its [`DesiredState`]: every file an agent needs to
//! run unattended, rendered from tera templates, byte for byte deterministic.
//!
//! Templates ship in the binary (`render/templates/`) and a module may
//! override any of them with `modules/NAME/templates/TEMPLATE.tera`. Values
//! are escaped here, in Rust, for the place they land in (systemd, sh), so
//! templates only place them.
//!
//! Pure: file contents from the repository arrive as [`Assets`], secret values
//! as [`SecretValues`].

pub mod views;

use std::collections::{BTreeMap, BTreeSet};

use tera::{Context, Tera};

use crate::desired::{DesiredState, FileSpec, Hook, UnitSpec};
use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean, error_chain};
use crate::model::values::check_url;
use crate::model::{Agent, AlertKind, FileContent, Files, Host, WebhookUrl};
use crate::onhost;
use crate::script::sh_quote;
use crate::secret::Secret;
use crate::source::{SourceSet, Span};
use crate::syntax::list;

use views::{AgentView, HostView};

/// Files of the operator's repository that `file source=`/`template=` name,
/// by repository-relative path.
pub type Assets = BTreeMap<String, Vec<u8>>;

/// Resolved secret values, by source (`env:TOKEN`).
pub type SecretValues = BTreeMap<String, Secret>;

/// The name of the hook that creates users from `sysusers.conf`. Hook names
/// are what plans show and host records keep, so they never change.
pub const HOOK_CREATE_USERS: &str = "create users";

/// The name of the hook that creates directories from `tmpfiles.conf`.
pub const HOOK_CREATE_DIRECTORIES: &str = "create directories";

/// The name of the hook that restarts journald when its drop-in changed;
/// verification checks the drop-in is in effect when a plan runs it
/// ([`crate::plan::Activation::restarts_journald`]).
pub const HOOK_RESTART_JOURNALD: &str = "restart journald";

/// The built-in templates: (name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("boot.service", include_str!("templates/boot.service.tera")),
    ("boot.sh", include_str!("templates/boot.sh.tera")),
    (
        "agent.service",
        include_str!("templates/agent.service.tera"),
    ),
    ("agent.env", include_str!("templates/agent.env.tera")),
    (
        "auth-check.sh",
        include_str!("templates/auth-check.sh.tera"),
    ),
    ("rotate.sh", include_str!("templates/rotate.sh.tera")),
    ("run-as.sh", include_str!("templates/run-as.sh.tera")),
    (
        "rotate.service",
        include_str!("templates/rotate.service.tera"),
    ),
    ("rotate.timer", include_str!("templates/rotate.timer.tera")),
    (
        "heartbeat.service",
        include_str!("templates/heartbeat.service.tera"),
    ),
    (
        "heartbeat.timer",
        include_str!("templates/heartbeat.timer.tera"),
    ),
    (
        "heartbeat-check.sh",
        include_str!("templates/heartbeat-check.sh.tera"),
    ),
    (
        "expiry-check.sh",
        include_str!("templates/expiry-check.sh.tera"),
    ),
    (
        "expiry.service",
        include_str!("templates/expiry.service.tera"),
    ),
    ("expiry.timer", include_str!("templates/expiry.timer.tera")),
    ("AGENTS.md", include_str!("templates/AGENTS.md.tera")),
    (
        "journald.conf",
        include_str!("templates/journald.conf.tera"),
    ),
    (
        "alert@.service",
        include_str!("templates/alert@.service.tera"),
    ),
    ("alert.sh", include_str!("templates/alert.sh.tera")),
    (
        "alert-channel.conf",
        include_str!("templates/alert-channel.conf.tera"),
    ),
    ("alert-routes", include_str!("templates/alert-routes.tera")),
    (
        "sysusers.conf",
        include_str!("templates/sysusers.conf.tera"),
    ),
    (
        "tmpfiles.conf",
        include_str!("templates/tmpfiles.conf.tera"),
    ),
];

/// The compiled templates: built-ins plus the modules' overrides.
pub struct Templates {
    tera: Tera,
    overrides: BTreeSet<(String, String)>,
}

impl Templates {
    /// Compiles the built-ins and every override found in the sources.
    /// Problems (unknown template name, tera syntax) go to `diags`.
    pub fn new(sources: &SourceSet, diags: &mut Diagnostics) -> Self {
        let mut tera = Tera::new();
        // Nothing here is HTML: never escape.
        tera.autoescape_on(Vec::<&str>::new());
        // `| sh` quotes a value as one POSIX sh word.
        tera.register_filter("sh", |x: &str, _: tera::Kwargs, _: &tera::State| {
            sh_quote(x)
        });
        for (name, text) in BUILTIN {
            tera.add_raw_template(&format!("builtin/{name}"), text)
                .unwrap_or_else(|e| panic!("built-in template {name} does not compile: {e}"));
        }
        let mut overrides = BTreeSet::new();
        for ((module, name), id) in sources.templates() {
            let span = Span {
                source: id,
                offset: 0,
                len: 0,
            };
            if !BUILTIN.iter().any(|(n, _)| *n == name) {
                let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                let mut d = Diagnostic::error(
                    span,
                    format!("`{name}` is not a template provision renders"),
                )
                .label("unknown template");
                d = d.help(match did_you_mean(&name, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}.tera`?"),
                    None => format!("overridable templates: {}", list(&names)),
                });
                diags.push(d);
                continue;
            }
            match tera.add_raw_template(&format!("{module}/{name}"), &sources.get(id).text) {
                Ok(()) => {
                    overrides.insert((module, name));
                }
                Err(e) => diags.push(
                    Diagnostic::error(
                        span,
                        format!("template does not compile: {}", error_chain(&e)),
                    )
                    .help("fix the tera syntax (https://keats.github.io/tera/)"),
                ),
            }
        }
        Self { tera, overrides }
    }

    /// The template to use: the first module in `modules` that overrides it, else the built-in.
    fn pick(&self, name: &str, modules: &[&String]) -> String {
        modules
            .iter()
            .find(|m| self.overrides.contains(&((**m).clone(), name.to_string())))
            .map_or_else(|| format!("builtin/{name}"), |m| format!("{m}/{name}"))
    }
}

struct Renderer<'a> {
    host: &'a Host,
    templates: &'a Templates,
    assets: &'a Assets,
    secrets: Option<&'a SecretValues>,
    diags: &'a mut Diagnostics,
    state: DesiredState,
    host_view: HostView,
}

/// Renders every host without secrets, on every core, handing each state
/// to `each` (which may keep what it needs and drop the rest, so a large
/// fleet's files are never all held at once). Results and diagnostics come
/// in the order of `hosts`, whichever thread finished first.
pub fn each_host<T: Send>(
    hosts: &[Host],
    templates: &Templates,
    assets: &Assets,
    each: impl Fn(&Host, DesiredState) -> T + Sync,
) -> (Vec<T>, Diagnostics) {
    let parts = crate::parallel::by_chunks(hosts, |part| {
        let mut diags = Diagnostics::default();
        let out: Vec<T> = part
            .iter()
            .map(|h| each(h, render(h, templates, assets, None, &mut diags)))
            .collect();
        (out, diags)
    });
    let mut out = Vec::with_capacity(hosts.len());
    let mut diags = Diagnostics::default();
    for (part, d) in parts {
        out.extend(part);
        diags.extend(d);
    }
    (out, diags)
}

/// Renders one host. With `secrets` of `None`, secret-bearing files hold the
/// references only (and are marked secret in the manifest).
pub fn render(
    host: &Host,
    templates: &Templates,
    assets: &Assets,
    secrets: Option<&SecretValues>,
    diags: &mut Diagnostics,
) -> DesiredState {
    let mut r = Renderer {
        host,
        templates,
        assets,
        secrets,
        diags,
        state: DesiredState {
            host: host.name.clone(),
            files: BTreeMap::new(),
            units: BTreeMap::new(),
            hooks: Vec::new(),
        },
        host_view: HostView::new(host),
    };
    r.host_files();
    for a in &host.agents {
        r.agent(a);
    }
    r.state
}

impl Renderer<'_> {
    fn template(
        &mut self,
        name: &str,
        agent: Option<&Agent>,
        ctx: &Context,
        span: Span,
    ) -> Vec<u8> {
        let modules: Vec<&String> = agent
            .map(|a| a.modules.iter())
            .into_iter()
            .flatten()
            .chain(self.host.modules.iter())
            .collect();
        let chosen = self.templates.pick(name, &modules);
        match self.templates.tera.render(&chosen, ctx) {
            Ok(s) => s.into_bytes(),
            Err(e) => {
                let file = match chosen.split_once('/') {
                    Some(("builtin", n)) => format!("built-in template `{n}`"),
                    Some((m, n)) => format!("template `modules/{m}/templates/{n}.tera`"),
                    None => chosen.clone(),
                };
                self.diags.push(
                    Diagnostic::error(span, format!("{file} failed to render: {}", error_chain(&e)))
                        .label("while rendering this")
                        .help("templates see `host` and `agent`; an undefined variable is an error, never an empty string"),
                );
                Vec::new()
            }
        }
    }

    fn add(&mut self, path: String, spec: FileSpec) {
        self.state.files.insert(path, spec);
    }

    fn unit(&mut self, name: String, enable: bool, inputs: impl IntoIterator<Item = String>) {
        self.state.units.insert(
            name.clone(),
            UnitSpec {
                name,
                enable,
                inputs: inputs.into_iter().collect(),
            },
        );
    }

    fn host_files(&mut self) {
        let host = self.host;
        let mut ctx = Context::new();
        ctx.insert("host", &self.host_view);

        let boot_unit = onhost::unit_path(onhost::BOOT_UNIT);
        let bytes = self.template("boot.service", None, &ctx, host.span);
        self.add(
            boot_unit.clone(),
            FileSpec::new(bytes, 0o644, "root", "root"),
        );
        let bytes = self.template("boot.sh", None, &ctx, host.span);
        self.add(
            onhost::BOOT_SCRIPT.into(),
            FileSpec::new(bytes, 0o755, "root", "root"),
        );
        self.unit(
            onhost::BOOT_UNIT.into(),
            true,
            [boot_unit, onhost::BOOT_SCRIPT.to_string()],
        );

        let alert_unit = onhost::unit_path(onhost::ALERT_UNIT);
        let bytes = self.template("alert@.service", None, &ctx, host.span);
        self.add(alert_unit, FileSpec::new(bytes, 0o644, "root", "root"));
        let bytes = self.template("alert.sh", None, &ctx, host.span);
        self.add(
            onhost::ALERT_SCRIPT.into(),
            FileSpec::new(bytes, 0o755, "root", "root"),
        );
        if host.agents.iter().any(|a| a.heartbeat.is_some()) {
            let bytes = self.template("heartbeat-check.sh", None, &ctx, host.span);
            self.add(
                onhost::HEARTBEAT_CHECK.into(),
                FileSpec::new(bytes, 0o755, "root", "root"),
            );
        }

        if host
            .agents
            .iter()
            .any(|a| a.auths.iter().any(|x| x.expiry.is_some()))
        {
            let bytes = self.template("expiry-check.sh", None, &ctx, host.span);
            self.add(
                onhost::EXPIRY_CHECK.into(),
                FileSpec::new(bytes, 0o755, "root", "root"),
            );
        }

        for ch in &host.alerts {
            let (kind, settings, secret) = match &ch.kind {
                AlertKind::Telegram { chat, token, api } => {
                    let token_line = match self.secrets {
                        Some(values) => match values.get(&token.source.to_string()) {
                            Some(v) => format!("TOKEN={}", sh_quote(v.expose())),
                            None => {
                                self.diags.push(Diagnostic::error(
                                    ch.span,
                                    format!("secret `{}` was not resolved", token.source),
                                ));
                                String::new()
                            }
                        },
                        None => format!("# TOKEN <- {} (resolved at apply time)", token.source),
                    };
                    (
                        "telegram",
                        vec![
                            format!("CHAT={}", sh_quote(chat)),
                            format!("API={}", sh_quote(api.trim_end_matches('/'))),
                            token_line,
                        ],
                        true,
                    )
                }
                // A webhook's URL is a credential (whoever has it can post
                // alerts): its file is handled as a secret.
                AlertKind::Webhook { url, insecure } => {
                    let line = match url {
                        WebhookUrl::Literal(u) => format!("URL={}", sh_quote(u)),
                        WebhookUrl::Secret(r) => match self.secrets {
                            Some(values) => match values.get(&r.source.to_string()) {
                                // Checked as the KDL's URLs are, but the
                                // message never shows the value.
                                Some(v) => match check_url(v.expose(), *insecure) {
                                    Ok(()) => format!("URL={}", sh_quote(v.expose())),
                                    Err(_) => {
                                        self.diags.push(
                                            Diagnostic::error(
                                                ch.span,
                                                format!(
                                                    "the value of `{}` (alert `{}`) is not a webhook URL",
                                                    r.source, ch.name
                                                ),
                                            )
                                            .help(if *insecure {
                                                "set it to `https://host/path` (or `http://…`), with no spaces, quotes or credentials before `@`"
                                            } else {
                                                "set it to `https://host/path`, with no spaces, quotes or credentials before `@` (plain http needs `insecure=#true` on the alert)"
                                            }),
                                        );
                                        String::new()
                                    }
                                },
                                None => {
                                    self.diags.push(Diagnostic::error(
                                        ch.span,
                                        format!("secret `{}` was not resolved", r.source),
                                    ));
                                    String::new()
                                }
                            },
                            None => format!("# URL <- {} (resolved at apply time)", r.source),
                        },
                    };
                    ("webhook", vec![line], true)
                }
                AlertKind::Command { command } => (
                    "command",
                    vec![format!("COMMAND={}", sh_quote(command))],
                    false,
                ),
            };
            let mut c = ctx.clone();
            c.insert(
                "channel",
                &views::ChannelView {
                    name: ch.name.clone(),
                    kind,
                    repeat_secs: ch.repeat.secs,
                    settings,
                },
            );
            let bytes = self.template("alert-channel.conf", None, &c, ch.span);
            let mut spec = FileSpec::new(bytes, 0o600, "root", "root");
            if secret {
                spec = spec.secret();
            }
            self.add(onhost::alert_channel_file(&ch.name), spec);
        }
        let mut routes = Vec::new();
        for a in &host.agents {
            let ch = a.alert.as_ref().map(|s| s.value.clone()).or_else(|| {
                a.heartbeat
                    .as_ref()
                    .and_then(|h| h.alert.as_ref().map(|s| s.value.clone()))
            });
            if let Some(ch) = ch {
                for unit in agent_units(a) {
                    routes.push(format!("{unit} {ch}"));
                }
            }
        }
        routes.sort();
        if !host.alerts.is_empty() {
            let all: Vec<&str> = host.alerts.iter().map(|a| a.name.as_str()).collect();
            routes.push(format!("* {}", all.join(" ")));
        }
        let mut c = ctx.clone();
        c.insert("routes", &routes);
        let bytes = self.template("alert-routes", None, &c, host.span);
        self.add(
            onhost::ALERT_ROUTES.into(),
            FileSpec::new(bytes, 0o644, "root", "root"),
        );

        // Hooks run in this order on the host: users first (tmpfiles chowns
        // to them), then directories, then journald.
        let lines = views::sysusers_lines(host);
        if !lines.is_empty() {
            let mut c = ctx.clone();
            c.insert("lines", &lines);
            let path = onhost::SYSUSERS_CONF;
            self.hooked(
                "sysusers.conf",
                &c,
                host.span,
                path,
                HOOK_CREATE_USERS,
                format!("systemd-sysusers {path}"),
            );
        }
        let lines = views::tmpfiles_lines(host);
        if !lines.is_empty() {
            let mut c = ctx.clone();
            c.insert("lines", &lines);
            let path = onhost::TMPFILES_CONF;
            self.hooked(
                "tmpfiles.conf",
                &c,
                host.span,
                path,
                HOOK_CREATE_DIRECTORIES,
                format!("systemd-tmpfiles --create {path}"),
            );
        }
        if let Some(j) = &host.journald {
            let mut c = ctx.clone();
            c.insert("journald", &views::JournaldView::new(j));
            let path = onhost::JOURNALD_DROPIN;
            self.hooked(
                "journald.conf",
                &c,
                j.span,
                path,
                HOOK_RESTART_JOURNALD,
                "systemctl restart systemd-journald".into(),
            );
        }

        self.declared(&host.files, None, &ctx);
    }

    /// Renders a timer and the oneshot service it starts, named `stem`,
    /// from the templates `TEMPLATE.service` and `TEMPLATE.timer`: the
    /// timer is enabled and restarted when its file changes; the service
    /// runs only when the timer fires.
    fn timed(&mut self, stem: &str, template: &str, a: &Agent, ctx: &Context) {
        let bytes = self.template(&format!("{template}.service"), Some(a), ctx, a.span);
        self.add(
            onhost::unit_path(&onhost::service(stem)),
            FileSpec::new(bytes, 0o644, "root", "root"),
        );
        self.unit(onhost::service(stem), false, []);
        let bytes = self.template(&format!("{template}.timer"), Some(a), ctx, a.span);
        let timer = onhost::unit_path(&onhost::timer(stem));
        self.add(timer.clone(), FileSpec::new(bytes, 0o644, "root", "root"));
        self.unit(onhost::timer(stem), true, [timer]);
    }

    /// Renders a root-owned config file whose change runs `command` on the host.
    fn hooked(
        &mut self,
        template: &str,
        ctx: &Context,
        span: Span,
        path: &str,
        name: &str,
        command: String,
    ) {
        let bytes = self.template(template, None, ctx, span);
        self.add(
            path.to_string(),
            FileSpec::new(bytes, 0o644, "root", "root"),
        );
        // sysusers and tmpfiles take their config as the last argument, so
        // they can run on the new content before anything is switched.
        let early = command.ends_with(&format!(" {path}"));
        self.state.hooks.push(Hook {
            name: name.into(),
            command,
            inputs: [path.to_string()].into(),
            early,
        });
    }

    /// `file` nodes; returns their paths (an agent's restart it).
    fn declared(&mut self, files: &Files, agent: Option<&Agent>, ctx: &Context) -> Vec<String> {
        let mut paths = Vec::new();
        for f in &files.files {
            let bytes = match &f.content {
                FileContent::Inline(s) => s.clone().into_bytes(),
                FileContent::Repo(p) => match self.assets.get(p) {
                    Some(b) => b.clone(),
                    None => {
                        self.missing_asset(f.span, p);
                        continue;
                    }
                },
                FileContent::Template(p) => {
                    let Some(src) = self.assets.get(p) else {
                        self.missing_asset(f.span, p);
                        continue;
                    };
                    let mut t = Tera::new();
                    t.autoescape_on(Vec::<&str>::new());
                    let text = String::from_utf8_lossy(src);
                    match t.add_raw_template(p, &text).and_then(|()| t.render(p, ctx)) {
                        Ok(s) => s.into_bytes(),
                        Err(e) => {
                            self.diags.push(
                                Diagnostic::error(
                                    f.span,
                                    format!("template `{p}` failed to render: {}", error_chain(&e)),
                                )
                                .label("while rendering this")
                                .help(if agent.is_some() {
                                    "this template sees `host` and `agent`"
                                } else {
                                    "this template sees `host`"
                                }),
                            );
                            continue;
                        }
                    }
                }
            };
            let spec = FileSpec::new(bytes, f.perms.mode.0, &f.perms.owner, &f.perms.group);
            self.add(f.path.clone(), if f.secret { spec.secret() } else { spec });
            paths.push(f.path.clone());
        }
        paths
    }

    fn missing_asset(&mut self, span: Span, path: &str) {
        self.diags.push(
            Diagnostic::error(span, format!("`{path}` is not a file of the repository"))
                .label("file not found")
                .help("paths in `source=` and `template=` are relative to the repository root"),
        );
    }

    fn agent(&mut self, a: &Agent) {
        let view = AgentView::new(self.host, a);
        let mut ctx = Context::new();
        ctx.insert("host", &self.host_view);
        ctx.insert("agent", &view);
        let unit = view.unit.clone();
        let mut inputs = Vec::new();

        if let Some(env_file) = &view.env_file {
            let mut c = ctx.clone();
            let lines: Option<Vec<String>> = self.secrets.map(|values| {
                a.secrets
                    .iter()
                    .filter_map(|s| match values.get(&s.source.to_string()) {
                        Some(v) => {
                            Some(format!("{}={}", s.name, views::env_file_quote(v.expose())))
                        }
                        None => {
                            self.diags.push(Diagnostic::error(
                                s.span,
                                format!("secret `{}` was not resolved", s.source),
                            ));
                            None
                        }
                    })
                    .collect()
            });
            c.insert("resolved", &lines.is_some());
            c.insert("secret_lines", &lines.unwrap_or_default());
            let bytes = self.template("agent.env", Some(a), &c, a.span);
            self.add(
                env_file.clone(),
                FileSpec::new(bytes, 0o600, "root", "root").secret(),
            );
            inputs.push(env_file.clone());
        }
        if let Some(path) = &view.auth_check {
            let bytes = self.template("auth-check.sh", Some(a), &ctx, a.span);
            self.add(path.clone(), FileSpec::new(bytes, 0o755, "root", "root"));
            inputs.push(path.clone());
        }
        // How root's helpers run agent commands (rotation, a heartbeat
        // probe): as the agent, with its environment, in a unit of its own.
        let bytes = self.template("run-as.sh", Some(a), &ctx, a.span);
        self.add(
            onhost::run_as(&a.name),
            FileSpec::new(bytes, 0o755, "root", "root"),
        );
        for auth in &view.auths {
            let mut c = ctx.clone();
            c.insert("auth", auth);
            if let Some(exp) = &auth.expiry {
                self.timed(&exp.unit, "expiry", a, &c);
            }
            let Some(rot) = &auth.rotate else { continue };
            let bytes = self.template("rotate.sh", Some(a), &c, a.span);
            self.add(
                rot.script.clone(),
                FileSpec::new(bytes, 0o700, "root", "root"),
            );
            self.timed(&rot.unit, "rotate", a, &c);
        }
        if a.heartbeat.is_some() {
            self.timed(&onhost::heartbeat_stem(&a.name), "heartbeat", a, &ctx);
        }
        let bytes = self.template("AGENTS.md", Some(a), &ctx, a.span);
        let agents_md = onhost::agents_md(&a.workdir);
        self.add(
            agents_md.clone(),
            FileSpec::new(bytes, 0o644, &a.user, &view.group),
        );
        inputs.push(agents_md);
        inputs.extend(self.declared(&a.files, Some(a), &ctx));

        let bytes = self.template("agent.service", Some(a), &ctx, a.span);
        let unit_path = onhost::unit_path(&unit);
        self.add(
            unit_path.clone(),
            FileSpec::new(bytes, 0o644, "root", "root"),
        );
        inputs.push(unit_path);
        self.unit(unit, true, inputs);
    }
}

/// Units whose failure alerts for an agent.
fn agent_units(a: &Agent) -> Vec<String> {
    let mut out = vec![onhost::agent_unit(&a.name)];
    if a.heartbeat.is_some() {
        out.push(onhost::service(&onhost::heartbeat_stem(&a.name)));
    }
    for x in &a.auths {
        if x.rotate.is_some() {
            out.push(onhost::service(&onhost::rotate_stem(&a.name, &x.name)));
        }
        if x.expiry.is_some() {
            out.push(onhost::service(&onhost::expiry_stem(&a.name, &x.name)));
        }
    }
    out
}
