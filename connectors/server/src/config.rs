//! Connector configuration (TOML).

pub(crate) use creditgate_ident::is_identifier;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dburl::{DatabaseKind, DatabaseUrl};
use crate::error::ConnectorError;

/// Default memory limit of the connector's query engine.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 1024 * 1024 * 1024;
/// Default TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default interval between checks of the CRL files for changes, in seconds.
pub const DEFAULT_CRL_CHECK_INTERVAL_SECONDS: u64 = creditgate_certs::revocation::DEFAULT_CRL_CHECK_INTERVAL.as_secs();
/// Default maximum age of a client connection, in seconds.
pub const DEFAULT_MAX_CONNECTION_AGE_SECONDS: u64 = creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs();

/// A connector's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The source's name (e.g. `market`); also the schema its tables live in.
    pub name: String,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to.
    pub client_ca: PathBuf,
    /// CRLs checked on every new connection. They are read again on SIGHUP,
    /// when a file changes and when a CRL's next update passes; a client
    /// whose certificate becomes revoked is refused and its open connections
    /// are closed. A CRL that does not parse or is not signed by `client_ca`
    /// is rejected and the previous one kept.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Refuse clients while a CRL is past its next-update time.
    #[serde(default)]
    pub enforce_crl_expiry: bool,
    /// How often the CRL files are checked for changes, in seconds (at least 1).
    #[serde(default = "default_crl_check_interval")]
    pub crl_check_interval_seconds: u64,
    /// Client connections are closed gracefully (HTTP/2 GOAWAY) at this age,
    /// in seconds (at least 1); one still open a grace period later is closed
    /// under it. Clients reconnect, with a fresh certificate check.
    #[serde(default = "default_max_connection_age")]
    pub max_connection_age_seconds: u64,
    /// Client identities allowed to query (SPIFFE URI, `sha256:<fingerprint>` or `o=<O>/cn=<CN>`).
    pub allowed_clients: Vec<String>,
    /// Where the served-query log (JSON lines) is appended.
    pub served_log: PathBuf,
    /// Memory limit of the query engine in bytes.
    #[serde(default = "default_memory_limit")]
    pub memory_limit_bytes: usize,
    /// TLS handshake timeout in milliseconds.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// The tables this source exposes.
    pub tables: Vec<TableConfig>,
}

fn default_memory_limit() -> usize {
    DEFAULT_MEMORY_LIMIT_BYTES
}

fn default_handshake_timeout() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}

fn default_crl_check_interval() -> u64 {
    DEFAULT_CRL_CHECK_INTERVAL_SECONDS
}

fn default_max_connection_age() -> u64 {
    DEFAULT_MAX_CONNECTION_AGE_SECONDS
}

/// Default per-query timeout of a database-backed table.
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 30_000;

/// Where a table's data lives.
///
/// In TOML this is the `format` key (`parquet`, `csv`, `sqlite`, `postgres`,
/// `mysql`); the database settings of `postgres`/`mysql` tables sit next to it
/// in the same `[[tables]]` entry (see [`DatabaseSource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFormat {
    /// A Parquet file or a directory of Parquet files.
    Parquet,
    /// A CSV file with a header row, or a directory of them.
    Csv,
    /// A table in a SQLite database file.
    Sqlite,
    /// A table in a PostgreSQL database.
    Postgres(DatabaseSource),
    /// A table in a MySQL or MariaDB database.
    Mysql(DatabaseSource),
}

impl TableFormat {
    /// The TOML name of the format.
    pub fn label(&self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Csv => "csv",
            TableFormat::Sqlite => "sqlite",
            TableFormat::Postgres(_) => "postgres",
            TableFormat::Mysql(_) => "mysql",
        }
    }

    /// The database settings of a `postgres`/`mysql` table.
    pub fn database(&self) -> Option<&DatabaseSource> {
        match self {
            TableFormat::Postgres(db) | TableFormat::Mysql(db) => Some(db),
            TableFormat::Parquet | TableFormat::Csv | TableFormat::Sqlite => None,
        }
    }

    fn database_mut(&mut self) -> Option<&mut DatabaseSource> {
        match self {
            TableFormat::Postgres(db) | TableFormat::Mysql(db) => Some(db),
            TableFormat::Parquet | TableFormat::Csv | TableFormat::Sqlite => None,
        }
    }

    /// Whether the table lives in a file (Parquet, CSV, SQLite) rather than a database server.
    pub fn is_file(&self) -> bool {
        self.database().is_none()
    }
}

/// Where a PostgreSQL or MySQL/MariaDB table lives and how to log in.
///
/// The password is never part of the configuration itself: it is read at
/// start-up from `password_env` or `password_file` (or absent, for trust or
/// socket authentication), and never logged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseSource {
    /// Connection URL without a password, e.g.
    /// `postgres://creditgate@db.example:5432/market?sslmode=verify-full` or
    /// `mysql://creditgate@127.0.0.1:3306/platform_a`. The only accepted query
    /// parameter is `sslmode` (PostgreSQL: `disable`, `prefer`, `require`,
    /// `verify-ca`, `verify-full`; MySQL: `disabled`, `preferred`, `required`).
    /// Without it, TLS is required except on loopback hosts.
    pub connection: String,
    /// PostgreSQL schema, or MySQL database, holding the table.
    pub schema: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Per-query timeout in milliseconds (enforced by the database —
    /// PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`,
    /// MySQL's `max_execution_time` — with the connector's deadline as a backstop).
    pub query_timeout_ms: u64,
}

/// One exposed table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "TableToml", into = "TableToml")]
pub struct TableConfig {
    /// Name callers use.
    pub name: String,
    /// Storage format (and, for databases, where the table lives).
    pub format: TableFormat,
    /// File or directory (Parquet/CSV) or database file (SQLite); empty for
    /// `postgres`/`mysql` tables.
    pub path: PathBuf,
    /// Table name inside the database (SQLite, PostgreSQL, MySQL); defaults to `name`.
    pub source_table: Option<String>,
    /// The exposed columns, in order. Nothing else exists for callers.
    pub columns: Vec<String>,
}

/// The TOML shape of a `[[tables]]` entry: flat, database keys next to `format`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableToml {
    name: String,
    format: FormatName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query_timeout_ms: Option<u64>,
    columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatName {
    Parquet,
    Csv,
    Sqlite,
    Postgres,
    Mysql,
}

impl TryFrom<TableToml> for TableConfig {
    type Error = String;

    /// Keys that belong to the other kind of table are refused here (they
    /// have nowhere to go); missing keys are left empty for
    /// [`ConnectorConfig::validate`] to report together with everything else.
    fn try_from(raw: TableToml) -> Result<Self, String> {
        let file = matches!(raw.format, FormatName::Parquet | FormatName::Csv | FormatName::Sqlite);
        if file {
            let misplaced: Vec<&str> = [
                ("connection", raw.connection.is_some()),
                ("schema", raw.schema.is_some()),
                ("password_env", raw.password_env.is_some()),
                ("password_file", raw.password_file.is_some()),
                ("query_timeout_ms", raw.query_timeout_ms.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, present)| present.then_some(key))
            .collect();
            if !misplaced.is_empty() {
                return Err(format!(
                    "table `{}`: {} only used with format = \"postgres\" or \"mysql\"",
                    raw.name,
                    misplaced.join(", ")
                ));
            }
        }
        let database = || DatabaseSource {
            connection: raw.connection.clone().unwrap_or_default(),
            schema: raw.schema.clone().unwrap_or_default(),
            password_env: raw.password_env.clone(),
            password_file: raw.password_file.clone(),
            query_timeout_ms: raw.query_timeout_ms.unwrap_or(DEFAULT_QUERY_TIMEOUT_MS),
        };
        let format = match raw.format {
            FormatName::Parquet => TableFormat::Parquet,
            FormatName::Csv => TableFormat::Csv,
            FormatName::Sqlite => TableFormat::Sqlite,
            FormatName::Postgres => TableFormat::Postgres(database()),
            FormatName::Mysql => TableFormat::Mysql(database()),
        };
        Ok(TableConfig {
            name: raw.name,
            format,
            path: raw.path.unwrap_or_default(),
            source_table: raw.source_table,
            columns: raw.columns,
        })
    }
}

impl From<TableConfig> for TableToml {
    fn from(table: TableConfig) -> TableToml {
        let (format, db) = match table.format {
            TableFormat::Parquet => (FormatName::Parquet, None),
            TableFormat::Csv => (FormatName::Csv, None),
            TableFormat::Sqlite => (FormatName::Sqlite, None),
            TableFormat::Postgres(db) => (FormatName::Postgres, Some(db)),
            TableFormat::Mysql(db) => (FormatName::Mysql, Some(db)),
        };
        let path = (!table.path.as_os_str().is_empty()).then_some(table.path);
        match db {
            None => TableToml {
                name: table.name,
                format,
                path,
                source_table: table.source_table,
                connection: None,
                schema: None,
                password_env: None,
                password_file: None,
                query_timeout_ms: None,
                columns: table.columns,
            },
            Some(db) => TableToml {
                name: table.name,
                format,
                path,
                source_table: table.source_table,
                connection: Some(db.connection),
                schema: Some(db.schema),
                password_env: db.password_env,
                password_file: db.password_file,
                query_timeout_ms: (db.query_timeout_ms != DEFAULT_QUERY_TIMEOUT_MS).then_some(db.query_timeout_ms),
                columns: table.columns,
            },
        }
    }
}

impl TableConfig {
    /// The table name inside the source database.
    pub fn source_table(&self) -> &str {
        self.source_table.as_deref().unwrap_or(&self.name)
    }
}

impl ConnectorConfig {
    /// Reads, parses and validates a config file; relative paths are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConnectorError> {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        creditgate_files::config::load(path, |config: &mut ConnectorConfig| config.resolve_paths(&base), Self::problems)
            .map_err(ConnectorError::Config)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.cert);
        fix(&mut self.key);
        fix(&mut self.client_ca);
        fix(&mut self.served_log);
        self.crls.iter_mut().for_each(fix);
        for table in &mut self.tables {
            if !table.path.as_os_str().is_empty() {
                fix(&mut table.path);
            }
            if let Some(file) = table.format.database_mut().and_then(|db| db.password_file.as_mut()) {
                fix(file);
            }
        }
    }

    /// Checks everything that can be checked without touching the data;
    /// reports all problems together.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let problems = self.problems();
        if problems.is_empty() { Ok(()) } else { Err(ConnectorError::Config(problems.join("; "))) }
    }

    /// Every problem of the config, each `key: reason`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_identifier(&self.name) {
            problems.push(format!("name: `{}` must be a lowercase identifier (a-z, 0-9, _)", self.name));
        }
        if self.allowed_clients.is_empty() {
            problems.push("allowed_clients: must list at least one client identity (normally the gateway)".to_string());
        }
        for (i, client) in self.allowed_clients.iter().enumerate() {
            let ok = client.starts_with("spiffe://") || client.starts_with("sha256:") || client.starts_with("o=");
            if !ok {
                problems.push(format!(
                    "allowed_clients[{i}]: `{client}` is not a SPIFFE URI, `sha256:<fingerprint>` or `o=<O>/cn=<CN>`"
                ));
            }
        }
        if self.crl_check_interval_seconds == 0 {
            problems.push("crl_check_interval_seconds: must be at least 1".to_string());
        }
        if self.max_connection_age_seconds == 0 {
            problems.push("max_connection_age_seconds: must be at least 1".to_string());
        }
        if self.tables.is_empty() {
            problems.push("tables: a connector must expose at least one table".to_string());
        }
        let mut names = BTreeSet::new();
        for (i, table) in self.tables.iter().enumerate() {
            if !is_identifier(&table.name) {
                problems.push(format!("tables[{i}].name: `{}` must be a lowercase identifier", table.name));
            }
            if !names.insert(table.name.as_str()) {
                problems.push(format!("tables[{i}].name: `{}` is declared twice", table.name));
            }
            if table.columns.is_empty() {
                problems.push(format!("tables[{i}].columns: list the columns this table exposes"));
            }
            let mut cols = BTreeSet::new();
            for column in &table.columns {
                if !cols.insert(column.as_str()) {
                    problems.push(format!("tables[{i}].columns: `{column}` is listed twice"));
                }
            }
            match table.format.database() {
                None => {
                    if table.path.as_os_str().is_empty() {
                        problems.push(format!("tables[{i}].path: required with format = \"{}\"", table.format.label()));
                    }
                    if table.source_table.is_some() && table.format != TableFormat::Sqlite {
                        problems.push(format!(
                            "tables[{i}].source_table: only used with format = \"sqlite\", \"postgres\" or \"mysql\""
                        ));
                    }
                }
                Some(db) => {
                    let label = table.format.label();
                    if !table.path.as_os_str().is_empty() {
                        problems.push(format!("tables[{i}].path: not used with format = \"{label}\" (use connection)"));
                    }
                    let kind = match table.format {
                        TableFormat::Mysql(_) => DatabaseKind::Mysql,
                        _ => DatabaseKind::Postgres,
                    };
                    if db.connection.is_empty() {
                        problems.push(format!("tables[{i}].connection: required with format = \"{label}\""));
                    } else if let Err(e) = DatabaseUrl::parse(kind, &db.connection) {
                        problems.push(format!("tables[{i}].connection: {e}"));
                    }
                    if db.schema.is_empty() {
                        problems.push(format!("tables[{i}].schema: required with format = \"{label}\""));
                    } else if !is_database_identifier(&db.schema) {
                        problems.push(format!("tables[{i}].schema: `{}` is not a plain identifier", db.schema));
                    }
                    if !is_database_identifier(table.source_table()) {
                        problems.push(format!(
                            "tables[{i}].source_table: `{}` is not a plain identifier",
                            table.source_table()
                        ));
                    }
                    if db.password_env.is_some() && db.password_file.is_some() {
                        problems.push(format!("tables[{i}]: set password_env or password_file, not both"));
                    }
                    if db.password_env.as_deref().is_some_and(|v| v.is_empty() || v.contains('=')) {
                        problems.push(format!("tables[{i}].password_env: not a valid variable name"));
                    }
                    if db.query_timeout_ms == 0 {
                        problems.push(format!("tables[{i}].query_timeout_ms: must be at least 1"));
                    }
                }
            }
        }
        problems
    }
}

/// A database object name the connector is willing to put into SQL:
/// `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes (PostgreSQL's limit).
pub(crate) fn is_database_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "market"
listen = "127.0.0.1:0"
cert = "market.pem"
key = "market.key"
client_ca = "ca.pem"
allowed_clients = ["spiffe://credit.example/org/gateway"]
served_log = "served.jsonl"

[[tables]]
name = "enterprises"
format = "parquet"
path = "data/enterprises.parquet"
columns = ["credit_code", "name"]
"#;

    #[test]
    fn parses_and_resolves() {
        let mut config: ConnectorConfig = toml::from_str(GOOD).expect("parse");
        config.resolve_paths(Path::new("/etc/cg"));
        assert_eq!(config.cert, PathBuf::from("/etc/cg/market.pem"));
        assert_eq!(config.tables[0].path, PathBuf::from("/etc/cg/data/enterprises.parquet"));
        config.validate().expect("valid");
    }

    #[test]
    fn committed_example_is_valid() {
        let mut config: ConnectorConfig =
            toml::from_str(include_str!("../examples/market.toml")).expect("example parses");
        config.resolve_paths(Path::new("/srv/market"));
        config.validate().expect("example validates");
        assert_eq!(config.tables.len(), 2);
        assert_eq!(config.crl_check_interval_seconds, DEFAULT_CRL_CHECK_INTERVAL_SECONDS);
        assert_eq!(config.max_connection_age_seconds, DEFAULT_MAX_CONNECTION_AGE_SECONDS);
    }

    #[test]
    fn revocation_keys_default_and_refuse_zero() {
        let config: ConnectorConfig = toml::from_str(GOOD).expect("parse");
        assert_eq!(config.crl_check_interval_seconds, 30);
        assert_eq!(config.max_connection_age_seconds, 600);
        let text = GOOD
            .replace("served_log = ", "crl_check_interval_seconds = 0\nmax_connection_age_seconds = 0\nserved_log = ");
        let config: ConnectorConfig = toml::from_str(&text).expect("parse");
        let message = config.validate().expect_err("zero").to_string();
        assert!(message.contains("crl_check_interval_seconds: must be at least 1"), "{message}");
        assert!(message.contains("max_connection_age_seconds: must be at least 1"), "{message}");
        let text = GOOD.replace("served_log = ", "crl_check_interval_secs = 5\nserved_log = ");
        let error = toml::from_str::<ConnectorConfig>(&text).expect_err("typo must fail");
        assert!(error.to_string().contains("crl_check_interval_secs"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = GOOD.replace("served_log", "serverd_log");
        let error = toml::from_str::<ConnectorConfig>(&text).expect_err("typo must fail");
        assert!(error.to_string().contains("serverd_log"), "{error}");
    }

    #[test]
    fn all_problems_reported_together() {
        let text = GOOD
            .replace("[\"spiffe://credit.example/org/gateway\"]", "[\"gateway\"]")
            .replace("columns = [\"credit_code\", \"name\"]", "columns = [\"a\", \"a\"]");
        let config: ConnectorConfig = toml::from_str(&text).expect("parse");
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("allowed_clients[0]"), "{message}");
        assert!(message.contains("`a` is listed twice"), "{message}");
    }

    const DATABASE_TABLES: &str = r#"
[[tables]]
name = "penalties"
format = "postgres"
connection = "postgres://creditgate@db.example:5432/market"
schema = "market"
source_table = "penalty"
password_env = "MARKET_DB_PASSWORD"
columns = ["penalty_id", "credit_code"]

[[tables]]
name = "shops"
format = "mysql"
connection = "mysql://creditgate@127.0.0.1/platform_a"
schema = "platform_a"
password_file = "secrets/platform_a.pw"
query_timeout_ms = 5000
columns = ["shop_id"]
"#;

    #[test]
    fn database_tables_parse_resolve_and_round_trip() {
        let text = GOOD.split("[[tables]]").next().expect("head").to_string() + DATABASE_TABLES;
        let mut config: ConnectorConfig = toml::from_str(&text).expect("parse");
        config.resolve_paths(Path::new("/etc/cg"));
        config.validate().expect("valid");
        let TableFormat::Postgres(pg) = &config.tables[0].format else { panic!("postgres") };
        assert_eq!(pg.password_env.as_deref(), Some("MARKET_DB_PASSWORD"));
        assert_eq!(pg.query_timeout_ms, DEFAULT_QUERY_TIMEOUT_MS);
        assert_eq!(config.tables[0].source_table(), "penalty");
        assert!(config.tables[0].path.as_os_str().is_empty(), "no path for database tables");
        let TableFormat::Mysql(my) = &config.tables[1].format else { panic!("mysql") };
        assert_eq!(my.password_file.as_deref(), Some(Path::new("/etc/cg/secrets/platform_a.pw")));
        assert_eq!(my.query_timeout_ms, 5000);
        let again: ConnectorConfig = toml::from_str(&toml::to_string(&config).expect("serialise")).expect("reparse");
        assert_eq!(again.tables[0].format, config.tables[0].format);
        assert_eq!(again.tables[1].format, config.tables[1].format);
        assert!(!toml::to_string(&config).expect("serialise").contains("path = \"\""));
    }

    #[test]
    fn database_problems_reported_together() {
        let text = GOOD.split("[[tables]]").next().expect("head").to_string()
            + r#"
[[tables]]
name = "a"
format = "postgres"
path = "x.parquet"
password_env = "A"
password_file = "a.pw"
columns = ["x"]

[[tables]]
name = "b"
format = "mysql"
connection = "mysql://root:hunter2@127.0.0.1/test"
schema = "bad-name"
columns = ["x"]
"#;
        let config: ConnectorConfig = toml::from_str(&text).expect("parse");
        let message = config.validate().expect_err("invalid").to_string();
        for expected in [
            "tables[0].path: not used",
            "tables[0].connection: required",
            "tables[0].schema: required",
            "tables[0]: set password_env or password_file, not both",
            "tables[1].connection: must not contain a password",
            "tables[1].schema: `bad-name`",
        ] {
            assert!(message.contains(expected), "missing `{expected}` in: {message}");
        }
        assert!(!message.contains("hunter2"), "the password must not be echoed: {message}");
    }

    #[test]
    fn database_keys_on_file_tables_are_refused() {
        let text = GOOD.replace(
            "columns = [\"credit_code\", \"name\"]",
            "schema = \"x\"\npassword_env = \"Y\"\ncolumns = [\"a\"]",
        );
        let error = toml::from_str::<ConnectorConfig>(&text).expect_err("misplaced keys");
        assert!(error.to_string().contains("schema, password_env only used with format = \"postgres\""), "{error}");
    }

    #[test]
    fn a_file_with_mistakes_of_every_kind_reports_them_all() {
        // A misspelt key, a value of the wrong type, an unknown format and a
        // semantic mistake: four problems, one message, each with its key.
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "handshake_timeout_ms = \"ten\"\n".to_string()
            + &GOOD
                .replace("served_log =", "serverd_log =")
                .replace("name = \"market\"", "name = \"Market\"")
                .replace("format = \"parquet\"", "format = \"parqet\"");
        let file = dir.path().join("market.toml");
        std::fs::write(&file, text).expect("write");
        let message = ConnectorConfig::load(&file).expect_err("invalid").to_string();
        for expected in [
            "serverd_log: unknown key (did you mean `served_log`?)",
            "served_log: missing",
            "handshake_timeout_ms: invalid type",
            "tables[0].format: unknown variant `parqet`",
            "name: `Market` must be a lowercase identifier",
        ] {
            assert!(message.contains(expected), "`{expected}` not in:\n{message}");
        }
        assert!(message.contains("market.toml: 5 problems"), "{message}");
    }
}
