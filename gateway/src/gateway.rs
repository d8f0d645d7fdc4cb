//! The gateway core: callers, per-request sessions of secure views, planning,
//! execution and audit, shared by every front end.
//!
//! A request goes: verified certificate → principal (policy) → purpose and
//! licence checks → a session whose catalog holds only the principal's secure
//! views (remote scan with the row policy applied at the connector, then a
//! projection that masks every column) → the caller's SQL planned against those
//! views only → an audit record made durable → results released.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use creditgate_audit::{AuditLog, AuditOptions, NewRecord, Outcome, RecordedQuery, SubjectHasher};
use creditgate_certs::identity::Identity;
use creditgate_certs::tls::{self, ClientTrust, ConnInfo};
use creditgate_flight::engine::{locked_down_runtime, read_only_sql_options, session};
use creditgate_flight::{FrontConfig, ObservedStream, QueryBackend, RequestContext, TableEntry};
use creditgate_policy::{DatasetGrant, MaskUdfs, Policy, Principal, Role};
use creditgate_remote::RemoteTable;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::audit::{Auditor, column_accesses, datasets_and_columns};
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::federation::{CATALOG, Federation};
use crate::metrics::Metrics;

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

/// Which front end a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// Arrow Flight SQL (mTLS).
    Flight,
    /// HTTP/JSON (mTLS).
    Http,
    /// The public disclosure listener (server TLS only).
    Public,
}

impl Frontend {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Flight => "flight",
            Frontend::Http => "http",
            Frontend::Public => "public",
        }
    }

    pub(crate) fn audit(self) -> creditgate_audit::Frontend {
        match self {
            Frontend::Flight => creditgate_audit::Frontend::Flight,
            Frontend::Http => creditgate_audit::Frontend::Http,
            Frontend::Public => creditgate_audit::Frontend::Public,
        }
    }
}

/// An authenticated caller, for one request. Only [`Gateway::authenticate`]
/// and [`Gateway::public_caller`] make one: holding a `Caller` is the permit.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The policy principal.
    pub principal: Arc<Principal>,
    /// The verified certificate identity (none on the public listener).
    pub identity: Option<Arc<Identity>>,
    /// The request id (also in logs and the audit record).
    pub request_id: String,
    /// The front end.
    pub frontend: Frontend,
    /// The declared purpose code.
    pub purpose: Option<String>,
    started: Instant,
    /// Set once this request has its audit record (shared by clones).
    audited: Arc<AtomicBool>,
}

impl Caller {
    /// Whether this request already has its audit record.
    pub fn was_audited(&self) -> bool {
        self.audited.load(Ordering::Acquire)
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.principal.name
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn audit_caller(&self) -> creditgate_audit::Caller {
        creditgate_audit::Caller {
            fingerprint: self.identity.as_ref().map(|i| i.fingerprint.clone()).unwrap_or_default(),
            name: self.principal.name.clone(),
            organization: self.principal.organization.clone(),
            role: self.principal.role.as_str().to_string(),
        }
    }

    /// This request's audit record for `query`, allowed, with nothing
    /// disclosed yet: callers fill in what they know (datasets, columns,
    /// rows, sources, outcome) with struct update syntax.
    pub(crate) fn record_of(&self, query: RecordedQuery) -> NewRecord {
        NewRecord {
            request_id: self.request_id.clone(),
            caller: self.audit_caller(),
            frontend: self.frontend.audit(),
            purpose: self.purpose.clone(),
            legal_basis: self.legal_basis(),
            query,
            datasets: Vec::new(),
            columns: Vec::new(),
            subject_hashes: Vec::new(),
            row_count: None,
            sources: Vec::new(),
            outcome: Outcome::Allowed,
            refusal_reason: None,
            duration_ms: self.elapsed_ms(),
        }
    }

    /// The legal basis this request relies on, for the audit record.
    pub fn legal_basis(&self) -> Option<String> {
        let purpose = self.purpose.as_deref()?;
        match self.principal.role {
            Role::Agency if self.principal.duty_codes.iter().any(|d| d == purpose) => Some(format!("duty:{purpose}")),
            Role::Agency => self.principal.duty_codes.first().map(|d| format!("duty:{d}")),
            Role::CreditAgency => self.principal.licence.as_ref().map(|l| format!("licence:{}", l.number)),
            Role::Platform | Role::Public => Some("public-data".to_string()),
            Role::PrivacyOfficer => Some("oversight".to_string()),
        }
    }
}

struct CachedCatalog {
    key: (u64, u64, chrono::NaiveDate),
    catalog: Arc<MemoryCatalogProvider>,
    grants: Arc<BTreeMap<String, DatasetGrant>>,
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    federation: Arc<Federation>,
    metrics: Arc<Metrics>,
    policy: RwLock<Arc<Policy>>,
    policy_generation: AtomicU64,
    masks: Arc<MaskUdfs>,
    auditor: Auditor,
    catalogs: Mutex<HashMap<String, CachedCatalog>>,
    limits: crate::limits::Limits,
    consents: Option<crate::lookup::Consents>,
    /// Functions, optimizer rules and settings, built once; each request
    /// session starts from a copy with its own memory pool.
    base_state: datafusion::execution::SessionState,
}

/// Reads the deployment secret, creating 32 random bytes (hex, mode 0600) if missing.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, GatewayError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let fail = |what: &str, e: &dyn std::fmt::Display| GatewayError::Config(format!("{}: {what}: {e}", path.display()));
    if !path.exists() {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| fail("cannot generate", &"no random source"))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("cannot create directory", &e))?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(|e| fail("cannot create", &e))?;
            file.write_all(hex::encode(bytes).as_bytes()).map_err(|e| fail("cannot write", &e))?;
            file.sync_all().map_err(|e| fail("cannot write", &e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| fail("cannot write", &e))?;
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail("cannot read", &e))?;
    let bytes = hex::decode(text.trim()).map_err(|_| fail("invalid secret", &"expected hex"))?;
    if bytes.len() < 16 {
        return Err(fail("invalid secret", &"at least 16 bytes (32 hex characters) are required"));
    }
    Ok(bytes)
}

fn derive(secret: &[u8], purpose: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, purpose.as_bytes()).as_ref().to_vec()
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

impl Gateway {
    /// Loads the policy, opens the audit log, builds the federation and asks
    /// every connector for its tables once (sources that do not answer are
    /// retried in the background).
    pub async fn new(config: GatewayConfig) -> Result<Arc<Self>, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        let policy = Policy::load(&config.policy).map_err(|e| GatewayError::Config(e.to_string()))?;
        let secret = load_or_create_secret(&config.state.secret_path())?;
        let masks = MaskUdfs::new(&derive(&secret, "creditgate mask v1"))
            .map_err(|e| GatewayError::Config(format!("mask secret: {e}")))?;
        let hasher = SubjectHasher::new(&derive(&secret, "creditgate subject v1"))
            .map_err(|e| GatewayError::Config(format!("subject secret: {e}")))?;
        let mut options = AuditOptions::new(config.state.dir.join("audit-signing.key"));
        options.checkpoint_every_records = config.audit.checkpoint_every_records;
        options.checkpoint_every = Duration::from_secs(config.audit.checkpoint_every_seconds);
        options.retention_days = config.audit.retention_days;
        let audit_dir = config.state.dir.join("audit");
        let log = tokio::task::spawn_blocking(move || AuditLog::open(audit_dir, options))
            .await
            .map_err(|e| GatewayError::Server(format!("opening the audit log: {e}")))?
            .map_err(|e| GatewayError::Config(format!("audit log: {e}")))?;
        let consents = if config.consent_issuers.is_empty() {
            None
        } else {
            let issuers = creditgate_consent::TrustedIssuers::from_config(&config.consent_issuers, None)
                .map_err(|e| GatewayError::Config(format!("consent_issuers: {e}")))?;
            let store = creditgate_consent::ConsentStore::open(
                &config.state.dir.join("consents"),
                &derive(&secret, "creditgate consent subject v1"),
            )
            .map_err(|e| GatewayError::Config(format!("consent store: {e}")))?;
            Some(crate::lookup::Consents { issuers, store })
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
        let audit_enabled = config.audit.enabled;
        let limits = crate::limits::Limits::load(&config.state.dir.join(QUOTAS_FILE), today())?;
        Ok(Arc::new(Self {
            config,
            federation,
            metrics,
            policy: RwLock::new(Arc::new(policy)),
            policy_generation: AtomicU64::new(0),
            masks: Arc::new(masks),
            auditor: {
                let auditor = Auditor::new(Arc::new(log), Arc::new(hasher));
                if audit_enabled { auditor } else { auditor.disabled() }
            },
            catalogs: Mutex::new(HashMap::new()),
            limits,
            consents,
            base_state,
        }))
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

    /// Appends `caller`'s record for this request; returns once it is durable
    /// (fails closed) with the record's sequence number.
    pub(crate) async fn record(&self, caller: &Caller, record: NewRecord) -> Result<u64, GatewayError> {
        let seq = self.auditor.append_receipt(record).await?;
        caller.audited.store(true, Ordering::Release);
        Ok(seq)
    }

    /// Audits a request that ended in `error` before any record was written
    /// for it (a malformed body, an unknown route, a bad identifier…), so
    /// every request leaves a record. Does nothing if it already has one.
    pub async fn audit_unrecorded(
        &self,
        caller: &Caller,
        what: RecordedQuery,
        error: &GatewayError,
    ) -> Result<(), GatewayError> {
        if caller.was_audited() {
            return Ok(());
        }
        self.audit_refusal(caller, what, Vec::new(), error).await
    }

    /// Audits an allowed request that releases no data rows (e.g. the
    /// caller's own catalog).
    pub async fn audit_allowed(&self, caller: &Caller, what: RecordedQuery) -> Result<(), GatewayError> {
        self.record(caller, caller.record_of(what)).await.map(|_| ())
    }

    /// Consent issuers and store, when consents are configured.
    pub fn consents(&self) -> Option<&crate::lookup::Consents> {
        self.consents.as_ref()
    }

    /// The mask functions (keyed with the deployment secret).
    pub fn masks(&self) -> &MaskUdfs {
        &self.masks
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Re-reads the policy file. On any error the current policy stays in force.
    pub fn reload_policy(&self) -> Result<(), GatewayError> {
        match Policy::load(&self.config.policy) {
            Ok(policy) => {
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

    /// Maps the verified connection to a policy principal. A refusal is audited.
    pub async fn authenticate(
        &self,
        conn: Option<&ConnInfo>,
        frontend: Frontend,
        purpose: Option<String>,
    ) -> Result<Caller, GatewayError> {
        let request_id = crate::request_id();
        let started = Instant::now();
        let Some(identity) = conn.and_then(|c| c.identity.clone()) else {
            self.metrics.denial(frontend.label(), "CG-AUTH-001");
            return Err(GatewayError::Unauthenticated);
        };
        let policy = self.policy();
        match policy.principal_for(&identity) {
            Some(principal) => Ok(Caller {
                principal: Arc::new(principal.clone()),
                identity: Some(identity),
                request_id,
                frontend,
                purpose,
                started,
                audited: Arc::default(),
            }),
            None => {
                let error = GatewayError::UnknownCaller(identity.name());
                self.metrics.denial(frontend.label(), error.code().code);
                let caller = creditgate_audit::Caller {
                    fingerprint: identity.fingerprint.clone(),
                    name: identity.name(),
                    organization: identity.organization.clone().unwrap_or_default(),
                    role: "unknown".to_string(),
                };
                let record = refusal_record(&request_id, caller, frontend, purpose, &error, started);
                self.auditor.append(record).await?;
                Err(error)
            }
        }
    }

    /// The `public` principal, for the disclosure listener.
    pub fn public_caller(&self) -> Result<Caller, GatewayError> {
        let policy = self.policy();
        let principal = policy
            .public_principal()
            .ok_or_else(|| GatewayError::PolicyRefused("the policy defines no public principal".to_string()))?;
        Ok(Caller {
            principal: Arc::new(principal.clone()),
            identity: None,
            request_id: crate::request_id(),
            frontend: Frontend::Public,
            purpose: principal.purposes.first().cloned(),
            started: Instant::now(),
            audited: Arc::default(),
        })
    }

    /// Purpose and licence checks every data request (and every plan) passes first.
    pub fn authorize_data(&self, caller: &Caller) -> Result<(), GatewayError> {
        let policy = self.policy();
        policy
            .check_purpose(&caller.principal, caller.purpose.as_deref())
            .map_err(|e| GatewayError::PolicyRefused(e.to_string()))?;
        policy.check_licence(&caller.principal, today()).map_err(|e| GatewayError::PolicyRefused(e.to_string()))
    }

    /// Rate limit and daily quota: counted once per executed request (a Flight
    /// `GetFlightInfo` that only plans does not count; its `DoGet` does).
    pub fn admit(&self, caller: &Caller) -> Result<(), GatewayError> {
        self.limits.admit(&caller.principal, today())
    }

    /// The caller's secure views (cached per principal; rebuilt when the
    /// policy, the federation or the date changes) and their grants.
    pub fn catalog_for(&self, caller: &Caller) -> (Arc<MemoryCatalogProvider>, Arc<BTreeMap<String, DatasetGrant>>) {
        let key = (self.policy_generation.load(Ordering::SeqCst), self.federation.generation(), today());
        let mut cache = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get(caller.name()) {
            if cached.key == key {
                return (Arc::clone(&cached.catalog), Arc::clone(&cached.grants));
            }
        }
        let (catalog, grants) = self.build_catalog(&caller.principal, key.2);
        let (catalog, grants) = (Arc::new(catalog), Arc::new(grants));
        cache.insert(
            caller.name().to_string(),
            CachedCatalog { key, catalog: Arc::clone(&catalog), grants: Arc::clone(&grants) },
        );
        (catalog, grants)
    }

    fn build_catalog(
        &self,
        principal: &Principal,
        today: chrono::NaiveDate,
    ) -> (MemoryCatalogProvider, BTreeMap<String, DatasetGrant>) {
        let policy = self.policy();
        let available: BTreeMap<String, (crate::federation::Dataset, SchemaRef)> =
            self.federation.available().into_iter().map(|(d, s)| (d.name.clone(), (d, s))).collect();
        let catalog = MemoryCatalogProvider::new();
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        let mut grants = BTreeMap::new();
        for grant in policy.grants_for(principal) {
            let Some((dataset, schema)) = available.get(&grant.dataset) else { continue };
            let Some(source) = self.federation.source(&dataset.source) else { continue };
            let view = grant.row_predicate(today).map_err(|e| e.to_string()).and_then(|predicate| {
                let remote = RemoteTable::new(Arc::clone(source), dataset.remote_table.clone(), Arc::clone(schema))
                    .with_mandatory_filter(predicate)
                    .with_raw_columns(grant.raw_columns());
                creditgate_policy::secure_view(Arc::new(remote), &grant, &self.masks).map_err(|e| e.to_string())
            });
            match view {
                Ok(view) => {
                    let provider = schemas
                        .entry(dataset.schema_name.clone())
                        .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
                    if provider.register_table(dataset.table_name.clone(), view).is_ok() {
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
            .map_err(|e| GatewayError::Internal(format!("runtime: {}", e.strip_backtrace())))?;
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.base_state.clone())
            .with_catalog_list(Arc::new(datafusion::catalog::MemoryCatalogProviderList::new()))
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// A fresh session whose catalog holds only the caller's secure views, with
    /// its own memory limit and no disk.
    pub fn session_for(
        &self,
        caller: &Caller,
    ) -> Result<(SessionContext, Arc<BTreeMap<String, DatasetGrant>>), GatewayError> {
        let (catalog, grants) = self.catalog_for(caller);
        let ctx = self.engine()?;
        ctx.register_catalog(CATALOG, catalog);
        Ok((ctx, grants))
    }

    /// Checks the request and plans `sql` against the caller's views.
    pub async fn plan(&self, caller: &Caller, sql: &str) -> Result<Planned, GatewayError> {
        self.authorize_data(caller)?;
        let parsed = crate::sql_gate::parse_query(sql)?;
        let deep = parsed.needs_deep_stack();
        let (ctx, grants) = self.session_for(caller)?;
        let state = ctx.state();
        let planning_state = state.clone();
        let planned =
            on_stack_for(deep, async move { planning_state.statement_to_plan(parsed.statement).await }).await?;
        let plan = match planned {
            Ok(plan) => plan,
            Err(error) => return Err(self.planning_error(sql, error)),
        };
        read_only_sql_options().verify_plan(&plan).map_err(|e| GatewayError::InvalidQuery(e.strip_backtrace()))?;
        Ok(Planned { frame: DataFrame::new(state, plan), grants, deep })
    }

    fn planning_error(&self, sql: &str, error: DataFusionError) -> GatewayError {
        // A dataset whose source has not answered yet is "unavailable", not "unknown".
        let lowered = sql.to_lowercase();
        for dataset in self.federation.datasets() {
            if lowered.contains(&dataset.name) {
                if let Some(source) = self.federation.unavailable_source_of(&dataset.name) {
                    return GatewayError::Source(creditgate_remote::SourceError {
                        source_name: source,
                        kind: creditgate_remote::SourceErrorKind::Unavailable(
                            "the gateway has not reached it yet; retry shortly".to_string(),
                        ),
                    });
                }
            }
        }
        GatewayError::from_datafusion(error, true)
    }

    /// Plans, audits and executes `sql`. The audit record is durable before the
    /// stream is returned; a refusal or failure is audited too.
    pub async fn query(&self, caller: &Caller, sql: &str) -> Result<SendableRecordBatchStream, GatewayError> {
        tracing::debug!(sql = %sql, "query");
        if sql.len() > crate::sql_gate::MAX_SQL_BYTES {
            // Refused before anything else; the record keeps the size, not the text.
            let error =
                crate::sql_gate::parse_query(sql).err().unwrap_or(GatewayError::InvalidQuery("too long".into()));
            let (summary, _) = self.recorded_sql(sql);
            self.record_failure(caller, summary, Vec::new(), &error).await?;
            return Err(error);
        }
        let (redacted, subjects) = self.recorded_sql(sql);
        match self.query_inner(caller, sql, &redacted, &subjects).await {
            Ok(stream) => Ok(stream),
            Err(GatewayError::AuditUnavailable) => Err(GatewayError::AuditUnavailable),
            Err(error) => {
                self.record_failure(caller, redacted, subjects, &error).await?;
                Err(error)
            }
        }
    }

    /// Audits a refused or failed SQL request (fails closed if it cannot).
    pub async fn audit_sql_failure(
        &self,
        caller: &Caller,
        sql: &str,
        error: &GatewayError,
    ) -> Result<(), GatewayError> {
        let (redacted, subjects) = self.recorded_sql(sql);
        self.record_failure(caller, redacted, subjects, error).await
    }

    /// What the audit record keeps of `sql`: the text with subject keys
    /// replaced by keyed hashes, or only its size when it is over the limit
    /// (a refused request must not grow the log by what the caller sent).
    fn recorded_sql(&self, sql: &str) -> (String, Vec<String>) {
        if sql.len() > crate::sql_gate::MAX_SQL_BYTES {
            return (format!("<{} bytes of SQL, over the limit>", sql.len()), Vec::new());
        }
        self.auditor.redact_sql(sql)
    }

    async fn record_failure(
        &self,
        caller: &Caller,
        redacted: String,
        subjects: Vec<String>,
        error: &GatewayError,
    ) -> Result<(), GatewayError> {
        self.audit_refusal(caller, RecordedQuery::Sql(redacted), subjects, error).await
    }

    /// Audits a refused or failed request of any kind (fails closed if it cannot).
    pub async fn audit_refusal(
        &self,
        caller: &Caller,
        query: RecordedQuery,
        subjects: Vec<String>,
        error: &GatewayError,
    ) -> Result<(), GatewayError> {
        let code = error.code();
        self.metrics.request(caller.frontend.label(), code.code, caller.started.elapsed());
        if matches!(code.http, 401 | 403 | 429) {
            self.metrics.denial(caller.frontend.label(), code.code);
        }
        let span = tracing::Span::current();
        span.record("duration_ms", caller.elapsed_ms());
        span.record("outcome", code.code);
        let (outcome, reason) = refusal_of(error);
        let sources = match error {
            GatewayError::Source(e) => vec![creditgate_audit::SourceStatus {
                source: e.source_name.clone(),
                status: e.status_label().to_string(),
            }],
            _ => Vec::new(),
        };
        let record = NewRecord {
            subject_hashes: subjects,
            sources,
            outcome,
            refusal_reason: Some(reason),
            ..caller.record_of(query)
        };
        self.record(caller, record).await.map(|_| ())
    }

    async fn query_inner(
        &self,
        caller: &Caller,
        sql: &str,
        redacted: &str,
        subjects: &[String],
    ) -> Result<SendableRecordBatchStream, GatewayError> {
        self.admit(caller)?;
        let Planned { frame, grants, deep } = self.plan(caller, sql).await?;
        let touched = datasets_and_columns(frame.logical_plan());
        let columns = column_accesses(&touched, |dataset, column| {
            grants
                .get(dataset)
                .and_then(|g| g.column(column))
                .map(|c| c.mask.to_string())
                .unwrap_or_else(|| "withheld".to_string())
        });
        let source_names = self.sources_of(touched.keys());
        let sources: Vec<creditgate_audit::SourceStatus> = source_names
            .iter()
            .map(|s| creditgate_audit::SourceStatus { source: s.clone(), status: "queried".to_string() })
            .collect();
        let span = tracing::Span::current();
        span.record("sources", source_names.join(",").as_str());
        let stream =
            on_stack_for(deep, frame.execute_stream()).await?.map_err(|e| GatewayError::from_datafusion(e, false))?;
        let record = NewRecord {
            datasets: touched.keys().cloned().collect(),
            columns,
            subject_hashes: subjects.to_vec(),
            sources,
            ..caller.record_of(RecordedQuery::Sql(redacted.to_string()))
        };
        // Audit before release: nothing leaves until this record is durable.
        let released_by = self.record(caller, record).await?;
        // Its stream-end record: rows delivered, each source's final status, how it ended.
        let mut end = NewRecord {
            datasets: touched.keys().cloned().collect(),
            ..caller.record_of(RecordedQuery::StreamEnd(released_by))
        };
        let auditor = self.auditor.clone();
        let metrics = Arc::clone(&self.metrics);
        let frontend = caller.frontend.label();
        let started = caller.started;
        Ok(Box::pin(ObservedStream::new(stream, move |report| {
            let _entered = span.enter();
            let duration_ms = started.elapsed().as_millis() as u64;
            metrics.request(frontend, report.outcome.label(), started.elapsed());
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
            end.row_count = Some(report.rows);
            end.duration_ms = duration_ms;
            (end.outcome, end.refusal_reason, end.sources) = stream_end(&report.outcome, &source_names);
            auditor.append_detached(end);
        })))
    }

    /// The sources serving `datasets`, sorted, each once.
    fn sources_of<'a>(&self, datasets: impl Iterator<Item = &'a String>) -> Vec<String> {
        let mut names: Vec<String> = datasets
            .filter_map(|d| self.federation.datasets().iter().find(|x| &x.name == d))
            .map(|d| d.source.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `ok` for the source of each of `datasets` (a collected result: every read finished).
    fn sources_ok<'a>(&self, datasets: impl Iterator<Item = &'a String>) -> Vec<creditgate_audit::SourceStatus> {
        let ok = |source| creditgate_audit::SourceStatus { source, status: "ok".to_string() };
        self.sources_of(datasets).into_iter().map(ok).collect()
    }

    /// Runs several small queries for one composite request (a disclosure page,
    /// a lookup), collecting their results, then writes ONE audit record for
    /// the whole request before anything is released. `query` is what the
    /// record stores (SQL text or the structured request, subject hashed).
    pub async fn collect_audited(
        &self,
        caller: &Caller,
        parts: &[(String, String)],
        query: RecordedQuery,
        subject_hashes: Vec<String>,
    ) -> Result<Vec<(String, Vec<arrow::array::RecordBatch>)>, GatewayError> {
        let result = self.collect_parts(caller, parts).await;
        match result {
            Ok((results, touched, grants)) => {
                let columns = column_accesses(&touched, |dataset, column| {
                    grants
                        .get(dataset)
                        .and_then(|g| g.column(column))
                        .map(|c| c.mask.to_string())
                        .unwrap_or_else(|| "withheld".to_string())
                });
                let rows: usize = results.iter().flat_map(|(_, b)| b.iter().map(|b| b.num_rows())).sum();
                let record = NewRecord {
                    datasets: touched.keys().cloned().collect(),
                    columns,
                    subject_hashes,
                    row_count: Some(rows as u64),
                    sources: self.sources_ok(touched.keys()),
                    ..caller.record_of(query)
                };
                self.record(caller, record).await?;
                self.metrics.request(caller.frontend.label(), "ok", caller.started.elapsed());
                Ok(results)
            }
            Err(error) => {
                self.audit_refusal(caller, query, subject_hashes, &error).await?;
                Err(error)
            }
        }
    }

    async fn collect_parts(
        &self,
        caller: &Caller,
        parts: &[(String, String)],
    ) -> Result<
        (
            Vec<(String, Vec<arrow::array::RecordBatch>)>,
            BTreeMap<String, Vec<String>>,
            Arc<BTreeMap<String, DatasetGrant>>,
        ),
        GatewayError,
    > {
        self.admit(caller)?;
        let mut results = Vec::with_capacity(parts.len());
        let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all_grants = Arc::new(BTreeMap::new());
        for (label, sql) in parts {
            let Planned { frame, grants, .. } = self.plan(caller, sql).await?;
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
        Ok((results, touched, all_grants))
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
    pub async fn tables_for(&self, caller: &Caller) -> Vec<TableEntry> {
        const MASK_KEY: &str = "creditgate.mask";
        const CLASS_KEY: &str = "creditgate.class";
        const DISPUTE_FLAG_KEY: &str = "creditgate.dispute_flag";
        let (catalog, grants) = self.catalog_for(caller);
        let mut out = Vec::new();
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            'tables: for table in schema.table_names() {
                let Ok(Some(provider)) = schema.table(&table).await else { continue };
                let dataset = format!("{schema_name}.{table}");
                let Some(grant) = grants.get(&dataset) else {
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

    /// Binds the listeners and serves until [`RunningGateway::stop`].
    pub async fn start(self: Arc<Self>) -> Result<RunningGateway, GatewayError> {
        let server = &self.config.server;
        let trust = ClientTrust {
            ca_file: server.client_ca.clone(),
            crl_files: server.crls.clone(),
            enforce_crl_expiry: server.enforce_crl_expiry,
        };
        let handshake = Duration::from_millis(server.handshake_timeout_ms);
        let flight_tls = tls::server_config(&server.cert, &server.key, Some(&trust), &[b"h2"])?;
        let http_tls = tls::server_config(&server.cert, &server.key, Some(&trust), &[b"h2", b"http/1.1"])?;
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| GatewayError::Server(format!("cannot listen on {addr}: {e}")))
        };
        let local = |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| GatewayError::Server(e.to_string()));
        let flight_listener = bind(server.flight_listen).await?;
        let http_listener = bind(server.http_listen).await?;
        let flight_addr = local(&flight_listener)?;
        let http_addr = local(&http_listener)?;
        let (tx, rx) = watch::channel(false);
        let mut handles = Vec::new();

        {
            let gateway = Arc::clone(&self);
            let mut rx = rx.clone();
            let incoming = tls::incoming(flight_listener, flight_tls, handshake);
            handles.push(tokio::spawn(
                async move {
                    let shutdown = async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    let front = FrontConfig { server_name: "creditgate gateway".to_string(), ..FrontConfig::default() };
                    creditgate_flight::serve(gateway, front, incoming, shutdown)
                        .await
                        .map_err(|e| GatewayError::Server(e.to_string()))
                }
                .instrument(tracing::info_span!("flight", %flight_addr)),
            ));
        }
        {
            let gateway = Arc::clone(&self);
            let incoming = tls::incoming(http_listener, http_tls, handshake);
            handles.push(tokio::spawn(
                crate::http::serve(gateway, incoming, rx.clone(), Frontend::Http)
                    .instrument(tracing::info_span!("http", %http_addr)),
            ));
        }
        let mut public_addr = None;
        if let Some(addr) = server.public_listen {
            let public_tls = tls::server_config(&server.cert, &server.key, None, &[b"h2", b"http/1.1"])?;
            let listener = bind(addr).await?;
            let bound = local(&listener)?;
            public_addr = Some(bound);
            let gateway = Arc::clone(&self);
            let incoming = tls::incoming(listener, public_tls, handshake);
            handles.push(tokio::spawn(
                crate::http::serve(gateway, incoming, rx.clone(), Frontend::Public)
                    .instrument(tracing::info_span!("public", addr = %bound)),
            ));
        }
        {
            // Quota counts: saved every few seconds when they changed (and at close).
            let gateway = Arc::clone(&self);
            let mut stop_saving = rx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(QUOTA_SAVE_INTERVAL) => {}
                        _ = stop_saving.wait_for(|stop| *stop) => break,
                    }
                    let gateway = Arc::clone(&gateway);
                    match tokio::task::spawn_blocking(move || gateway.limits.save(today())).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "saving quota counts failed"),
                        Err(e) => tracing::error!(error = %e, "quota saving task failed"),
                    }
                }
            });
            // Retention: prune the audit log at start and then once a day (a
            // signed checkpoint anchors the new start), so a gateway restarted
            // more often than daily still prunes.
            let log = Arc::clone(self.auditor.log());
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let mut first = true;
                loop {
                    if !std::mem::take(&mut first) {
                        tokio::select! {
                            _ = tokio::time::sleep(AUDIT_PRUNE_INTERVAL) => {}
                            _ = rx.wait_for(|stop| *stop) => break,
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
        tracing::info!(%flight_addr, %http_addr, public = ?public_addr, "gateway listening");
        Ok(RunningGateway { flight_addr, http_addr, public_addr, stop: tx, handles, gateway: self })
    }

    /// Writes a final audit checkpoint (shutdown).
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
/// reason (if it failed) and each source's final status. A failure names its
/// source (`source `x` …`), which is then `error` or `timeout`; the others
/// delivered what was asked (`ok`) or were stopped with the stream
/// (`cancelled`).
fn stream_end(
    outcome: &creditgate_flight::StreamOutcome,
    sources: &[String],
) -> (Outcome, Option<String>, Vec<creditgate_audit::SourceStatus>) {
    use creditgate_flight::StreamOutcome;
    let status = |source: &str| -> &'static str {
        match outcome {
            StreamOutcome::Complete => "ok",
            StreamOutcome::Cancelled => "cancelled",
            StreamOutcome::Failed(message) if message.contains(&format!("source `{source}`")) => {
                if message.contains("deadline") || message.contains("timed out") { "timeout" } else { "error" }
            }
            StreamOutcome::Failed(_) => "cancelled",
        }
    };
    let statuses = sources
        .iter()
        .map(|s| creditgate_audit::SourceStatus { source: s.clone(), status: status(s).to_string() })
        .collect();
    match outcome {
        StreamOutcome::Complete => (Outcome::Allowed, None, statuses),
        StreamOutcome::Cancelled => {
            (Outcome::Cancelled, Some("the caller closed the stream before its end".to_string()), statuses)
        }
        StreamOutcome::Failed(_) => {
            let failed = statuses.iter().find(|s| s.status != "cancelled").map(|s| s.source.clone());
            let reason = match failed {
                Some(source) => format!("the stream failed after release: source `{source}` failed"),
                None => "the stream failed after release".to_string(),
            };
            (Outcome::Failed, Some(reason), statuses)
        }
    }
}

/// The outcome and recorded reason of a refused (4xx) or failed (5xx) request.
fn refusal_of(error: &GatewayError) -> (Outcome, String) {
    let code = error.code();
    let outcome = if code.http < 500 { Outcome::Refused } else { Outcome::Failed };
    (outcome, format!("{}: {}", code.code, error.client_message()))
}

/// An audit record for a request refused before it had a [`Caller`] (an
/// unknown certificate identity).
fn refusal_record(
    request_id: &str,
    caller: creditgate_audit::Caller,
    frontend: Frontend,
    purpose: Option<String>,
    error: &GatewayError,
    started: Instant,
) -> NewRecord {
    let (outcome, reason) = refusal_of(error);
    NewRecord {
        request_id: request_id.to_string(),
        caller,
        frontend: frontend.audit(),
        purpose,
        legal_basis: None,
        query: RecordedQuery::Sql(String::new()),
        datasets: Vec::new(),
        columns: Vec::new(),
        subject_hashes: Vec::new(),
        row_count: None,
        sources: Vec::new(),
        outcome,
        refusal_reason: Some(reason),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn warn_about_policy_coverage(policy: &Policy, federation: &Federation) {
    for dataset in federation.datasets() {
        if policy.dataset(&dataset.name).is_none() {
            tracing::warn!(dataset = %dataset.name, "dataset has no classification in the policy; nobody can see it");
        }
    }
}

/// A gateway serving in the background.
pub struct RunningGateway {
    /// Flight SQL address.
    pub flight_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Public disclosure address, when enabled.
    pub public_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<Result<(), GatewayError>>>,
    gateway: Arc<Gateway>,
}

impl RunningGateway {
    /// Stops accepting, lets in-flight requests finish for up to
    /// `server.shutdown_grace_ms` (a client that stopped reading cannot hold
    /// the shutdown up: after the grace period the listeners are closed
    /// regardless), writes a final audit checkpoint, and returns.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.stop.send(true);
        let grace = Duration::from_millis(self.gateway.config.server.shutdown_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        let mut result = Ok(());
        for mut handle in self.handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e),
                Ok(Err(e)) => result = Err(GatewayError::Server(format!("listener task failed: {e}"))),
                Err(_) => {
                    tracing::warn!(
                        grace_ms = grace.as_millis() as u64,
                        "in-flight requests outlived the shutdown grace; closing their connections"
                    );
                    handle.abort();
                    let _ = handle.await;
                }
            }
        }
        let gateway = Arc::clone(&self.gateway);
        let _ = tokio::task::spawn_blocking(move || gateway.close()).await;
        result
    }
}

/// The one span of a request: caller, request id and front end at once;
/// sources, rows, duration and outcome are recorded as the request runs. No
/// personal data: SQL text and subjects stay at `debug`.
pub(crate) fn request_span(caller: &Caller) -> tracing::Span {
    tracing::info_span!(
        "request",
        request.id = %caller.request_id,
        client.name = %caller.name(),
        client.organization = %caller.principal.organization,
        frontend = caller.frontend.label(),
        sources = tracing::field::Empty,
        rows = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// What the Flight front end keeps per call: the caller and its span.
pub struct FlightCaller {
    caller: Caller,
    span: tracing::Span,
}

#[tonic::async_trait]
impl QueryBackend for Gateway {
    type Caller = FlightCaller;
    type Error = GatewayError;

    async fn authenticate(&self, ctx: &RequestContext) -> Result<FlightCaller, GatewayError> {
        let purpose = ctx.metadata.get(PURPOSE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let caller = Gateway::authenticate(self, ctx.conn.as_ref(), Frontend::Flight, purpose).await?;
        let span = request_span(&caller);
        Ok(FlightCaller { caller, span })
    }

    fn binding(&self, caller: &FlightCaller) -> Vec<u8> {
        // A ticket works only for the same certificate and the same purpose.
        let fingerprint = caller.caller.identity.as_ref().map(|i| i.fingerprint.as_str()).unwrap_or("");
        format!("{fingerprint}\n{}", caller.caller.purpose.as_deref().unwrap_or("")).into_bytes()
    }

    async fn plan(&self, caller: &FlightCaller, sql: &str) -> Result<SchemaRef, GatewayError> {
        let result = Gateway::plan(self, &caller.caller, sql).instrument(caller.span.clone()).await;
        match result {
            Ok(planned) => Ok(Arc::new(planned.frame.schema().as_arrow().clone())),
            // Refusals at planning are audited like any other.
            Err(error) => {
                self.audit_sql_failure(&caller.caller, sql, &error).await?;
                Err(error)
            }
        }
    }

    async fn execute(&self, caller: &FlightCaller, sql: &str) -> Result<SendableRecordBatchStream, GatewayError> {
        self.query(&caller.caller, sql).instrument(caller.span.clone()).await
    }

    fn stream_error(&self, _caller: &FlightCaller, error: DataFusionError) -> GatewayError {
        GatewayError::from_datafusion(error, false)
    }

    async fn tables(&self, caller: &FlightCaller) -> Result<Vec<TableEntry>, GatewayError> {
        Ok(self.tables_for(&caller.caller).await)
    }

    fn custom_actions(&self) -> Vec<(String, String)> {
        vec![(
            crate::lookup::LOOKUP_ACTION.to_string(),
            "Subject lookup: body is the JSON of POST /v1/lookup; the result is the JSON lookup document".to_string(),
        )]
    }

    async fn custom_action(
        &self,
        caller: &FlightCaller,
        action_type: &str,
        body: &[u8],
    ) -> Option<Result<Vec<u8>, GatewayError>> {
        if action_type != crate::lookup::LOOKUP_ACTION {
            return None;
        }
        let run = async {
            let request: crate::lookup::LookupRequest =
                serde_json::from_slice(body).map_err(|e| GatewayError::BadRequest(format!("lookup body: {e}")))?;
            let mut caller = caller.caller.clone();
            if request.purpose.is_some() {
                caller.purpose = request.purpose.clone();
            }
            let document = self.lookup(&caller, request).await?;
            serde_json::to_vec(&document).map_err(|e| GatewayError::Internal(format!("encoding the lookup: {e}")))
        };
        let result = run.instrument(caller.span.clone()).await;
        if let Err(error) = &result {
            let what = RecordedQuery::Request(format!("DoAction {action_type}"));
            if let Err(audit) = self.audit_unrecorded(&caller.caller, what, error).await {
                return Some(Err(audit));
            }
        }
        Some(result)
    }
}

/// A query planned against a caller's views.
pub struct Planned {
    /// The logical plan, ready to execute.
    pub frame: DataFrame,
    /// The caller's grants the plan was made under.
    pub grants: Arc<BTreeMap<String, DatasetGrant>>,
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
        .map_err(|e| GatewayError::Internal(format!("cannot start a planning thread: {e}")))?;
    result.await.map_err(|_| GatewayError::Internal("the planning thread stopped without an answer".to_string()))
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
        let sources = vec!["court".to_string(), "market".to_string()];
        let (outcome, reason, list) = stream_end(&StreamOutcome::Complete, &sources);
        assert_eq!((outcome, reason), (Outcome::Allowed, None));
        assert_eq!(statuses(&list), [("court", "ok"), ("market", "ok")]);

        let (outcome, reason, list) = stream_end(&StreamOutcome::Cancelled, &sources);
        assert_eq!(outcome, Outcome::Cancelled);
        assert!(reason.is_some_and(|r| r.contains("closed the stream")));
        assert_eq!(statuses(&list), [("court", "cancelled"), ("market", "cancelled")]);

        let failed = StreamOutcome::Failed("source `market` did not answer within the total deadline".into());
        let (outcome, reason, list) = stream_end(&failed, &sources);
        assert_eq!(outcome, Outcome::Failed);
        assert!(reason.is_some_and(|r| r.contains("source `market`")));
        assert_eq!(statuses(&list), [("court", "cancelled"), ("market", "timeout")]);

        let failed = StreamOutcome::Failed("source `court` failed: connection reset".into());
        let (_, _, list) = stream_end(&failed, &sources);
        assert_eq!(statuses(&list), [("court", "error"), ("market", "cancelled")]);

        // A failure in the gateway itself names no source.
        let (outcome, reason, list) = stream_end(&StreamOutcome::Failed("memory".into()), &sources);
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(reason.as_deref(), Some("the stream failed after release"));
        assert!(list.iter().all(|s| s.status == "cancelled"));
    }

    #[test]
    fn refusal_reasons_and_paths_lose_their_identifiers() {
        let hasher = Arc::new(SubjectHasher::new(b"a test deployment secret, long enough").expect("hasher"));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path().join("audit"), AuditOptions::new(dir.path().join("k.pk8"))).expect("log");
        let auditor = Auditor::new(Arc::new(log), Arc::clone(&hasher));
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
