//! The documents' claims and the tests behind them: every `module::function` that README.md,
//! RELIABILITY.md, BENCHMARKS.md or docs/ names exists (a renamed or deleted test fails here),
//! and every row of RELIABILITY.md's tables names a test or the command that checks it.

use e2e::root;
use std::path::Path;

/// The README, RELIABILITY.md, BENCHMARKS.md and every document in docs/.
fn documents() -> Vec<String> {
    let mut out: Vec<String> = ["README.md", "RELIABILITY.md", "BENCHMARKS.md"]
        .iter()
        .map(|d| d.to_string())
        .collect();
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 8, "docs/ lost its documents: {docs:?}");
    out.extend(docs);
    out
}

/// Every `.rs` file of the project (not `target/`), as one text.
fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "corpus" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    for dir in ["crates", "functions", "model", "tests", "fuzz"] {
        walk(&root().join(dir), &mut out);
    }
    out
}

/// The backticked `a::b…` paths of a text (a trailing `*` stands for any ending).
fn paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.contains("::")
                && span
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:*".contains(c))
        })
        .map(str::to_string)
        .collect()
}

/// Whether the last segment of `path` is a function or module the sources define.
fn defined(sources: &str, path: &str) -> bool {
    let last = path.rsplit("::").next().unwrap_or(path);
    match last.strip_suffix('*') {
        Some(prefix) => sources.contains(&format!("fn {prefix}")),
        None => ["fn ", "mod "].iter().any(|kind| {
            [
                format!("{kind}{last}("),
                format!("{kind}{last}<"),
                format!("{kind}{last};"),
                format!("{kind}{last} {{"),
            ]
            .iter()
            .any(|needle| sources.contains(needle.as_str()))
        }),
    }
}

#[test]
fn every_function_the_documents_name_exists() {
    let sources = sources();
    let mut missing = Vec::new();
    let mut named = 0;
    for document in &documents() {
        let text = std::fs::read_to_string(root().join(document)).unwrap();
        for path in paths(&text) {
            // docs/aws-rules.md's legend.
            if path == "file::function" {
                continue;
            }
            named += 1;
            if !defined(&sources, &path) {
                missing.push(format!("{document}: `{path}`"));
            }
        }
    }
    assert!(named >= 40, "only {named} named: the parser lost them");
    assert!(
        missing.is_empty(),
        "named but not defined:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_row_of_reliability_md_names_its_test_or_check() {
    let text = std::fs::read_to_string(root().join("RELIABILITY.md")).unwrap();
    let mut rows = 0;
    let mut bare = Vec::new();
    let mut in_table = false;
    let mut header_names_one = false;
    let mut section = "";
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading;
        }
        let row = line.trim_start().starts_with('|');
        // A table's first line is its header; the second its rule.
        let header = row && !in_table;
        in_table = row;
        if header {
            header_names_one = names_a_check(line);
        }
        // The record of `.ci/run`'s own runs: each row is a run, not a claim.
        if !row || header || line.contains("|---") || section.starts_with("Fresh clones") {
            continue;
        }
        rows += 1;
        if !names_a_check(line) && !header_names_one {
            bare.push(line.to_string());
        }
    }
    assert!(rows >= 40, "only {rows} rows: the parser lost them");
    assert!(
        bare.is_empty(),
        "rows that name no test:\n{}",
        bare.join("\n")
    );
}

/// Whether a line names a test (`file::function`, or a test function alone) or a command.
fn names_a_check(line: &str) -> bool {
    !paths(line).is_empty()
        || ["cargo test", "--test ", "make ", "zofhook-model ", "infra/"]
            .iter()
            .any(|command| line.contains(command))
        // The model's bounded runs name their test function alone.
        || line
            .split('`')
            .skip(1)
            .step_by(2)
            .any(|span| span.contains('_') && !span.contains(' ') && sources_have_fn(span))
}

fn sources_have_fn(name: &str) -> bool {
    use std::sync::OnceLock;
    static SOURCES: OnceLock<String> = OnceLock::new();
    SOURCES
        .get_or_init(sources)
        .contains(&format!("fn {name}("))
}

#[test]
fn the_checks_bite() {
    let sources = sources();
    assert!(defined(
        &sources,
        "serve::a_full_data_dir_answers_503_loses_nothing_and_recovers"
    ));
    assert!(defined(&sources, "reliability::duplicates_under_load_*"));
    assert!(!defined(&sources, "reliability::a_test_nobody_wrote"));
    assert!(!defined(&sources, "reliability::nobody_*"));
    assert_eq!(
        paths("see `a::b` and `not a path` and `x::y_*`"),
        ["a::b", "x::y_*"]
    );
}

/// docs/capacity.md prints `infra/capacity.py`'s output: the page changes with the model (the
/// template's defaults, the write units an event).
#[test]
fn the_capacity_page_shows_the_simulations_output() {
    let printed = String::from_utf8(e2e::stdout_of(
        std::process::Command::new("python3").arg(root().join("infra/capacity.py")),
    ))
    .unwrap();
    let page = std::fs::read_to_string(root().join("docs/capacity.md")).unwrap();
    let shown = page
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/capacity.md has a text block");
    assert_eq!(
        shown.trim(),
        printed.trim(),
        "docs/capacity.md is not the output of infra/capacity.py"
    );
}
