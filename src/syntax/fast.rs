//! A quick reader for the plain KDL that fleet files are written in.
//!
//! The `kdl` crate's parser keeps every byte of formatting and recovers from
//! errors, which makes it slow (about 1.5 MB/s per core): on a fleet of a
//! thousand hosts it took most of `check`. This reader builds the same
//! [`KdlDocument`] (names, entries, values as read and as written, children
//! and every span the resolver reads) for the common subset: bare and quoted names, plain
//! strings, integers (decimal, `0x`, `0o`, `0b`), `#true`/`#false`/`#null`, properties, child
//! blocks, `;` and `//` comments. On anything else (another construct, or
//! any mistake) it gives up and the caller parses with `kdl`, so what is
//! accepted and every error message stay `kdl`'s.

use kdl::{KdlDocument, KdlEntry, KdlEntryFormat, KdlIdentifier, KdlNode, KdlValue};

/// The document, or `None` when the text needs the full parser.
pub(super) fn parse(text: &str) -> Option<KdlDocument> {
    if !plain(text) {
        return None;
    }
    let mut r = Reader { s: text, i: 0 };
    r.line_space()?;
    let doc = r.nodes(false)?;
    (r.i == text.len()).then_some(doc)
}

/// Whether every character is one this reader can judge: no control
/// character but tab, LF and CRLF, and none of the code points KDL forbids
/// or counts as a newline (they would end a comment the reader skips).
fn plain(text: &str) -> bool {
    let b = text.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let ok = match c {
            b'\t' | b'\n' => true,
            b'\r' => b.get(i + 1) == Some(&b'\n'),
            0..0x20 | 0x7f => false,
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    text.is_ascii()
        || !text.chars().any(|c| {
            matches!(c,
                '\u{85}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2028}' | '\u{2029}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
}

struct Reader<'a> {
    s: &'a str,
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + k).copied()
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skips a `//` comment and the newline that ends it.
    fn comment(&mut self) {
        match self.s[self.i..].find('\n') {
            Some(n) => self.i += n + 1,
            None => self.i = self.s.len(),
        }
    }

    /// Whitespace, newlines and line comments between nodes.
    fn line_space(&mut self) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'/') if self.at(1) == Some(b'/') => self.comment(),
                Some(b'/') => return None,
                _ => return Some(()),
            }
        }
    }

    /// What may follow a name or value directly; anything else is left to
    /// the full parser.
    fn ends_token(&self) -> Option<()> {
        matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b';')
        )
        .then_some(())
    }

    /// Nodes up to the end of the text (`inner` false) or up to the `}` that
    /// closes a block (left unread). Leading space is already skipped; the
    /// span runs from the first node to the end of the last, as `kdl` has it.
    fn nodes(&mut self, inner: bool) -> Option<KdlDocument> {
        let mut doc = KdlDocument::new();
        let start = self.i;
        let mut end = start;
        loop {
            match self.peek() {
                None if inner => return None,
                None => break,
                Some(b'}') if inner => break,
                Some(b'}') => return None,
                _ => {}
            }
            let node = self.node()?;
            doc.nodes_mut().push(node);
            end = self.i;
            match self.peek() {
                None => {}
                Some(b';' | b'\n') => self.i += 1,
                Some(b'\r') => self.i += 2,
                Some(b'/') if self.at(1) == Some(b'/') => self.comment(),
                Some(b'}') if inner => {}
                _ => return None,
            }
            self.line_space()?;
        }
        doc.nodes_mut().shrink_to_fit();
        doc.set_span(start..end);
        Some(doc)
    }

    /// One node: its name, entries and block, and the spaces after them.
    fn node(&mut self) -> Option<KdlNode> {
        let start = self.i;
        let name = self.identifier()?;
        self.ends_token()?;
        let mut node = KdlNode::new(name);
        loop {
            self.spaces();
            match self.peek() {
                None | Some(b'\n' | b'\r' | b';' | b'}') => break,
                Some(b'/') if self.at(1) == Some(b'/') => break,
                Some(b'{') => {
                    self.i += 1;
                    self.line_space()?;
                    let children = self.nodes(true)?;
                    self.i += 1; // the `}`
                    self.ends_token()
                        .or_else(|| (self.peek() == Some(b'}')).then_some(()))?;
                    node.set_children(children);
                    self.spaces();
                    break;
                }
                _ => {
                    let entry = self.entry()?;
                    node.entries_mut().push(entry);
                }
            }
        }
        // A node is 448 bytes and an entry 384: a vector's growth to four
        // places would double what a fleet's documents take.
        node.entries_mut().shrink_to_fit();
        node.set_span(start..self.i);
        Some(node)
    }

    /// An argument or a `key=value` property.
    fn entry(&mut self) -> Option<KdlEntry> {
        let start = self.i;
        let c = self.peek()?;
        let mut value_start = start;
        let mut entry = if c == b'"' || ident_start(c) {
            let key = self.identifier()?;
            if self.peek() == Some(b'=') {
                self.i += 1;
                value_start = self.i;
                KdlEntry::new_prop(key, self.value()?)
            } else {
                self.ends_token()?;
                KdlEntry::new(KdlValue::String(key.value().to_string()))
            }
        } else {
            KdlEntry::new(self.value()?)
        };
        // The value as written: the resolver reads it to tell `mode=0o640`
        // from `mode=416`.
        entry.set_format(KdlEntryFormat {
            value_repr: self.s[value_start..self.i].to_string(),
            ..Default::default()
        });
        entry.set_span(start..self.i);
        Some(entry)
    }

    /// A value after `=`, or an argument that is not a string.
    fn value(&mut self) -> Option<KdlValue> {
        let c = self.peek()?;
        let v = if c == b'"' || ident_start(c) {
            KdlValue::String(self.string()?)
        } else if c == b'#' {
            let rest = &self.s[self.i..];
            let (v, len) = if rest.starts_with("#true") {
                (KdlValue::Bool(true), 5)
            } else if rest.starts_with("#false") {
                (KdlValue::Bool(false), 6)
            } else if rest.starts_with("#null") {
                (KdlValue::Null, 5)
            } else {
                return None;
            };
            self.i += len;
            v
        } else if c.is_ascii_digit() || c == b'+' || c == b'-' {
            let start = self.i;
            if c == b'+' || c == b'-' {
                self.i += 1;
            }
            let sign = &self.s[start..self.i];
            let radix = match (self.peek(), self.at(1)) {
                (Some(b'0'), Some(b'x')) => 16,
                (Some(b'0'), Some(b'o')) => 8,
                (Some(b'0'), Some(b'b')) => 2,
                _ => 10,
            };
            if radix != 10 {
                self.i += 2;
            }
            let digits = self.i;
            while self.peek().is_some_and(|d| (d as char).is_digit(radix)) {
                self.i += 1;
            }
            if self.i == digits {
                return None;
            }
            let number = format!("{sign}{}", &self.s[digits..self.i]);
            KdlValue::Integer(i128::from_str_radix(&number, radix).ok()?)
        } else {
            return None;
        };
        self.ends_token()?;
        Some(v)
    }

    /// A name: a bare identifier or a quoted string, with its span.
    fn identifier(&mut self) -> Option<KdlIdentifier> {
        let start = self.i;
        let mut id = KdlIdentifier::from(self.string()?);
        id.set_span(start..self.i);
        Some(id)
    }

    /// A bare identifier or a single-line quoted string, as its value.
    fn string(&mut self) -> Option<String> {
        let c = self.peek()?;
        if c == b'"' {
            return self.quoted();
        }
        if !ident_start(c) {
            return None;
        }
        let start = self.i;
        while self.peek().is_some_and(ident_char) {
            self.i += 1;
        }
        let word = &self.s[start..self.i];
        // Bare keywords are not identifiers in KDL 2.
        if matches!(word, "true" | "false" | "null" | "inf" | "nan") {
            return None;
        }
        Some(word.to_string())
    }

    /// `"…"` with the plain escapes; multi-line strings, `\u{…}` and
    /// whitespace escapes are left to the full parser.
    fn quoted(&mut self) -> Option<String> {
        if self.s[self.i..].starts_with("\"\"\"") {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    out.push_str(&self.s[run..self.i]);
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.s[run..self.i]);
                    out.push(match self.at(1)? {
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'\\' => '\\',
                        b'"' => '"',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b's' => ' ',
                        _ => return None,
                    });
                    self.i += 2;
                    run = self.i;
                }
                b'\n' | b'\r' => return None,
                _ => self.i += 1,
            }
        }
    }
}

/// A character a bare identifier may hold (ASCII only; other identifiers go
/// to the full parser).
fn ident_char(c: u8) -> bool {
    c.is_ascii_graphic() && !b"\\/(){};[]\"#=".contains(&c)
}

/// A character a bare identifier may start with here: not a digit, and not
/// a sign or dot (which may start a number).
fn ident_start(c: u8) -> bool {
    ident_char(c) && !c.is_ascii_digit() && !b"+-.".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The two parsers agree on everything the resolver reads.
    fn same(fast: &KdlDocument, full: &KdlDocument, at: &str) -> Result<(), String> {
        let fail = |what: &str| Err(format!("{at}: {what} differs"));
        if fast.span() != full.span() {
            return fail("document span");
        }
        if fast.nodes().len() != full.nodes().len() {
            return fail("node count");
        }
        for (i, (a, b)) in fast.nodes().iter().zip(full.nodes()).enumerate() {
            let at = format!("{at}/{i}:{}", b.name().value());
            let fail = |what: &str| Err(format!("{at}: {what} differs"));
            if a.name().value() != b.name().value() || a.name().span() != b.name().span() {
                return fail("name");
            }
            if a.span() != b.span() || a.ty().is_some() || b.ty().is_some() {
                return fail("node span");
            }
            if a.entries().len() != b.entries().len() {
                return fail("entry count");
            }
            for (x, y) in a.entries().iter().zip(b.entries()) {
                let key = |e: &KdlEntry| e.name().map(|n| (n.value().to_string(), n.span()));
                let repr = |e: &KdlEntry| e.format().map(|f| f.value_repr.clone());
                if key(x) != key(y)
                    || x.value() != y.value()
                    || x.span() != y.span()
                    || repr(x) != repr(y)
                {
                    return fail(&format!("entry {y}"));
                }
            }
            match (a.children(), b.children()) {
                (None, None) => {}
                (Some(x), Some(y)) => same(x, y, &at)?,
                _ => return fail("block"),
            }
        }
        Ok(())
    }

    /// Whenever the quick reader answers, `kdl` accepts the text and reads
    /// the same document from it.
    fn agrees(text: &str) -> Result<bool, String> {
        let Some(fast) = parse(text) else {
            return Ok(false);
        };
        let full = text
            .parse::<KdlDocument>()
            .map_err(|e| format!("kdl rejects what the quick reader took: {e:?}"))?;
        same(&fast, &full, "").map(|()| true)
    }

    #[test]
    fn reads_the_shipped_files_as_kdl_does() {
        for text in [
            include_str!("../../modules/agent/module.kdl"),
            include_str!("../../modules/python-agent.kdl"),
            include_str!("../../modules/ops-host.kdl"),
            include_str!("../../hosts/agents-1.kdl"),
            include_str!("../../hosts/agents-2.kdl"),
            include_str!("../../hosts/demo.kdl"),
            include_str!("../../tests/fixtures/design/modules/agent.kdl"),
            include_str!("../../tests/fixtures/design/hosts/agents-1.kdl"),
            include_str!("../../scaffold/modules/host/module.kdl"),
            include_str!("../../scaffold/modules/hello/module.kdl"),
            include_str!("../../scaffold/hosts/example.kdl"),
        ] {
            assert_eq!(agrees(text), Ok(true), "{text}");
        }
    }

    #[test]
    fn reads_blocks_and_terminators_as_kdl_does() {
        for text in [
            "a { b { c }}",
            "a {}",
            "a { }\n",
            "a {\n}\n",
            "a;b",
            "a 1;b 2; ",
            "a \"x\" // c",
            "a {\n  b k=v // c\n  d\n}  \n",
            "a { b; c }",
            "\n\n// only a comment",
            "",
        ] {
            assert_eq!(agrees(text), Ok(true), "{text:?}");
        }
    }

    #[test]
    fn leaves_what_it_does_not_know_to_kdl() {
        for text in [
            "a /- b",
            "a /* c */ b",
            "(t)a",
            "a 1.5",
            "a 0x1_0",
            "a 1_000",
            "a #inf",
            "a #\"raw\"#",
            "a \"\"\"\nx\n\"\"\"",
            "a \"\\u{41}\"",
            "a \\\n b",
            "a b=\"x\"{ }",
            "a true",
            "a -b",
            "a\rb",
            "a \"\u{202e}\"",
            "a { b",
            "a }",
            "a;;",
            "a k = 1",
        ] {
            assert_eq!(parse(text).map(|_| ()), None, "{text:?}");
        }
    }

    const WORDS: &[&str] = &[
        "a",
        "node",
        "x-y",
        "a.b",
        "é",
        "'q'",
        "<p>",
        "\"q s\"",
        "\"\"",
        "\"e\\n\\t\\\"\\\\\\s\"",
        "\"é…\"",
        "k=v",
        "k=\"v\"",
        "k=1",
        "k=#true",
        "\"k k\"=-2",
        "k=",
        "=",
        "1",
        "-5",
        "+7",
        "007",
        "0o755",
        "-0o7",
        "0x1f",
        "0xF",
        "0b101",
        "0o8",
        "0o",
        "0x",
        "+0b1",
        "1.5",
        "0x1",
        "1_0",
        "1e3",
        "#true",
        "#false",
        "#null",
        "#inf",
        "#nan",
        "true",
        "null",
        "-",
        "-a",
        ".5",
        "/-",
        "/* c */",
        "\\",
        "(t)",
        "\"\"\"",
        "x\"y",
        "#\"r\"#",
        "99999999999999999999999999999999999999999",
        "\"\\u{41}\"",
        "\"\\x\"",
    ];
    const GAPS: &[&str] = &[
        " ", "  ", "\t", "", "\n", "\r\n", "\r", ";", "; ", " // c\n", "//c", "{", "}", " { ",
        " }", "\n}\n", "{}", " {\n", "\u{85}", "\u{feff}", "\u{a0}",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (prop::sample::select(WORDS), prop::sample::select(GAPS)),
            0..24,
        )
        .prop_map(|parts| parts.into_iter().map(|(w, g)| format!("{w}{g}")).collect())
    }

    /// Well-formed documents in the subset the reader knows: it must take
    /// them all.
    fn plain_doc(depth: u32) -> BoxedStrategy<String> {
        let name = prop::sample::select(&["a", "node", "\"q s\"", "x-y", "\"\""][..]);
        let entry = prop::sample::select(
            &[
                "v",
                "\"s\"",
                "\"é\\n\"",
                "1",
                "-5",
                "#true",
                "#null",
                "k=v",
                "k=\"v\"",
                "k=2",
                "m=0o755",
                "0x1F",
            ][..],
        );
        let gap = prop::sample::select(&[" ", "  ", "\t"][..]);
        let end = prop::sample::select(&["\n", ";", "\r\n", " // c\n", "; ", "\n\n  "][..]);
        let children = if depth == 0 {
            Just(None).boxed()
        } else {
            prop::option::of(plain_doc(depth - 1)).boxed()
        };
        let node = (
            name,
            prop::collection::vec((gap.clone(), entry), 0..4),
            children,
            gap,
            end,
        )
            .prop_map(|(name, entries, children, gap, end)| {
                let mut s = name.to_string();
                for (g, e) in entries {
                    s.push_str(g);
                    s.push_str(e);
                }
                if let Some(c) = children {
                    s.push_str(&format!(" {{{c}}}"));
                }
                s.push_str(gap);
                s.push_str(end);
                s
            });
        (
            prop::sample::select(&["", "\n", "  ", "// top\n"][..]),
            prop::collection::vec(node, 0..4),
        )
            .prop_map(|(lead, nodes)| format!("{lead}{}", nodes.concat()))
            .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_reads_text_differently_from_kdl(text in soup()) {
            prop_assert!(agrees(&text).is_ok(), "{text:?}: {:?}", agrees(&text));
        }

        #[test]
        fn reads_every_plain_document(text in plain_doc(3)) {
            prop_assert_eq!(agrees(&text), Ok(true), "{:?}", text);
        }
    }
}
