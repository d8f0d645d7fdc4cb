//! Connector configuration (TOML).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;

/// Default memory limit of the connector's query engine.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 1024 * 1024 * 1024;
/// Default TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

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
    /// CRLs checked on every new connection.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Refuse clients while a CRL is past its next-update time.
    #[serde(default)]
    pub enforce_crl_expiry: bool,
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

/// Where a table's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// A Parquet file or a directory of Parquet files.
    Parquet,
    /// A CSV file with a header row, or a directory of them.
    Csv,
    /// A table in a SQLite database file.
    Sqlite,
}

/// One exposed table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Name callers use.
    pub name: String,
    /// Storage format.
    pub format: TableFormat,
    /// File or directory (Parquet/CSV) or database file (SQLite).
    pub path: PathBuf,
    /// Table name inside the database (SQLite); defaults to `name`.
    #[serde(default)]
    pub source_table: Option<String>,
    /// The exposed columns, in order. Nothing else exists for callers.
    pub columns: Vec<String>,
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConnectorError::Config(format!("{}: cannot read: {e}", path.display())))?;
        let mut config: ConnectorConfig = toml::from_str(&text)
            .map_err(|e| ConnectorError::Config(format!("{}: {}", path.display(), e.to_string().trim())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate().map_err(|e| match e {
            ConnectorError::Config(message) => ConnectorError::Config(format!("{}: {message}", path.display())),
            other => other,
        })?;
        Ok(config)
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
        self.tables.iter_mut().for_each(|t| fix(&mut t.path));
    }

    /// Checks everything that can be checked without touching the data;
    /// reports all problems together.
    pub fn validate(&self) -> Result<(), ConnectorError> {
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
            if table.source_table.is_some() && table.format != TableFormat::Sqlite {
                problems.push(format!("tables[{i}].source_table: only used with format = \"sqlite\""));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConnectorError::Config(problems.join("; "))) }
    }
}

/// Lowercase SQL identifier: `[a-z_][a-z0-9_]*`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
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
}
