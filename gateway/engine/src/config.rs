//! Gateway configuration (TOML).

use creditgate_ident::{DatasetName, SourceName, is_identifier};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::publication::PublicationRule;

/// Default memory limit of one query in the gateway.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 512 * 1024 * 1024;
/// Default TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default connect deadline per source.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default first-batch deadline per source.
pub const DEFAULT_FIRST_BATCH_TIMEOUT_MS: u64 = 10_000;
/// Default whole-result deadline per source.
pub const DEFAULT_TOTAL_TIMEOUT_MS: u64 = 300_000;

/// The gateway's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listeners and server identity.
    pub server: ServerConfig,
    /// The gateway's client identity towards connectors.
    pub upstream: UpstreamConfig,
    /// The connectors of the federation.
    pub connectors: Vec<ConnectorRef>,
    /// The logical datasets callers query.
    pub datasets: Vec<DatasetConfig>,
    /// The policy file: principals (callers), dataset classifications, rules.
    pub policy: PathBuf,
    /// Where the gateway keeps its state (audit log, secrets, consent store).
    pub state: StateConfig,
    /// Audit log settings.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Consent issuers whose signed artefacts this gateway accepts (none: no consent-based lookups).
    #[serde(default)]
    pub consent_issuers: Vec<creditgate_consent::IssuerConfig>,
    /// What the public disclosure window shows.
    #[serde(default)]
    pub public: PublicConfig,
    /// Graded supervision: the grading template (no grades when absent).
    #[serde(default)]
    pub grading: Option<GradingConfig>,
}

/// `[grading]`: the template `GET /v1/grades/{credit_code}` applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradingConfig {
    /// The grading template (TOML), checked at start against the policy's datasets.
    pub template: PathBuf,
    /// Grades computed at once in a batch (default 8).
    #[serde(default = "default_batch_concurrency")]
    pub batch_concurrency: usize,
    /// Where a batch by district finds the district's enterprises; batches
    /// by district are refused when absent.
    #[serde(default)]
    pub registry: Option<GradingRegistry>,
}

/// `[grading.registry]`: the register of enterprises a district batch reads
/// (under the caller's policy).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradingRegistry {
    /// The dataset, `schema.table`.
    pub dataset: String,
    /// Its credit-code column.
    pub credit_code: String,
    /// Its district (6-digit division code) column.
    pub district: String,
}

/// Default number of grades a batch computes at once.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 8;

fn default_batch_concurrency() -> usize {
    DEFAULT_BATCH_CONCURRENCY
}

/// Default number of results per page of the public name search.
pub const DEFAULT_SEARCH_PAGE_SIZE: u32 = 20;
/// Largest page of the public name search a client may ask for.
pub const MAX_SEARCH_PAGE_SIZE: u32 = 50;
/// Shortest name prefix the public search accepts, in characters.
pub const MIN_SEARCH_PREFIX_CHARS: usize = 2;

/// The public disclosure window: its sections, in page order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// One section per disclosed dataset; the first is the enterprise's
    /// registration (a code without a row there is "not registered").
    #[serde(default)]
    pub sections: Vec<DisclosureSection>,
    /// The search by credit code or name prefix over the first section; off when absent.
    #[serde(default)]
    pub search: Option<SearchConfig>,
    /// Requests per client address on the public listener (search and
    /// enterprise pages); unlimited per address when absent (the public
    /// principal's own rate limit still applies to all of them together).
    #[serde(default)]
    pub rate_limit_per_address: Option<AddressRateLimit>,
}

impl PublicConfig {
    /// Problems of the search, the rate limit and the publication rules
    /// across sections (the sections' own are checked one by one).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(search) = &self.search {
            if self.sections.is_empty() {
                problems.push("public.search: there is no section to search (the first section is searched)".into());
            }
            let names = std::iter::once(&search.name).chain(search.columns.iter().flatten());
            for column in names {
                if !is_identifier(column) {
                    problems.push(format!("public.search: `{column}` must be a column name"));
                }
            }
            if search.page_size == 0 || search.page_size > MAX_SEARCH_PAGE_SIZE {
                problems
                    .push(format!("public.search.page_size: {} must be 1 to {MAX_SEARCH_PAGE_SIZE}", search.page_size));
            }
        }
        if let Some(limit) = &self.rate_limit_per_address
            && (limit.per_second == 0 || limit.burst == 0)
        {
            problems.push("public.rate_limit_per_address: per_second and burst must be at least 1".into());
        }
        // The public role's rows of a dataset are filtered at the source by
        // its rule, so one dataset cannot be shown under two rules.
        for (i, section) in self.sections.iter().enumerate() {
            let earlier = self.sections[..i].iter().find(|s| s.dataset == section.dataset);
            if let Some(earlier) = earlier
                && earlier.publication != section.publication
            {
                problems.push(format!(
                    "public.sections[{i}].publication: `{}` is also shown by section `{}` under another publication rule",
                    section.dataset, earlier.name
                ));
            }
        }
        problems
    }

    /// The publication rule of `dataset` in this window, if any.
    pub fn rule_for(&self, dataset: &str) -> Option<&PublicationRule> {
        self.sections.iter().filter(|s| s.dataset == dataset).find_map(|s| s.publication.as_ref())
    }
}

/// The public search over the first (registration) section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The registered-name column (matched by prefix).
    pub name: String,
    /// The columns of each result (granted to the public role); the key and the name when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Results per page unless the client asks for fewer or more (at most
    /// [`MAX_SEARCH_PAGE_SIZE`]).
    #[serde(default = "default_search_page_size")]
    pub page_size: u32,
}

fn default_search_page_size() -> u32 {
    DEFAULT_SEARCH_PAGE_SIZE
}

impl SearchConfig {
    /// The result columns: the configured ones, else `key` and the name.
    pub fn result_columns(&self, key: &str) -> Vec<String> {
        match &self.columns {
            Some(columns) => columns.clone(),
            None => vec![key.to_string(), self.name.clone()],
        }
    }
}

/// A rate limit per client address (token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed in a burst.
    pub burst: u32,
}

/// A section's heading on the public page, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionTitle {
    /// Simplified Chinese (shown first).
    pub zh: String,
    /// English.
    pub en: String,
}

/// Names a section cannot have: other fields of the public answer.
pub const RESERVED_SECTION_NAMES: &[&str] = &["credit_code", "sections", "as_of"];

/// How a disclosure section shows its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionShape {
    /// One record (the first row), e.g. the registration.
    Record,
    /// A list of records, e.g. penalties.
    Records,
    /// A list plus `on_<name>`: whether the subject is on it, e.g. a black list.
    Membership,
}

/// One section of the public window: a dataset read for one enterprise,
/// through the policy's `public` role (so only what the policy grants the
/// public is shown, masked as it says).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureSection {
    /// Section name in the answer (`enterprise`, `penalties`, …); a lowercase identifier.
    pub name: String,
    /// The dataset, `schema.table`.
    pub dataset: String,
    /// The column holding the enterprise's credit code.
    pub key: String,
    /// The columns shown (all granted to the public role); every granted one when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Order of the rows: a column, optionally followed by `asc` or `desc`.
    #[serde(default)]
    pub order_by: Option<String>,
    /// How the rows are shown.
    pub shape: SectionShape,
    /// The heading on the public page; the name when absent.
    #[serde(default)]
    pub title: Option<SectionTitle>,
    /// Which records are shown today (publication periods); all when absent.
    #[serde(default)]
    pub publication: Option<PublicationRule>,
}

impl DisclosureSection {
    /// The SQL reading this section for `credit_code` (already validated
    /// as a credit code: it is made of digits and capital letters only). It
    /// reads the shown columns and those the publication rule needs.
    pub fn sql(&self, credit_code: &str) -> String {
        let columns = match &self.columns {
            Some(list) => {
                let mut all = list.clone();
                for column in self.publication.iter().flat_map(|r| r.columns()) {
                    if !all.iter().any(|c| c == column) {
                        all.push(column.to_string());
                    }
                }
                all.join(", ")
            }
            None => "*".to_string(),
        };
        let order = match &self.order_by {
            Some(order) => format!(" ORDER BY {order}"),
            None => String::new(),
        };
        format!("SELECT {columns} FROM {} WHERE {} = '{credit_code}'{order}", self.dataset, self.key)
    }

    /// The heading of this section in Chinese and English.
    pub fn heading(&self) -> SectionTitle {
        self.title.clone().unwrap_or_else(|| SectionTitle { zh: self.name.clone(), en: self.name.clone() })
    }

    /// The problems of this section (at index `i`), given the configured datasets.
    fn problems(&self, i: usize, datasets: &BTreeSet<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        let at = |key: &str| format!("public.sections[{i}].{key}");
        if !is_identifier(&self.name) {
            problems.push(format!("{}: `{}` must be a lowercase identifier", at("name"), self.name));
        }
        if RESERVED_SECTION_NAMES.contains(&self.name.as_str()) || self.name.starts_with("on_") {
            problems.push(format!(
                "{}: `{}` is a field of the public answer itself (reserved: {}, on_…)",
                at("name"),
                self.name,
                RESERVED_SECTION_NAMES.join(", ")
            ));
        }
        if !datasets.contains(self.dataset.as_str()) {
            problems.push(format!("{}: `{}` is not a configured dataset", at("dataset"), self.dataset));
        }
        if !is_identifier(&self.key) {
            problems.push(format!("{}: `{}` must be a column name", at("key"), self.key));
        }
        for column in self.columns.iter().flatten() {
            if !is_identifier(column) {
                problems.push(format!("{}: `{column}` must be a column name", at("columns")));
            }
        }
        if let Some(order) = &self.order_by {
            let mut words = order.split(' ');
            let column_ok = words.next().is_some_and(is_identifier);
            let direction_ok = words.next().is_none_or(|d| d == "asc" || d == "desc");
            if !column_ok || !direction_ok || words.next().is_some() {
                problems.push(format!(
                    "{}: `{order}` must be a column, optionally followed by asc or desc",
                    at("order_by")
                ));
            }
        }
        if let Some(rule) = &self.publication {
            problems.extend(rule.problems(&at("publication")));
        }
        problems
    }
}

/// The gateway's state directory and deployment secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// State directory (created if missing).
    pub dir: PathBuf,
    /// Deployment secret (keyed-hash masks, subject hashes); created with mode
    /// 0600 if missing. Defaults to `<dir>/secret.key`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Where consents, daily quotas and the audit log are kept: `local`
    /// (files in `dir`, one gateway) or `postgres` (shared by replicas).
    #[serde(default)]
    pub backend: StateBackend,
    /// `postgres://user@host:port/database` (`backend = "postgres"`); no password in it.
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the database password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the database password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PostgreSQL schema of the tables (default `creditgate`; created and
    /// migrated at start).
    #[serde(default)]
    pub schema: Option<String>,
    /// This replica's id, unique among the replicas sharing the database
    /// (default: the host name). Its audit chain is kept under it.
    #[serde(default)]
    pub replica_id: Option<String>,
    /// Pooled database connections (default 16).
    #[serde(default)]
    pub pool_size: Option<u32>,
}

/// Where the gateway keeps what it must remember.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// Files in the state directory (one gateway).
    #[default]
    Local,
    /// PostgreSQL, shared by every replica.
    Postgres,
}

impl StateConfig {
    /// Local state in `dir` (files, one gateway), the secret in `dir`.
    pub fn local(dir: PathBuf) -> Self {
        StateConfig {
            dir,
            secret_file: None,
            backend: StateBackend::Local,
            url: None,
            password_file: None,
            password_env: None,
            schema: None,
            replica_id: None,
            pool_size: None,
        }
    }

    /// The secret file path.
    pub fn secret_path(&self) -> PathBuf {
        self.secret_file.clone().unwrap_or_else(|| self.dir.join("secret.key"))
    }

    /// Every problem of the `[state]` table (without reading the password).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let postgres_only: [(&str, bool); 6] = [
            ("url", self.url.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_env", self.password_env.is_some()),
            ("schema", self.schema.is_some()),
            ("replica_id", self.replica_id.is_some()),
            ("pool_size", self.pool_size.is_some()),
        ];
        match self.backend {
            StateBackend::Local => {
                for (key, set) in postgres_only {
                    if set {
                        problems.push(format!("state.{key}: only used with backend = \"postgres\""));
                    }
                }
            }
            StateBackend::Postgres => {
                if self.url.is_none() {
                    problems.push(
                        "state.url: required with backend = \"postgres\" (postgres://user@host:port/database)"
                            .to_string(),
                    );
                }
                if self.password_file.is_some() && self.password_env.is_some() {
                    problems.push("state.password_file, state.password_env: give one of them, not both".to_string());
                }
                if let Some(url) = &self.url {
                    let mut settings = creditgate_state::PgSettings::new(url.clone(), self.replica());
                    if let Some(schema) = &self.schema {
                        settings.schema = schema.clone();
                    }
                    if let Some(size) = self.pool_size {
                        settings.pool_size = size;
                    }
                    problems.extend(settings.problems().into_iter().map(|p| format!("state.{p}")));
                }
            }
        }
        problems
    }

    /// This replica's id: `replica_id`, else the host name.
    pub fn replica(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| creditgate_state::is_replica_id(h))
                .unwrap_or_else(|| "gateway".to_string())
        })
    }

    /// The PostgreSQL settings (`None` for the local backend), with the
    /// password read from its file or environment variable.
    pub fn postgres(&self) -> Result<Option<creditgate_state::PgSettings>, String> {
        let (StateBackend::Postgres, Some(url)) = (self.backend, &self.url) else { return Ok(None) };
        let mut settings = creditgate_state::PgSettings::new(url.clone(), self.replica());
        if let Some(schema) = &self.schema {
            settings.schema = schema.clone();
        }
        if let Some(size) = self.pool_size {
            settings.pool_size = size;
        }
        settings.password = match (&self.password_file, &self.password_env) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("state.password_file: cannot read {}: {e}", file.display()))?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| format!("state.password_env: the environment variable {var} is not set"))?,
            ),
            (None, None) => None,
        };
        Ok(Some(settings))
    }
}

/// Default number of records between audit checkpoints.
pub const DEFAULT_AUDIT_CHECKPOINT_RECORDS: u64 = 1000;
/// Default seconds between audit checkpoints.
pub const DEFAULT_AUDIT_CHECKPOINT_SECONDS: u64 = 60;
/// Default audit retention: 3 years (PIPL §55–56 processing records).
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 1096;

/// Default time zone the console and reports show times in.
pub const DEFAULT_AUDIT_TIME_ZONE: &str = "Asia/Shanghai";

/// Audit log settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Signed checkpoint after this many records.
    #[serde(default = "default_checkpoint_records")]
    pub checkpoint_every_records: u64,
    /// Signed checkpoint at least this often (seconds) while records arrive.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_every_seconds: u64,
    /// Records older than this are pruned (at least 183 days).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// The deployment's time zone (an IANA name such as `Asia/Shanghai`):
    /// the console and subject reports show times in it, with UTC beside.
    /// Records are kept in UTC.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

impl AuditConfig {
    /// The configured time zone ([`DEFAULT_AUDIT_TIME_ZONE`] if it is not a
    /// known IANA name, which [`GatewayConfig::validate`] refuses).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::Tz::Asia__Shanghai)
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_records: DEFAULT_AUDIT_CHECKPOINT_RECORDS,
            checkpoint_every_seconds: DEFAULT_AUDIT_CHECKPOINT_SECONDS,
            retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            time_zone: DEFAULT_AUDIT_TIME_ZONE.to_string(),
        }
    }
}

fn default_checkpoint_records() -> u64 {
    DEFAULT_AUDIT_CHECKPOINT_RECORDS
}
fn default_checkpoint_seconds() -> u64 {
    DEFAULT_AUDIT_CHECKPOINT_SECONDS
}
fn default_retention_days() -> u32 {
    DEFAULT_AUDIT_RETENTION_DAYS
}
fn default_time_zone() -> String {
    DEFAULT_AUDIT_TIME_ZONE.to_string()
}

/// Listeners and the gateway's server certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Flight SQL listener (mTLS).
    pub flight_listen: SocketAddr,
    /// HTTP/JSON listener (mTLS).
    pub http_listen: SocketAddr,
    /// Public disclosure listener (server TLS only, role `public`); off when absent.
    #[serde(default)]
    pub public_listen: Option<SocketAddr>,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to.
    pub client_ca: PathBuf,
    /// CRLs of `client_ca`: checked at every handshake, read again on
    /// SIGHUP, when a file changes and when a CRL passes its next update;
    /// open connections whose certificate a new CRL revokes are closed.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Refuse clients while a CRL is past its next-update time.
    #[serde(default)]
    pub enforce_crl_expiry: bool,
    /// How often the CRL files are checked for changes, in seconds.
    #[serde(default = "default_crl_check_interval")]
    pub crl_check_interval_seconds: u64,
    /// Connections of callers are asked to close (HTTP/2 GOAWAY) at this
    /// age, in seconds, and closed a grace period later: a missed CRL reload
    /// is bounded by it.
    #[serde(default = "default_max_connection_age")]
    pub max_connection_age_seconds: u64,
    /// TLS handshake timeout in milliseconds.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// Memory limit of one query in bytes (an operator needing more fails; nothing spills to disk).
    #[serde(default = "default_memory_limit")]
    pub memory_limit_bytes: usize,
    /// On shutdown, how long in-flight requests may take to finish (ms);
    /// then the listeners are closed regardless and the final audit
    /// checkpoint is written.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_ms: u64,
}

/// The gateway's client certificate for connecting to connectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Client certificate chain (PEM).
    pub client_cert: PathBuf,
    /// Client private key (PEM).
    pub client_key: PathBuf,
}

/// One connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRef {
    /// Source name (e.g. `court`).
    pub name: SourceName,
    /// `host:port` of its Flight SQL endpoint.
    pub endpoint: String,
    /// The name its certificate must carry: a DNS name or IP address (SAN).
    pub server_name: String,
    /// The connector's own identity: its certificate's subject CN or URI SAN
    /// must equal this. Set it whenever one CA signs several connectors, so
    /// one department's connector cannot answer in another's place.
    #[serde(default)]
    pub identity: Option<String>,
    /// CA bundle that signs the connector's certificate.
    pub ca: PathBuf,
    /// Connect deadline in milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// First-batch deadline in milliseconds.
    #[serde(default = "default_first_batch_timeout")]
    pub first_batch_timeout_ms: u64,
    /// Whole-result deadline in milliseconds.
    #[serde(default = "default_total_timeout")]
    pub total_timeout_ms: u64,
}

/// A logical dataset, `schema.table`, served by one connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Logical name, `schema.table` (e.g. `court.dishonest_debtors`).
    pub name: DatasetName,
    /// The connector serving it.
    pub connector: SourceName,
    /// Table name at the connector (defaults to the part after the dot).
    #[serde(default)]
    pub table: Option<String>,
}

impl DatasetConfig {
    /// The table name at the connector.
    pub fn remote_table(&self) -> &str {
        self.table.as_deref().unwrap_or(self.name.table())
    }
}

fn default_crl_check_interval() -> u64 {
    creditgate_certs::revocation::DEFAULT_CRL_CHECK_INTERVAL.as_secs()
}
fn default_max_connection_age() -> u64 {
    creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs()
}
fn default_handshake_timeout() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}
fn default_memory_limit() -> usize {
    DEFAULT_MEMORY_LIMIT_BYTES
}
/// Default of `server.shutdown_grace_ms`.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
fn default_shutdown_grace() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_MS
}
fn default_connect_timeout() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_first_batch_timeout() -> u64 {
    DEFAULT_FIRST_BATCH_TIMEOUT_MS
}
fn default_total_timeout() -> u64 {
    DEFAULT_TOTAL_TIMEOUT_MS
}

impl GatewayConfig {
    /// Reads, parses and validates a config file; relative paths are resolved
    /// against the file's directory. All problems are reported together.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        creditgate_files::config::load(path, |config: &mut GatewayConfig| config.resolve_paths(&base), Self::problems)
            .map_err(GatewayError::Config)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.cert);
        fix(&mut self.server.key);
        fix(&mut self.server.client_ca);
        self.server.crls.iter_mut().for_each(fix);
        fix(&mut self.upstream.client_cert);
        fix(&mut self.upstream.client_key);
        fix(&mut self.policy);
        if let Some(grading) = self.grading.as_mut() {
            fix(&mut grading.template);
        }
        for issuer in &mut self.consent_issuers {
            if let Some(file) = issuer.public_key_file.as_mut() {
                fix(file);
            }
        }
        fix(&mut self.state.dir);
        if let Some(secret) = self.state.secret_file.as_mut() {
            fix(secret);
        }
        if let Some(password) = self.state.password_file.as_mut() {
            fix(password);
        }
        self.connectors.iter_mut().for_each(|c| fix(&mut c.ca));
    }

    /// Checks references and names; returns every problem found, joined.
    pub fn validate(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }

    /// Every problem of the config, each `key: reason`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(grading) = &self.grading {
            if !(1..=64).contains(&grading.batch_concurrency) {
                problems.push("grading.batch_concurrency: between 1 and 64".to_string());
            }
            if let Some(registry) = &grading.registry {
                let dataset_ok =
                    registry.dataset.split_once('.').is_some_and(|(a, b)| is_identifier(a) && is_identifier(b));
                if !dataset_ok {
                    problems.push(format!("grading.registry.dataset: `{}` must be schema.table", registry.dataset));
                }
                for (key, column) in [("credit_code", &registry.credit_code), ("district", &registry.district)] {
                    if !is_identifier(column) {
                        problems.push(format!("grading.registry.{key}: `{column}` must be a lowercase column name"));
                    }
                }
            }
        }
        let mut connectors = BTreeSet::new();
        for (i, c) in self.connectors.iter().enumerate() {
            if !connectors.insert(c.name.as_str()) {
                problems.push(format!("connectors[{i}].name: `{}` is declared twice", c.name));
            }
            if c.endpoint.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                problems.push(format!("connectors[{i}].endpoint: `{}` must be host:port", c.endpoint));
            }
            if c.connect_timeout_ms == 0 || c.first_batch_timeout_ms == 0 || c.total_timeout_ms == 0 {
                problems.push(format!("connectors[{i}]: deadlines must be greater than 0 ms"));
            }
        }
        let mut datasets = BTreeSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            if !datasets.insert(d.name.as_str()) {
                problems.push(format!("datasets[{i}].name: `{}` is declared twice", d.name));
            }
            if !connectors.contains(d.connector.as_str()) {
                problems.push(format!("datasets[{i}].connector: unknown connector `{}`", d.connector));
            }
        }
        let mut names = BTreeSet::new();
        for (i, section) in self.public.sections.iter().enumerate() {
            problems.extend(section.problems(i, &datasets));
            if !names.insert(section.name.as_str()) {
                problems.push(format!("public.sections[{i}].name: `{}` is declared twice", section.name));
            }
        }
        problems.extend(self.public.problems());
        problems.extend(self.state.problems());
        if self.audit.retention_days < 183 {
            problems.push(format!(
                "audit.retention_days: {} is below the 183-day (6-month) minimum for network logs",
                self.audit.retention_days
            ));
        }
        if self.server.crl_check_interval_seconds == 0 {
            problems.push("server.crl_check_interval_seconds: must be at least 1".to_string());
        }
        if self.server.max_connection_age_seconds == 0 {
            problems.push("server.max_connection_age_seconds: must be at least 1".to_string());
        }
        if self.audit.checkpoint_every_records == 0 || self.audit.checkpoint_every_seconds == 0 {
            problems.push("audit: checkpoint intervals must be greater than 0".to_string());
        }
        if self.audit.time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "audit.time_zone: `{}` is not an IANA time zone name (for example {DEFAULT_AUDIT_TIME_ZONE} or UTC)",
                self.audit.time_zone.chars().take(60).collect::<String>()
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/gateway.toml");

    #[test]
    fn committed_example_is_valid() {
        let mut config: GatewayConfig = toml::from_str(EXAMPLE).expect("example parses");
        config.resolve_paths(Path::new("/srv/creditgate"));
        config.validate().expect("example validates");
        assert_eq!(config.datasets[2].remote_table(), "dishonest_debtors");
        assert_eq!(config.server.client_ca, PathBuf::from("/srv/creditgate/certs/ca.pem"));
        assert_eq!(config.state.secret_path(), PathBuf::from("/srv/creditgate/state/secret.key"));
        assert_eq!(config.policy, PathBuf::from("/srv/creditgate/policy.toml"));
        assert_eq!(config.consent_issuers.len(), 1, "the example shows a consent issuer");
        let grading = config.grading.as_ref().expect("the example grades");
        assert_eq!(grading.template, PathBuf::from("/srv/creditgate/grading.toml"));
        assert_eq!(config.consent_issuers[0].id, "credit-platform");
        assert_eq!(
            config.consent_issuers[0].public_key_file,
            Some(PathBuf::from("/srv/creditgate/keys/credit-platform.key.pub"))
        );
    }

    #[test]
    fn the_state_backend_is_checked_with_the_rest() {
        let local =
            EXAMPLE.replace("dir = \"state\"", "dir = \"state\"\nurl = \"postgres://u@h/db\"\nreplica_id = \"gw-1\"");
        let config: GatewayConfig = toml::from_str(&local).expect("parses");
        let problems = config.state.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("state.url: only used with backend = \"postgres\""), "{problems:?}");

        let postgres = EXAMPLE.replace(
            "dir = \"state\"",
            "dir = \"state\"\nbackend = \"postgres\"\nurl = \"postgres://u:pw@h/db\"\nschema = \"Not-An-Ident\"\n\
             password_file = \"a\"\npassword_env = \"B\"",
        );
        let config: GatewayConfig = toml::from_str(&postgres).expect("parses");
        let problems = config.validate().expect_err("invalid");
        for expected in ["give one of them, not both", "must not contain a password", "state.schema: `Not-An-Ident`"] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        let missing = EXAMPLE.replace("dir = \"state\"", "dir = \"state\"\nbackend = \"postgres\"");
        let config: GatewayConfig = toml::from_str(&missing).expect("parses");
        assert!(config.validate().expect_err("no url").contains("state.url: required"));

        // The password comes from its file, never from the URL.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let good = EXAMPLE.replace(
            "dir = \"state\"",
            &format!(
                "dir = \"state\"\nbackend = \"postgres\"\nurl = \"postgres://u@h/db\"\npassword_file = \"{}\"",
                dir.path().join("pw").display()
            ),
        );
        let config: GatewayConfig = toml::from_str(&good).expect("parses");
        config.validate().expect("valid");
        let settings = config.state.postgres().expect("readable").expect("postgres");
        assert_eq!(settings.password.as_deref(), Some("s3cret"));
        assert_eq!(settings.schema, "creditgate");
        let unset = good.replace(
            &format!("password_file = \"{}\"", dir.path().join("pw").display()),
            "password_env = \"CG_TEST_UNSET_PASSWORD_VAR\"",
        );
        let config: GatewayConfig = toml::from_str(&unset).expect("parses");
        assert!(config.state.postgres().expect_err("unset variable").contains("CG_TEST_UNSET_PASSWORD_VAR is not set"));
    }

    #[test]
    fn every_problem_is_reported_together() {
        let text = EXAMPLE
            .replace("connector = \"court\"", "connector = \"courts\"")
            .replace("retention_days = 1096", "retention_days = 30")
            .replace("name = \"market.penalties\"", "name = \"market.enterprises\"");
        let config: GatewayConfig = toml::from_str(&text).expect("parses");
        let problems = config.validate().expect_err("invalid");
        assert!(problems.contains("datasets[2].connector: unknown connector `courts`"), "{problems}");
        assert!(problems.contains("audit.retention_days: 30"), "{problems}");
        assert!(problems.contains("`market.enterprises` is declared twice"), "{problems}");
    }

    #[test]
    fn the_time_zone_is_an_iana_name_shanghai_by_default() {
        let config: GatewayConfig = toml::from_str(EXAMPLE).expect("parses");
        assert_eq!(AuditConfig::default().time_zone, "Asia/Shanghai");
        for (zone, ok) in [
            ("Asia/Shanghai", true),
            ("UTC", true),
            ("Europe/Berlin", true),
            ("Asia/Beijing", false),
            ("+08:00", false),
        ] {
            let mut config = config.clone();
            config.audit.time_zone = zone.to_string();
            let result = config.validate();
            assert_eq!(result.is_ok(), ok, "{zone}: {result:?}");
            if !ok {
                assert!(
                    result
                        .expect_err("invalid")
                        .contains(&format!("audit.time_zone: `{zone}` is not an IANA time zone"))
                );
            }
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = EXAMPLE.replace("first_batch_timeout_ms", "first_batch_timout_ms");
        let error = toml::from_str::<GatewayConfig>(&text).expect_err("typo");
        assert!(error.to_string().contains("first_batch_timout_ms"), "{error}");
    }

    #[test]
    fn bad_dataset_and_source_names_are_refused_with_their_key_and_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = EXAMPLE
            .replace("name = \"market.penalties\"", "name = \"Market.penalties\"")
            .replace("name = \"court\"", "name = \"Court\"")
            .replace("retention_days = 1096", "retention_days = 30");
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, text).expect("write");
        let message = GatewayConfig::load(&file).expect_err("invalid").to_string();
        for expected in [
            "datasets[1].name: `Market.penalties` is not a dataset name",
            "connectors[1].name: `Court` is not a source name",
            "audit.retention_days: 30 is below",
        ] {
            assert!(message.contains(expected), "`{expected}` not in:\n{message}");
        }
    }

    #[test]
    fn a_file_with_mistakes_of_every_kind_reports_them_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = EXAMPLE
            .replace("first_batch_timeout_ms", "first_batch_timout_ms")
            .replace("flight_listen = \"127.0.0.1:7000\"", "flight_listen = 7000")
            .replace("retention_days = 1096", "retention_days = 30")
            .replace("connector = \"court\"", "connector = \"courts\"");
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, text).expect("write");
        let message = GatewayConfig::load(&file).expect_err("invalid").to_string();
        for expected in [
            "connectors[0].first_batch_timout_ms: unknown key (did you mean `first_batch_timeout_ms`?)",
            "server.flight_listen: invalid type",
            "audit.retention_days: 30 is below",
            "datasets[2].connector: unknown connector `courts`",
        ] {
            assert!(message.contains(expected), "`{expected}` not in:\n{message}");
        }
        assert!(message.contains("gateway.toml: 4 problems"), "{message}");
    }
}
