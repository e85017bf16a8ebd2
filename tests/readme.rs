//! The README documents the whole language: every node and every property
//! the decoder knows appears in it, written as it is in KDL.

#[test]
fn every_node_and_property_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut missing = Vec::new();
    for (place, node, props) in provision::resolve::vocabulary() {
        if !readme.contains(&format!("{node} ")) && !readme.contains(&format!("`{node}`")) {
            missing.push(format!("node `{node}` (in a {place})"));
        }
        for p in props {
            if !readme.contains(&format!("{p}=")) {
                missing.push(format!("property `{p}=` of `{node}` (in a {place})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the README does not mention:\n  {}",
        missing.join("\n  ")
    );
}
