//! The tables that declare what each block may hold. A node kind is one
//! entry: its shape (checked before it is decoded) and its decoder, so adding
//! a node is adding an entry.

use std::ops::RangeInclusive;

use super::Resolver;
use crate::syntax::Node;

/// Decodes one node, whose shape was checked, into what its block builds.
pub(super) type Decode<T> = for<'a> fn(&mut Resolver<'a, '_>, Node<'a>, &mut T);

/// One kind of node.
pub(super) struct NodeKind<T> {
    /// The node's name.
    pub(super) name: &'static str,
    /// How many positional arguments it takes.
    pub(super) args: RangeInclusive<usize>,
    /// The properties it knows.
    pub(super) props: &'static [&'static str],
    /// Whether it may have a block of its own.
    pub(super) children: bool,
    /// How it is written, for the help of every message about its shape.
    pub(super) usage: &'static str,
    /// Reads its values.
    pub(super) decode: Decode<T>,
}

impl<T> NodeKind<T> {
    /// Checks the node's shape, then decodes it. A node too short to decode
    /// still goes to `decode`: its values read as absent, and what is
    /// missing was reported once, by the shape.
    pub(super) fn read<'a>(&self, r: &mut Resolver<'a, '_>, n: Node<'a>, into: &mut T) {
        r.dec
            .shape(n, self.args.clone(), self.props, self.children, self.usage);
        (self.decode)(r, n, into);
    }
}

/// The nodes one kind of block holds, in the order messages list them.
pub(super) struct Block<T: 'static> {
    /// The block, in messages: `a host`, `an agent`.
    pub(super) place: &'static str,
    /// Nodes a block holds once; the block's own overrides a module's.
    pub(super) once: &'static [NodeKind<T>],
    /// Nodes that name something (`secret "X"`): one per name, overridden
    /// by name and first argument.
    pub(super) named: &'static [NodeKind<T>],
}

impl<T> Block<T> {
    /// The entry for a node name.
    pub(super) fn kind(&self, name: &str) -> Option<&NodeKind<T>> {
        self.once.iter().chain(self.named).find(|k| k.name == name)
    }

    /// True when `name` is a node the block holds once.
    pub(super) fn is_once(&self, name: &str) -> bool {
        self.once.iter().any(|k| k.name == name)
    }

    /// True when `name` is a node that names something.
    pub(super) fn is_named(&self, name: &str) -> bool {
        self.named.iter().any(|k| k.name == name)
    }

    /// Every node name, once-nodes first.
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.once.iter().chain(self.named).map(|k| k.name)
    }
}
