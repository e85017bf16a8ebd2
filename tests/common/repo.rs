//! Loads the bundled example (`hosts/`, `modules/`) the way the CLI does.
//! Included by test files with `#[path = "common/repo.rs"] mod repo;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use provision::desired::DesiredState;
use provision::diagnostic::Diagnostics;
use provision::source::SourceSet;

/// The repository root (the bundled example lives there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Renders every host of the repository at `root`, without secrets.
pub fn render_all(root: &Path) -> Vec<DesiredState> {
    let sources = provision::load::load(root).expect("the example loads");
    render_sources(root, &sources)
}

/// Renders every host of an already loaded source set.
pub fn render_sources(root: &Path, sources: &SourceSet) -> Vec<DesiredState> {
    let (fleet, mut diags) = provision::compile(sources);
    let templates = provision::render::Templates::new(sources, &mut diags);
    assert_clean(&diags);
    let paths: Vec<String> = fleet
        .hosts
        .iter()
        .flat_map(provision::command::asset_paths)
        .collect();
    let assets = provision::load::assets(root, &paths);
    let mut out = Vec::new();
    for h in &fleet.hosts {
        out.push(provision::render::render(
            h, &templates, &assets, None, &mut diags,
        ));
    }
    assert_clean(&diags);
    out
}

fn assert_clean(d: &Diagnostics) {
    assert!(
        !d.has_errors(),
        "the example has errors: {:?}",
        d.clone().into_sorted()
    );
}
