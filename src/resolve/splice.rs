//! Modules spliced into blocks by `use`, and the override rule (see the
//! merge rule in the parent module).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::Resolver;
use super::schema::{Block, NodeKind};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::Span;
use crate::syntax::{Node, list};

/// `use "MODULE"`: decodes to the module's name.
const USE: NodeKind<Option<String>> = NodeKind {
    name: "use",
    args: 1..=1,
    props: &[],
    children: false,
    usage: "`use \"MODULE\"`",
    decode: module_of_use,
};

fn module_of_use(r: &mut Resolver<'_, '_>, n: Node<'_>, name: &mut Option<String>) {
    *name = r.dec.arg_str(n, 0, "the module name");
}

/// How deep `use` may nest: far beyond any hand-written repository, and
/// shallow enough that expansion never exhausts the stack.
pub const MAX_USE_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Once(String),
    Named(String, String),
    /// A keyed node without a usable key: never merged, reported by its decoder.
    Unique(Span),
}

/// A module: its top-level nodes.
pub(super) struct Module<'a> {
    pub(super) nodes: Vec<Node<'a>>,
}

/// A module's nodes once expanded for one kind of block.
pub(super) struct Expanded<'a> {
    /// Merged nodes with their keys.
    nodes: Vec<(Key, Node<'a>)>,
    /// Modules it pulled in, outermost first, each once.
    used: Vec<String>,
    /// A `use` inside it could not be expanded.
    broken: bool,
}

/// `modules/a.kdl` → `a`; `modules/a/module.kdl` → `a`.
pub fn module_name(path: &str) -> String {
    let p = path.strip_prefix("modules/").unwrap_or(path);
    let p = p.strip_suffix(".kdl").unwrap_or(p);
    p.strip_suffix("/module").unwrap_or(p).to_string()
}

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

impl<'a> Resolver<'a, '_> {
    /// Splices modules into a block and applies the override rule.
    pub(super) fn expand<T>(
        &mut self,
        block: &'static Block<T>,
        own: Vec<Node<'a>>,
        stack: &mut Vec<String>,
        used: &mut Vec<String>,
    ) -> Vec<Node<'a>> {
        self.merge(block, own, stack, used)
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }

    /// The merged nodes of a block, with their keys, in first-seen order.
    /// `used` receives the modules it pulls in, outermost first, each once.
    fn merge<T>(
        &mut self,
        block: &'static Block<T>,
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
        for n in own.iter().filter(|n| n.name() == USE.name) {
            let mut name = None;
            USE.read(self, *n, &mut name);
            let Some(name) = name else { continue };
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
            let expanded = self.module(block, &name, stack);
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
        for n in own.into_iter().filter(|n| n.name() != USE.name) {
            let Some(k) = self.key(block, n) else {
                continue;
            };
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
    fn module<T>(
        &mut self,
        block: &'static Block<T>,
        name: &str,
        stack: &mut Vec<String>,
    ) -> Rc<Expanded<'a>> {
        let key = (block.place, name.to_string());
        if let Some(e) = self.memo.get(&key) {
            self.broken_use |= e.broken;
            return Rc::clone(e);
        }
        let nodes = self.modules[name].nodes.clone();
        let outer_broken = std::mem::replace(&mut self.broken_use, false);
        stack.push(name.to_string());
        let mut used = Vec::new();
        let merged = self.merge(block, nodes, stack, &mut used);
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
    fn key<T>(&mut self, block: &Block<T>, n: Node<'a>) -> Option<Key> {
        let name = n.name();
        if block.is_once(name) {
            return Some(Key::Once(name.to_string()));
        }
        if block.is_named(name) {
            return Some(match n.key_arg() {
                Some(k) => Key::Named(name.to_string(), k.to_string()),
                None => Key::Unique(n.span()),
            });
        }
        let all: Vec<&str> = block.names().chain([USE.name]).collect();
        let place = block.place;
        let mut d = Diagnostic::error(n.span(), format!("unknown node `{name}` in {place}"))
            .label("unknown node");
        d = d.help(match did_you_mean(name, all.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("{place} may hold {}", list(&all)),
        });
        self.dec.error(d);
        None
    }
}
