//! How to reach the shared state.

use std::time::Duration;

use creditgate_ident::is_identifier;

/// Default PostgreSQL schema holding creditgate's tables.
pub const DEFAULT_SCHEMA: &str = "creditgate";
/// Default number of pooled connections per replica.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// How long a request waits for a connection before it is refused as
/// retryable (the database is then treated as unreachable).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection settings of the shared state.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/database` (no password in it).
    pub url: String,
    /// The password, read from a file or an environment variable (never logged).
    pub password: Option<String>,
    /// Schema holding the tables (created if missing).
    pub schema: String,
    /// This gateway's replica id: its audit chain and its application name.
    pub replica: String,
    /// Pooled connections.
    pub pool_size: u32,
    /// Connect and pool-wait timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("schema", &self.schema)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl PgSettings {
    /// Settings with defaults for everything but the URL and the replica id.
    pub fn new(url: impl Into<String>, replica: impl Into<String>) -> Self {
        PgSettings {
            url: url.into(),
            password: None,
            schema: DEFAULT_SCHEMA.to_owned(),
            replica: replica.into(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Every problem with these settings, in words (empty when fine).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(config) if config.get_password().is_some() => out.push(
                "url: must not contain a password; put it in password_file or name an environment variable in \
                 password_env"
                    .to_owned(),
            ),
            Ok(_) => {}
            Err(e) => out.push(format!(
                "url: not a PostgreSQL connection URL ({e}); expected postgres://user@host:port/database"
            )),
        }
        if !is_identifier(&self.schema) {
            out.push(format!(
                "schema: `{}` is not a plain identifier (a-z, 0-9 and _, starting with a letter or _, at most 63)",
                self.schema
            ));
        }
        if !is_replica_id(&self.replica) {
            out.push(format!("replica_id: `{}` must be 1-64 characters from A-Z a-z 0-9 . _ -", self.replica));
        }
        if self.pool_size == 0 {
            out.push("pool_size: must be at least 1".to_owned());
        }
        out
    }

    /// The driver configuration (password and application name set).
    pub(crate) fn driver_config(&self) -> Result<tokio_postgres::Config, crate::StateError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(crate::StateError::Settings(problems.join("; ")));
        }
        let mut config: tokio_postgres::Config =
            self.url.parse().map_err(|e| crate::StateError::Settings(format!("url: {e}")))?;
        if let Some(password) = &self.password {
            config.password(password);
        }
        config.application_name(format!("creditgate-{}", self.replica));
        config.connect_timeout(self.connect_timeout);
        config.options(format!("-c search_path={}", self.schema));
        Ok(config)
    }
}

/// A replica id: 1-64 characters from A-Z a-z 0-9 . _ -.
pub fn is_replica_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
