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
//! Each kind of node is one `schema::NodeKind` entry in the table of the
//! block that holds it (`host::BLOCK`, `agent::BLOCK`): the schema check,
//! the unknown-node message and the decoding all read that entry.
//!
//! Pure: works on the documents `syntax::parse` produced.

mod accounts;
mod agent;
mod alert;
mod auth;
mod files;
mod heartbeat;
mod host;
mod references;
mod runbook;
mod schema;
mod splice;
mod unit;

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Fleet, Host};
use crate::source::{SourceKind, SourceSet, Span};
use crate::syntax::{Decoder, Documents, Node};

use schema::Block;
use splice::{Expanded, Module};

pub use splice::{MAX_USE_DEPTH, module_name};

/// The state of one decoding run, shared by every node's decoder.
struct Resolver<'a, 'd> {
    modules: BTreeMap<String, Module<'a>>,
    /// Expanded modules, by the block they were expanded for and name.
    memo: BTreeMap<(&'static str, String), Rc<Expanded<'a>>>,
    /// Set when a `use` could not be expanded: the block then lacks what the
    /// module would have given, and "missing" errors would only echo it.
    broken_use: bool,
    dec: Decoder<'d>,
    /// The files, to name where a node is in a value the model keeps.
    sources: &'d SourceSet,
}

impl<'a> Resolver<'a, '_> {
    /// Decodes a block's merged nodes, each by its entry in the block's table.
    /// Unknown nodes were reported (and left out) by the merge.
    fn decode_all<T>(&mut self, block: &Block<T>, nodes: Vec<Node<'a>>, into: &mut T) {
        for n in nodes {
            if let Some(kind) = block.kind(n.name()) {
                kind.read(self, n, into);
            }
        }
    }
}

/// The hosts decoded so far, and where each name was first defined.
struct Hosts {
    list: Vec<Host>,
    seen: BTreeMap<String, Span>,
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
        let name = splice::module_name(&src.path);
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
        sources,
    };
    let mut hosts = Hosts {
        list: Vec::new(),
        seen: BTreeMap::new(),
    };
    for (id, doc) in docs {
        if sources.get(*id).kind != SourceKind::Host {
            continue;
        }
        for node in doc.nodes() {
            let n = Node { node, src: *id };
            if n.name() != host::HOST.name {
                r.dec.error(unknown_top_level(n));
                continue;
            }
            host::HOST.read(&mut r, n, &mut hosts);
        }
    }
    let mut hosts = hosts.list;
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Fleet { hosts }
}

fn unknown_top_level(n: Node<'_>) -> Diagnostic {
    let d = Diagnostic::error(n.span(), format!("unknown top-level node `{}`", n.name()))
        .label("expected `host`");
    d.help(match did_you_mean(n.name(), ["host"]) {
        Some(_) => {
            "did you mean `host`? files in hosts/ hold `host \"NAME\" { … }` nodes".to_string()
        }
        None => {
            "files in hosts/ hold `host \"NAME\" { … }` nodes; shared settings belong in modules/"
                .to_string()
        }
    })
}

/// Every node the language knows and its properties, as (where, node,
/// properties): the vocabulary the README documents (`tests/readme.rs`
/// holds it to that).
pub fn vocabulary() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    let mut out: Vec<(&'static str, &'static str, &'static [&'static str])> = Vec::new();
    out.extend(
        host::BLOCK
            .once
            .iter()
            .chain(host::BLOCK.named)
            .map(|k| ("host", k.name, k.props)),
    );
    out.extend(
        agent::BLOCK
            .once
            .iter()
            .chain(agent::BLOCK.named)
            .map(|k| ("agent", k.name, k.props)),
    );
    out.push(("host", host::HOST.name, host::HOST.props));
    out.push(("auth", auth::ROTATE.name, auth::ROTATE.props));
    out.push(("user", accounts::GROUPS.name, accounts::GROUPS.props));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{agent, host};

    #[test]
    fn a_block_declares_each_node_once() {
        // A second entry of a name would never be reached: the first one decodes.
        let blocks: [Vec<&str>; 2] = [
            host::BLOCK.names().collect(),
            agent::BLOCK.names().collect(),
        ];
        for names in blocks {
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
            assert!(!unique.contains("use"), "`use` is spliced, not decoded");
        }
    }
}
