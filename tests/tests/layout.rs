//! The house, measured from the sources: in `zofhook-core` and in `zofhook`, no import circle
//! between modules, no module importing back up from the crate root (`lib.rs` and `main.rs`
//! compose and re-export; nothing below names them), and no CLI file over 300 lines before its
//! tests; no source comment cites a document outside the repository, and every
//! `docs/design.md section N` a comment cites exists.
//!
//! A module's imports are the `crate::…`, `super::…` and `self::…` paths its file names outside
//! its tests, resolved to the deepest module they reach. A module and its own descendants are one
//! room: a store implementing its parent's trait (`ledger::sqlite` → `ledger`) is not a circle.

use e2e::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src` (`""` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// A file's text without its tests and without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

fn join(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}::{rest}"),
    }
}

/// Every path a module's code names from `crate`, `super` or `self`, made absolute. A group
/// `crate::{a::b, c}` gives each of its members.
fn named_paths(module: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text = code;
    for (anchor, base) in [
        ("crate::", String::new()),
        ("super::", parent(module)),
        ("self::", module.to_string()),
    ] {
        let mut from = 0;
        while let Some(at) = text[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            // Only whole words: not `my_crate::`.
            let before = text[..start].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[from..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for member in group[..end].split(',') {
                    let member: String = member
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    if !member.is_empty() {
                        out.push(join(&base, &member));
                    }
                }
            } else {
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.push(join(&base, path.trim_end_matches(':')));
            }
        }
    }
    out
}

/// The deepest module of `modules` that `path` is in.
fn resolve(modules: &BTreeSet<String>, path: &str) -> String {
    let segments: Vec<&str> = path.split("::").collect();
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
        .unwrap_or_default()
}

fn is_ancestor(ancestor: &str, module: &str) -> bool {
    ancestor != module && (ancestor.is_empty() || module.starts_with(&format!("{ancestor}::")))
}

/// Module → the modules it imports (not itself, not its descendants).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<(String, String)> = rust_files(src)
        .into_iter()
        .map(|f| (module_of(src, &f), f))
        .filter(|(m, _)| m.rsplit("::").next() != Some("tests"))
        .map(|(m, f)| (m, code(&std::fs::read_to_string(f).unwrap())))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, code) in &files {
        let targets: BTreeSet<String> = named_paths(module, code)
            .iter()
            .map(|p| resolve(&modules, p))
            .filter(|t| t != module && !is_ancestor(module, t) && !is_ancestor(t, module))
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The import circles of a graph: each strongly connected set of two or more modules.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for t in graph.get(&m).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    todo.push(t.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reaches(m))).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &reach {
        let circle: Vec<String> = r
            .iter()
            .filter(|o| *o != *m && reach.get(o).is_some_and(|back| back.contains(*m)))
            .cloned()
            .chain(std::iter::once((*m).clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if circle.len() > 1 {
            found.insert(circle);
        }
    }
    found.into_iter().collect()
}

fn crates() -> [(&'static str, PathBuf); 2] {
    [
        ("zofhook-core", root().join("crates/core/src")),
        ("zofhook", root().join("crates/cli/src")),
    ]
}

#[test]
fn no_module_imports_in_a_circle() {
    for (name, src) in crates() {
        let graph = imports(&src);
        assert!(graph.len() > 10, "{name}: only {} modules", graph.len());
        let circles = circles(&graph);
        assert!(circles.is_empty(), "{name}: import circles {circles:?}");
    }
}

#[test]
fn no_module_imports_back_up_from_the_crate_root() {
    for (name, src) in crates() {
        let files = rust_files(&src);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
        let mut up = Vec::new();
        for file in &files {
            let module = module_of(&src, file);
            if module.rsplit("::").next() == Some("tests") {
                continue;
            }
            let code = code(&std::fs::read_to_string(file).unwrap());
            for path in named_paths(&module, &code) {
                let target = resolve(&modules, &path);
                if target.is_empty() && !module.is_empty() {
                    up.push(format!("{module} imports {path} (from {target:?})"));
                }
            }
        }
        assert!(up.is_empty(), "{name}: imports back up:\n{}", up.join("\n"));
    }
}

#[test]
fn no_cli_file_is_over_300_lines_before_its_tests() {
    let src = root().join("crates/cli/src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines = text
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            (lines > 300).then(|| format!("{}: {lines}", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "CLI files over 300 lines: {long:?}");
}

/// The project's own files a comment can be in (not target/, not the fuzz corpus).
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.')
                    && !["target", "corpus", "node_modules"].contains(&name.as_str())
                {
                    walk(&path, out);
                }
            } else if ["rs", "sh", "py", "toml", "yaml", "lua", "html"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")))
                || name == "Makefile"
                || name == "run"
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in [
        "crates",
        "functions",
        "model",
        "tests",
        "fuzz",
        "infra",
        ".ci",
    ] {
        walk(&root().join(dir), &mut out);
    }
    out.push(root().join("Makefile"));
    out.push(root().join("template.yaml"));
    out.push(root().join("Cargo.toml"));
    out
}

#[test]
fn source_comments_cite_only_documents_in_the_repository() {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let sections: BTreeSet<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| h.split('.').next())
        .map(str::to_string)
        .collect();
    assert!(sections.len() >= 11, "docs/design.md lost its sections");
    let mut bad = Vec::new();
    let mut cited = 0;
    for file in sources() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            // This file names what it looks for.
            if file.ends_with("tests/tests/layout.rs") {
                continue;
            }
            if line.contains("DESIGN.md") || line.contains("../shared") {
                bad.push(format!("{at}: {line}"));
            }
            let mut rest = line;
            while let Some(i) = rest.find("docs/design.md section") {
                rest = &rest[i + "docs/design.md section".len()..];
                let numbers: String = rest
                    .trim_start_matches('s')
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                cited += 1;
                if !sections.contains(&numbers) {
                    bad.push(format!("{at}: no section {numbers:?} in docs/design.md"));
                }
            }
        }
    }
    assert!(cited >= 10, "only {cited} citations of docs/design.md");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The measures see what they are for: a circle, an import up, a group import.
#[test]
fn the_measures_find_circles_and_imports_up() {
    let paths = named_paths(
        "commands::events",
        "use crate::{store::Backend, global};\nuse super::replay::X;\nlet a = my_crate::x;",
    );
    assert_eq!(paths, ["store::Backend", "global", "commands::replay::X"]);
    let modules: BTreeSet<String> = ["", "commands", "commands::events", "store"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(resolve(&modules, "store::Backend"), "store");
    assert_eq!(resolve(&modules, "Global"), "");
    assert!(is_ancestor("", "commands::events"));
    assert!(is_ancestor("commands", "commands::events"));
    assert!(!is_ancestor("commands::events", "commands"));
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
