//! `creditgate datagen` as a person runs it: `--as-of` pins the reference
//! date, so the same seed, scale and date give byte-identical files on any day;
//! the run ends with its speed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn datagen(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["datagen", "--dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run creditgate datagen")
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "datagen failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).expect("under root").display().to_string();
                out.insert(name, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_same_as_of_gives_byte_identical_files_and_another_date_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));

    let stdout = succeeded(&datagen(&a, &["--as-of", "2024-03-31"]));
    assert!(stdout.contains("as of 2024-03-31"), "{stdout}");
    let speed = stdout.lines().last().unwrap_or_default();
    assert!(speed.contains(" s (") && speed.trim_end().ends_with("rows/s)"), "the speed ends the run: {stdout}");
    succeeded(&datagen(&b, &["--as-of", "2024-03-31"]));

    let (fa, fb) = (files(&a), files(&b));
    assert!(fa.contains_key("manifest.json") && fa.keys().filter(|k| k.ends_with(".parquet")).count() > 20);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(*bytes == fb[name], "{name} differs between two runs with the same --as-of");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&fa["manifest.json"]).expect("manifest");
    assert_eq!(manifest["as_of"], "2024-03-31");

    // Negative control: another date moves the data (every date is relative to it).
    succeeded(&datagen(&c, &["--as-of", "2024-04-01"]));
    let fc = files(&c);
    let differing = fa.iter().filter(|(name, bytes)| fc.get(*name) != Some(*bytes)).count();
    assert!(differing > 1, "only {differing} files differ with another --as-of");

    // A malformed date is refused by name before anything is written.
    let bad = tmp.path().join("bad");
    let output = datagen(&bad, &["--as-of", "2024-02-30"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--as-of"), "{stderr}");
    assert!(!bad.exists(), "nothing written for a refused date");
}
