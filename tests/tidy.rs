//! The conventions of ../shared/docs/style.md that a machine can check, as tests: module
//! docs, line width, linked known gaps, no hidden tests, error messages without a period.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every `.rs` file of the workspace outside `target/`.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "runs" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    assert!(out.len() > 20, "found only {} Rust files", out.len());
    out
}

fn offenders(check: impl Fn(&Path, usize, &str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if check(&file, i, line) {
                let rel = file.strip_prefix(root()).unwrap().display();
                found.push(format!("{rel}:{}: {line}", i + 1));
            }
        }
    }
    found
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let missing: Vec<_> = rust_files()
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.lines().take(5).any(|l| l.starts_with("//!"))
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! doc: {missing:?}");
}

#[test]
fn lines_fit_in_100_columns() {
    let long = offenders(|_, _, line| line.chars().count() > 100);
    assert!(
        long.is_empty(),
        "lines over 100 columns:\n{}",
        long.join("\n")
    );
}

#[test]
fn known_gaps_name_their_issue() {
    let markers = [
        concat!("TO", "DO"),
        concat!("FIX", "ME"),
        concat!("X", "XX"),
    ];
    let loose = offenders(|_, _, line| {
        markers.iter().any(|m| {
            line.match_indices(m)
                .any(|(at, _)| !line[at + m.len()..].starts_with("(#"))
        })
    });
    assert!(
        loose.is_empty(),
        "gaps without an issue number:\n{}",
        loose.join("\n")
    );
}

#[test]
fn no_test_is_hidden() {
    let marker = concat!("#[", "ignore");
    let hidden = offenders(|_, _, line| line.trim_start().starts_with(marker));
    assert!(
        hidden.is_empty(),
        "ignored tests (pin the behaviour instead):\n{}",
        hidden.join("\n")
    );
}

#[test]
fn error_messages_end_without_a_period() {
    let bad = offenders(|_, _, line| {
        let line = line.trim_start();
        line.starts_with("#[error(\"") && line.ends_with(".\")]")
    });
    assert!(
        bad.is_empty(),
        "error messages ending in a period:\n{}",
        bad.join("\n")
    );
}
