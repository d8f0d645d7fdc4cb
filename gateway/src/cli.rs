//! The `creditgate` command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use creditgate_connector::{Connector, ConnectorConfig};

use creditgate_engine::Engine;
use creditgate_server::shutdown_signal;

/// creditgate: a mutual-TLS federated query gateway for credit information.
#[derive(Debug, Parser)]
#[command(name = "creditgate", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the guided demo: certificates, data, connectors, gateway, a tour of queries.
    Demo(creditgate_tooling::demo::DemoArgs),
    /// Measure the gateway against its baselines; writes BENCHMARKS.md.
    Bench(creditgate_tooling::bench::BenchArgs),
    /// Run the gateway.
    Gateway {
        /// Gateway config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a connector in front of one source's data.
    Connector {
        /// Connector config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Generate the synthetic credit federation (Parquet).
    Datagen {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Row-count multiplier for the large tables.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Random seed.
        #[arg(long, default_value_t = 20261128)]
        seed: u64,
        /// Reference date of the data (every date is relative to it); default
        /// today. The same seed, scale and date give byte-identical files.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<chrono::NaiveDate>,
        /// Also load the federation into this PostgreSQL database, one schema
        /// per source (URL without password; `PGPASSWORD` supplies one).
        #[arg(long, value_name = "URL")]
        load_postgres: Option<String>,
        /// Also load the federation into this MySQL/MariaDB server, one
        /// database per source (URL without password; `MYSQL_PWD` supplies one).
        #[arg(long, value_name = "URL")]
        load_mysql: Option<String>,
        /// Sources loaded into PostgreSQL (comma-separated; default: all).
        #[arg(long, value_name = "SOURCES", value_delimiter = ',', requires = "load_postgres")]
        postgres_sources: Option<Vec<String>>,
        /// Sources loaded into MySQL/MariaDB (comma-separated; default: all).
        #[arg(long, value_name = "SOURCES", value_delimiter = ',', requires = "load_mysql")]
        mysql_sources: Option<Vec<String>>,
        /// Prefix of the schema (database) each source is loaded into.
        #[arg(long, default_value = creditgate_datagen::load::DEFAULT_SCHEMA_PREFIX)]
        schema_prefix: String,
        /// File holding the database password (trailing newline ignored), for
        /// URLs without one; replaces `PGPASSWORD` / `MYSQL_PWD`.
        #[arg(long, value_name = "FILE")]
        db_password_file: Option<PathBuf>,
    },
    /// Certificates: dev CA, issuing, revocation.
    #[command(subcommand)]
    Certs(creditgate_certs::cli::CertsCommand),
    /// Policy files: validate offline; measure the linkability of masked columns.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log: verify the chain, export a checkpoint for a witness.
    #[command(subcommand)]
    Audit(creditgate_audit::cli::AuditCommand),
    /// Grade a list of credit codes through a running gateway (NDJSON, warnings first).
    Grade(creditgate_tooling::grade_cli::GradeArgs),
    /// Consent issuers: make a signing key, issue and inspect consent artefacts.
    #[command(subcommand)]
    Consent(creditgate_consent::cli::ConsentCommand),
}

/// `creditgate policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; prints every problem with its key, or a summary.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Also check this grading template against the policy (every
        /// dataset and column its rules read must be classified there).
        #[arg(long, value_name = "TEMPLATE")]
        grading: Option<PathBuf>,
    },
    /// Linkability of masked columns, measured on the live federation: for
    /// every principal and column it sees masked, the unique share, the
    /// smallest group size k, k combined with the dataset's other masked
    /// columns, and the columns of other datasets it matches. Exits 1 when
    /// a column a principal may not link has k below `[masking] min_k`.
    Linkage {
        /// Gateway config file (TOML): its policy, connectors and state
        /// directory (the deployment secret is read, nothing is written).
        #[arg(long)]
        config: PathBuf,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `creditgate policy linkage`: the report (table or JSON) and whether
/// it passed.
pub fn policy_linkage(config: &std::path::Path, json: bool) -> Result<(String, bool), String> {
    let report = runtime()?
        .block_on(creditgate_ops::linkage::from_config(config))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let text = if json {
        serde_json::to_string_pretty(&report).map_err(|e| format!("cannot write the report: {e}"))?
    } else {
        report.table()
    };
    Ok((text, report.passed))
}

/// Checks a grading template on its own and against `policy`; the summary
/// line on success, every problem on failure.
pub fn grading_check(file: &std::path::Path, policy: &creditgate_policy::Policy) -> Result<String, String> {
    let template = creditgate_grade::Template::load(file)?;
    let problems = template
        .problems_against(|dataset| policy.datasets().get(dataset).map(|d| d.columns.keys().cloned().collect()));
    if !problems.is_empty() {
        return Err(creditgate_files::config::report(file, &problems));
    }
    let direct = template.rules.iter().filter(|r| r.grade.is_some()).count();
    let warnings = template.rules.iter().filter(|r| r.warning).count();
    let bands: Vec<String> = template.bands.iter().map(|b| format!("{} ≥ {}", b.grade, b.min)).collect();
    Ok(format!(
        "{}: valid — template {} {}, {} rules over {} datasets ({direct} direct grades, {warnings} warnings), bands {}",
        file.display(),
        template.template.id,
        template.template.version,
        template.rules.len(),
        template.datasets().len(),
        bands.join(", ")
    ))
}

/// Validates a policy file offline; the summary on success, every problem on
/// failure. Purposes that look like typos of others fail the check too
/// (the gateway itself would load such a policy).
pub fn policy_check(file: &std::path::Path) -> Result<String, String> {
    let policy = creditgate_policy::Policy::load(file).map_err(|e| e.to_string())?;
    let warnings = creditgate_policy::lint::near_miss_purposes(&policy);
    if !warnings.is_empty() {
        let n = warnings.len();
        let mut message = format!("{}: {n} likely mistake{}", file.display(), if n == 1 { "" } else { "s" });
        for warning in &warnings {
            message.push_str("\n  ");
            message.push_str(warning);
        }
        return Err(message);
    }
    let mut lines = vec![format!(
        "{}: valid — {} principals, {} datasets, {} rules",
        file.display(),
        policy.principals().len(),
        policy.datasets().len(),
        policy.rules().len()
    )];
    for principal in policy.principals() {
        let grants = policy.grants_for(principal);
        lines.push(format!(
            "  {} ({}, {}): {} datasets, purposes {}",
            principal.name,
            principal.role.as_str(),
            principal.identity,
            grants.len(),
            principal.purposes.join(", ")
        ));
    }
    Ok(lines.join("\n"))
}

/// Logs go to stderr, or appended to `file` (its directory created);
/// `RUST_LOG` overrides the default (`info`, DataFusion at `warn`). Colours
/// only on a terminal.
pub fn init_tracing(json: bool, file: Option<&std::path::Path>) -> Result<(), String> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,datafusion=warn,datafusion_optimizer=warn,h2=warn,hyper=warn,tonic=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match file {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let builder = builder.with_ansi(false).with_writer(std::sync::Mutex::new(log));
            if json { builder.json().try_init() } else { builder.try_init() }
        }
        None => {
            let builder = builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr);
            if json { builder.json().try_init() } else { builder.try_init() }
        }
    };
    Ok(())
}

/// Prints a line to stdout. A closed stdout (`creditgate policy check … | head`)
/// is not an error of a command that has done its work: the rest is dropped.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Stack size of the runtime's worker threads.
pub const WORKER_STACK_BYTES: usize = 32 * 1024 * 1024;

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, String> {
    match cli.command {
        Command::Policy(PolicyCommand::Check { file, grading }) => {
            say(&policy_check(&file)?);
            if let Some(template) = grading {
                let policy = creditgate_policy::Policy::load(&file).map_err(|e| e.to_string())?;
                say(&grading_check(&template, &policy)?);
            }
            Ok(0)
        }
        Command::Policy(PolicyCommand::Linkage { config, json }) => {
            let (text, passed) = policy_linkage(&config, json)?;
            say(&text);
            Ok(if passed { 0 } else { 1 })
        }
        Command::Audit(creditgate_audit::cli::AuditCommand::Verify {
            dir: None,
            postgres: Some(url),
            schema,
            password_file,
            ..
        }) => {
            let (code, message) = verify_postgres(url, schema, password_file.as_deref())?;
            if code == 0 {
                say(&message);
            } else {
                eprintln!("{message}");
            }
            Ok(code)
        }
        Command::Audit(command) => {
            let (code, message) = creditgate_audit::cli::run(&command);
            if code == 0 {
                say(&message);
            } else {
                eprintln!("{message}");
            }
            Ok(code)
        }
        command => run_main(command).map(|()| 0),
    }
}

/// `creditgate audit verify --postgres URL`: every replica's chain in the
/// shared state. The password comes from `password_file`, else `PGPASSWORD`.
fn verify_postgres(url: String, schema: String, password_file: Option<&Path>) -> Result<(i32, String), String> {
    let mut settings = creditgate_state::PgSettings::new(url, "verify");
    settings.schema = schema;
    settings.password = match password_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| format!("--password-file {}: {e}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        None => std::env::var("PGPASSWORD").ok(),
    };
    let report = runtime()?.block_on(creditgate_state::verify_url(settings));
    Ok(match report {
        Ok(report) => (report.exit_code(), report.message()),
        Err(e) => (2, format!("audit verify: {e}")),
    })
}

fn run_main(command: Command) -> Result<(), String> {
    match command {
        Command::Demo(args) => runtime()?.block_on(creditgate_tooling::demo::run(args)),
        Command::Bench(args) => runtime()?.block_on(creditgate_tooling::bench::run(args)),
        Command::Gateway { config } => runtime()?.block_on(async move {
            let gateway = Engine::load(&config).await.map_err(|e| e.to_string())?;
            let running = creditgate_server::start(Arc::clone(&gateway)).await.map_err(|e| e.to_string())?;
            say(&format!("flight sql: {}", running.flight_addr));
            say(&format!("http:       {}", running.http_addr));
            if let Some(public) = running.public_addr {
                say(&format!("public:     {public}"));
            }
            let _reloader = creditgate_server::reload_on_sighup(&running);
            shutdown_signal().await;
            tracing::info!("shutting down");
            running.stop().await.map_err(|e| e.to_string())
        }),
        Command::Connector { config } => runtime()?.block_on(async move {
            let config = ConnectorConfig::load(&config).map_err(|e| e.to_string())?;
            let connector = Connector::open(config).await.map_err(|e| e.to_string())?;
            let running = connector.start().await.map_err(|e| e.to_string())?;
            say(&format!("flight sql: {}", running.addr));
            shutdown_signal().await;
            running.stop().await.map_err(|e| e.to_string())
        }),
        Command::Datagen {
            dir,
            scale,
            seed,
            as_of,
            load_postgres,
            load_mysql,
            postgres_sources,
            mysql_sources,
            schema_prefix,
            db_password_file,
        } => {
            let options = creditgate_datagen::GenOptions {
                dir,
                scale,
                seed,
                as_of: as_of.unwrap_or_else(|| chrono::Local::now().date_naive()),
                progress: true,
            };
            let started = std::time::Instant::now();
            let manifest = creditgate_datagen::generate(&options).map_err(|e| e.to_string())?;
            let took = started.elapsed().as_secs_f64();
            let tables: usize = manifest.sources.iter().map(|s| s.tables.len()).sum();
            let rows: u64 = manifest.sources.iter().flat_map(|s| &s.tables).map(|t| t.rows).sum();
            say(&format!(
                "wrote {} sources, {tables} tables, {rows} rows (as of {}, seed {}, scale {}) to {} \
                 in {took:.2} s ({:.0} rows/s)",
                manifest.sources.len(),
                manifest.as_of,
                manifest.seed,
                manifest.scale,
                options.dir.display(),
                rows as f64 / took.max(1e-9)
            ));
            if load_postgres.is_none() && load_mysql.is_none() {
                return Ok(());
            }
            runtime()?.block_on(async {
                use creditgate_datagen::load::{LoadOptions, LoadReport, load_mysql as mysql, load_postgres as pg};
                let show = |kind: &str, url: &str, report: &LoadReport| {
                    say(&format!(
                        "loaded {} tables, {} rows into {kind} {} in {:.1} s (schemas: {})",
                        report.tables,
                        report.rows,
                        creditgate_datagen::load::redact_url(url),
                        report.elapsed.as_secs_f64(),
                        report.schemas.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                };
                if let Some(url) = &load_postgres {
                    let load = LoadOptions {
                        schema_prefix: schema_prefix.clone(),
                        sources: postgres_sources.clone(),
                        password_env: None,
                        password_file: db_password_file.clone(),
                    };
                    let report = pg(&options.dir, url, &load).await.map_err(|e| e.to_string())?;
                    show("PostgreSQL", url, &report);
                }
                if let Some(url) = &load_mysql {
                    let load = LoadOptions {
                        schema_prefix: schema_prefix.clone(),
                        sources: mysql_sources.clone(),
                        password_env: None,
                        password_file: db_password_file.clone(),
                    };
                    let report = mysql(&options.dir, url, &load).await.map_err(|e| e.to_string())?;
                    show("MySQL", url, &report);
                }
                Ok(())
            })
        }
        Command::Grade(args) => runtime()?.block_on(creditgate_tooling::grade_cli::run(args)),
        Command::Certs(command) => creditgate_certs::cli::run(command).map_err(|e| e.to_string()),
        Command::Consent(command) => creditgate_consent::cli::run(command).map_err(|e| e.to_string()),
        Command::Policy(_) | Command::Audit(_) => Err("handled by run".to_string()),
    }
}
