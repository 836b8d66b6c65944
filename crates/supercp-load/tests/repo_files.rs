//! What the loader does with the files of a repo that are not plain YAML of a sane size:
//! oversized files and documents are named as such (not as YAML syntax errors), and symbolic
//! links are refused with an error naming the link, never skipped.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use supercp_load::{load_repo, load_sources, LoadOptions, Source, MAX_FILE_BYTES};

const TENANT: &str = "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {}\n---\n\
                      apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec: {package: basic}\n";

#[test]
fn file_over_the_size_limit_is_refused_naming_its_size_and_the_limit() {
    let repo = tempfile::tempdir().expect("temp dir");
    fs::write(repo.path().join("acme.yaml"), TENANT).expect("write");
    let big = fs::File::create(repo.path().join("big.yaml")).expect("create");
    // Sparse: the loader must refuse it from its size, before reading it.
    big.set_len(MAX_FILE_BYTES + 1).expect("set_len");
    assert_eq!(
        errors(repo.path()),
        [format!(
            "big.yaml:1:1: error: the file is too large: {} bytes, limit {MAX_FILE_BYTES}",
            MAX_FILE_BYTES + 1
        )]
    );
}

#[test]
fn document_over_the_yaml_readers_node_limit_is_named_as_such_not_as_a_syntax_error() {
    let mut text = String::from(
        "apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  package: basic\n  sshKeys:\n",
    );
    for _ in 0..60_000 {
        text.push_str("    - a\n");
    }
    let sources = [Source {
        path: "big.yaml".into(),
        text,
    }];
    let found = match load_sources(&sources, &LoadOptions::default()) {
        Ok(_) => panic!("a document of 60,000 nodes must be refused"),
        Err(ds) => ds,
    };
    assert_eq!(found.len(), 1, "{found:#?}");
    let d = &found[0];
    assert_eq!(
        d.to_string().lines().next().unwrap_or_default(),
        "big.yaml:49992:7: error: Tenant/acme: the document is too large: 50001 YAML nodes, limit 50000",
        "at the node that crossed the limit"
    );
    assert!(d.help.contains("split"), "{d}");
}

#[test]
fn symlinked_resource_files_and_directories_are_refused_naming_the_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    fs::create_dir_all(repo.join("tenants")).expect("repo");
    fs::write(repo.join("packages.yaml"), TENANT).expect("write");
    // Inside the repo, outside it, a directory and nowhere: all refused, none skipped.
    fs::write(repo.join("real.txt"), "").expect("write");
    symlink("../real.txt", repo.join("tenants/inside.yaml")).expect("symlink");
    fs::write(dir.path().join("outside.yaml"), "").expect("write");
    symlink(
        dir.path().join("outside.yaml"),
        repo.join("tenants/outside.yml"),
    )
    .expect("symlink");
    fs::create_dir(dir.path().join("more")).expect("dir");
    symlink("../more", repo.join("more")).expect("symlink");
    symlink("gone.yaml", repo.join("dangling")).expect("symlink");
    // A link that cannot hold a resource is ignored like any other non-YAML file.
    symlink("real.txt", repo.join("README")).expect("symlink");
    let outside = dir.path().join("outside.yaml").display().to_string();
    assert_eq!(
        errors(&repo),
        [
            "dangling:1:1: error: is a symbolic link (to gone.yaml); links in the repo are not followed".to_owned(),
            "more:1:1: error: is a symbolic link (to ../more); links in the repo are not followed".to_owned(),
            "tenants/inside.yaml:1:1: error: is a symbolic link (to ../real.txt); links in the repo are not followed".to_owned(),
            format!("tenants/outside.yml:1:1: error: is a symbolic link (to {outside}); links in the repo are not followed"),
        ]
    );
}

/// The first line of each diagnostic of loading `repo` (which must fail).
fn errors(repo: &Path) -> Vec<String> {
    match load_repo(repo, &LoadOptions::default()) {
        Ok(catalog) => panic!("loaded {} resources without error", catalog.len()),
        Err(ds) => ds
            .iter()
            .map(|d| {
                assert!(d.help.contains(' '), "a help line: {d}");
                d.to_string().lines().next().unwrap_or_default().to_owned()
            })
            .collect(),
    }
}
