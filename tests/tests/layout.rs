//! The crate layout's rules, checked on the source tree and on `cargo
//! metadata`: imports go one way along the request flow (no product crate
//! depends on the tooling crate, the engine does not depend on the ops or
//! server crates, ops not on server), and no product code names a dataset of
//! the demo (datasets come from configuration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The product crates: everything the gateway and connectors run, not the
/// tooling (demo, bench, clients) nor the tests.
const PRODUCT: &[&str] = &[
    "certs",
    "connectors/flight",
    "connectors/server",
    "connectors/remote",
    "policy/ident",
    "policy/core",
    "policy/consent",
    "gateway/audit",
    "gateway/state",
    "gateway/engine",
    "gateway/ops",
    "gateway/server",
];

/// The in-tree dependencies of each workspace package, from `cargo metadata`.
fn graph() -> BTreeMap<String, Vec<String>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata json");
    let packages = doc["packages"].as_array().expect("packages");
    let names: Vec<String> = packages.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null()) // normal dependencies, not dev/build
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.iter().any(|n| n == d))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

fn reaches(graph: &BTreeMap<String, Vec<String>>, from: &str, to: &str) -> bool {
    let mut stack = vec![from.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(next) = stack.pop() {
        for dep in graph.get(&next).into_iter().flatten() {
            if dep == to {
                return true;
            }
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    false
}

#[test]
fn imports_go_one_way_along_the_request_flow() {
    let graph = graph();
    for (package, _) in graph.iter().filter(|(p, _)| !matches!(p.as_str(), "creditgate-gateway" | "creditgate-tests")) {
        assert!(!reaches(&graph, package, package), "{package} depends on itself through a cycle");
    }
    for product in [
        "creditgate-certs",
        "creditgate-engine",
        "creditgate-ops",
        "creditgate-server",
        "creditgate-connector",
        "creditgate-remote",
        "creditgate-audit",
        "creditgate-state",
        "creditgate-policy",
    ] {
        assert!(graph.contains_key(product), "{product} is a workspace package");
        assert!(!reaches(&graph, product, "creditgate-tooling"), "{product} depends on the tooling crate");
    }
    for (lower, upper) in [
        ("creditgate-engine", "creditgate-ops"),
        ("creditgate-engine", "creditgate-server"),
        ("creditgate-ops", "creditgate-server"),
        ("creditgate-policy", "creditgate-engine"),
        ("creditgate-audit", "creditgate-engine"),
        ("creditgate-audit", "creditgate-state"),
        ("creditgate-state", "creditgate-engine"),
    ] {
        assert!(!reaches(&graph, lower, upper), "{lower} must not depend on {upper}");
    }
    // Negative control: the flow itself is there.
    assert!(reaches(&graph, "creditgate-server", "creditgate-engine"));
    assert!(reaches(&graph, "creditgate-gateway", "creditgate-tooling"));
}

/// Source lines of `file` that are code: comments and `#[cfg(test)]`
/// modules (at the end of a file, by convention here) left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end].lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests" && n != "examples") {
                files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "html" || e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn no_product_code_names_a_demo_dataset() {
    let policy = creditgate_policy::Policy::parse(creditgate_tooling::demo::DEMO_POLICY, "demo-policy.toml")
        .expect("demo policy");
    let datasets: Vec<&creditgate_ident::DatasetName> = policy.datasets().keys().collect();
    assert!(datasets.len() > 10, "the demo's datasets: {datasets:?}");
    let mut sources = Vec::new();
    for krate in PRODUCT {
        files(&root().join(krate), &mut sources);
    }
    assert!(sources.len() > 40, "{} files scanned", sources.len());
    let mut found = Vec::new();
    for file in &sources {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in code_lines(&text) {
            for dataset in &datasets {
                if line.contains(dataset.as_str()) {
                    found.push(format!("{}:{}: {dataset}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "demo dataset names in product code:\n{}", found.join("\n"));
    // Negative control: the scan finds them where they belong.
    let demo = std::fs::read_to_string(root().join("gateway/tooling/src/demo.rs")).expect("demo.rs");
    assert!(code_lines(&demo).any(|(_, l)| l.contains("market.enterprises")));
}
