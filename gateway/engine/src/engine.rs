//! The engine: the gateway minus its listeners. It holds the policy
//! snapshot (reloaded on request), the federation of remote sources, the
//! audit side and the limits; it authenticates callers, turns their intents
//! into permits, builds per-request sessions of secure views, plans and
//! executes.
//!
//! A request goes: verified certificate → [`Caller`] → the request's
//! [`Intent`] → [`Engine::authorize`] (purpose, licence, role, legal basis,
//! rate limit, quota) → [`Permit`] → a session whose catalog holds only the
//! principal's secure views (remote scan with the row policy applied at the
//! connector, then a projection that masks every column) → the caller's SQL
//! planned against those views only → the audit record made durable →
//! results released.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use creditgate_audit::{
    AuditLog, AuditOptions, AuditStore, NewRecord, Outcome, RecordedQuery, SourceStatus, SubjectHasher,
};
use creditgate_certs::revocation::{CrlOutcome, RefusedHandshake, ReloadReport, ReloadableTrust};
use creditgate_certs::tls::ConnInfo;
use creditgate_flight::engine::{locked_down_runtime, read_only_sql_options, session};
use creditgate_flight::{ObservedStream, TableEntry};
use creditgate_ident::DatasetName;
use creditgate_policy::{DatasetGrant, MaskUdfs, Policy, Principal, Role};
use creditgate_remote::{RemoteTable, SourceError};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;

use crate::audit::{AuditSink, Auditor, column_accesses, datasets_and_columns};
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::error::PreparedRefusal;
use crate::federation::{CATALOG, Federation};
use crate::metrics::Metrics;
use crate::permit::{Caller, Disclosure, Frontend, Intent, Permit, Scope};
use crate::prepared::{Owner, PlanSlot, PreparedKey, Statement};

/// What [`Engine::run_prepared`] does with a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreparedMode {
    /// Plan only: the result schema (Flight `GetFlightInfo`); the execution is recorded.
    Plan,
    /// Execute and stream the results (Flight `DoGet`).
    Stream,
    /// Execute and count the result rows without returning them (ADBC `executemany`).
    Count,
}

/// What [`Engine::run_prepared`] returns.
pub enum PreparedOutput {
    /// The result schema.
    Schema(SchemaRef),
    /// The results.
    Stream(SendableRecordBatchStream),
    /// How many rows the executions produced.
    Rows(u64),
}

/// How often sources that have not answered yet are retried.
pub const SOURCE_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Daily quota counts, in the state directory.
pub const QUOTAS_FILE: &str = "quotas.json";
/// How often changed quota counts are saved (a crash loses at most this much counting).
const QUOTA_SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// How often audit records past retention are pruned.
pub const AUDIT_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The call header (Flight) / HTTP header carrying the purpose code.
pub const PURPOSE_HEADER: &str = "x-creditgate-purpose";

/// Trusted consent issuers and the store of revocations and use counts.
pub struct Consents {
    /// Issuer public keys.
    pub issuers: creditgate_consent::TrustedIssuers,
    /// Revocations and use counts (local files or the shared state).
    pub store: crate::state::ConsentBook,
}

struct CachedCatalog {
    key: (u64, u64, chrono::NaiveDate),
    catalog: Arc<MemoryCatalogProvider>,
    grants: Arc<BTreeMap<DatasetName, DatasetGrant>>,
}

/// The gateway's engine.
pub struct Engine {
    config: GatewayConfig,
    federation: Arc<Federation>,
    metrics: Arc<Metrics>,
    policy: RwLock<Arc<Policy>>,
    policy_generation: AtomicU64,
    masks: Arc<MaskUdfs>,
    /// Each caller's mask functions (keyed hash under its organisation's or
    /// its own key), by scope and owner.
    scoped_masks: Mutex<HashMap<(creditgate_policy::KeyedHashScope, String), Arc<MaskUdfs>>>,
    auditor: Auditor,
    catalogs: Mutex<HashMap<String, CachedCatalog>>,
    prepared: crate::prepared::PreparedStore,
    lookup_plans: crate::prepared::LookupPlans,
    limits: crate::limits::Limits,
    /// Per client address on the public listener (`[public] rate_limit_per_address`).
    address_limits: Option<crate::limits::AddressLimits>,
    consents: Option<Consents>,
    /// The grading template (`[grading]`), checked against the policy at start.
    grading: Option<Arc<creditgate_grade::Template>>,
    /// Key of Flight ticket signatures, derived from the deployment secret
    /// (replicas sharing the secret accept each other's tickets).
    ticket_key: Vec<u8>,
    /// Functions, optimizer rules and settings, built once; each request
    /// session starts from a copy with its own memory pool.
    base_state: datafusion::execution::SessionState,
    /// The listeners' client trust, once attached: its reloads and refused
    /// handshakes are audited, its counters are in the metrics.
    revocation: std::sync::OnceLock<ReloadableTrust>,
    /// Refused handshakes already recorded, by certificate fingerprint: one
    /// record per certificate per [`REFUSED_HANDSHAKE_RECORD_INTERVAL`], so
    /// a revoked client retrying in a loop cannot flood the audit log.
    refused_recorded: Mutex<HashMap<String, Instant>>,
}

/// How often a refused handshake of the same certificate is recorded again.
pub const REFUSED_HANDSHAKE_RECORD_INTERVAL: Duration = Duration::from_secs(60);
/// At most this many certificates are remembered for that interval.
const REFUSED_HANDSHAKE_MEMORY: usize = 4096;

/// How the gateway itself appears as the caller of its own events.
fn gateway_itself() -> creditgate_audit::Caller {
    creditgate_audit::Caller {
        fingerprint: String::new(),
        name: "creditgate gateway".to_string(),
        organization: String::new(),
        role: "system".to_string(),
    }
}

/// A record that names no data: a refusal before any request was read, or
/// an event of the gateway itself.
fn record_without_data(
    caller: creditgate_audit::Caller,
    frontend: creditgate_audit::Frontend,
    query: RecordedQuery,
    outcome: Outcome,
    refusal_reason: Option<String>,
) -> NewRecord {
    NewRecord {
        request_id: crate::request_id(),
        caller,
        frontend,
        purpose: None,
        legal_basis: None,
        query,
        datasets: Vec::new(),
        columns: Vec::new(),
        subject_hashes: Vec::new(),
        row_count: None,
        sources: Vec::new(),
        outcome,
        refusal_reason,
        duration_ms: 0,
    }
}

/// The record of a connection refused before any request was read: an
/// unknown identity, or a certificate revoked while the connection was open.
fn connection_refusal(
    identity: &creditgate_certs::identity::Identity,
    role: &str,
    frontend: Frontend,
    reason: String,
) -> NewRecord {
    let caller = creditgate_audit::Caller {
        fingerprint: identity.fingerprint.clone(),
        name: identity.name(),
        organization: identity.organization.clone().unwrap_or_default(),
        role: role.to_string(),
    };
    let query = RecordedQuery::Request("connection".to_string());
    record_without_data(caller, frontend.audit(), query, Outcome::Refused, Some(reason))
}

/// Reads the deployment secret, creating 32 random bytes (hex, mode 0600) if missing.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, GatewayError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let fail = |what: &str, e: &dyn std::fmt::Display| GatewayError::Config(format!("{}: {what}: {e}", path.display()));
    if !path.exists() {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| fail("cannot generate", &"no random source"))?;
        use creditgate_files::{Access, Existing};
        match creditgate_files::write_atomic(path, hex::encode(bytes).as_bytes(), Access::Private, Existing::Keep) {
            // Created, or created meanwhile by another process: read what is there.
            Ok(()) => {}
            Err(e) if e.already_exists() => {}
            Err(e) => return Err(GatewayError::Config(e.to_string())),
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail("cannot read", &e))?;
    let bytes = hex::decode(text.trim()).map_err(|_| fail("invalid secret", &"expected hex"))?;
    if bytes.len() < 16 {
        return Err(fail("invalid secret", &"at least 16 bytes (32 hex characters) are required"));
    }
    Ok(bytes)
}

/// The deployment's mask functions, read from the gateway's state without
/// creating anything (for offline reports such as `creditgate policy
/// linkage`, which may run next to a running gateway): the same functions the
/// gateway masks with. Fails when the gateway has never made its secret.
pub fn read_mask_functions(config: &GatewayConfig) -> Result<MaskUdfs, GatewayError> {
    let path = config.state.secret_path();
    if !path.exists() {
        return Err(GatewayError::Config(format!(
            "{}: no deployment secret yet (start the gateway once to make it)",
            path.display()
        )));
    }
    let secret = load_or_create_secret(&path)?;
    MaskUdfs::new(&derive(&secret, MASK_KEY_PURPOSE)).map_err(|e| GatewayError::Config(format!("mask secret: {e}")))
}

/// What the deployment secret is derived with for the mask functions.
const MASK_KEY_PURPOSE: &str = "creditgate mask v1";

fn derive(secret: &[u8], purpose: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, purpose.as_bytes()).as_ref().to_vec()
}

/// Today in the deployment's time zone.
pub fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

impl Engine {
    /// Loads the policy, opens the audit log, builds the federation and asks
    /// every connector for its tables once (sources that do not answer are
    /// retried in the background).
    pub async fn new(config: GatewayConfig) -> Result<Arc<Self>, GatewayError> {
        Self::with_sink(config, None).await
    }

    /// [`GatewayConfig::load`] then [`Engine::new`]: a problem of the
    /// public window found against the policy (a column the public may not
    /// see) is reported with the config file, as its other problems are.
    pub async fn load(path: &Path) -> Result<Arc<Self>, GatewayError> {
        let config = GatewayConfig::load(path)?;
        Self::new(config).await.map_err(|error| match error {
            GatewayError::Config(message) if message.starts_with("public.") => {
                GatewayError::Config(format!("{}: {message}", path.display()))
            }
            other => other,
        })
    }

    /// [`Engine::new`], writing audit records to `sink` instead of the log
    /// (the benchmark measures the audit's cost this way; the log is still
    /// opened, and is what the officer API reads).
    pub async fn with_sink(config: GatewayConfig, sink: Option<Arc<dyn AuditSink>>) -> Result<Arc<Self>, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        let policy = Policy::load(&config.policy).map_err(|e| GatewayError::Config(e.to_string()))?;
        check_public_sections(&config, &policy)?;
        let grading = match &config.grading {
            None => None,
            Some(grading) => Some(Arc::new(load_grading(&grading.template, &policy)?)),
        };
        let secret = load_or_create_secret(&config.state.secret_path())?;
        let masks = MaskUdfs::new(&derive(&secret, MASK_KEY_PURPOSE))
            .map_err(|e| GatewayError::Config(format!("mask secret: {e}")))?;
        let hasher = SubjectHasher::new(&derive(&secret, "creditgate subject v1"))
            .map_err(|e| GatewayError::Config(format!("subject secret: {e}")))?;
        let shared = match config.state.postgres().map_err(GatewayError::Config)? {
            None => None,
            Some(settings) => Some(
                creditgate_state::PgState::connect(settings)
                    .await
                    .map_err(|e| GatewayError::Config(format!("state: {e}")))?,
            ),
        };
        let (log, local_log): (Arc<dyn AuditStore>, Option<Arc<AuditLog>>) = match &shared {
            None => {
                let mut options = AuditOptions::new(config.state.dir.join("audit-signing.key"));
                options.checkpoint_every_records = config.audit.checkpoint_every_records;
                options.checkpoint_every = Duration::from_secs(config.audit.checkpoint_every_seconds);
                options.retention_days = config.audit.retention_days;
                let audit_dir = config.state.dir.join("audit");
                let log = tokio::task::spawn_blocking(move || AuditLog::open(audit_dir, options))
                    .await
                    .map_err(|e| GatewayError::Server(format!("opening the audit log: {e}")))?
                    .map_err(|e| GatewayError::Config(format!("audit log: {e}")))?;
                let log = Arc::new(log);
                (Arc::clone(&log) as Arc<dyn AuditStore>, Some(log))
            }
            Some(state) => {
                std::fs::create_dir_all(&config.state.dir)
                    .map_err(|e| GatewayError::Config(format!("state.dir {}: {e}", config.state.dir.display())))?;
                let options = creditgate_state::PgAuditOptions {
                    signing_key_file: config.state.dir.join("audit-signing.key"),
                    checkpoint_every_records: config.audit.checkpoint_every_records,
                    checkpoint_every: Duration::from_secs(config.audit.checkpoint_every_seconds),
                    retention_days: config.audit.retention_days,
                };
                let log = creditgate_state::PgAuditLog::open(state.clone(), options)
                    .await
                    .map_err(|e| GatewayError::Config(format!("audit log in PostgreSQL: {e}")))?;
                (Arc::new(log) as Arc<dyn AuditStore>, None)
            }
        };
        let consents = if config.consent_issuers.is_empty() {
            None
        } else {
            let issuers = creditgate_consent::TrustedIssuers::from_config(&config.consent_issuers, None)
                .map_err(|e| GatewayError::Config(format!("consent_issuers: {e}")))?;
            let key = derive(&secret, "creditgate consent subject v1");
            let store = match &shared {
                None => crate::state::ConsentBook::Local(
                    creditgate_consent::ConsentStore::open(&config.state.dir.join("consents"), &key)
                        .map_err(|e| GatewayError::Config(format!("consent store: {e}")))?,
                ),
                Some(state) => {
                    crate::state::ConsentBook::Shared(creditgate_state::PgConsents::new(state.clone(), &key))
                }
            };
            Some(Consents { issuers, store })
        };
        let metrics = Arc::new(Metrics::default());
        let federation = Arc::new(Federation::new(&config, Arc::clone(&metrics))?);
        warn_about_policy_coverage(&policy, &federation);
        // Checked once here; every request then gets its own runtime with this limit.
        let runtime = locked_down_runtime(config.server.memory_limit_bytes)
            .map_err(|e| GatewayError::Config(format!("server.memory_limit_bytes: {}", e.strip_backtrace())))?;
        let base_state = session(runtime, CATALOG, "public", true).state();
        for failure in federation.refresh().await {
            tracing::warn!(source = %failure.source_name, "source not available at start-up; will retry");
        }
        federation.spawn_refresher(SOURCE_RETRY_INTERVAL);
        let limits = match &shared {
            None => crate::limits::Limits::load(&config.state.dir.join(QUOTAS_FILE), today())?,
            Some(state) => crate::limits::Limits::shared(creditgate_state::PgQuotas::new(state.clone())),
        };
        let address_limits =
            config.public.rate_limit_per_address.map(|l| crate::limits::AddressLimits::new(l.per_second, l.burst));
        let mut auditor = Auditor::new(log, local_log, Arc::new(hasher));
        if let Some(sink) = sink {
            auditor = auditor.with_sink(sink);
        }
        Ok(Arc::new(Self {
            config,
            federation,
            metrics: Arc::clone(&metrics),
            policy: RwLock::new(Arc::new(policy)),
            policy_generation: AtomicU64::new(0),
            masks: Arc::new(masks),
            scoped_masks: Mutex::new(HashMap::new()),
            auditor,
            catalogs: Mutex::new(HashMap::new()),
            prepared: crate::prepared::PreparedStore::default(),
            lookup_plans: crate::prepared::LookupPlans::new(Arc::clone(&metrics)),
            limits,
            address_limits,
            consents,
            grading,
            ticket_key: derive(&secret, "creditgate flight ticket v1"),
            base_state,
            revocation: std::sync::OnceLock::new(),
            refused_recorded: Mutex::new(HashMap::new()),
        }))
    }

    /// Attaches the client trust of the mTLS listeners: every later reload
    /// of its CRLs is recorded in the audit log (which CRLs, their numbers,
    /// how many serials, how many connections closed), every handshake it
    /// refuses for revocation is recorded with the certificate's
    /// fingerprint, and its counters appear in [`Engine::render_metrics`].
    /// Attaching a second trust has no effect.
    pub fn attach_revocation(self: &Arc<Self>, trust: &ReloadableTrust) {
        if self.revocation.set(trust.clone()).is_err() {
            return;
        }
        // The hooks run on the reloading thread and inside handshakes: they
        // only queue the record on the runtime.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no runtime: CRL reloads and refused handshakes will not be audited");
            return;
        };
        let engine = Arc::downgrade(self);
        let handle = runtime.clone();
        trust.on_report(move |report| {
            if let Some(engine) = engine.upgrade() {
                let record = engine.crl_reload_record(report);
                let _guard = handle.enter();
                engine.auditor.append_detached(record);
            }
        });
        let engine = Arc::downgrade(self);
        trust.on_refusal(move |refused| {
            if let Some(engine) = engine.upgrade()
                && engine.first_refusal_in_interval(&refused.fingerprint)
            {
                let record = engine.refused_handshake_record(refused);
                let _guard = runtime.enter();
                engine.auditor.append_detached(record);
            }
        });
    }

    /// The attached client trust, if any (see [`Engine::attach_revocation`]).
    pub fn revocation(&self) -> Option<&ReloadableTrust> {
        self.revocation.get()
    }

    /// The metrics in Prometheus text, with the revocation counters.
    pub fn render_metrics(&self) -> String {
        let mut out = self.metrics.render();
        if let Some(trust) = self.revocation.get() {
            use std::fmt::Write;
            let c = trust.counters();
            let generation = trust.generation();
            for (name, kind, value) in [
                ("creditgate_crl_reloads_total{result=\"accepted\"}", "counter", c.reloads_ok),
                ("creditgate_crl_reloads_total{result=\"rejected\"}", "counter", c.reloads_rejected),
                ("creditgate_crl_generation", "gauge", generation),
                ("creditgate_connections_closed_total{reason=\"revoked\"}", "counter", c.connections_closed_revoked),
                (
                    "creditgate_connections_closed_total{reason=\"no_longer_trusted\"}",
                    "counter",
                    c.connections_closed_untrusted,
                ),
                ("creditgate_connections_closed_total{reason=\"max_age\"}", "counter", c.connections_closed_max_age),
                ("creditgate_handshakes_refused_total{reason=\"revoked\"}", "counter", c.handshakes_refused_revoked),
                (
                    "creditgate_handshakes_refused_total{reason=\"crl_expired\"}",
                    "counter",
                    c.handshakes_refused_expired_crl,
                ),
                ("creditgate_open_connections", "gauge", c.open_connections),
            ] {
                let family = name.split('{').next().unwrap_or(name);
                if !out.contains(&format!("# TYPE {family} ")) {
                    let _ = writeln!(out, "# TYPE {family} {kind}");
                }
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }

    fn first_refusal_in_interval(&self, fingerprint: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.refused_recorded.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= REFUSED_HANDSHAKE_MEMORY {
            seen.retain(|_, at| now.duration_since(*at) < REFUSED_HANDSHAKE_RECORD_INTERVAL);
            if seen.len() >= REFUSED_HANDSHAKE_MEMORY {
                return false;
            }
        }
        match seen.get(fingerprint) {
            Some(at) if now.duration_since(*at) < REFUSED_HANDSHAKE_RECORD_INTERVAL => false,
            _ => {
                seen.insert(fingerprint.to_string(), now);
                true
            }
        }
    }

    /// The record of one CRL reload: an event of the gateway itself.
    fn crl_reload_record(&self, report: &ReloadReport) -> NewRecord {
        let files: Vec<serde_json::Value> = report
            .files
            .iter()
            .map(|file| {
                let (outcome, reason) = match &file.outcome {
                    CrlOutcome::Loaded => ("loaded", None),
                    CrlOutcome::Unchanged => ("unchanged", None),
                    CrlOutcome::Rejected { reason } => ("rejected", Some(reason.clone())),
                };
                serde_json::json!({
                    "file": file.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "outcome": outcome,
                    "reason": reason,
                    "expired": file.expired,
                    "crls": file.crls.iter().map(|crl| serde_json::json!({
                        "issuer": crl.issuer,
                        "crl_number": crl.crl_number,
                        "revoked_serials": crl.revoked_serials,
                        "next_update": crl.next_update,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let closed: Vec<serde_json::Value> = report
            .closed
            .iter()
            .map(|c| serde_json::json!({"serial": c.serial, "issuer": c.issuer, "reason": c.reason.label()}))
            .collect();
        let event = serde_json::json!({
            "event": "crl_reload",
            "trigger": report.trigger.label(),
            "generation": report.generation,
            "files": files,
            "revoked_serials": report.revoked_serials(),
            "connections_checked": report.connections_checked,
            "connections_closed": report.connections_closed(),
            "closed": closed,
        });
        let accepted = report.accepted();
        record_without_data(
            gateway_itself(),
            creditgate_audit::Frontend::Http,
            RecordedQuery::Event(event),
            if accepted { Outcome::Allowed } else { Outcome::Failed },
            (!accepted).then(|| "a CRL file was rejected; the previous CRLs stay in force".to_string()),
        )
    }

    /// The record of a handshake refused for revocation, naming the
    /// certificate by its fingerprint (its subject is not known: the chain
    /// was refused before it was read as an identity).
    fn refused_handshake_record(&self, refused: &RefusedHandshake) -> NewRecord {
        let caller = creditgate_audit::Caller {
            fingerprint: refused.fingerprint.clone(),
            name: format!("serial {}", refused.serial.as_deref().unwrap_or("unknown")),
            organization: String::new(),
            role: "unknown".to_string(),
        };
        let event = serde_json::json!({
            "event": "handshake_refused",
            "reason": refused.reason.label(),
            "issuer": refused.issuer,
            "crl_generation": refused.crl_generation,
        });
        record_without_data(
            caller,
            creditgate_audit::Frontend::Http,
            RecordedQuery::Event(event),
            Outcome::Refused,
            Some(format!("CG-AUTH-001: TLS handshake refused: {}", refused.reason)),
        )
    }

    /// The configuration the engine was started with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The federation.
    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// The audit side.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// Consent issuers and store, when consents are configured.
    pub fn consents(&self) -> Option<&Consents> {
        self.consents.as_ref()
    }

    /// The mask functions (keyed with the deployment secret); a caller's
    /// views use [`Engine::masks_for`].
    pub fn masks(&self) -> &MaskUdfs {
        &self.masks
    }

    /// The mask functions `principal`'s views are built with: the keyed
    /// hash under the key of its organisation or of itself, as the policy's
    /// `[masking] keyed_hash_scope` says ([`MaskUdfs::scoped`]).
    pub fn masks_for(&self, principal: &Principal) -> Arc<MaskUdfs> {
        let scope = self.policy().masking().keyed_hash_scope;
        let owner = match scope {
            creditgate_policy::KeyedHashScope::Organization => principal.organization.clone(),
            creditgate_policy::KeyedHashScope::Principal => principal.name.clone(),
        };
        let mut cache = self.scoped_masks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(cache.entry((scope, owner)).or_insert_with(|| Arc::new(self.masks.scoped(scope, principal))))
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The current policy's generation (bumped by every successful reload).
    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::SeqCst)
    }

    /// Re-reads the policy file. On any error the current policy stays in force.
    pub fn reload_policy(&self) -> Result<(), GatewayError> {
        match Policy::load(&self.config.policy) {
            Ok(policy) => {
                // The public window's columns must stay granted to the public role.
                if let Err(error) = check_public_sections(&self.config, &policy) {
                    tracing::error!(error = %error, "policy reload refused; keeping the current policy");
                    return Err(error);
                }
                warn_about_policy_coverage(&policy, &self.federation);
                *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
                self.policy_generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!("policy reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload failed; keeping the current policy");
                Err(GatewayError::Config(e.to_string()))
            }
        }
    }

    /// Maps the verified connection to a policy principal. A connection
    /// without a verified certificate is refused (counted, not recorded: it
    /// names nobody); an unknown identity is refused and recorded.
    pub async fn authenticate(&self, conn: Option<&ConnInfo>, frontend: Frontend) -> Result<Caller, GatewayError> {
        let Some(identity) = conn.and_then(|c| c.identity.clone()) else {
            self.metrics.denial(frontend.label(), "CG-AUTH-001");
            return Err(GatewayError::Unauthenticated);
        };
        // A connection whose certificate was revoked (or whose CRL expired
        // under enforcement) after it was made is refused like a new one,
        // and recorded with the certificate's fingerprint.
        if let Some(reason) = conn.and_then(|c| c.close_reason()).filter(|r| r.invalidates_certificate()) {
            let error = GatewayError::CertificateNoLongerAccepted(reason);
            self.metrics.denial(frontend.label(), error.code().code);
            self.metrics.request(frontend.label(), error.code().code, Duration::ZERO);
            let record = connection_refusal(
                &identity,
                "revoked",
                frontend,
                format!("{}: {}", error.code().code, error.client_message()),
            );
            self.auditor.append(record).await?;
            return Err(error);
        }
        let policy = self.policy();
        match policy.principal_for(&identity) {
            Some(principal) => Ok(Caller::new(principal.clone(), Some(identity), conn.cloned(), frontend)),
            None => {
                let error = GatewayError::UnknownCaller(identity.name());
                self.metrics.denial(frontend.label(), error.code().code);
                self.metrics.request(frontend.label(), error.code().code, Duration::ZERO);
                let reason = format!("{}: {}", error.code().code, error.client_message());
                self.auditor.append(connection_refusal(&identity, "unknown", frontend, reason)).await?;
                Err(error)
            }
        }
    }

    /// The `public` principal, for the disclosure listener, coming from
    /// `client` (the address is only used for its rate limit, never recorded).
    pub fn public_caller(&self, client: std::net::IpAddr) -> Result<Caller, GatewayError> {
        let policy = self.policy();
        let principal = policy
            .public_principal()
            .ok_or_else(|| GatewayError::PolicyRefused("the policy defines no public principal".to_string()))?;
        Ok(Caller::new(principal.clone(), None, None, Frontend::Public).coming_from(client))
    }

    /// The one way to a [`Permit`]: decides `intent` for `caller` in a fixed
    /// order — purpose (strict code format, exactly as received), licence,
    /// role for the operation, legal basis (all in the policy), rate limit,
    /// quota — and opens the request's audit scope. A refusal is recorded and
    /// counted here, and spends no quota.
    pub async fn authorize(&self, caller: Caller, intent: Intent) -> Result<Permit, GatewayError> {
        let generation = self.policy_generation();
        let policy = self.policy();
        let mut scope = Scope::open(caller, self.auditor.clone(), Arc::clone(&self.metrics), &intent);
        let principal = scope.caller().principal().clone();
        // A principal removed from the policy since the connection was made
        // is refused at its next request.
        let current = match policy.principal(&principal.name) {
            Some(current) if current == &principal => current,
            _ => {
                let error = GatewayError::UnknownCaller(principal.name.clone());
                return Err(scope.refuse(error).await);
            }
        };
        let decided = policy.decide(current, intent.operation, intent.purpose.as_deref(), today());
        let (purpose, basis) = match decided {
            Ok(decided) => decided,
            Err(e) => return Err(scope.refuse(GatewayError::PolicyRefused(e.to_string())).await),
        };
        scope.set_basis(&basis);
        // Limits last, so a refused request spends nothing. A request that
        // only plans is counted when it executes.
        if !intent.plan_only {
            let per_address = match (&self.address_limits, scope.caller().client()) {
                (Some(limits), Some(client)) => limits.check(client),
                _ => Ok(()),
            };
            let limited = match per_address.and_then(|()| self.limits.rate(current)) {
                Ok(()) if intent.operation.releases_data() => self.limits.quota(current, today()).await,
                other => other,
            };
            if let Err(error) = limited {
                return Err(scope.refuse(error).await);
            }
        }
        Ok(Permit::new(intent.operation, intent.plan_only, purpose, basis, generation, scope))
    }

    /// Authorizes a batch of one caller's requests (a batch of grades):
    /// `batch` — what the whole batch asks — is decided first, exactly as
    /// [`Engine::authorize`] decides (purpose, licence, role, legal basis),
    /// then each item's intent by the policy; then one rate-limit token for
    /// the batch and the daily quota of every item the policy allows, at
    /// once (all or nothing: a batch over the quota is refused whole and
    /// spends nothing). A refused batch writes one record. Each item gets
    /// its own permit and audit scope (request id `<batch id>.<n>`); an item
    /// the policy refuses is recorded and returned as its error, in order.
    pub async fn authorize_batch(
        &self,
        caller: Caller,
        batch: Intent,
        items: Vec<Intent>,
    ) -> Result<Vec<Result<Permit, GatewayError>>, GatewayError> {
        let generation = self.policy_generation();
        let policy = self.policy();
        let principal = caller.principal().clone();
        let current = match policy.principal(&principal.name) {
            Some(current) if current == &principal => current,
            _ => return Err(self.refuse(caller, batch, GatewayError::UnknownCaller(principal.name.clone())).await),
        };
        if let Err(e) = policy.decide(current, batch.operation, batch.purpose.as_deref(), today()) {
            return Err(self.refuse(caller, batch, GatewayError::PolicyRefused(e.to_string())).await);
        }
        let decided: Vec<_> =
            items.iter().map(|item| policy.decide(current, item.operation, item.purpose.as_deref(), today())).collect();
        let allowed = decided.iter().filter(|d| d.is_ok()).count() as u64;
        let limited = match (self.limits.rate(current), allowed) {
            (Ok(()), 0) => Ok(()),
            (Ok(()), n) => self.limits.quota_n(current, today(), n).await,
            (refused, _) => refused,
        };
        if let Err(error) = limited {
            return Err(self.refuse(caller, batch, error).await);
        }
        let mut permits = Vec::with_capacity(items.len());
        for (n, (intent, decision)) in items.into_iter().zip(decided).enumerate() {
            let mut scope =
                Scope::open(caller.numbered(n + 1), self.auditor.clone(), Arc::clone(&self.metrics), &intent);
            permits.push(match decision {
                Ok((purpose, basis)) => {
                    scope.set_basis(&basis);
                    Ok(Permit::new(intent.operation, false, purpose, basis, generation, scope))
                }
                Err(e) => Err(scope.refuse(GatewayError::PolicyRefused(e.to_string())).await),
            });
        }
        Ok(permits)
    }

    /// The key Flight tickets are signed with (from the deployment secret).
    pub fn ticket_key(&self) -> &[u8] {
        &self.ticket_key
    }

    /// The grading template, when the gateway config names one.
    pub fn grading(&self) -> Option<&Arc<creditgate_grade::Template>> {
        self.grading.as_ref()
    }

    /// Records and counts a request refused before it could be authorized
    /// (its body or path could not be read into an intent): `intent` says
    /// what is known of it. Returns `error` for the caller.
    pub async fn refuse(&self, caller: Caller, intent: Intent, error: GatewayError) -> GatewayError {
        let mut scope = Scope::open(caller, self.auditor.clone(), Arc::clone(&self.metrics), &intent);
        scope.refuse(error).await
    }

    /// The caller's secure views (cached per principal; rebuilt when the
    /// policy, the federation or the date changes) and their grants.
    fn catalog_key(&self) -> crate::prepared::CatalogKey {
        (self.policy_generation(), self.federation.generation(), today())
    }

    fn catalog_for(
        &self,
        principal: &Principal,
    ) -> (Arc<MemoryCatalogProvider>, Arc<BTreeMap<DatasetName, DatasetGrant>>) {
        let key = self.catalog_key();
        let mut cache = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get(&principal.name)
            && cached.key == key
        {
            return (Arc::clone(&cached.catalog), Arc::clone(&cached.grants));
        }
        let (catalog, grants) = self.build_catalog(principal, key.2);
        let (catalog, grants) = (Arc::new(catalog), Arc::new(grants));
        cache.insert(
            principal.name.clone(),
            CachedCatalog { key, catalog: Arc::clone(&catalog), grants: Arc::clone(&grants) },
        );
        (catalog, grants)
    }

    /// The grants of the permit's principal whose datasets are available now.
    pub fn grants(&self, permit: &Permit) -> Arc<BTreeMap<DatasetName, DatasetGrant>> {
        self.catalog_for(permit.principal()).1
    }

    fn build_catalog(
        &self,
        principal: &Principal,
        today: chrono::NaiveDate,
    ) -> (MemoryCatalogProvider, BTreeMap<DatasetName, DatasetGrant>) {
        let policy = self.policy();
        let available: BTreeMap<DatasetName, (crate::federation::Dataset, SchemaRef)> =
            self.federation.available().into_iter().map(|(d, s)| (d.name.clone(), (d, s))).collect();
        let catalog = MemoryCatalogProvider::new();
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        let mut grants = BTreeMap::new();
        let masks = self.masks_for(principal);
        for grant in policy.grants_for(principal) {
            let Some((dataset, schema)) = available.get(&grant.dataset) else { continue };
            let Some(source) = self.federation.source(&dataset.source) else { continue };
            let predicate = grant.row_predicate(today).map_err(|e| e.to_string()).and_then(|predicate| {
                // The public window's publication periods, at the source like retention.
                match self.config.public.rule_for(grant.dataset.as_str()) {
                    Some(rule) if principal.role == Role::Public => {
                        let period = rule.predicate(today)?;
                        Ok(Some(predicate.map_or(period.clone(), |p| p.and(period))))
                    }
                    _ => Ok(predicate),
                }
            });
            let view = predicate.and_then(|predicate| {
                let remote = RemoteTable::new(Arc::clone(source), dataset.remote_table.clone(), Arc::clone(schema))
                    .with_mandatory_filter(predicate)
                    .with_raw_columns(grant.raw_columns());
                creditgate_policy::secure_view(Arc::new(remote), &grant, &masks).map_err(|e| e.to_string())
            });
            match view {
                Ok(view) => {
                    let provider = schemas
                        .entry(dataset.name.source().to_owned())
                        .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
                    if provider.register_table(dataset.name.table().to_owned(), view).is_ok() {
                        grants.insert(grant.dataset.clone(), grant);
                    }
                }
                // Fail closed: a dataset whose view cannot be built is not offered.
                Err(e) => tracing::error!(dataset = %grant.dataset, error = %e, "cannot build a secure view"),
            }
        }
        for (name, provider) in schemas {
            let _ = catalog.register_schema(&name, provider);
        }
        (catalog, grants)
    }

    /// A locked-down engine session (own memory limit, no disk) with an empty
    /// catalog list of its own. The list must be new: a cloned `SessionState`
    /// shares its catalog list, so registering one caller's views in it would
    /// replace them under every other request being planned at that moment.
    pub fn engine(&self) -> Result<SessionContext, GatewayError> {
        let runtime = locked_down_runtime(self.config.server.memory_limit_bytes)
            .map_err(|e| GatewayError::internal(format!("runtime: {}", e.strip_backtrace())))?;
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.base_state.clone())
            .with_catalog_list(Arc::new(datafusion::catalog::MemoryCatalogProviderList::new()))
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// A fresh session whose catalog holds only the permit's secure views,
    /// with its own memory limit and no disk.
    pub fn session_for(
        &self,
        permit: &Permit,
    ) -> Result<(SessionContext, Arc<BTreeMap<DatasetName, DatasetGrant>>), GatewayError> {
        let (catalog, grants) = self.catalog_for(permit.principal());
        let ctx = self.engine()?;
        ctx.register_catalog(CATALOG, catalog);
        Ok((ctx, grants))
    }

    /// Plans `sql` against the permit's views.
    pub async fn plan(&self, permit: &Permit, sql: &str) -> Result<Planned, GatewayError> {
        let parsed = crate::sql_gate::parse_query(sql)?;
        let deep = parsed.needs_deep_stack();
        let (ctx, grants) = self.session_for(permit)?;
        let state = ctx.state();
        let planning_state = state.clone();
        // The relation check walks the plan recursively: on the same deep stack as planning.
        let check_grants = (!self.policy().masking().relate_masked_values).then(|| Arc::clone(&grants));
        let planned = on_stack_for(deep, async move {
            let plan = planning_state.statement_to_plan(parsed.statement).await?;
            let relation =
                check_grants.and_then(|grants| creditgate_policy::relate::check_relations(&plan, &grants).err());
            Ok::<_, DataFusionError>((plan, relation))
        })
        .await?;
        let (plan, relation) = match planned {
            Ok(planned) => planned,
            Err(error) => return Err(self.planning_error(sql, error)),
        };
        read_only_sql_options().verify_plan(&plan).map_err(|e| GatewayError::InvalidQuery(e.strip_backtrace()))?;
        if let Some(refused) = relation {
            return Err(GatewayError::MaskedRelation(refused));
        }
        Ok(Planned { frame: DataFrame::new(state, plan), grants, deep })
    }

    /// The datasets (`schema.table`) that `sql` names, configured or not,
    /// for the audit record (so a probe of an ungranted or unknown dataset
    /// is searchable). Names that are not plain identifiers, or that hold
    /// something the audit would redact, are left out: they could carry a
    /// subject's identifier. Empty for SQL that does not parse.
    pub fn referenced_datasets(&self, sql: &str) -> Vec<String> {
        use datafusion::common::TableReference;
        let Ok(parsed) = crate::sql_gate::parse_query(sql) else { return Vec::new() };
        let Ok((tables, _ctes)) = datafusion::sql::resolve::resolve_table_references(&parsed.statement, true) else {
            return Vec::new();
        };
        let mut names: Vec<String> = tables
            .into_iter()
            .filter_map(|table| match table {
                TableReference::Partial { schema, table } => Some(format!("{schema}.{table}")),
                TableReference::Full { catalog, schema, table } if catalog.as_ref() == CATALOG => {
                    Some(format!("{schema}.{table}"))
                }
                _ => None,
            })
            .filter(|name| {
                creditgate_ident::names::is_dataset_name(name)
                    && !has_digit_run(name, 6)
                    && self.auditor.redact_text(name) == *name
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn planning_error(&self, sql: &str, error: DataFusionError) -> GatewayError {
        // A dataset whose source has not answered yet is "unavailable", not "unknown".
        for name in self.referenced_datasets(sql) {
            if let Some(source) = self.federation.unavailable_source_of(&name) {
                return GatewayError::Source(creditgate_remote::SourceError {
                    source_name: source,
                    kind: creditgate_remote::SourceErrorKind::Unavailable(
                        "the gateway has not reached it yet".to_string(),
                    ),
                });
            }
        }
        GatewayError::from_datafusion(error, true)
    }

    /// Plans `sql` and returns its output schema, closing the permit as
    /// planned (Flight `GetFlightInfo`: the execution is what is recorded);
    /// a refusal at planning is recorded.
    pub async fn plan_only(&self, permit: Permit, sql: &str) -> Result<SchemaRef, GatewayError> {
        match self.plan(&permit, sql).await {
            Ok(planned) => {
                permit.planned();
                Ok(Arc::new(planned.frame.schema().as_arrow().clone()))
            }
            Err(error) => Err(permit.refuse(error).await),
        }
    }

    /// Prepares `sql` (its `?` already numbered, `written` the highest
    /// parameter number in the text) under a planning-only permit: plans it
    /// once against the permit's views, infers the parameter types, and
    /// keeps it for `owner`. The permit is closed as planned (each execution
    /// is recorded); a refusal is recorded.
    pub async fn prepare(
        &self,
        permit: Permit,
        sql: &str,
        written: usize,
        owner: Owner,
    ) -> Result<(PreparedKey, Arc<Statement>), GatewayError> {
        let key = self.catalog_key();
        let planned = match self.plan(&permit, sql).await {
            Ok(planned) => planned,
            Err(error) => return Err(permit.refuse(error).await),
        };
        let statement = match self.statement(&permit, planned, sql, written, owner, key) {
            Ok(statement) => statement,
            Err(error) => return Err(permit.refuse(error).await),
        };
        permit.planned();
        Ok(self.prepared.insert(statement))
    }

    fn statement(
        &self,
        permit: &Permit,
        planned: Planned,
        sql: &str,
        written: usize,
        owner: Owner,
        key: crate::prepared::CatalogKey,
    ) -> Result<Statement, GatewayError> {
        let parameters = crate::prepared::parameter_types(planned.frame.logical_plan(), written)?;
        if parameters.len() > crate::sql_gate::MAX_PARAMETERS {
            return Err(GatewayError::InvalidQuery(format!(
                "the statement takes {} parameters; the limit is {}",
                parameters.len(),
                crate::sql_gate::MAX_PARAMETERS
            )));
        }
        let (recorded, subjects) = self.auditor.redact_sql(sql);
        Ok(Statement {
            owner,
            generation: permit.policy_generation(),
            sql: sql.to_string(),
            recorded,
            subjects,
            datasets: self.referenced_datasets(sql),
            parameters,
            schema: Arc::new(planned.frame.schema().as_arrow().clone()),
            slot: Mutex::new(PlanSlot {
                key,
                plan: planned.frame.logical_plan().clone(),
                grants: planned.grants,
                deep: planned.deep,
            }),
        })
    }

    /// Binds the parameter rows of `batches` (Flight `DoPut`) to the
    /// prepared statement of `key`, for `caller` with `purpose`; returns the
    /// key of the binding. Refusals are recorded.
    pub async fn bind_prepared(
        &self,
        caller: Caller,
        purpose: Option<String>,
        key: &str,
        batches: &[arrow::array::RecordBatch],
    ) -> Result<String, GatewayError> {
        let owner = Owner::of(&caller, purpose.as_deref());
        let bound = PreparedKey::parse(key).ok_or(GatewayError::Prepared(PreparedRefusal::Unknown)).and_then(|key| {
            let (statement, _) = self.prepared.resolve(&key)?;
            statement.check_owner(&owner)?;
            if statement.generation != self.policy_generation() {
                return Err(GatewayError::Prepared(PreparedRefusal::PolicyReloaded));
            }
            let id = match key {
                PreparedKey::Statement(id) => id,
                PreparedKey::Bound(_) => match self.prepared.resolve(&key)?.1 {
                    Some(binding) => binding.statement.clone(),
                    None => return Err(GatewayError::Prepared(PreparedRefusal::Unknown)),
                },
            };
            let rows = crate::prepared::rows_from_arrow(&statement.parameters, batches)?;
            Ok(self.prepared.bind(crate::prepared::binding(&self.auditor, id, rows)).to_key())
        });
        match bound {
            Ok(key) => Ok(key),
            Err(error) => {
                let what = RecordedQuery::Request("Flight SQL DoPut (prepared statement parameters)".to_string());
                let intent = Intent::new(creditgate_policy::Operation::Query, purpose, what).planning_only();
                Err(self.refuse(caller, intent, error).await)
            }
        }
    }

    /// Forgets the prepared statement (or binding) of `key` if it is `caller`'s.
    pub fn close_prepared(&self, caller: &Caller, purpose: Option<&str>, key: &str) {
        if let Some(key) = PreparedKey::parse(key) {
            self.prepared.close(&key, &Owner::of(caller, purpose));
        }
    }

    /// The physical plans of the lookup fast path.
    pub fn lookup_plans(&self) -> &crate::prepared::LookupPlans {
        &self.lookup_plans
    }

    /// Runs the prepared statement (or binding) of `key` for `caller` with
    /// `purpose`, under a permit of its own (planning-only for
    /// [`PreparedMode::Plan`]): the handle must be `caller`'s for this
    /// purpose and from the current policy generation; every bound row is
    /// executed (the results one after the other). The audit record holds
    /// the normalized statement and the rows' digests.
    pub async fn run_prepared(
        &self,
        caller: Caller,
        purpose: Option<String>,
        key: &str,
        mode: PreparedMode,
    ) -> Result<PreparedOutput, GatewayError> {
        let owner = Owner::of(&caller, purpose.as_deref());
        let generic = |purpose: Option<String>| {
            let what = RecordedQuery::Request("Flight SQL prepared statement".to_string());
            let intent = Intent::new(creditgate_policy::Operation::Query, purpose, what);
            if mode == PreparedMode::Plan { intent.planning_only() } else { intent }
        };
        let resolved = PreparedKey::parse(key)
            .ok_or(GatewayError::Prepared(PreparedRefusal::Unknown))
            .and_then(|key| self.prepared.resolve(&key))
            .and_then(|(statement, binding)| statement.check_owner(&owner).map(|()| (statement, binding)));
        let (statement, binding) = match resolved {
            Ok(resolved) => resolved,
            Err(error) => return Err(self.refuse(caller, generic(purpose), error).await),
        };
        let mut intent =
            Intent::new(creditgate_policy::Operation::Query, purpose, statement.recorded(binding.as_deref()))
                .with_subjects(statement.subjects(binding.as_deref()))
                .naming(statement.datasets.clone());
        if mode == PreparedMode::Plan {
            intent = intent.planning_only();
        }
        if statement.generation != self.policy_generation() {
            return Err(self.refuse(caller, intent, GatewayError::Prepared(PreparedRefusal::PolicyReloaded)).await);
        }
        let permit = self.authorize(caller, intent).await?;
        if permit.policy_generation() != statement.generation {
            return Err(permit.refuse(GatewayError::Prepared(PreparedRefusal::PolicyReloaded)).await);
        }
        let rows = match (statement.parameter_count(), binding.as_deref()) {
            (0, _) => vec![Vec::new()],
            (_, Some(binding)) if binding.rows() > 0 => binding.rows.clone(),
            (n, _) => {
                let error = GatewayError::InvalidParameters(format!(
                    "the statement takes {n} parameter(s); bind at least one row of them before executing"
                ));
                return Err(permit.refuse(error).await);
            }
        };
        if mode == PreparedMode::Plan {
            permit.planned();
            return Ok(PreparedOutput::Schema(Arc::clone(statement.schema())));
        }
        let stream = self.execute_statement(permit, &statement, rows).await?;
        match mode {
            PreparedMode::Count => {
                let mut stream = stream;
                let mut rows = 0u64;
                while let Some(batch) = stream.next().await {
                    rows += batch.map_err(|e| GatewayError::from_datafusion(e, false))?.num_rows() as u64;
                }
                Ok(PreparedOutput::Rows(rows))
            }
            _ => Ok(PreparedOutput::Stream(stream)),
        }
    }

    /// Runs `sql` with its parameters `params` (HTTP `{"sql", "params"}`)
    /// for `caller`: one permit and one record, like a text query, the
    /// statement planned once per caller, purpose and text and bound with
    /// `params` (the plan is kept for the next request with the same text).
    pub async fn query_with_params(
        &self,
        caller: Caller,
        purpose: Option<String>,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<SendableRecordBatchStream, GatewayError> {
        let owner = Owner::of(&caller, purpose.as_deref());
        let numbered = crate::sql_gate::number_parameters(sql);
        let text = numbered.as_ref().map(|(text, _)| text.as_str()).unwrap_or(sql);
        let (recorded, mut subjects) = self.auditor.redact_sql(text);
        let texts: Vec<Option<String>> = params.iter().map(crate::prepared::json_text).collect();
        let (digests, value_subjects) = crate::prepared::digests(&self.auditor, std::slice::from_ref(&texts));
        for s in value_subjects {
            if !subjects.contains(&s) {
                subjects.push(s);
            }
        }
        let what = RecordedQuery::Prepared { statement: recorded, parameters: digests };
        let intent = Intent::new(creditgate_policy::Operation::Query, purpose, what)
            .with_subjects(subjects)
            .naming(self.referenced_datasets(text));
        let (text, written) = match numbered {
            Ok(numbered) if sql.len() <= crate::sql_gate::MAX_SQL_BYTES => numbered,
            Ok(_) => {
                let error = crate::sql_gate::parse_query(sql)
                    .err()
                    .unwrap_or(GatewayError::InvalidQuery("the statement is too long".into()));
                return Err(self.refuse(caller, intent, error).await);
            }
            Err(error) => return Err(self.refuse(caller, intent, error).await),
        };
        let permit = self.authorize(caller, intent).await?;
        let generation = permit.policy_generation();
        let statement = match self.prepared.by_text(&owner, &text).filter(|s| s.generation == generation) {
            Some(statement) => {
                self.metrics.plan_cache("prepared", "hit");
                statement
            }
            None => {
                self.metrics.plan_cache("prepared", "miss");
                let key = self.catalog_key();
                let made = match self.plan(&permit, &text).await {
                    Ok(planned) => self.statement(&permit, planned, &text, written, owner, key),
                    Err(error) => Err(error),
                };
                match made {
                    Ok(statement) => self.prepared.insert_text(statement),
                    Err(error) => return Err(permit.refuse(error).await),
                }
            }
        };
        let row = match crate::prepared::row_from_json(&statement.parameters, params) {
            Ok(row) => row,
            Err(error) => return Err(permit.refuse(error).await),
        };
        self.execute_statement(permit, &statement, vec![row]).await
    }

    /// Binds `rows` into the statement's plan (planned again from its text
    /// first if the federation or the day changed since: the policy cannot
    /// have, the permit was checked against it) and releases the results.
    async fn execute_statement(
        &self,
        permit: Permit,
        statement: &Statement,
        rows: Vec<Vec<datafusion::common::ScalarValue>>,
    ) -> Result<SendableRecordBatchStream, GatewayError> {
        let key = self.catalog_key();
        let current = statement.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let slot = if current.key == key {
            current
        } else {
            let planned = match self.plan(&permit, &statement.sql).await {
                Ok(planned) => planned,
                Err(error) => return Err(permit.refuse(error).await),
            };
            if planned.frame.schema().as_arrow() != statement.schema.as_ref() {
                let error = GatewayError::InvalidQuery(
                    "the datasets the statement reads changed since it was prepared; prepare it again".to_string(),
                );
                return Err(permit.refuse(error).await);
            }
            let slot = PlanSlot {
                key,
                plan: planned.frame.logical_plan().clone(),
                grants: planned.grants,
                deep: planned.deep,
            };
            *statement.slot.lock().unwrap_or_else(|p| p.into_inner()) = slot.clone();
            slot
        };
        let state = match self.engine() {
            Ok(ctx) => ctx.state(),
            Err(error) => return Err(permit.refuse(error).await),
        };
        let frames: Result<Vec<DataFrame>, DataFusionError> = rows
            .into_iter()
            .map(|row| slot.plan.clone().with_param_values(row).map(|plan| DataFrame::new(state.clone(), plan)))
            .collect();
        let frames = match frames {
            Ok(frames) => frames,
            Err(error) => return Err(permit.refuse(GatewayError::InvalidParameters(error.strip_backtrace())).await),
        };
        self.release(permit, frames, slot.grants, slot.deep, Arc::clone(statement.schema())).await
    }

    /// Plans, audits and executes `sql`. The audit record is durable before
    /// the stream is returned; a refusal or failure is recorded instead. A
    /// stream-end record follows when the stream ends. The stream has the
    /// schema [`Engine::plan_only`] announces for the same text.
    pub async fn query(&self, permit: Permit, sql: &str) -> Result<SendableRecordBatchStream, GatewayError> {
        tracing::debug!(sql = %sql, "query");
        if permit.plan_only() {
            return Err(permit.refuse(GatewayError::internal("a planning permit was used to execute")).await);
        }
        let Planned { frame, grants, deep } = match self.plan(&permit, sql).await {
            Ok(planned) => planned,
            Err(error) => return Err(permit.refuse(error).await),
        };
        let declared = Arc::new(frame.schema().as_arrow().clone());
        self.release(permit, vec![frame], grants, deep, declared).await
    }

    /// Audits and executes planned frames (one per bound parameter row, or
    /// the one frame of a text query), streaming their results one after
    /// the other with the `declared` schema. Every frame reads the same
    /// datasets and columns (they are bindings of one plan).
    async fn release(
        &self,
        permit: Permit,
        frames: Vec<DataFrame>,
        grants: Arc<BTreeMap<DatasetName, DatasetGrant>>,
        deep: bool,
        declared: SchemaRef,
    ) -> Result<SendableRecordBatchStream, GatewayError> {
        let mut frames = frames.into_iter();
        let Some(frame) = frames.next() else {
            return Err(permit.refuse(GatewayError::internal("an execution without a plan")).await);
        };
        let touched = datasets_and_columns(frame.logical_plan());
        let columns = column_accesses(&touched, &grants);
        let source_names = self.sources_of(touched.keys());
        let span = tracing::Span::current();
        span.record("sources", source_names.join(",").as_str());
        let stream = match on_stack_for(deep, frame.execute_stream()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(permit.refuse(GatewayError::from_datafusion(e, false)).await),
            Err(e) => return Err(permit.refuse(e).await),
        };
        let rest: Vec<DataFrame> = frames.collect();
        let stream = if rest.is_empty() {
            stream
        } else {
            // The other bound rows run one after the other, each planned when its turn comes.
            let later = futures::stream::iter(rest)
                .then(move |frame| async move {
                    match on_stack_for(deep, frame.execute_stream()).await {
                        Ok(executed) => executed,
                        Err(e) => Err(DataFusionError::Execution(e.to_string())),
                    }
                })
                .try_flatten();
            let schema = stream.schema();
            Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream.chain(later)))
        };
        // One schema per statement: what planning announced is what streams.
        let stream = creditgate_flight::conform_stream(stream, declared);
        let queried = source_names.iter().map(|s| SourceStatus { source: s.clone(), status: "queried".to_string() });
        let disclosure = Disclosure {
            datasets: touched.keys().cloned().collect(),
            columns,
            sources: queried.collect(),
            ..Disclosure::default()
        };
        // The stream-end record needs the caller and the intent's subjects.
        let mut end = NewRecord {
            request_id: permit.caller().request_id().to_string(),
            caller: permit.caller().audit_caller(),
            frontend: permit.caller().frontend().audit(),
            purpose: permit.purpose().map(|p| p.to_string()),
            legal_basis: Some(permit.legal_basis().label()),
            query: RecordedQuery::StreamEnd(0),
            datasets: touched.keys().cloned().collect(),
            columns: Vec::new(),
            // The subjects are on the release record; the end names none, so
            // a subject's report lists the access once.
            subject_hashes: Vec::new(),
            row_count: None,
            sources: Vec::new(),
            outcome: Outcome::Allowed,
            refusal_reason: None,
            duration_ms: 0,
        };
        let frontend = permit.caller().frontend().label();
        let started = permit.caller().started();
        // Audit before release: nothing leaves until this record is durable.
        let released_by = permit.allow(disclosure).await?;
        end.query = RecordedQuery::StreamEnd(released_by);
        // The first source failure of the stream, kept typed for the stream-end record.
        let failure: Arc<Mutex<Option<SourceError>>> = Arc::default();
        let seen = Arc::clone(&failure);
        let schema = stream.schema();
        let typed = stream.inspect_err(move |e| {
            if let Some(source) = SourceError::find(e) {
                let mut slot = seen.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| source.clone());
            }
        });
        let typed: SendableRecordBatchStream =
            Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, typed));
        let auditor = self.auditor.clone();
        let metrics = Arc::clone(&self.metrics);
        Ok(Box::pin(ObservedStream::new(typed, move |report| {
            let _entered = span.enter();
            let duration_ms = started.elapsed().as_millis() as u64;
            metrics.stream_end(frontend, report.outcome.label(), started.elapsed());
            span.record("rows", report.rows);
            span.record("duration_ms", duration_ms);
            span.record("outcome", report.outcome.label());
            tracing::info!(
                rows = report.rows,
                bytes = report.bytes,
                duration_ms,
                outcome = report.outcome.label(),
                "query finished"
            );
            let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
            end.row_count = Some(report.rows);
            end.duration_ms = duration_ms;
            (end.outcome, end.refusal_reason, end.sources) =
                stream_end(&report.outcome, failed.as_ref(), &source_names);
            auditor.append_detached(end);
        })))
    }

    /// The sources serving `datasets`, sorted, each once.
    pub fn sources_of<'a>(&self, datasets: impl Iterator<Item = &'a String>) -> Vec<String> {
        let mut names: Vec<String> = datasets
            .filter_map(|d| self.federation.datasets().iter().find(|x| &x.name == d))
            .map(|d| d.source.to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Runs several small queries of one composite request (a disclosure
    /// page), collecting their results; the caller closes the permit with
    /// the returned [`Disclosure`] before releasing anything.
    pub async fn collect_parts(
        &self,
        permit: &Permit,
        parts: &[(String, String)],
    ) -> Result<(Vec<(String, Vec<arrow::array::RecordBatch>)>, Disclosure), GatewayError> {
        let mut results = Vec::with_capacity(parts.len());
        let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all_grants = Arc::new(BTreeMap::new());
        for (label, sql) in parts {
            let Planned { frame, grants, .. } = self.plan(permit, sql).await?;
            for (dataset, columns) in datasets_and_columns(frame.logical_plan()) {
                let entry = touched.entry(dataset).or_default();
                for c in columns {
                    if !entry.contains(&c) {
                        entry.push(c);
                    }
                }
            }
            all_grants = grants;
            let batches = frame.collect().await.map_err(|e| GatewayError::from_datafusion(e, false))?;
            results.push((label.clone(), batches));
        }
        let rows: usize = results.iter().flat_map(|(_, b)| b.iter().map(|b| b.num_rows())).sum();
        let ok = |source| SourceStatus { source, status: "ok".to_string() };
        let disclosure = Disclosure {
            datasets: touched.keys().cloned().collect(),
            columns: column_accesses(&touched, &all_grants),
            rows: Some(rows as u64),
            sources: self.sources_of(touched.keys()).into_iter().map(ok).collect(),
            ..Disclosure::default()
        };
        Ok((results, disclosure))
    }

    /// The tables a caller may see, with the columns as the caller sees them
    /// (Flight SQL `GetTables`).
    ///
    /// Each field of a table's schema explains itself with Arrow field
    /// metadata, from the caller's grants (the same facts as `GET /v1/catalog`):
    ///
    /// - `creditgate.mask`: the mask applied (`none`, `resident_id`,
    ///   `partial(6,0)`, `range_bucket(100000)`, …);
    /// - `creditgate.class`: the column's class (`public`, `restricted`,
    ///   `personal`, `sensitive`);
    /// - `creditgate.dispute_flag` = `true` on the dataset's dispute-flag column.
    ///
    /// Only this listing carries the metadata: query results keep plain schemas,
    /// and the keys stay outside the `ARROW:` namespace, so Flight SQL clients
    /// (ADBC, JDBC, pyarrow) read the types as before and ignore the extra keys.
    /// Columns not granted and datasets not granted are absent. A view without
    /// its grant (they are built together, so this cannot happen) is left out
    /// rather than listed without an explanation.
    pub async fn tables_for(&self, permit: &Permit) -> Vec<TableEntry> {
        const MASK_KEY: &str = "creditgate.mask";
        const CLASS_KEY: &str = "creditgate.class";
        const DISPUTE_FLAG_KEY: &str = "creditgate.dispute_flag";
        let (catalog, grants) = self.catalog_for(permit.principal());
        let mut out = Vec::new();
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            'tables: for table in schema.table_names() {
                let Ok(Some(provider)) = schema.table(&table).await else { continue };
                let dataset = format!("{schema_name}.{table}");
                let Some(grant) = grants.get(dataset.as_str()) else {
                    tracing::error!(%dataset, "a secure view without its grant; not listed");
                    continue;
                };
                let view_schema = provider.schema();
                let mut fields = Vec::with_capacity(view_schema.fields().len());
                for field in view_schema.fields() {
                    let Some(granted) = grant.column(field.name()) else {
                        tracing::error!(%dataset, column = %field.name(), "a view column without a grant; not listed");
                        continue 'tables;
                    };
                    let mut metadata = field.metadata().clone();
                    metadata.insert(MASK_KEY.to_string(), granted.mask.to_string());
                    metadata.insert(CLASS_KEY.to_string(), granted.class.as_str().to_string());
                    if grant.dispute_column.as_deref() == Some(granted.name.as_str()) {
                        metadata.insert(DISPUTE_FLAG_KEY.to_string(), "true".to_string());
                    }
                    fields.push(field.as_ref().clone().with_metadata(metadata));
                }
                out.push(TableEntry {
                    catalog: CATALOG.to_string(),
                    schema: schema_name.clone(),
                    table,
                    arrow_schema: Arc::new(arrow::datatypes::Schema::new_with_metadata(
                        fields,
                        view_schema.metadata().clone(),
                    )),
                });
            }
        }
        out.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        out
    }

    /// Background upkeep until `stop` turns true: daily quota counts saved
    /// every few seconds when they changed; the audit log pruned of records
    /// past retention at start and then daily (a signed checkpoint anchors
    /// the new start), so a gateway restarted more often than daily still
    /// prunes.
    pub fn spawn_upkeep(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        let engine = Arc::clone(self);
        let mut stop_saving = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(QUOTA_SAVE_INTERVAL) => {}
                    _ = stop_saving.wait_for(|stop| *stop) => break,
                }
                let engine = Arc::clone(&engine);
                match tokio::task::spawn_blocking(move || engine.limits.save(today())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "saving quota counts failed"),
                    Err(e) => tracing::error!(error = %e, "quota saving task failed"),
                }
            }
        });
        let log = Arc::clone(self.auditor.log());
        let mut stop = stop;
        tokio::spawn(async move {
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) {
                    tokio::select! {
                        _ = tokio::time::sleep(AUDIT_PRUNE_INTERVAL) => {}
                        _ = stop.wait_for(|stop| *stop) => break,
                    }
                }
                let log = Arc::clone(&log);
                match tokio::task::spawn_blocking(move || log.prune(chrono::Utc::now())).await {
                    Ok(Ok(report)) if report.removed_records > 0 => {
                        tracing::info!(records = report.removed_records, "audit records past retention pruned");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "audit pruning failed"),
                    Err(e) => tracing::error!(error = %e, "audit pruning task failed"),
                }
            }
        });
    }

    /// Saves quota counts and writes a final audit checkpoint (shutdown).
    pub fn close(&self) {
        if let Err(e) = self.limits.save(today()) {
            tracing::error!(error = %e, "saving quota counts at shutdown failed");
        }
        if let Err(e) = self.auditor.log().close() {
            tracing::error!(error = %e, "closing the audit log failed");
        }
    }
}

/// How a released stream ended, for its stream-end record: the outcome, the
/// reason (if it failed) and each source's final status. A failure that
/// came from a source (`failed`, typed) makes that source `error` or
/// `timeout`; the others delivered what was asked (`ok`) or were stopped
/// with the stream (`cancelled`).
fn stream_end(
    outcome: &creditgate_flight::StreamOutcome,
    failed: Option<&SourceError>,
    sources: &[String],
) -> (Outcome, Option<String>, Vec<SourceStatus>) {
    use creditgate_flight::StreamOutcome;
    let status = |source: &str| -> &'static str {
        match (outcome, failed) {
            (StreamOutcome::Complete, _) => "ok",
            (StreamOutcome::Cancelled, _) => "cancelled",
            (StreamOutcome::Failed(_), Some(e)) if e.source_name == source => match e.status_label() {
                "timeout" => "timeout",
                _ => "error",
            },
            (StreamOutcome::Failed(_), _) => "cancelled",
        }
    };
    let statuses = sources.iter().map(|s| SourceStatus { source: s.clone(), status: status(s).to_string() }).collect();
    match outcome {
        StreamOutcome::Complete => (Outcome::Allowed, None, statuses),
        StreamOutcome::Cancelled => {
            (Outcome::Cancelled, Some("the caller closed the stream before its end".to_string()), statuses)
        }
        StreamOutcome::Failed(_) => {
            let reason = match failed {
                Some(e) => format!("the stream failed after release: source `{}` failed", e.source_name),
                None => "the stream failed after release".to_string(),
            };
            (Outcome::Failed, Some(reason), statuses)
        }
    }
}

/// Reads the grading template and checks it against the policy: every
/// dataset and column its rules read must be classified there.
fn load_grading(path: &Path, policy: &Policy) -> Result<creditgate_grade::Template, GatewayError> {
    let template = creditgate_grade::Template::load(path).map_err(GatewayError::Config)?;
    let problems = template
        .problems_against(|dataset| policy.datasets().get(dataset).map(|d| d.columns.keys().cloned().collect()));
    if problems.is_empty() {
        Ok(template)
    } else {
        Err(GatewayError::Config(format!("grading.template: {}", creditgate_files::config::report(path, &problems))))
    }
}

/// Every column a public disclosure section shows (and its key) must be
/// granted to the policy's `public` role; all problems are reported at once.
fn check_public_sections(config: &GatewayConfig, policy: &Policy) -> Result<(), GatewayError> {
    let sections = &config.public.sections;
    if sections.is_empty() {
        return Ok(());
    }
    let Some(public) = policy.public_principal() else {
        return Err(GatewayError::Config(format!(
            "public.sections: the policy {} defines no public principal to disclose through",
            policy.origin()
        )));
    };
    let mut problems = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let Some(grant) = policy.grant_for(public, &section.dataset) else {
            problems.push(format!(
                "public.sections[{i}].dataset: `{}` is not granted to the public role by the policy",
                section.dataset
            ));
            continue;
        };
        let wanted = std::iter::once(&section.key).chain(section.columns.iter().flatten());
        for column in wanted {
            if grant.column(column).is_none() {
                problems.push(format!(
                    "public.sections[{i}]: column `{column}` of `{}` is not granted to the public role by the policy",
                    section.dataset
                ));
            }
        }
        // A publication rule reads raw values: its columns must be granted unmasked.
        for column in section.publication.iter().flat_map(|r| r.columns()) {
            match grant.column(column) {
                Some(granted) if granted.mask == creditgate_policy::Mask::None => {}
                Some(granted) => problems.push(format!(
                    "public.sections[{i}].publication: column `{column}` of `{}` is masked ({}) for the public role; \
                     a publication rule needs its raw value",
                    section.dataset, granted.mask
                )),
                None => problems.push(format!(
                    "public.sections[{i}].publication: column `{column}` of `{}` is not granted to the public role by the policy",
                    section.dataset
                )),
            }
        }
        if i == 0
            && let Some(search) = &config.public.search
        {
            for column in std::iter::once(&search.name).chain(search.columns.iter().flatten()) {
                if grant.column(column).is_none() {
                    problems.push(format!(
                        "public.search: column `{column}` of `{}` is not granted to the public role by the policy",
                        section.dataset
                    ));
                }
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(GatewayError::Config(format!("{} (policy {})", problems.join("; "), policy.origin()))),
    }
}

fn warn_about_policy_coverage(policy: &Policy, federation: &Federation) {
    for dataset in federation.datasets() {
        if policy.dataset(dataset.name.as_str()).is_none() {
            tracing::warn!(dataset = %dataset.name, "dataset has no classification in the policy; nobody can see it");
        }
    }
}

/// A query planned against a caller's views.
pub struct Planned {
    /// The logical plan, ready to execute.
    pub frame: DataFrame,
    /// The caller's grants the plan was made under.
    pub grants: Arc<BTreeMap<DatasetName, DatasetGrant>>,
    /// Whether its expressions nest deeply enough to need [`PLANNER_STACK_BYTES`].
    pub deep: bool,
}

/// Stack of the threads that plan deeply nested queries. DataFusion's
/// planner, optimiser and physical planner recurse over the expression tree;
/// an async worker's stack (2 MiB by default) is not enough for a few hundred
/// chained operators in a debug build.
pub const PLANNER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs `work` to completion: in place when `deep` is false, otherwise on a
/// fresh thread with a [`PLANNER_STACK_BYTES`] stack (the memory is reserved,
/// not committed, and the thread ends with the work). The thread keeps the
/// runtime's context, so I/O and spawned tasks work as usual.
async fn on_stack_for<F>(deep: bool, work: F) -> Result<F::Output, GatewayError>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !deep {
        return Ok(work.await);
    }
    let handle = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("creditgate-deep-plan".to_string())
        .stack_size(PLANNER_STACK_BYTES)
        .spawn(move || {
            let _ = done.send(handle.block_on(work));
        })
        .map_err(|e| GatewayError::internal(format!("cannot start a planning thread: {e}")))?;
    result.await.map_err(|_| GatewayError::internal("the planning thread stopped without an answer"))
}

/// Whether `text` has `n` or more consecutive ASCII digits (the shape of a
/// subject identifier: no dataset name has one).
fn has_digit_run(text: &str, n: usize) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= n {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use creditgate_flight::StreamOutcome;

    use super::*;

    fn statuses(list: &[creditgate_audit::SourceStatus]) -> Vec<(&str, &str)> {
        list.iter().map(|s| (s.source.as_str(), s.status.as_str())).collect()
    }

    #[test]
    fn a_stream_end_names_the_source_that_failed_and_how_the_stream_ended() {
        use creditgate_remote::SourceErrorKind;
        let sources = vec!["court".to_string(), "market".to_string()];
        let (outcome, reason, list) = stream_end(&StreamOutcome::Complete, None, &sources);
        assert_eq!((outcome, reason), (Outcome::Allowed, None));
        assert_eq!(statuses(&list), [("court", "ok"), ("market", "ok")]);

        let (outcome, reason, list) = stream_end(&StreamOutcome::Cancelled, None, &sources);
        assert_eq!(outcome, Outcome::Cancelled);
        assert!(reason.is_some_and(|r| r.contains("closed the stream")));
        assert_eq!(statuses(&list), [("court", "cancelled"), ("market", "cancelled")]);

        let timeout = SourceError {
            source_name: "market".parse().expect("source name"),
            kind: SourceErrorKind::Timeout { phase: "total", after: Duration::from_millis(5) },
        };
        let failed = StreamOutcome::Failed("whatever the text says".into());
        let (outcome, reason, list) = stream_end(&failed, Some(&timeout), &sources);
        assert_eq!(outcome, Outcome::Failed);
        assert!(reason.is_some_and(|r| r.contains("source `market`")));
        assert_eq!(statuses(&list), [("court", "cancelled"), ("market", "timeout")]);

        // The source is known from the typed error, not from the message text.
        let reset = SourceError {
            source_name: "court".parse().expect("source name"),
            kind: SourceErrorKind::Failed("reset".into()),
        };
        let misleading = StreamOutcome::Failed("source `market` failed".into());
        let (_, _, list) = stream_end(&misleading, Some(&reset), &sources);
        assert_eq!(statuses(&list), [("court", "error"), ("market", "cancelled")]);

        // A failure in the gateway itself names no source.
        let (outcome, reason, list) = stream_end(&StreamOutcome::Failed("memory".into()), None, &sources);
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(reason.as_deref(), Some("the stream failed after release"));
        assert!(list.iter().all(|s| s.status == "cancelled"));
    }

    #[test]
    fn refusal_reasons_and_paths_lose_their_identifiers() {
        let hasher = Arc::new(SubjectHasher::new(b"a test deployment secret, long enough").expect("hasher"));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path().join("audit"), AuditOptions::new(dir.path().join("k.pk8"))).expect("log");
        let auditor = Auditor::new(Arc::new(log), None, Arc::clone(&hasher));
        let code = creditgate_ident::CreditCode::complete("91350100M000100Y4").expect("code");
        let person = creditgate_ident::ResidentId::complete("11010119900307777").expect("id");
        let text = format!(
            "sql parser error: Expected: end of statement, found: {} at Line: 1; path /v1/audit/subjects/{}/report",
            code.as_str(),
            person.as_str()
        );
        let redacted = auditor.redact_text(&text);
        assert!(!redacted.contains(code.as_str()) && !redacted.contains(person.as_str()), "{redacted}");
        let code_hash = hasher.hash(&creditgate_audit::SubjectKey::CreditCode(code.as_str().to_string()));
        assert!(redacted.contains(&format!("subject:{code_hash}")), "{redacted}");
        assert!(redacted.starts_with("sql parser error: Expected: end of statement, found: subject:"));
        assert!(redacted.ends_with("/report"), "{redacted}");
        // A near-miss (wrong check character) is withheld, not hashed.
        let near = format!("{}{}", &code.as_str()[..17], if code.as_str().ends_with('0') { '1' } else { '0' });
        assert_eq!(auditor.redact_text(&format!("/x/{near}/y")), "/x/<identifier withheld>/y");
        // Other words, hashes and request ids are left alone.
        let plain = "no identifiers here: 12345 CG-REQ-001 6f1c2a9e0b7d4c3f8a1e5d2b9c0f7a6e req-01HZX3";
        assert_eq!(auditor.redact_text(plain), plain);
    }
}
