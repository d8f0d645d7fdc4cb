//! Where the demo's sources keep their data: `demo --backend parquet` (the
//! default) serves every table from the generated Parquet files; `demo
//! --backend mixed` loads some departments into PostgreSQL and one platform
//! into MariaDB/MySQL first, and their connectors read from there — the
//! same tour over a federation of mixed storage. `--backend postgres` and
//! `--backend mysql` put every source in that one database.
//!
//! [`table_configs`] gives the [`TableConfig`] of every table of every
//! source, loading the data when a source lives in a database. Databases get
//! one schema per source named `<prefix><source>`, by default
//! `creditgate_demo_<source>` (created and replaced by the load, nothing else
//! is touched); [`unload`] drops them again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use creditgate_connector::{DEFAULT_QUERY_TIMEOUT_MS, DatabaseSource, TableConfig, TableFormat};
use creditgate_datagen::Manifest;
use creditgate_datagen::load::{
    DEFAULT_SCHEMA_PREFIX, LoadOptions, drop_mysql, drop_postgres, load_mysql, load_postgres, schema_name,
};

/// PostgreSQL used by `--backend mixed` unless told otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// MySQL/MariaDB used by `--backend mixed` unless told otherwise.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Sources `mixed` serves from PostgreSQL.
pub const MIXED_POSTGRES_SOURCES: &[&str] = &["market", "court", "tax", "credit_platform"];
/// Sources `mixed` serves from MySQL/MariaDB.
pub const MIXED_MYSQL_SOURCES: &[&str] = &["platform_a"];

/// Storage layout of the demo federation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum DemoBackend {
    /// Every source reads its Parquet files.
    #[default]
    Parquet,
    /// market, court, tax and credit_platform on PostgreSQL, platform_a on
    /// MariaDB/MySQL, the rest on Parquet.
    Mixed,
    /// Every source on PostgreSQL.
    Postgres,
    /// Every source on MariaDB/MySQL.
    Mysql,
}

/// `demo` options choosing where the data lives (flatten into the demo's arguments).
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Where the sources keep their data.
    #[arg(long, value_enum, default_value_t = DemoBackend::Parquet)]
    pub backend: DemoBackend,
    /// PostgreSQL for `--backend mixed` (URL without password; `password_env` below).
    #[arg(long, value_name = "URL", default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
    /// MySQL/MariaDB for `--backend mixed` (URL without password).
    #[arg(long, value_name = "URL", default_value = DEFAULT_MYSQL_URL)]
    pub mysql_url: String,
    /// Environment variable holding the databases' password, if they need one.
    #[arg(long, value_name = "VAR", conflicts_with = "db_password_file")]
    pub db_password_env: Option<String>,
    /// File holding the databases' password, if they need one (trailing newline ignored).
    #[arg(long, value_name = "FILE")]
    pub db_password_file: Option<PathBuf>,
    /// Prefix of the schema (MySQL: database) each source is loaded into.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_SCHEMA_PREFIX)]
    pub db_schema_prefix: String,
}

impl Default for BackendArgs {
    fn default() -> BackendArgs {
        BackendArgs {
            backend: DemoBackend::Parquet,
            postgres_url: DEFAULT_POSTGRES_URL.to_string(),
            mysql_url: DEFAULT_MYSQL_URL.to_string(),
            db_password_env: None,
            db_password_file: None,
            db_schema_prefix: DEFAULT_SCHEMA_PREFIX.to_string(),
        }
    }
}

impl BackendArgs {
    /// Loader options for `sources` under these arguments.
    fn load_options(&self, sources: Vec<String>) -> LoadOptions {
        LoadOptions {
            schema_prefix: self.db_schema_prefix.clone(),
            sources: Some(sources),
            password_env: self.db_password_env.clone(),
            password_file: self.db_password_file.clone(),
        }
    }
}

/// Which storage one source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The generated Parquet files.
    Parquet,
    /// PostgreSQL.
    Postgres,
    /// MySQL/MariaDB.
    Mysql,
}

/// Where `backend` puts `source`.
pub fn placement(backend: DemoBackend, source: &str) -> Placement {
    match backend {
        DemoBackend::Parquet => Placement::Parquet,
        DemoBackend::Mixed if MIXED_POSTGRES_SOURCES.contains(&source) => Placement::Postgres,
        DemoBackend::Mixed if MIXED_MYSQL_SOURCES.contains(&source) => Placement::Mysql,
        DemoBackend::Mixed => Placement::Parquet,
        DemoBackend::Postgres => Placement::Postgres,
        DemoBackend::Mysql => Placement::Mysql,
    }
}

/// The config of every table of `source`, on storage `placement` (which
/// must already hold the data, see [`load`]). `data_dir` holds the manifest's
/// Parquet files.
pub fn source_tables(
    manifest: &Manifest,
    data_dir: &Path,
    source: &str,
    placement: Placement,
    args: &BackendArgs,
) -> Vec<TableConfig> {
    let Some(entry) = manifest.sources.iter().find(|s| s.name == source) else {
        return Vec::new();
    };
    let database = |connection: &str| DatabaseSource {
        connection: connection.to_string(),
        schema: schema_name(&args.db_schema_prefix, source),
        password_env: args.db_password_env.clone(),
        password_file: args.db_password_file.clone(),
        query_timeout_ms: DEFAULT_QUERY_TIMEOUT_MS,
    };
    entry
        .tables
        .iter()
        .map(|t| {
            let (format, path) = match placement {
                Placement::Parquet => (TableFormat::Parquet, data_dir.join(&t.file)),
                Placement::Postgres => (TableFormat::Postgres(database(&args.postgres_url)), Default::default()),
                Placement::Mysql => (TableFormat::Mysql(database(&args.mysql_url)), Default::default()),
            };
            TableConfig { name: t.name.clone(), format, path, source_table: None, columns: t.columns.clone() }
        })
        .collect()
}

/// The sources `backend` puts on storage `p`, in `sources`' order.
fn placed<'a>(backend: DemoBackend, p: Placement, sources: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    sources.into_iter().filter(|s| placement(backend, s) == p).map(str::to_string).collect()
}

/// Loads into the databases every source that `args.backend` puts there.
pub async fn load(manifest: &Manifest, data_dir: &Path, args: &BackendArgs) -> Result<(), String> {
    let wanted = |p: Placement| placed(args.backend, p, manifest.sources.iter().map(|s| s.name.as_str()));
    let postgres = wanted(Placement::Postgres);
    if !postgres.is_empty() {
        let options = args.load_options(postgres);
        let report = load_postgres(data_dir, &args.postgres_url, &options)
            .await
            .map_err(|e| format!("loading the demo into PostgreSQL: {e}"))?;
        tracing::info!(
            tables = report.tables,
            rows = report.rows,
            ms = report.elapsed.as_millis() as u64,
            "demo data loaded into PostgreSQL"
        );
    }
    let mysql = wanted(Placement::Mysql);
    if !mysql.is_empty() {
        let options = args.load_options(mysql);
        let report = load_mysql(data_dir, &args.mysql_url, &options)
            .await
            .map_err(|e| format!("loading the demo into MySQL: {e}"))?;
        tracing::info!(
            tables = report.tables,
            rows = report.rows,
            ms = report.elapsed.as_millis() as u64,
            "demo data loaded into MySQL"
        );
    }
    Ok(())
}

/// Drops the schemas (MySQL: databases) that [`load`] creates for `sources`
/// under `args`: those of the sources `args.backend` puts in a database,
/// whether or not they were loaded. Returns the schemas dropped, per database.
pub async fn unload(sources: &[String], args: &BackendArgs) -> Result<Vec<String>, String> {
    let mut dropped = Vec::new();
    let postgres = placed(args.backend, Placement::Postgres, sources.iter().map(String::as_str));
    if !postgres.is_empty() {
        let options = args.load_options(postgres.clone());
        let schemas = drop_postgres(&args.postgres_url, &postgres, &options)
            .await
            .map_err(|e| format!("dropping the demo schemas in PostgreSQL: {e}"))?;
        dropped.extend(schemas.into_iter().map(|s| format!("postgres:{s}")));
    }
    let mysql = placed(args.backend, Placement::Mysql, sources.iter().map(String::as_str));
    if !mysql.is_empty() {
        let options = args.load_options(mysql.clone());
        let schemas = drop_mysql(&args.mysql_url, &mysql, &options)
            .await
            .map_err(|e| format!("dropping the demo databases in MySQL: {e}"))?;
        dropped.extend(schemas.into_iter().map(|s| format!("mysql:{s}")));
    }
    Ok(dropped)
}

/// Loads the data the backend needs, then returns every source's table
/// configs, keyed by source name (what `Lab::start` builds its connectors from).
pub async fn table_configs(
    manifest: &Manifest,
    data_dir: &Path,
    args: &BackendArgs,
) -> Result<BTreeMap<String, Vec<TableConfig>>, String> {
    load(manifest, data_dir, args).await?;
    Ok(manifest
        .sources
        .iter()
        .map(|s| (s.name.clone(), source_tables(manifest, data_dir, &s.name, placement(args.backend, &s.name), args)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_placement() {
        assert_eq!(placement(DemoBackend::Parquet, "market"), Placement::Parquet);
        assert_eq!(placement(DemoBackend::Mixed, "market"), Placement::Postgres);
        assert_eq!(placement(DemoBackend::Mixed, "platform_a"), Placement::Mysql);
        assert_eq!(placement(DemoBackend::Mixed, "payment"), Placement::Parquet);
        assert_eq!(placement(DemoBackend::Postgres, "payment"), Placement::Postgres);
        assert_eq!(placement(DemoBackend::Mysql, "market"), Placement::Mysql);
    }

    #[test]
    fn password_file_reaches_the_loader() {
        use clap::Parser;
        #[derive(Parser)]
        struct Demo {
            #[command(flatten)]
            storage: BackendArgs,
        }
        let parsed = Demo::try_parse_from(["demo", "--backend", "mixed", "--db-password-file", "/run/pw"])
            .expect("parse")
            .storage;
        assert_eq!(parsed.load_options(vec!["market".into()]).password_file, Some(PathBuf::from("/run/pw")));
        let both = ["demo", "--db-password-file", "/run/pw", "--db-password-env", "PW"];
        assert!(Demo::try_parse_from(both).is_err(), "file and variable together are refused");
    }
}
