//! One function per subcommand: load the repository, run the pure core, run
//! the effects, hand the results to `ui`. The only place where the core and
//! the effects meet.

pub mod alert;
pub mod apply;
pub mod check;
pub mod generations;
pub mod init;
pub mod onboard;
pub mod operator;
pub mod plan;
pub mod render;
pub mod secret_files;
pub mod secrets;
pub mod status;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use crate::deploy::decide::{self, SelectError};
use crate::deploy::host::HostError;
use crate::deploy::{Failed, Options, Prepared};
use crate::desired::DesiredState;
use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::error::Error;
use crate::model::{FileContent, Fleet, Host};
use crate::render::{Assets, Templates};
use crate::saved_plan::SavedPlan;
use crate::secret::Secret;
use crate::source::SourceSet;

/// A loaded and compiled repository.
pub struct Repo {
    /// The files.
    pub sources: SourceSet,
    /// The typed fleet.
    pub fleet: Fleet,
    /// Compiled templates.
    pub templates: Templates,
    /// Repository files named by `file` nodes.
    pub assets: Assets,
    /// Every problem found so far.
    pub diags: Diagnostics,
}

impl Repo {
    /// Loads and compiles the repository at `root`.
    pub fn open(root: &Path) -> Result<Self, Error> {
        Self::compile(root, crate::load::load(root)?)
    }

    /// Loads the repository at `root` as if `extra` were one of its files
    /// (in place of the file at its path, if there is one), and compiles
    /// it: how `onboard` plans and applies a host before writing its file.
    pub fn open_with(root: &Path, extra: crate::source::Source) -> Result<Self, Error> {
        let loaded = crate::load::load(root)?;
        let mut files: Vec<crate::source::Source> = loaded
            .iter()
            .map(|(_, s)| s.clone())
            .filter(|s| s.path != extra.path)
            .collect();
        files.push(extra);
        Self::compile(root, SourceSet::new(files))
    }

    fn compile(root: &Path, sources: SourceSet) -> Result<Self, Error> {
        let (fleet, mut diags) = crate::compile(&sources);
        let templates = Templates::new(&sources, &mut diags);
        let paths: Vec<String> = fleet.hosts.iter().flat_map(asset_paths).collect();
        let assets = crate::load::assets(root, &paths);
        if fleet.hosts.is_empty() && !diags.has_errors() {
            diags.push(Diagnostic {
                severity: crate::diagnostic::Severity::Warning,
                span: None,
                message: "hosts/ defines no host".into(),
                label: String::new(),
                help: Some("add hosts/NAME.kdl with `host \"NAME\" { … }`".into()),
                related: None,
            });
        }
        Ok(Self {
            sources,
            fleet,
            templates,
            assets,
            diags,
        })
    }

    /// Loads and compiles the repository, and stops with its diagnostics
    /// printed when it has errors: the start of every command that reaches
    /// hosts.
    pub fn checked(root: &Path, style: crate::ui::Style) -> Result<Self, Error> {
        Self::open(root)?.or_report(style)
    }

    /// The repository, or its diagnostics printed and the error that ends
    /// the command when it has errors.
    pub fn or_report(mut self, style: crate::ui::Style) -> Result<Self, Error> {
        if self.diags.has_errors() {
            return Err(report(&mut self, style));
        }
        Ok(self)
    }

    /// The hosts a run selects (`NAME`, `@TAG`, all when none), in order of
    /// name, shard `i/n` of them when given.
    pub fn select(
        &self,
        selectors: &[String],
        shard: Option<(usize, usize)>,
    ) -> Result<Vec<Host>, Error> {
        match decide::select(&self.fleet, selectors, shard) {
            Ok(hosts) => Ok(hosts.into_iter().cloned().collect()),
            Err(SelectError::NoTag(tag)) => {
                Err(Error::Usage(format!("no host has the tag `{tag}`")))
            }
            Err(SelectError::UnknownHost(name)) => Err(self.unknown_host(&name)),
        }
    }

    /// The host with this name, or an error suggesting a close one.
    pub fn host(&self, name: &str) -> Result<&Host, Error> {
        self.fleet.host(name).ok_or_else(|| self.unknown_host(name))
    }

    fn unknown_host(&self, name: &str) -> Error {
        Error::UnknownHost {
            name: name.into(),
            suggestion: did_you_mean(name, self.fleet.hosts.iter().map(|h| h.name.as_str()))
                .map(str::to_string),
        }
    }
}

/// Repository files a host's `file` nodes read.
pub fn asset_paths(h: &Host) -> Vec<String> {
    let files = h
        .files
        .files
        .iter()
        .chain(h.agents.iter().flat_map(|a| a.files.files.iter()));
    files
        .filter_map(|f| match &f.content {
            FileContent::Repo(p) | FileContent::Template(p) => Some(p.clone()),
            FileContent::Inline(_) => None,
        })
        .collect()
}

/// Prints the repository's diagnostics and returns the error that ends the
/// command.
pub fn report(repo: &mut Repo, style: crate::ui::Style) -> Error {
    let errors = repo.diags.error_count();
    let diags = std::mem::take(&mut repo.diags).into_sorted();
    eprint!(
        "{}",
        crate::ui::diagnostics::human(&diags, &repo.sources, style.color_err)
    );
    Error::Invalid {
        errors,
        diagnostics: serde_json::to_value(crate::ui::diagnostics::json(&diags, &repo.sources))
            .expect("diagnostics serialise"),
    }
}

/// The runtime for commands that reach hosts.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Hosts rendered with their secrets, and those whose secrets did not all
/// resolve.
pub struct Rendered {
    /// Each host ready to go, with its state and secret values.
    pub ready: Vec<(Host, (DesiredState, Vec<Secret>))>,
    /// Each host that needs a secret that could not be resolved, with every
    /// such secret (never touched).
    pub failed: Vec<Failed>,
}

/// Resolves the secrets of every host in one pass, before any host is
/// touched (each source once, however many hosts share it), then renders
/// each host whose secrets all resolved. A host that needs no secret is
/// never held up by another's.
pub fn render(
    repo: &mut Repo,
    root: &Path,
    hosts: Vec<Host>,
    style: crate::ui::Style,
) -> Result<Rendered, Error> {
    let mut resolver = secrets::Resolver::new(root, secrets::keys());
    let mut out = Rendered {
        ready: Vec::new(),
        failed: Vec::new(),
    };
    for h in hosts {
        let values = match resolver.host(&h) {
            Ok(values) => values,
            Err(failures) => {
                let failures = failures.iter().map(|f| f.describe(&repo.sources)).collect();
                out.failed.push(Failed {
                    host: h.name.clone(),
                    error: HostError::Secrets {
                        host: h.name.clone(),
                        failures,
                    },
                });
                continue;
            }
        };
        let mut diags = Diagnostics::default();
        let state =
            crate::render::render(&h, &repo.templates, &repo.assets, Some(&values), &mut diags);
        if diags.has_errors() {
            repo.diags.extend(diags);
            return Err(report(repo, style));
        }
        out.ready.push((h, (state, values.into_values().collect())));
    }
    Ok(out)
}

/// Renders `hosts` with their secrets, then connects to, probes and plans
/// each (in parallel, with progress on `display`), keeping the connections
/// `keep` says.
#[allow(clippy::too_many_arguments)]
pub fn plan_hosts(
    repo: &mut Repo,
    root: &Path,
    hosts: Vec<Host>,
    options: &Options,
    keep: crate::deploy::Keep,
    style: crate::ui::Style,
    runtime: &tokio::runtime::Runtime,
    display: Arc<crate::ui::progress::Display>,
) -> Result<Vec<Result<Prepared, Failed>>, Error> {
    let rendered = render(repo, root, hosts, style)?;
    let mut prepared = runtime.block_on(crate::deploy::prepare(
        root,
        rendered.ready,
        options,
        keep,
        display.clone(),
    ));
    display.clear();
    prepared.extend(rendered.failed.into_iter().map(Err));
    // In order of name, as selected.
    prepared.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    Ok(prepared)
}

/// Closes every connection, `parallel` at once: a closing SSH connection
/// waits for its master to exit, and one after the other that adds up.
pub fn close_all(
    runtime: &tokio::runtime::Runtime,
    open: Vec<crate::transport::Transport>,
    parallel: usize,
) {
    runtime.block_on(crate::deploy::each(open, parallel, |t| t.close()));
}

fn name_of(p: &Result<Prepared, Failed>) -> &str {
    match p {
        Ok(p) => &p.host.name,
        Err(f) => &f.host,
    }
}

/// Reads a saved plan from a file.
pub fn read_plan(path: &str) -> Result<SavedPlan, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {path}: {e}")))?;
    SavedPlan::parse(path, &text).map_err(Error::Usage)
}
