//! `creditgate demo --backend mixed`, the binary itself, against the
//! PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) on the machine:
//! it loads four departments into PostgreSQL and platform A into MariaDB,
//! serves them through their connectors and runs the whole tour — lookups,
//! the join of MariaDB and PostgreSQL tables, masked HTTP queries, refusals,
//! consent — to the end. And `creditgate datagen` takes the loader's
//! password from a file.
//!
//! Each run loads under a schema prefix of its own and drops those schemas
//! when it ends, failed or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use creditgate_tooling::demo_backend::{BackendArgs, DemoBackend, MIXED_MYSQL_SOURCES, MIXED_POSTGRES_SOURCES};

/// A schema prefix no other run uses.
fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("cg_{tag}_{}_{nanos:x}_", std::process::id())
}

/// Drops, when it goes out of scope, the schemas a demo over `args` loaded
/// from the data in `data_dir` (every source of its manifest; nothing if
/// the demo never got as far as writing one).
struct DemoSchemas {
    args: BackendArgs,
    data_dir: PathBuf,
}

impl Drop for DemoSchemas {
    fn drop(&mut self) {
        let Ok(manifest) = creditgate_datagen::read_manifest(&self.data_dir) else {
            return;
        };
        let sources: Vec<String> = manifest.sources.iter().map(|s| s.name.clone()).collect();
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return eprintln!("cannot drop the demo's schemas: {e}"),
        };
        match runtime.block_on(creditgate_tooling::demo_backend::unload(&sources, &self.args)) {
            Ok(dropped) => eprintln!("dropped {}", dropped.join(", ")),
            Err(e) => eprintln!("cannot drop the demo's schemas: {e}"),
        }
    }
}

fn creditgate(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env_remove("PGPASSWORD")
        .env_remove("MYSQL_PWD")
        .output()
        .expect("run creditgate")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn demo_backend_mixed_runs_the_tour() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique_prefix("demo");
    let _schemas = DemoSchemas {
        args: BackendArgs { backend: DemoBackend::Mixed, db_schema_prefix: prefix.clone(), ..BackendArgs::default() },
        data_dir: tmp.path().join("data"),
    };
    let output = creditgate(&["demo", "--lang", "en", "--backend", "mixed", "--db-schema-prefix", &prefix], tmp.path());
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "the demo failed:\n{stdout}\n{stderr}");

    // The connectors were configured over the databases the demo loaded.
    for (sources, kind) in [(MIXED_POSTGRES_SOURCES, "postgres"), (MIXED_MYSQL_SOURCES, "mysql")] {
        for source in sources {
            let config = std::fs::read_to_string(tmp.path().join("connectors").join(format!("{source}.toml")))
                .expect("connector config");
            assert!(config.contains(kind) && config.contains(&format!("{prefix}{source}")), "{source}: {config}");
            assert!(!config.contains(".parquet"), "{source} reads no Parquet file: {config}");
        }
    }
    let payment = std::fs::read_to_string(tmp.path().join("connectors").join("payment.toml")).expect("config");
    assert!(payment.contains(".parquet"), "payment stays on Parquet: {payment}");

    // The tour ran to its end, with data at every step that needs it.
    let join = stdout
        .split("== 2. Platform A")
        .nth(1)
        .and_then(|rest| rest.split("== 3.").next())
        .unwrap_or_else(|| panic!("no join step:\n{stdout}"));
    assert!(join.contains("| shop_id") && !join.contains("(no rows)"), "the join found shops:\n{join}");
    for line in [
        "connectors and the gateway are up",
        "POST /v1/query -> 200",
        "purpose `marketing`: 403",
        "legal basis",
        "consent uses 1",
        "revoke -> 200",
        "demo finished",
    ] {
        assert!(stdout.contains(line), "`{line}` missing from the tour:\n{stdout}");
    }
    // The grade, read from PostgreSQL and MariaDB sources as well: every rule fired on the featured
    // enterprise's planted records, including the direct D of the dishonest-debtor list.
    let grade = stdout.split("== 6b.").nth(1).and_then(|rest| rest.split("== 7.").next()).unwrap_or_default();
    assert!(grade.contains("grade D | score 0"), "the featured enterprise's grade:\n{grade}");
    for rule in ["COURT-DEBTOR", "MKT-PEN ", "PAY-FRAUD", "PLATFORM-B-VIOLATION"] {
        assert!(grade.lines().any(|l| l.trim_start().starts_with(rule.trim_end())), "{rule} fired:\n{grade}");
    }
    let lookup = stdout.split("== 6.").nth(1).and_then(|rest| rest.split("== 6b.").next()).unwrap_or_default();
    for dataset in ["market.enterprises", "platform_a.shops", "credit_platform.black_list"] {
        assert!(
            lookup.lines().any(|l| l.contains(dataset) && l.contains("ok") && !l.contains(" 0 rows")),
            "the lookup read {dataset}:\n{lookup}"
        );
    }
}

#[test]
fn datagen_loader_reads_the_password_file_it_is_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique_prefix("pwfile");
    let _schemas = DemoSchemas {
        args: BackendArgs { backend: DemoBackend::Mysql, db_schema_prefix: prefix.clone(), ..BackendArgs::default() },
        data_dir: tmp.path().join("data"),
    };
    let missing = tmp.path().join("no-such-password-file");
    let args = [
        "datagen",
        "--load-mysql",
        "mysql://root@127.0.0.1:3306/test",
        "--mysql-sources",
        "market",
        "--schema-prefix",
        &prefix,
        "--db-password-file",
        missing.to_str().expect("utf-8 path"),
    ];
    let output = creditgate(&args, &tmp.path().join("data"));
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "a missing password file must stop the load:\n{stdout}\n{stderr}");
    assert!(stderr.contains("password file") && stderr.contains("no-such-password-file"), "{stderr}");

    // Positive control: root has an empty password, so an empty file loads.
    let empty = tmp.path().join("empty-password");
    std::fs::write(&empty, "\n").expect("password file");
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == missing.to_str().unwrap_or_default() { empty.to_str().unwrap_or("") } else { a })
        .collect();
    let output = creditgate(&args, &tmp.path().join("data"));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{prefix}market")), "{stdout}");
}
