//! `schemas/` is generated from the resource types: this test fails when it is stale.

use std::path::Path;

#[test]
fn committed_json_schemas_match_the_resource_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let schemas = supercp_core::resource::schemas();
    for (name, generated) in &schemas {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `supercp schema --out schemas`",
                path.display()
            )
        });
        let committed: serde_json::Value =
            serde_json::from_str(&text).expect("committed schema is JSON");
        assert_eq!(
            &committed,
            generated,
            "{} is stale: run `cargo run -p supercp-cli -- schema --out schemas` and commit it",
            path.display()
        );
    }
    let files = std::fs::read_dir(&dir).expect("schemas dir").count();
    assert_eq!(
        files,
        schemas.len(),
        "schemas/ holds a file no kind generates"
    );
}

#[test]
fn tenant_schema_requires_a_package_and_names_fields_in_camel_case() {
    let schemas = supercp_core::resource::schemas();
    let (_, tenant) = schemas
        .iter()
        .find(|(n, _)| n == "Tenant.json")
        .expect("Tenant.json");
    let text = tenant.to_string();
    assert!(text.contains("\"sshKeys\""), "{text}");
    assert!(text.contains("\"deletionPolicy\""), "{text}");
    assert_eq!(tenant["properties"]["kind"]["const"], "Tenant");
}
