//! The same inputs give byte-identical files and the same generation id,
//! whatever order the files are listed in and wherever the repository lives.

use provision::source::{Source, SourceSet};

#[path = "common/repo.rs"]
mod repo;

/// A small deterministic shuffle (no randomness in tests, yet many orders).
fn permute(mut v: Vec<Source>, seed: u64) -> Vec<Source> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..v.len()).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (s >> 33) as usize % (i + 1));
    }
    v
}

#[test]
fn shuffled_inputs_render_identically() {
    let root = repo::root();
    let loaded = provision::load::load(&root).unwrap();
    let files: Vec<Source> = loaded.iter().map(|(_, s)| s.clone()).collect();
    let reference = repo::render_sources(&root, &loaded);
    for seed in 0..16 {
        let shuffled = SourceSet::new(permute(files.clone(), seed));
        let again = repo::render_sources(&root, &shuffled);
        assert_eq!(again, reference, "seed {seed}");
    }
}

#[test]
fn a_copy_elsewhere_renders_identically() {
    let root = repo::root();
    let copy = tempfile::tempdir().unwrap();
    for dir in ["hosts", "modules", "demo", "secrets"] {
        copy_dir(&root.join(dir), &copy.path().join(dir));
    }
    let a: Vec<String> = repo::render_all(&root)
        .iter()
        .map(|s| s.generation_id())
        .collect();
    let b: Vec<String> = repo::render_all(copy.path())
        .iter()
        .map(|s| s.generation_id())
        .collect();
    assert_eq!(a, b);
}

#[test]
fn generation_ids_are_pinned() {
    // A change here means every host's generation changes: make it on purpose.
    let ids: Vec<(String, String)> = repo::render_all(&repo::root())
        .iter()
        .map(|s| (s.host.clone(), s.generation_id()))
        .collect();
    insta::assert_debug_snapshot!(ids);
}

#[test]
fn any_change_changes_the_generation() {
    let root = repo::root();
    let loaded = provision::load::load(&root).unwrap();
    let base = repo::render_sources(&root, &loaded);
    let edited: Vec<Source> = loaded
        .iter()
        .map(|(_, s)| {
            let mut s = s.clone();
            s.text = s
                .text
                .replace("grace=\"5m\" active-hours", "grace=\"6m\" active-hours");
            s
        })
        .collect();
    let after = repo::render_sources(&root, &SourceSet::new(edited));
    assert_ne!(base[0].generation_id(), after[0].generation_id());
    assert_eq!(
        base[1].generation_id(),
        after[1].generation_id(),
        "other hosts are untouched"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
