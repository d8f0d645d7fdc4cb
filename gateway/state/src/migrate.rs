//! Versioned schema migrations, applied at start.
//!
//! `schema_version` holds one row per applied migration. [`apply`] takes a
//! transaction-scoped advisory lock (replicas starting together migrate
//! once), refuses a database whose newest version is above [`LATEST`], and
//! applies the missing migrations in order, all in one transaction.

use crate::{Pool, StateError};

/// The migrations, in order: (version, what it does, SQL). Never edit an
/// applied one; add a new version.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "consents, daily quotas, audit records, checkpoints and signing keys",
    r#"
CREATE TABLE consents (
    issuer        text NOT NULL,
    consent_id    text NOT NULL,
    subject_hash  text,
    subject_type  text,
    grantee       text,
    uses          integer NOT NULL DEFAULT 0,
    max_uses      integer,
    first_use     timestamptz,
    last_use      timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    PRIMARY KEY (issuer, consent_id)
);
CREATE INDEX consents_by_id ON consents (consent_id);
CREATE INDEX consents_by_subject ON consents (subject_hash);
CREATE TABLE quotas (
    day        date NOT NULL,
    quota_key  text NOT NULL,
    used       bigint NOT NULL,
    PRIMARY KEY (day, quota_key)
);
CREATE TABLE audit_records (
    replica             text NOT NULL,
    seq                 bigint NOT NULL,
    time                timestamptz NOT NULL,
    request_id          text NOT NULL,
    caller_fingerprint  text NOT NULL,
    subject_hashes      text[] NOT NULL,
    line                text NOT NULL,
    PRIMARY KEY (replica, seq)
);
CREATE INDEX audit_records_by_time ON audit_records (time);
CREATE INDEX audit_records_by_subject ON audit_records USING gin (subject_hashes);
CREATE TABLE audit_checkpoints (
    id        bigserial PRIMARY KEY,
    replica   text NOT NULL,
    head_seq  bigint NOT NULL,
    line      text NOT NULL
);
CREATE INDEX audit_checkpoints_by_replica ON audit_checkpoints (replica, id);
CREATE TABLE audit_keys (
    key_id      text PRIMARY KEY,
    public_key  text NOT NULL,
    replica     text NOT NULL,
    added       timestamptz NOT NULL
);
"#,
)];

/// The newest schema version this binary knows.
pub const LATEST: i32 = 1;

/// Creates the schema if needed and applies every missing migration.
pub async fn apply(pool: &Pool, schema: &str) -> Result<i32, StateError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('creditgate migrations', 0))", &[]).await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}; \
         CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, description text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL)"
    ))
    .await?;
    let current: i32 = tx.query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[]).await?.get(0);
    if current > LATEST {
        return Err(StateError::SchemaTooNew { schema: schema.to_owned(), found: current, known: LATEST });
    }
    let by = format!("creditgate {}", env!("CARGO_PKG_VERSION"));
    for (version, description, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version, description, applied_by) VALUES ($1, $2, $3)",
            &[version, description, &by],
        )
        .await?;
        tracing::info!(state.schema = %schema, state.version = version, "state schema migrated");
    }
    tx.commit().await?;
    Ok(LATEST)
}

/// Checks that the schema exists at a version this binary knows (readers
/// never migrate).
pub async fn check(pool: &Pool, schema: &str) -> Result<i32, StateError> {
    let conn = pool.get().await?;
    let exists: bool =
        conn.query_one("SELECT to_regclass($1) IS NOT NULL", &[&format!("{schema}.schema_version")]).await?.get(0);
    if !exists {
        return Err(StateError::Database(format!(
            "schema `{schema}` holds no creditgate state (no schema_version table); start a gateway on it first"
        )));
    }
    let current: i32 = conn.query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[]).await?.get(0);
    if current > LATEST {
        return Err(StateError::SchemaTooNew { schema: schema.to_owned(), found: current, known: LATEST });
    }
    Ok(current)
}
