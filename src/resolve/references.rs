//! Cross-references within one host: alert channels that agents name, the
//! users agents run as, and paths declared twice.

use std::collections::{BTreeMap, BTreeSet};

use super::Resolver;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::model::{Host, Setting, User};
use crate::source::Span;
use crate::syntax::list;

impl Resolver<'_, '_> {
    /// Cross-references within one host: alert names, users, duplicate paths.
    pub(super) fn check_host(&mut self, host: &mut Host, broken_alerts: &BTreeSet<String>) {
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
