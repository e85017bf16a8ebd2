//! No input makes the core panic: random edits of the example files and
//! random KDL built from the language's own words go through parse, resolve,
//! lint and render. `PROPTEST_CASES=200000 cargo test --release --test fuzz`
//! runs it for longer.

use proptest::prelude::*;
use provision::source::{Source, SourceKind, SourceSet};

const WORDS: &[&str] = &[
    "host",
    "agent",
    "use",
    "ssh",
    "local",
    "host-key",
    "tags",
    "journald",
    "alert",
    "user",
    "group",
    "file",
    "dir",
    "exec",
    "secret",
    "auth",
    "rotate",
    "heartbeat",
    "failure-mode",
    "restart",
    "kill-mode",
    "timeout-stop",
    "workstate",
    "waive",
    "note",
    "env",
    "description",
    "workdir",
    "groups",
    "\"h\"",
    "\"a\"",
    "\"/x\"",
    "\"agent\"",
    "\"base\"",
    "\"45d\"",
    "\"2G\"",
    "\"07:00-19:00\"",
    "\"env:X\"",
    "\"nope:x\"",
    "#true",
    "#false",
    "#null",
    "0o644",
    "70000",
    "-1",
    "1.5",
    "every=",
    "grace=",
    "max-use=",
    "check=",
    "run=",
    "alert=",
    "from=",
    "mode=",
    "owner=",
    "content=",
    "source=",
    "template=",
    "port=",
    "reason=",
    "{",
    "}",
    ";",
    "\n",
    " ",
    "\"ops\"",
    "webhook=",
    "\"http://x\"",
    "command=",
    "telegram-chat=",
    "bot-token=",
    "(t)",
    "/-",
    "//c\n",
    "\"{{ x }}\"",
    "ü",
];

fn sources(host: String, module: String) -> SourceSet {
    SourceSet::new(vec![
        Source {
            path: "hosts/h.kdl".into(),
            kind: SourceKind::Host,
            text: host,
        },
        Source {
            path: "modules/base.kdl".into(),
            kind: SourceKind::Module,
            text: module,
        },
        Source {
            path: "modules/base/templates/AGENTS.md.tera".into(),
            kind: SourceKind::Template,
            text: "{{ agent.name }}".into(),
        },
    ])
}

fn run(set: &SourceSet) {
    let (fleet, mut diags) = provision::compile(set);
    let templates = provision::render::Templates::new(set, &mut diags);
    for h in &fleet.hosts {
        let state = provision::render::render(h, &templates, &Default::default(), None, &mut diags);
        let _ = state.generation_id();
    }
    for d in diags.into_sorted() {
        // Every diagnostic can be placed.
        if d.span.is_some() {
            assert!(d.location(set).is_some());
        }
    }
}

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hosts/agents-1.kdl")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn word_soup_never_panics(host in proptest::collection::vec(0..WORDS.len(), 0..80), module in proptest::collection::vec(0..WORDS.len(), 0..30)) {
        let h: String = host.iter().map(|i| WORDS[*i]).collect::<Vec<_>>().join(" ");
        let m: String = module.iter().map(|i| WORDS[*i]).collect::<Vec<_>>().join(" ");
        run(&sources(h, m));
    }

    #[test]
    fn edited_example_never_panics(edits in proptest::collection::vec((0usize..4000, 0..WORDS.len(), 0usize..6), 1..6)) {
        let mut text = example();
        for (at, word, cut) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(at..end, WORDS[word]);
        }
        run(&sources(text, "user \"agent\"\nuse \"base\"\n".into()));
    }

    #[test]
    fn arbitrary_text_never_panics(host in ".{0,400}", module in ".{0,100}") {
        run(&sources(host, module));
    }
}
