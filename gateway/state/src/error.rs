//! Errors of the shared state.

/// What can go wrong with the shared state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database cannot be reached (connection refused or lost, pool
    /// timeout). Requests that need state are refused as retryable.
    #[error("the PostgreSQL state store is unreachable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("PostgreSQL state store: {0}")]
    Database(String),
    /// The database holds a newer schema than this binary knows.
    #[error(
        "the PostgreSQL schema `{schema}` is at version {found}, newer than this gateway knows (up to {known}); \
         upgrade every replica to the newer gateway instead of running an older one against it"
    )]
    SchemaTooNew {
        /// The schema name.
        schema: String,
        /// Version found in the database.
        found: i32,
        /// Newest version this binary knows.
        known: i32,
    },
    /// Another running gateway uses the same replica id.
    #[error(
        "replica id `{0}` is in use by another running gateway on this PostgreSQL state; give every replica its \
         own [state] replica_id"
    )]
    ReplicaInUse(String),
    /// A setting is wrong.
    #[error("[state]: {0}")]
    Settings(String),
}

impl StateError {
    /// Whether retrying later may succeed (the database was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for StateError {
    fn from(e: tokio_postgres::Error) -> Self {
        // An error with a SQLSTATE came from the server; anything else is the
        // connection (refused, closed, timed out).
        match e.code() {
            Some(code) if !is_connection_class(code.code()) => StateError::Database(e.to_string()),
            _ => StateError::Unavailable(e.to_string()),
        }
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for StateError {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => e.into(),
            bb8::RunError::TimedOut => StateError::Unavailable("no connection within the connect timeout".to_owned()),
        }
    }
}

/// SQLSTATE classes that mean the server is going away or not ready
/// (08 connection exception, 57P admin shutdown / cannot connect now).
fn is_connection_class(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}
