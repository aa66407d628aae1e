//! The module map's dependency rules (ARCHITECTURE.md), checked on the source: the pure cores
//! (`model`, `decode`, `history`) do no I/O, and the store fetches while `history` folds, so
//! `store` never reaches into `history`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("read a directory entry").path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            found.push((path.display().to_string(), text));
        }
    }
    found
}

/// The lines of `module`'s files that mention any of `forbidden`.
fn uses(module: &str, forbidden: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(module);
    let mut offending = Vec::new();
    for (path, text) in sources(&dir) {
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if forbidden.iter().any(|name| line.contains(name)) {
                offending.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    offending
}

const IO: [&str; 6] = [
    "rusqlite::",
    "tokio::",
    "tokio_postgres::",
    "egui::",
    "eframe::",
    "std::fs::",
];

#[test]
fn model_is_pure_data() {
    let mut forbidden = vec![
        "crate::decode",
        "crate::history",
        "crate::store",
        "crate::capture",
        "crate::ui",
        "crate::cli",
    ];
    forbidden.extend(IO);
    assert_eq!(uses("model", &forbidden), Vec::<String>::new());
}

#[test]
fn decode_and_history_are_pure_cores() {
    let mut forbidden = vec!["crate::store", "crate::capture", "crate::ui", "crate::cli"];
    forbidden.extend(IO);
    assert_eq!(uses("decode", &forbidden), Vec::<String>::new());
    assert_eq!(uses("history", &forbidden), Vec::<String>::new());
}

#[test]
fn the_store_fetches_and_history_folds() {
    let forbidden = [
        "crate::history",
        "crate::capture",
        "crate::ui",
        "crate::cli",
        "egui::",
    ];
    assert_eq!(uses("store", &forbidden), Vec::<String>::new());
}
