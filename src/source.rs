//! The operator's files as text: what `load` read, addressed by [`SourceId`].
//!
//! Pure data. Nothing here touches the filesystem: `load` fills a [`SourceSet`]
//! and every later stage points into it with [`Span`]s.

use std::collections::BTreeMap;

/// Index of a file inside a [`SourceSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub usize);

/// What kind of file a source is; decides how the resolver reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKind {
    /// `hosts/*.kdl`: top-level `host` nodes.
    Host,
    /// `modules/NAME.kdl` or `modules/NAME/module.kdl`: nodes spliced in by `use "NAME"`.
    Module,
    /// `modules/NAME/templates/*.tera`: a template override.
    Template,
}

/// One file of the operator's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Path relative to the repository root, with `/` separators (what messages show).
    pub path: String,
    /// What the file is for.
    pub kind: SourceKind,
    /// The file's text.
    pub text: String,
}

/// All files of one repository, in a canonical order (sorted by path), so that
/// the order the filesystem listed them in never changes any output.
#[derive(Debug, Clone, Default)]
pub struct SourceSet {
    files: Vec<Source>,
}

impl SourceSet {
    /// Builds a set, sorting by path so the result does not depend on input order.
    pub fn new(mut files: Vec<Source>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        Self { files }
    }

    /// Where `span` starts, as `path:line` (`hosts/web.kdl:3`).
    pub fn location(&self, span: Span) -> String {
        let src = self.get(span.source);
        format!("{}:{}", src.path, line_col(&src.text, span.offset).0)
    }

    /// The file behind an id.
    pub fn get(&self, id: SourceId) -> &Source {
        &self.files[id.0]
    }

    /// Every file with its id, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (SourceId, &Source)> {
        self.files.iter().enumerate().map(|(i, s)| (SourceId(i), s))
    }

    /// Template overrides, by module name then template name.
    pub fn templates(&self) -> BTreeMap<(String, String), SourceId> {
        let mut out = BTreeMap::new();
        for (id, s) in self.iter() {
            if s.kind != SourceKind::Template {
                continue;
            }
            // modules/NAME/templates/TEMPLATE.tera
            let parts: Vec<&str> = s.path.split('/').collect();
            if let [_, module, "templates", file] = parts.as_slice()
                && let Some(name) = file.strip_suffix(".tera")
            {
                out.insert((module.to_string(), name.to_string()), id);
            }
        }
        out
    }
}

/// A byte range inside one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file.
    pub source: SourceId,
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// A span from kdl's `SourceSpan`.
    pub fn from_kdl(source: SourceId, span: miette::SourceSpan) -> Self {
        Self {
            source,
            offset: span.offset(),
            len: span.len(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a\nüb c\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        // 'b' sits after the two-byte 'ü'.
        assert_eq!(line_col(text, 4), (2, 2));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn set_is_sorted_whatever_the_input_order() {
        let mk = |p: &str| Source {
            path: p.into(),
            kind: SourceKind::Host,
            text: String::new(),
        };
        let a = SourceSet::new(vec![mk("hosts/b.kdl"), mk("hosts/a.kdl")]);
        let paths: Vec<_> = a.iter().map(|(_, s)| s.path.clone()).collect();
        assert_eq!(paths, ["hosts/a.kdl", "hosts/b.kdl"]);
    }
}
