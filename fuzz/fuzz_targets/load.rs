//! Fuzz target: any bytes, read as UTF-8 (lossy) and split into up to three repo files at NUL
//! bytes, must load into a catalog or diagnostics, never a panic. See docs/fuzzing.md.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use supercp_load::{load_sources, LoadOptions, Source};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // NUL separates files, so duplicates and references across files are reached too; the
    // last part keeps any further NULs, which the loader must refuse in values.
    let sources: Vec<Source> = text
        .splitn(3, '\0')
        .enumerate()
        .map(|(i, part)| Source { path: Arc::from(format!("f{i}.yaml")), text: part.to_owned() })
        .collect();
    let options = LoadOptions { system_accounts: ["uuidd".to_owned()].into() };
    if let Err(diagnostics) = load_sources(&sources, &options) {
        for d in &diagnostics {
            let _ = d.to_string();
        }
    }
});
