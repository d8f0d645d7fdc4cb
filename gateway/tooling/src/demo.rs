//! `creditgate demo`: the whole federation on loopback, and a guided tour.
//!
//! [`Lab`] builds everything a real deployment has — a CA and certificates,
//! the synthetic data, one connector per source, the gateway — in one
//! directory, on ephemeral loopback ports. The demo and the end-to-end tests
//! both use it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use clap::Args;
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_connector::{Connector, ConnectorConfig, RunningConnector};
use creditgate_datagen::{GenOptions, Manifest};
use serde::Serialize;

use crate::client::{ClientIdentity, FlightClient, flight_error_text, http_request};
use creditgate_engine::audit::AuditSink;
use creditgate_engine::config::{
    AddressRateLimit, AuditConfig, ConnectorRef, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_FIRST_BATCH_TIMEOUT_MS,
    DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_SHUTDOWN_GRACE_MS, DEFAULT_TOTAL_TIMEOUT_MS,
    DatasetConfig, DisclosureSection, GatewayConfig, PublicConfig, SearchConfig, SectionShape, SectionTitle,
    ServerConfig, StateConfig, UpstreamConfig,
};
use creditgate_engine::{Engine, PURPOSE_HEADER};
use creditgate_server::RunningGateway;

/// Arguments of `creditgate demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Directory for certificates, data, configs and logs.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Row-count multiplier of the generated data.
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Keep everything running after the tour until Ctrl-C / SIGTERM, and
    /// write DIR/endpoints.json.
    #[arg(long)]
    pub serve: bool,
    /// Where the sources keep their data (`--backend mixed`: some on PostgreSQL, one on MariaDB).
    #[command(flatten)]
    pub storage: crate::demo_backend::BackendArgs,
    /// Print the connectors' and the gateway's logs between the tour's
    /// steps (by default they go to DIR/logs/demo.log).
    #[arg(long)]
    pub verbose: bool,
    /// Language of the tour: zh (简体中文, the default) or en.
    #[arg(long, value_enum, default_value_t = Lang::Zh)]
    pub lang: Lang,
    /// With --serve: run N gateway replicas (N ≥ 2) as separate processes on
    /// the shared state of --state, behind HAProxy (TCP passthrough, round
    /// robin); the tour and DIR/endpoints.json use the balanced front ends.
    #[arg(long, value_name = "N")]
    pub replicas: Option<usize>,
    /// The replicas' shared state: postgres://user@host:port/database (no
    /// password in it; see --state-password-env).
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// PostgreSQL schema of the replicas' shared state.
    #[arg(long, value_name = "SCHEMA", default_value = crate::replicas::DEFAULT_SCHEMA)]
    pub state_schema: String,
    /// Environment variable holding the PostgreSQL password, if it needs one.
    #[arg(long, value_name = "VAR")]
    pub state_password_env: Option<String>,
}

/// The tour's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// 简体中文.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh` or `en`, as this language reads.
    pub fn pick(self, zh: impl Into<String>, en: impl Into<String>) -> String {
        match self {
            Lang::Zh => zh.into(),
            Lang::En => en.into(),
        }
    }
}

impl DemoArgs {
    /// Where the logs go: `None` for standard error (`--verbose`).
    pub fn log_file(&self) -> Option<PathBuf> {
        (!self.verbose).then(|| self.dir.join("logs").join("demo.log"))
    }

    /// The replicas asked for (`--replicas N --state URL`, with `--serve`),
    /// `None` for the one in-process gateway; every misuse of the options
    /// is an error saying what is missing.
    pub fn replica_plan(&self) -> Result<Option<(usize, crate::replicas::SharedState)>, String> {
        match (self.replicas, &self.state) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("--state is the shared state of replicas: use it with --replicas N (N ≥ 2) and \
                                    --serve"
                .to_string()),
            (Some(n), _) if n < 2 => Err(format!(
                "--replicas {n}: replicas come in twos or more (N ≥ 2); for one gateway leave --replicas out"
            )),
            (Some(_), _) if !self.serve => {
                Err("--replicas needs --serve: the replicas keep running until Ctrl-C or SIGTERM".to_string())
            }
            (Some(_), None) => Err("--replicas needs --state postgres://user@host:port/database, the PostgreSQL \
                                    state the replicas share (e.g. postgres://postgres@127.0.0.1:5432/test)"
                .to_string()),
            (Some(n), Some(url)) => {
                let mut state = crate::replicas::SharedState::new(url.clone(), self.state_schema.clone());
                state.password_env = self.state_password_env.clone();
                Ok(Some((n, state)))
            }
        }
    }
}

/// Where requests go: the lab's own gateway, or the balanced front ends of
/// its replicas (the public listener of the first replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Front {
    /// Flight SQL address.
    pub flight: SocketAddr,
    /// HTTP (mTLS) address.
    pub http: SocketAddr,
    /// Public disclosure listener, if any.
    pub public: Option<SocketAddr>,
}

/// The SPIFFE identity of the gateway towards connectors.
pub const GATEWAY_ORG: &str = "creditgate-gateway";
/// The demo's consent issuer (the public credit platform).
pub const CONSENT_ISSUER: &str = "credit-platform";

/// Server name all loopback certificates carry.
pub const SERVER_NAME: &str = "localhost";

/// One demo caller.
#[derive(Debug, Clone, Serialize)]
pub struct DemoCaller {
    /// Short name (also the certificate file stem).
    pub name: String,
    /// Role: agency, credit_agency, platform, privacy_officer.
    pub role: String,
    /// Organisation name.
    pub organization: String,
    /// Organisation id (in the SPIFFE URI).
    pub org_id: String,
    /// Allowed purpose codes.
    pub purposes: Vec<String>,
    /// Whether the gateway's config knows this caller.
    pub known: bool,
    /// Certificate file.
    pub cert: PathBuf,
    /// Key file.
    pub key: PathBuf,
}

struct CallerSpec {
    name: &'static str,
    role: &'static str,
    organization: &'static str,
    purposes: &'static [&'static str],
    known: bool,
}

/// The demo callers. Each certificate's organisation (subject O) is the
/// Chinese name the policy's `[organizations]` gives that principal, so
/// certificates, `endpoints.json`, the policy and the console agree.
const CALLERS: &[CallerSpec] = &[
    CallerSpec {
        name: "samr",
        role: "agency",
        organization: "青岛市市场监督管理局",
        purposes: &["licensing_review", "supervision", "joint_punishment"],
        known: true,
    },
    CallerSpec {
        name: "credit_agency",
        role: "credit_agency",
        organization: "青岛诚信征信服务有限公司",
        purposes: &["credit_report", "credit_assessment"],
        known: true,
    },
    CallerSpec {
        name: "platform_a",
        role: "platform",
        organization: "平台A电子商务有限公司",
        purposes: &["merchant_onboarding"],
        known: true,
    },
    CallerSpec {
        name: "privacy_officer",
        role: "privacy_officer",
        organization: "青岛市公共信用信息中心",
        purposes: &["audit"],
        known: true,
    },
    CallerSpec {
        name: "stranger",
        role: "none",
        organization: "未登记机构 (an organisation not in the gateway config)",
        purposes: &[],
        known: false,
    },
];

/// Options for [`Lab::start`].
#[derive(Clone)]
pub struct LabOptions {
    /// Working directory.
    pub dir: PathBuf,
    /// Data scale.
    pub scale: u32,
    /// Reference date of the data.
    pub as_of: chrono::NaiveDate,
    /// Deadlines applied to every connector (ms): connect, first batch, total.
    pub deadlines_ms: (u64, u64, u64),
    /// Policy text; the committed demo policy when `None`.
    pub policy: Option<String>,
    /// Per-query memory limit of the gateway.
    pub memory_limit_bytes: usize,
    /// Where each source keeps its data (Parquet by default).
    pub backend: crate::demo_backend::BackendArgs,
    /// Where audit records go instead of the log: set only by the benchmark
    /// that measures the audit's cost (the log still exists and verifies).
    pub audit_sink: Option<Arc<dyn AuditSink>>,
    /// How often the gateway and the connectors check the CRL file for
    /// changes (seconds).
    pub crl_check_interval_seconds: u64,
    /// Maximum age of a caller's connection to the gateway (seconds).
    pub max_connection_age_seconds: u64,
    /// Sources whose connector is stopped before the gateway starts (its
    /// config and port stay in `Lab::connector_configs`, to start it later):
    /// a source down since the gateway started.
    pub down_at_start: Vec<String>,
}

/// The demo's public window: an enterprise's registration and licences,
/// its public penalties (SAMR Order 45 periods), red and black list status
/// (black list: minimum/maximum periods per severity), the credit
/// commitments of its shops on both platforms and their real-name marks.
pub fn demo_public_window() -> PublicConfig {
    use creditgate_engine::publication::{ListPeriods, Order45, Period, PublicationRule};
    let strings = |list: &[&str]| Some(list.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    let section =
        |name: &str, dataset: &str, key: &str, columns: &[&str], order_by: Option<&str>, shape, title: (&str, &str)| {
            DisclosureSection {
                name: name.to_string(),
                dataset: dataset.to_string(),
                key: key.to_string(),
                columns: strings(columns),
                order_by: order_by.map(str::to_string),
                shape,
                title: Some(SectionTitle { zh: title.0.to_string(), en: title.1.to_string() }),
                publication: None,
            }
        };
    let order_45 = PublicationRule::SamrOrder45(Order45 {
        published_on: "decision_date".into(),
        kind: "penalty_kind".into(),
        amount: "amount".into(),
        annulled: "annulled".into(),
        low_fine_max: creditgate_datagen::LOW_FINE_MAX,
        warning_kinds: vec!["warning".into()],
        criticism_kinds: vec!["criticism".into()],
        fine_kinds: vec!["fine".into()],
    });
    let list_periods = PublicationRule::ListPeriods(ListPeriods {
        listed_on: "listed_date".into(),
        ends_on: Some("event_end_date".into()),
        severity: "severity".into(),
        periods: BTreeMap::from([
            ("serious".to_string(), Period { min_months: 6, max_months: 36 }),
            ("general".to_string(), Period { min_months: 3, max_months: 12 }),
        ]),
    });
    let mut penalties = section(
        "penalties",
        "market.penalties",
        "credit_code",
        &[
            "penalty_id",
            "decision_no",
            "violation",
            "penalty_kind",
            "amount",
            "decision_date",
            "department",
            "is_public",
            "disputed",
        ],
        Some("decision_date desc"),
        SectionShape::Records,
        ("行政处罚信息", "Administrative penalties"),
    );
    penalties.publication = Some(order_45);
    let mut black_list = section(
        "black_list",
        "credit_platform.black_list",
        "credit_code",
        &["entry_id", "basis", "listing_department", "listed_date", "severity", "disputed"],
        Some("listed_date desc"),
        SectionShape::Membership,
        ("严重失信主体名单（黑名单）", "Black list (serious dishonesty)"),
    );
    black_list.publication = Some(list_periods);
    let shops = |platform: &str, zh: &str, en: &str| {
        section(
            &format!("shops_{platform}"),
            &format!("{platform}.shops"),
            "owner_credit_code",
            &["shop_id", "shop_name", "real_name_verified", "status"],
            Some("shop_id"),
            SectionShape::Records,
            (zh, en),
        )
    };
    let commitments = |platform: &str, zh: &str, en: &str| {
        section(
            &format!("commitments_{platform}"),
            &format!("{platform}.commitments"),
            "owner_credit_code",
            &["shop_id", "commitment", "signed_date"],
            Some("signed_date desc"),
            SectionShape::Records,
            (zh, en),
        )
    };
    PublicConfig {
        sections: vec![
            section(
                "enterprise",
                "market.enterprises",
                "credit_code",
                &[
                    "credit_code",
                    "name",
                    "registered_capital",
                    "established_date",
                    "district_code",
                    "business_scope",
                    "status",
                ],
                None,
                SectionShape::Record,
                ("登记信息", "Registration"),
            ),
            section(
                "licences",
                "market.licences",
                "credit_code",
                &["licence_no", "licence_type", "issuer", "issued_date", "expiry_date"],
                Some("issued_date desc"),
                SectionShape::Records,
                ("行政许可", "Licences"),
            ),
            penalties,
            section(
                "red_list",
                "credit_platform.red_list",
                "credit_code",
                &["entry_id", "basis", "listing_department", "listed_date", "expiry_date"],
                Some("listed_date desc"),
                SectionShape::Membership,
                ("守信激励名单（红名单）", "Red list (trustworthy)"),
            ),
            black_list,
            commitments("platform_a", "信用承诺（平台A）", "Credit commitments (Platform A)"),
            commitments("platform_b", "信用承诺（平台B）", "Credit commitments (platform B)"),
            shops("platform_a", "网店实名核验（平台A）", "Shops' real-name marks (Platform A)"),
            shops("platform_b", "网店实名核验（平台B）", "Shops' real-name marks (platform B)"),
        ],
        search: Some(SearchConfig {
            name: "name".into(),
            columns: Some(vec!["credit_code".into(), "name".into(), "district_code".into(), "status".into()]),
            page_size: creditgate_engine::config::DEFAULT_SEARCH_PAGE_SIZE,
        }),
        rate_limit_per_address: Some(AddressRateLimit { per_second: 10, burst: 40 }),
    }
}

/// The identity (certificate CN) of the demo connector of `source`.
pub fn connector_identity(source: &str) -> String {
    format!("{}-connector", source.replace('_', "-"))
}

/// The committed demo policy (`policy/core/examples/demo-policy.toml`).
pub const DEMO_POLICY: &str = include_str!("../../../policy/core/examples/demo-policy.toml");

impl LabOptions {
    /// Defaults: scale 1, today, default deadlines.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            scale: 1,
            as_of: chrono::Local::now().date_naive(),
            deadlines_ms: (DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_FIRST_BATCH_TIMEOUT_MS, DEFAULT_TOTAL_TIMEOUT_MS),
            policy: None,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            backend: crate::demo_backend::BackendArgs::default(),
            audit_sink: None,
            crl_check_interval_seconds: creditgate_certs::revocation::DEFAULT_CRL_CHECK_INTERVAL.as_secs(),
            max_connection_age_seconds: creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs(),
            down_at_start: Vec::new(),
        }
    }
}

/// Everything of a running federation.
pub struct Lab {
    /// Working directory.
    pub dir: PathBuf,
    /// The CA certificate (signs every server and client).
    pub ca_file: PathBuf,
    /// The data manifest.
    pub manifest: Manifest,
    /// Demo callers with their certificate files.
    pub callers: Vec<DemoCaller>,
    /// Running connectors by source name.
    pub connectors: BTreeMap<String, RunningConnector>,
    /// Connector configs by source name (as written to disk, with the bound port).
    pub connector_configs: BTreeMap<String, ConnectorConfig>,
    /// The gateway config (as written to DIR/gateway.toml).
    pub gateway_config: GatewayConfig,
    /// The running gateway.
    pub gateway: RunningGateway,
    /// The consent issuer's signing key (the public credit platform).
    pub consent_key: Arc<creditgate_consent::IssuerKey>,
    /// The gateway object (for in-process inspection in tests).
    pub gateway_handle: Arc<Engine>,
}

fn io(context: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{context} {}: {e}", path.display())
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = toml::to_string_pretty(value).map_err(|e| io("cannot encode", path, e))?;
    write_public(path, text.as_bytes())
}

/// Writes a demo file (configs, CRL, endpoints) with the workspace's one atomic write.
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use creditgate_files::{Access, Existing};
    creditgate_files::write_atomic(path, bytes, Access::Public, Existing::Replace).map_err(|e| e.to_string())
}

fn loopback_ips() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
}

impl Lab {
    /// Makes certificates and data (reusing what `dir` already has), starts a
    /// connector per source and the gateway on loopback ports.
    pub async fn start(options: LabOptions) -> Result<Lab, String> {
        let dir = options.dir.clone();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).map_err(|e| io("cannot create", &certs, e))?;
        let ca = if certs.join("ca.pem").exists() {
            DevCa::load(&certs).map_err(|e| e.to_string())?
        } else {
            DevCa::init(&certs, "creditgate demo CA").map_err(|e| e.to_string())?
        };
        let ca_file = certs.join("ca.pem");
        let crl_file = certs.join("crl.pem");
        if !crl_file.exists() {
            let crl = ca.crl_pem(&[], Duration::from_secs(30 * 86_400)).map_err(|e| e.to_string())?;
            write_public(&crl_file, crl.as_bytes())?;
        }
        let issue = |request: IssueRequest, stem: &str| -> Result<(PathBuf, PathBuf), String> {
            ca.issue(&request).and_then(|issued| issued.write(&certs, stem)).map_err(|e| e.to_string())
        };
        let server = |name: &str| IssueRequest::server(name, vec![SERVER_NAME.to_string()], loopback_ips());

        // Data.
        let data_dir = dir.join("data");
        let manifest = match creditgate_datagen::read_manifest(&data_dir) {
            Ok(m) if m.scale == options.scale && m.as_of == options.as_of => m,
            _ => {
                let mut generate = GenOptions::new(&data_dir, options.as_of);
                generate.scale = options.scale;
                generate.progress = options.scale > 20;
                creditgate_datagen::generate(&generate).map_err(|e| e.to_string())?
            }
        };

        // Certificates.
        let (gw_server_cert, gw_server_key) = issue(server("creditgate-gateway"), "gateway-server")?;
        let (gw_client_cert, gw_client_key) =
            issue(IssueRequest::client(GATEWAY_ORG, "creditgate gateway", "creditgate-gateway"), "gateway-client")?;
        let gateway_identity =
            creditgate_certs::ca::spiffe_uri(creditgate_certs::ca::DEFAULT_TRUST_DOMAIN, GATEWAY_ORG);
        let mut callers = Vec::new();
        for spec in CALLERS {
            let org_id = spec.name.replace('_', "-");
            let (cert, key) =
                issue(IssueRequest::client(&org_id, spec.organization, spec.name), &format!("caller-{}", spec.name))?;
            callers.push(DemoCaller {
                name: spec.name.to_string(),
                role: spec.role.to_string(),
                organization: spec.organization.to_string(),
                org_id,
                purposes: spec.purposes.iter().map(|p| p.to_string()).collect(),
                known: spec.known,
                cert,
                key,
            });
        }

        // Connectors: one per source, every table and column of the manifest.
        let connectors_dir = dir.join("connectors");
        std::fs::create_dir_all(&connectors_dir).map_err(|e| io("cannot create", &connectors_dir, e))?;
        let mut connectors = BTreeMap::new();
        let mut connector_configs = BTreeMap::new();
        let mut table_configs = crate::demo_backend::table_configs(&manifest, &data_dir, &options.backend).await?;
        for source in &manifest.sources {
            let (cert, key) = issue(server(&connector_identity(&source.name)), &format!("connector-{}", source.name))?;
            let mut config = ConnectorConfig {
                crl_check_interval_seconds: options.crl_check_interval_seconds,
                max_connection_age_seconds: creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs(),
                name: source.name.clone(),
                listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                cert,
                key,
                client_ca: ca_file.clone(),
                crls: vec![crl_file.clone()],
                enforce_crl_expiry: false,
                allowed_clients: vec![gateway_identity.clone()],
                served_log: dir.join("logs").join(format!("served-{}.jsonl", source.name)),
                memory_limit_bytes: creditgate_connector::DEFAULT_MEMORY_LIMIT_BYTES,
                handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
                tables: table_configs.remove(&source.name).unwrap_or_default(),
            };
            let connector = Connector::open(config.clone()).await.map_err(|e| e.to_string())?;
            let running = connector.start().await.map_err(|e| e.to_string())?;
            config.listen = running.addr;
            write_toml(&connectors_dir.join(format!("{}.toml", source.name)), &config)?;
            connectors.insert(source.name.clone(), running);
            connector_configs.insert(source.name.clone(), config);
        }

        // The consent issuer (the public credit platform signs data subjects' consents).
        let (consent_key, _) = creditgate_consent::IssuerKey::load_or_create(&certs.join("consent-issuer.key"))
            .map_err(|e| e.to_string())?;

        // Gateway.
        let policy_file = dir.join("policy.toml");
        write_public(&policy_file, options.policy.as_deref().unwrap_or(DEMO_POLICY).as_bytes())?;
        let grading_file = dir.join("grading.toml");
        write_public(&grading_file, creditgate_grade::DEMO_TEMPLATE.as_bytes())?;
        let (connect, first_batch, total) = options.deadlines_ms;
        let gateway_config = GatewayConfig {
            server: ServerConfig {
                flight_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                http_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                public_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
                cert: gw_server_cert,
                key: gw_server_key,
                client_ca: ca_file.clone(),
                crls: vec![crl_file.clone()],
                enforce_crl_expiry: false,
                crl_check_interval_seconds: options.crl_check_interval_seconds,
                max_connection_age_seconds: options.max_connection_age_seconds,
                handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
                memory_limit_bytes: options.memory_limit_bytes,
                shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            },
            upstream: UpstreamConfig { client_cert: gw_client_cert, client_key: gw_client_key },
            connectors: connector_configs
                .values()
                .map(|c| {
                    Ok(ConnectorRef {
                        name: c.name.parse().map_err(|e| format!("demo connector: {e}"))?,
                        endpoint: c.listen.to_string(),
                        server_name: SERVER_NAME.to_string(),
                        // Every demo connector is `localhost`: its certificate's CN tells them apart.
                        identity: Some(connector_identity(&c.name)),
                        ca: ca_file.clone(),
                        connect_timeout_ms: connect,
                        first_batch_timeout_ms: first_batch,
                        total_timeout_ms: total,
                    })
                })
                .collect::<Result<_, String>>()?,
            datasets: manifest
                .sources
                .iter()
                .flat_map(|s| {
                    s.tables.iter().map(move |t| {
                        Ok(DatasetConfig {
                            name: format!("{}.{}", s.name, t.name).parse().map_err(|e| format!("demo dataset: {e}"))?,
                            connector: s.name.parse().map_err(|e| format!("demo source: {e}"))?,
                            table: None,
                        })
                    })
                })
                .collect::<Result<_, String>>()?,
            policy: policy_file,
            state: StateConfig::local(dir.join("state")),
            audit: AuditConfig::default(),
            consent_issuers: vec![creditgate_consent::IssuerConfig {
                id: CONSENT_ISSUER.to_string(),
                public_key: Some(consent_key.public_key_b64()),
                public_key_file: None,
            }],
            public: demo_public_window(),
            grading: Some(creditgate_engine::config::GradingConfig {
                template: grading_file,
                batch_concurrency: creditgate_engine::config::DEFAULT_BATCH_CONCURRENCY,
                registry: Some(creditgate_engine::config::GradingRegistry {
                    dataset: "market.enterprises".to_string(),
                    credit_code: "credit_code".to_string(),
                    district: "district_code".to_string(),
                }),
            }),
        };
        write_toml(&dir.join("gateway.toml"), &gateway_config)?;
        for source in &options.down_at_start {
            let running = connectors.remove(source).ok_or_else(|| format!("down_at_start: no source `{source}`"))?;
            running.stop().await.map_err(|e| e.to_string())?;
        }
        let sink = options.audit_sink.clone();
        let gateway_handle = Engine::with_sink(gateway_config.clone(), sink).await.map_err(|e| e.to_string())?;
        let gateway = creditgate_server::start(Arc::clone(&gateway_handle)).await.map_err(|e| e.to_string())?;
        Ok(Lab {
            dir,
            ca_file,
            manifest,
            callers,
            connectors,
            connector_configs,
            gateway_config,
            gateway,
            gateway_handle,
            consent_key: Arc::new(consent_key),
        })
    }

    /// The demo caller named `name`.
    pub fn caller(&self, name: &str) -> Option<&DemoCaller> {
        self.callers.iter().find(|c| c.name == name)
    }

    /// Client material of a demo caller.
    pub fn identity_of<'a>(&'a self, caller: &'a DemoCaller) -> ClientIdentity<'a> {
        ClientIdentity { ca: &self.ca_file, cert: Some((&caller.cert, &caller.key)) }
    }

    /// A Flight SQL client to the gateway as `caller`, sending the caller's
    /// first allowed purpose code.
    pub fn flight_client(&self, caller: &str) -> Result<FlightClient, String> {
        self.flight_client_at(self.gateway.flight_addr, caller)
    }

    /// A Flight SQL client to `addr` (a replica, or a balancer in front of
    /// them) as `caller`, sending the caller's first allowed purpose code.
    pub fn flight_client_at(&self, addr: SocketAddr, caller: &str) -> Result<FlightClient, String> {
        let c = self.caller(caller).ok_or_else(|| format!("no demo caller `{caller}`"))?;
        let mut client = FlightClient::connect(&addr.to_string(), SERVER_NAME, &self.identity_of(c))?;
        if let Some(purpose) = c.purposes.first() {
            client.set_header(PURPOSE_HEADER, purpose);
        }
        Ok(client)
    }

    /// One HTTP request to the gateway's mTLS listener as `caller`, with the
    /// caller's first purpose code unless `headers` sets one.
    pub async fn http(
        &self,
        caller: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<crate::client::HttpResponse, String> {
        self.http_at(self.gateway.http_addr, caller, method, path, headers, body).await
    }

    /// [`Lab::http`] to the mTLS listener at `addr` (a replica, or a
    /// balancer in front of them).
    pub async fn http_at(
        &self,
        addr: SocketAddr,
        caller: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<crate::client::HttpResponse, String> {
        let c = self.caller(caller).ok_or_else(|| format!("no demo caller `{caller}`"))?;
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(PURPOSE_HEADER))
            && let Some(purpose) = c.purposes.first()
        {
            all.push((PURPOSE_HEADER, purpose.as_str()));
        }
        http_request(&addr.to_string(), SERVER_NAME, &self.identity_of(c), method, path, &all, body).await
    }

    /// One request to the public disclosure listener (server TLS only).
    pub async fn public_get(&self, path: &str) -> Result<crate::client::HttpResponse, String> {
        self.public_get_at(self.gateway.public_addr, path).await
    }

    /// [`Lab::public_get`] to the public listener at `addr` (`None`: off).
    pub async fn public_get_at(
        &self,
        addr: Option<SocketAddr>,
        path: &str,
    ) -> Result<crate::client::HttpResponse, String> {
        let addr = addr.ok_or("the public listener is off")?;
        let who = ClientIdentity { ca: &self.ca_file, cert: None };
        http_request(&addr.to_string(), SERVER_NAME, &who, "GET", path, &[], None).await
    }

    /// The lab's own gateway as a [`Front`].
    pub fn front(&self) -> Front {
        Front { flight: self.gateway.flight_addr, http: self.gateway.http_addr, public: self.gateway.public_addr }
    }

    /// A consent signed by the demo issuer: `subject` (resident ID or credit
    /// code) consents to `grantee` (an org id) using `datasets` for `purposes`.
    pub fn consent(
        &self,
        subject: creditgate_consent::SubjectRef,
        grantee: &str,
        purposes: &[&str],
        datasets: &[&str],
        max_uses: u32,
    ) -> Result<serde_json::Value, String> {
        let now = chrono::Utc::now();
        let draft = creditgate_consent::ConsentDraft {
            consent_id: None,
            issuer: CONSENT_ISSUER.to_string(),
            subject,
            grantee: grantee.to_string(),
            purposes: purposes.iter().map(|p| p.to_string()).collect(),
            datasets: datasets.iter().map(|d| d.to_string()).collect(),
            columns: None,
            data_from: None,
            data_to: None,
            valid_from: now - chrono::Duration::minutes(1),
            valid_until: now + chrono::Duration::days(30),
            max_uses,
        };
        let artefact = creditgate_consent::issue(&self.consent_key, draft).map_err(|e| e.to_string())?;
        serde_json::to_value(&artefact).map_err(|e| e.to_string())
    }

    /// What DIR/endpoints.json says with the gateway's addresses taken from
    /// `front`: the Flight SQL, HTTP and public addresses, the server name,
    /// the CA file, every demo caller and every connector.
    pub fn endpoints_document(&self, front: &Front) -> serde_json::Value {
        serde_json::json!({
            "flight_sql": format!("grpc+tls://{}", front.flight),
            "http": format!("https://{}", front.http),
            "public": front.public.map(|a| format!("https://{a}")),
            "server_name": SERVER_NAME,
            "ca_file": self.ca_file,
            "callers": self.callers,
            "connectors": self.connector_configs.values().map(|c| serde_json::json!({
                "name": c.name, "flight_sql": format!("grpc+tls://{}", c.listen), "served_log": c.served_log,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes `value` (see [`Lab::endpoints_document`]) to DIR/endpoints.json.
    pub fn write_endpoints_document(&self, value: serde_json::Value) -> Result<PathBuf, String> {
        let path = self.dir.join("endpoints.json");
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        write_public(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Stops the gateway, then every connector.
    pub async fn stop(self) -> Result<(), String> {
        self.gateway.stop().await.map_err(|e| e.to_string())?;
        for (_, connector) in self.connectors {
            connector.stop().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn print_batches(batches: &[RecordBatch]) {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match arrow::util::pretty::pretty_format_batches(batches) {
        Ok(table) if rows > 0 => println!("{table}"),
        Ok(_) => println!("  (no rows)"),
        Err(e) => println!("  (cannot print: {e})"),
    }
}

fn heading(text: &str) {
    use std::io::IsTerminal as _;
    if std::io::stdout().is_terminal() {
        println!("\n\x1b[1m== {text}\x1b[0m");
    } else {
        println!("\n== {text}");
    }
}

/// The cells of column `column` of `batches`, as displayed.
fn column_text(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let Ok(formatter) = arrow::util::display::ArrayFormatter::try_new(batch.column(column).as_ref(), &options)
        else {
            continue;
        };
        out.extend((0..batch.num_rows()).map(|row| formatter.value(row).to_string()));
    }
    out
}

/// Prints the rows of a `POST /v1/query` JSON document as a table, columns in
/// the document's order.
fn print_json_rows(document: &serde_json::Value) {
    use arrow::array::{ArrayRef, StringArray};
    let names: Vec<String> = document["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let rows = document["rows"].as_array().cloned().unwrap_or_default();
    let columns: Vec<ArrayRef> = names
        .iter()
        .map(|name| {
            let cells = rows.iter().map(|row| match &row[name.as_str()] {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            });
            std::sync::Arc::new(cells.collect::<StringArray>()) as ArrayRef
        })
        .collect();
    let fields: Vec<_> =
        names.iter().map(|n| arrow::datatypes::Field::new(n, arrow::datatypes::DataType::Utf8, true)).collect();
    match RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns) {
        Ok(batch) => print_batches(&[batch]),
        Err(e) => println!("  (cannot print: {e})"),
    }
}

/// A JSON body pretty-printed (as received when it is not JSON).
fn pretty_json(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// `STATUS CODE: message` of a JSON error response (the raw body if it is not one).
fn error_line(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["error"]["code"].is_string() => format!(
            "{status} {}: {}",
            v["error"]["code"].as_str().unwrap_or_default(),
            v["error"]["message"].as_str().unwrap_or_default()
        ),
        _ => format!("{status} {}", String::from_utf8_lossy(body)),
    }
}

/// What the tour's first step shows for the featured company: every dataset
/// with a credit code column, as (dataset, key column, columns shown).
pub const COMPANY_VIEW: &[(&str, &str, &str)] = &[
    ("market.enterprises", "credit_code", "credit_code, name, legal_rep_name, status, established_date"),
    ("market.licences", "credit_code", "licence_no, licence_type, issuer, expiry_date"),
    ("market.penalties", "credit_code", "decision_no, violation, amount, decision_date, disputed"),
    ("market.abnormal_operations", "credit_code", "reason, listed_date, removed_date"),
    ("court.dishonest_debtors", "credit_code", "case_no, court, amount, published_date"),
    ("tax.credit_ratings", "credit_code", "year, rating"),
    ("tax.major_violations", "credit_code", "violation_type, amount, decision_date"),
    ("courier.companies", "credit_code", "name, brand, licence_no, district_code"),
    ("courier.staff", "company_credit_code", "staff_id, name, hired_date"),
    ("courier.violations", "credit_code", "violation_id, violation, decision_date, disputed"),
    ("courier.complaints", "company_credit_code", "complaint_id, category, received_date, resolved"),
    ("complaints.complaints", "merchant_credit_code", "complaint_id, category, received_date, status"),
    ("credit_platform.red_list", "credit_code", "basis, listing_department, listed_date, expiry_date"),
    ("credit_platform.black_list", "credit_code", "basis, listing_department, listed_date"),
    ("traceability.products", "producer_credit_code", "barcode, product_name, produced_date"),
    ("payment.fraud_reports", "merchant_credit_code", "category, amount, reported_date"),
    ("payment.merchant_risk", "merchant_credit_code", "risk_level, flagged_date, reason"),
    ("platform_a.shops", "owner_credit_code", "shop_id, shop_name, rating, status"),
    ("platform_a.violations", "owner_credit_code", "violation_id, shop_id, violation, decision_date, disputed"),
    ("platform_a.commitments", "owner_credit_code", "shop_id, commitment, signed_date"),
    ("platform_b.shops", "owner_credit_code", "shop_id, shop_name, rating, status"),
    ("platform_b.violations", "owner_credit_code", "violation_id, shop_id, violation, decision_date, disputed"),
    ("platform_b.commitments", "owner_credit_code", "shop_id, commitment, signed_date"),
];

/// The tour's joint-punishment check (as market regulation): Platform A's
/// shops whose owner company is on the black list, flagged when the company
/// is also a dishonest judgment debtor, with its number of court cases.
pub const JOINT_PUNISHMENT_SQL: &str = "\
    SELECT s.shop_id, s.shop_name, e.name AS company, b.listing_department AS black_listed_by, \
           d.cases IS NOT NULL AS dishonest_debtor, COALESCE(d.cases, 0) AS court_cases \
    FROM platform_a.shops s \
    JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code \
    JOIN market.enterprises e ON e.credit_code = s.owner_credit_code \
    LEFT JOIN (SELECT credit_code, COUNT(*) AS cases FROM court.dishonest_debtors \
               WHERE credit_code IS NOT NULL GROUP BY credit_code) d ON d.credit_code = s.owner_credit_code \
    ORDER BY dishonest_debtor DESC, s.shop_id";

/// The tour's last words: where the console, the public listener, the
/// audit log, the logs and the endpoints file are, and how to open the
/// console in a browser.
fn where_things_are(
    args: &DemoArgs,
    p12: &Result<Vec<PathBuf>, String>,
    front: &Front,
    deployment: Option<&crate::replicas::Deployment>,
) {
    let dir = args.dir.display();
    let lang = args.lang;
    let label = |zh: &str, en: &str| match lang {
        // Chinese labels are two columns wide per character: pad to the same width.
        Lang::Zh => format!("  {zh}{}", " ".repeat(25usize.saturating_sub(zh.chars().count() * 2))),
        Lang::En => format!("  {en:<25}"),
    };
    heading(&lang.pick("各项位置", "Where things are"));
    let console = format!("https://localhost:{}/console", front.http.port());
    if args.serve {
        println!("{}{console}", label("隐私官控制台", "privacy-officer console"));
        match front.public {
            Some(public) => println!("{}https://localhost:{}/", label("公示窗口", "public window"), public.port()),
            None => println!("{}{}", label("公示窗口", "public window"), lang.pick("（未配置）", "(not configured)")),
        }
        println!("{}{dir}/endpoints.json", label("所有端点", "endpoints of everything"));
    } else {
        println!(
            "  {}",
            lang.pick(
                "运行 `creditgate demo --serve` 可让联邦保持运行并打开控制台",
                "run `creditgate demo --serve` to keep the federation running and open the console"
            )
        );
    }
    match deployment {
        None => println!(
            "{}{dir}/state/audit  ({}: creditgate audit verify --dir {dir}/state/audit)",
            label("审计日志", "audit log"),
            lang.pick("校验", "verify")
        ),
        Some(d) => {
            let (url, schema) = (&d.state.url, &d.state.schema);
            println!(
                "{}PostgreSQL {url}, {} {schema}, {}  ({}: creditgate audit verify --postgres {url} --schema {schema})",
                label("审计日志", "audit log"),
                lang.pick("模式", "schema"),
                lang.pick("每个副本一条链", "one chain per replica"),
                lang.pick("校验", "verify")
            );
            println!("{}{dir}/replicas/gw-N/gateway.toml, {dir}/haproxy.cfg", label("副本配置", "replica configs"));
        }
    }
    match args.log_file() {
        Some(log) => println!(
            "{}{}  ({})",
            label("日志", "logs"),
            log.display(),
            lang.pick("--verbose 则直接打印在此", "--verbose prints them here")
        ),
        None => {
            println!("{}{}", label("日志", "logs"), lang.pick("已打印在上方（--verbose）", "printed above (--verbose)"))
        }
    }
    println!("{}{dir}/certs  (CA: {dir}/certs/ca.pem)", label("证书", "certificates"));
    let browser = label("在浏览器中打开控制台", "console in a browser");
    match p12 {
        Ok(files) if !files.is_empty() => println!(
            "{browser}{}",
            lang.pick(
                format!(
                    "导入 {dir}/certs/caller-privacy_officer.p12（密码 {P12_PASSWORD}；每个调用方一个 .p12），\
                     并信任 {dir}/certs/ca.pem，然后打开 {console}"
                ),
                format!(
                    "import {dir}/certs/caller-privacy_officer.p12 (password {P12_PASSWORD}; one .p12 per caller \
                     beside it) and trust {dir}/certs/ca.pem, then open {console}"
                )
            )
        ),
        _ => println!(
            "{browser}{}\n    openssl pkcs12 -export -in {dir}/certs/caller-privacy_officer.pem \
             -inkey {dir}/certs/caller-privacy_officer.key -out officer.p12\n    {}",
            lang.pick("先把隐私官的证书做成 .p12：", "make a .p12 of the officer's certificate:"),
            lang.pick(
                format!("在浏览器中导入它和 {dir}/certs/ca.pem，然后打开 {console}"),
                format!("import it and {dir}/certs/ca.pem in the browser, then open {console}")
            )
        ),
    }
}

async fn tour(lab: &Lab, front: &Front, lang: Lang) -> Result<(), String> {
    let company = &lab.manifest.featured.enterprise_credit_code;
    let (name, code) = (&lab.manifest.featured.enterprise_name, company);
    heading(&lang.pick(
        format!("1. 市场监管局（政府机关，用途 supervision）跨所有数据源查询 {name}（{code}）"),
        format!("1. Market regulation (agency, purpose: supervision) looks up {name} ({code}) across every source"),
    ));
    println!(
        "{}",
        lang.pick(
            "各数据集的记录数（一次联邦查询），然后是记录本身：",
            "Records per dataset (one federated query), then the records:"
        )
    );
    let mut samr = lab.flight_client_at(front.flight, "samr")?;
    samr.set_header(PURPOSE_HEADER, "supervision");
    // One federated query counts the company's records in every source…
    let counts: Vec<String> = COMPANY_VIEW
        .iter()
        .enumerate()
        .map(|(i, (dataset, key, _))| {
            format!(
                "SELECT {i} AS n, '{dataset}' AS dataset, COUNT(*) AS records FROM {dataset} WHERE {key} = '{company}'"
            )
        })
        .collect();
    let sql = format!("SELECT dataset, records FROM ({}) ORDER BY n", counts.join(" UNION ALL "));
    let summary = samr.query(&sql).await.map_err(|e| format!("record counts: {}", flight_error_text(&e)))?;
    print_batches(&summary);
    // …then shows the records of each source that has some.
    let found: BTreeMap<String, String> = column_text(&summary, 0).into_iter().zip(column_text(&summary, 1)).collect();
    for (dataset, key, columns) in COMPANY_VIEW {
        let records: u64 = found.get(*dataset).and_then(|n| n.parse().ok()).unwrap_or(0);
        if records == 0 {
            continue;
        }
        let sql = format!("SELECT {columns} FROM {dataset} WHERE {key} = '{company}' LIMIT 5");
        let heading = match lang {
            Lang::Zh => format!("-- {dataset}（{records} 条{}）", if records > 5 { "，显示前 5 条" } else { "" }),
            Lang::En => format!(
                "-- {dataset} ({records} record{}{})",
                if records == 1 { "" } else { "s" },
                if records > 5 { ", the first 5" } else { "" }
            ),
        };
        println!("{heading}");
        match samr.query(&sql).await {
            Ok(batches) => print_batches(&batches),
            Err(e) => return Err(format!("{dataset}: {}", flight_error_text(&e))),
        }
    }

    heading(&lang.pick(
        "2. 平台 A 的店铺比对黑名单（平台，用途 merchant_onboarding），以及失信被执行人名单（市场监管局，联合惩戒）",
        "2. Platform A's shops against the black list (the platform, merchant onboarding) \
         and the dishonest-debtor list (market regulation, joint punishment)",
    ));
    println!(
        "{}",
        lang.pick("平台 A：经营主体在黑名单上的店铺", "Platform A: its shops whose owner company is on the black list")
    );
    let mut platform = lab.flight_client_at(front.flight, "platform_a")?;
    let sql = "\
        SELECT s.shop_id, s.shop_name, e.name AS company, b.basis, b.listing_department, b.disputed \
        FROM platform_a.shops s \
        JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code \
        JOIN market.enterprises e ON e.credit_code = s.owner_credit_code \
        ORDER BY s.shop_id LIMIT 5";
    match platform.query(sql).await {
        Ok(batches) => print_batches(&batches),
        Err(e) => return Err(format!("join: {}", flight_error_text(&e))),
    }
    println!(
        "{}",
        lang.pick(
            "市场监管局（用途 joint_punishment）标出其中同在法院失信被执行人名单上的（平台的策略不授予它这份名单）：",
            "Market regulation (purpose: joint_punishment) flags those on the court's dishonest-debtor list \
             (a list the platform's policy does not grant it):"
        )
    );
    let mut joint = lab.flight_client_at(front.flight, "samr")?;
    joint.set_header(PURPOSE_HEADER, "joint_punishment");
    let sql = format!("{JOINT_PUNISHMENT_SQL} LIMIT 10");
    match joint.query(&sql).await {
        Ok(batches) => print_batches(&batches),
        Err(e) => return Err(format!("join with the dishonest debtors: {}", flight_error_text(&e))),
    }

    heading(&lang.pick(
        "3. 征信机构通过 HTTP/JSON 查询（用途 credit_report）：同一家企业，个人信息已脱敏",
        "3. Credit agency over HTTP/JSON (purpose: credit_report): the same company, personal data masked",
    ));
    let sql = format!(
        "SELECT e.name, e.legal_rep_name, e.legal_rep_id, e.phone, \
                (SELECT COUNT(*) FROM market.penalties p WHERE p.credit_code = e.credit_code) AS penalties, \
                (SELECT COUNT(*) FROM court.dishonest_debtors d WHERE d.credit_code = e.credit_code) AS dishonest_debtor_cases \
         FROM market.enterprises e WHERE e.credit_code = '{company}'"
    );
    let response = lab
        .http_at(
            front.http,
            "credit_agency",
            "POST",
            "/v1/query",
            &[("accept", "application/json")],
            Some(serde_json::json!({ "sql": sql, "purpose": "credit_report" }).to_string()),
        )
        .await?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("JSON: {e}"))?;
    if response.status != 200 {
        return Err(format!("HTTP query failed: {}", error_line(response.status, &response.body)));
    }
    println!(
        "POST /v1/query -> {} (application/json, {} {})",
        response.status,
        value["row_count"],
        lang.pick("行", "row(s)")
    );
    print_json_rows(&value);

    heading(&lang.pick(
        "4. 拒绝：调用方无权使用的用途，以及组织不在调用方名单中的证书",
        "4. Refusals: a purpose the caller may not use, and a certificate whose organisation is not a caller",
    ));
    let response = lab
        .http_at(
            front.http,
            "credit_agency",
            "POST",
            "/v1/query",
            &[(PURPOSE_HEADER, "marketing")],
            Some(serde_json::json!({"sql": "SELECT name FROM market.enterprises LIMIT 1"}).to_string()),
        )
        .await?;
    println!("{} `marketing`: {}", lang.pick("用途", "purpose"), error_line(response.status, &response.body));
    if response.status != 403 {
        return Err("a purpose outside the caller's allowed set was not refused".to_string());
    }
    let mut stranger = lab.flight_client_at(front.flight, "stranger")?;
    match stranger.query("SELECT name FROM market.enterprises LIMIT 1").await {
        Ok(_) => return Err("the unknown caller was served".to_string()),
        Err(e) => println!(
            "{}: {}",
            lang.pick("未知组织（Flight SQL）", "unknown organisation over Flight SQL"),
            flight_error_text(&e)
        ),
    }
    let response = lab
        .http_at(
            front.http,
            "stranger",
            "POST",
            "/v1/query",
            &[],
            Some(serde_json::json!({"sql": "SELECT 1"}).to_string()),
        )
        .await?;
    println!(
        "{}: {}",
        lang.pick("未知组织（HTTP）", "unknown organisation over HTTP"),
        error_line(response.status, &response.body)
    );
    if response.status != 403 {
        return Err("the unknown caller was not refused over HTTP".to_string());
    }

    heading(
        &lang.pick("5. 信用信息公示窗口（无需客户端证书）", "5. The public disclosure window (no client certificate)"),
    );
    let response = lab.public_get_at(front.public, &format!("/public/v1/enterprises/{company}")).await?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("JSON: {e}"))?;
    println!(
        "GET /public/v1/enterprises/{company} -> {}: {} | status {} | public penalties {} | on black list: {}",
        response.status,
        value["enterprise"]["name"].as_str().unwrap_or("?"),
        value["enterprise"]["status"].as_str().unwrap_or("?"),
        value["penalties"].as_array().map(|a| a.len()).unwrap_or(0),
        value["on_black_list"]
    );
    if response.status != 200 {
        return Err(format!("public disclosure failed: {value}"));
    }

    heading(&lang.pick(
        "6. 主体查询：市场监管局查询该企业的全部信息（法定职责）",
        "6. Subject lookup: market regulation asks for everything about the company (statutory duty)",
    ));
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": company}, "purpose": "supervision"});
    let response = lab.http_at(front.http, "samr", "POST", "/v1/lookup", &[], Some(body.to_string())).await?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("JSON: {e}"))?;
    if response.status != 200 {
        return Err(format!("lookup failed: {value}"));
    }
    println!(
        "{} {} | {}: {}",
        lang.pick("法律依据", "legal basis"),
        value["legal_basis"],
        lang.pick("不完整", "incomplete"),
        value["incomplete"]
    );
    if let Some(datasets) = value["datasets"].as_object() {
        for (name, result) in datasets {
            let rows = result["rows"].as_array().map(|r| r.len()).unwrap_or(0);
            if rows > 0 || result["status"] != "ok" {
                println!(
                    "  {name:<32} {:<8} {rows} {}",
                    result["status"].as_str().unwrap_or("?"),
                    lang.pick("行", "rows")
                );
            }
        }
    }

    heading(&lang.pick(
        "6b. 信用分级：市场监管局按分级模板为该企业计算信用等级（逐条可解释，不存储，非官方评级）",
        "6b. Graded supervision: market regulation grades the company by the grading template (explained rule by rule, not stored, not official)",
    ));
    let response = lab
        .http_at(front.http, "samr", "GET", &format!("/v1/grades/{company}"), &[(PURPOSE_HEADER, "supervision")], None)
        .await?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("JSON: {e}"))?;
    if response.status != 200 || value["grade"].as_str().is_none() {
        return Err(format!("grading failed: {value}"));
    }
    println!(
        "{} {} | {} {} | {} {} {}",
        lang.pick("等级", "grade"),
        value["grade"].as_str().unwrap_or("?"),
        lang.pick("得分", "score"),
        value["score"],
        lang.pick("模板", "template"),
        value["template"]["id"].as_str().unwrap_or("?"),
        value["template"]["version"].as_str().unwrap_or("?"),
    );
    for rule in value["rules"].as_array().into_iter().flatten().filter(|r| r["status"] == "fired") {
        let title = rule["title"][if lang == Lang::Zh { "zh" } else { "en" }].as_str().unwrap_or("");
        println!(
            "  {:<24} {:>4} {} ({} {})",
            rule["id"].as_str().unwrap_or("?"),
            rule["points"],
            title,
            rule["matched"],
            lang.pick("条记录", "records")
        );
    }

    let person = &lab.manifest.featured.individual_resident_id;
    let seller = &lab.manifest.featured.individual_name;
    heading(&lang.pick(
        format!("7. 征信机构在未获同意的情况下查询个体卖家（{seller}）"),
        format!("7. A credit agency looks up an individual seller ({seller}) without consent"),
    ));
    let datasets = ["court.dishonest_debtors", "credit_platform.black_list"];
    let ask = |consent: Option<&serde_json::Value>| {
        let mut body = serde_json::json!({
            "subject": {"type": "resident_id", "id": person},
            "purpose": "credit_report",
            "datasets": datasets,
        });
        if let Some(c) = consent {
            body["consent"] = c.clone();
        }
        body.to_string()
    };
    let response = lab.http_at(front.http, "credit_agency", "POST", "/v1/lookup", &[], Some(ask(None))).await?;
    println!("-> {}", error_line(response.status, &response.body));
    if response.status != 403 {
        return Err("a lookup of an individual without consent was not refused".to_string());
    }

    heading(&lang.pick(
        "8. 同一查询，附卖家签署的授权（由公共信用信息平台签发）",
        "8. The same with the seller's signed consent (issued by the public credit platform)",
    ));
    let subject = creditgate_consent::SubjectRef::parse(creditgate_ident::SubjectKind::ResidentId, person)
        .map_err(|e| e.to_string())?;
    let consent = lab.consent(subject, "credit-agency", &["credit_report"], &datasets, 5)?;
    println!(
        "{} {} {} {:?}, {} {}",
        lang.pick("授权", "consent"),
        consent["consent_id"],
        lang.pick("适用于", "for"),
        datasets,
        lang.pick("有效期至", "valid until"),
        consent["valid_until"]
    );
    let response =
        lab.http_at(front.http, "credit_agency", "POST", "/v1/lookup", &[], Some(ask(Some(&consent)))).await?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("JSON: {e}"))?;
    if response.status != 200 {
        return Err(format!("consented lookup failed: {value}"));
    }
    println!(
        "{} {} | {} {}",
        lang.pick("法律依据", "legal basis"),
        value["legal_basis"],
        lang.pick("授权已使用次数", "consent uses"),
        value["consent"]["uses"]
    );
    for name in datasets {
        let result = &value["datasets"][name];
        println!("-- {name} ({}), {}: {}", result["status"], lang.pick("脱敏", "masks"), result["masks"]);
        for row in result["rows"].as_array().into_iter().flatten().take(3) {
            println!("   {row}");
        }
    }

    heading(&lang.pick(
        "9. 市场监管局撤销该授权；下一次使用被拒绝",
        "9. Market regulation revokes the consent; the next use is refused",
    ));
    let id = consent["consent_id"].as_str().unwrap_or_default();
    let response =
        lab.http_at(front.http, "samr", "POST", &format!("/v1/consents/{id}/revoke"), &[], Some("{}".into())).await?;
    println!("{} -> {}\n{}", lang.pick("撤销", "revoke"), response.status, pretty_json(&response.body));
    let response =
        lab.http_at(front.http, "credit_agency", "POST", "/v1/lookup", &[], Some(ask(Some(&consent)))).await?;
    println!("{} -> {}", lang.pick("查询", "lookup"), error_line(response.status, &response.body));
    if response.status != 403 {
        return Err("a revoked consent was accepted".to_string());
    }
    Ok(())
}

/// Password of the demo's PKCS#12 files.
pub const P12_PASSWORD: &str = "changeit";

/// Writes `certs/caller-NAME.p12` (certificate, key and CA, password
/// [`P12_PASSWORD`]) for every demo caller, for importing into a browser,
/// with the `openssl` command when it is installed. Returns the files written,
/// or why none were.
fn export_p12(lab: &Lab) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for caller in &lab.callers {
        let out = caller.cert.with_extension("p12");
        let status = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-in"])
            .arg(&caller.cert)
            .arg("-inkey")
            .arg(&caller.key)
            .arg("-certfile")
            .arg(&lab.ca_file)
            .args(["-name", &format!("creditgate {}", caller.name), "-passout", &format!("pass:{P12_PASSWORD}")])
            .arg("-out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("the openssl command is not available ({e})"))?;
        if !status.success() {
            return Err(format!("openssl pkcs12 failed for {} ({status})", caller.name));
        }
        written.push(out);
    }
    Ok(written)
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let lang = args.lang;
    // Every misuse of --replicas/--state, and a missing HAProxy, before anything is built.
    let plan = match args.replica_plan()? {
        Some((n, state)) => {
            let haproxy = crate::replicas::find_haproxy()?;
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find the creditgate binary to run the replicas with: {e}"))?;
            // A stale endpoints file would point at processes long gone.
            let _ = std::fs::remove_file(args.dir.join("endpoints.json"));
            Some((n, state, haproxy, exe))
        }
        None => None,
    };
    println!(
        "{}",
        lang.pick(
            format!("creditgate 演示：正在 {} 中构建联邦", args.dir.display()),
            format!("creditgate demo: building the federation in {}", args.dir.display())
        )
    );
    let mut options = LabOptions::new(&args.dir);
    options.scale = args.scale;
    options.backend = args.storage.clone();
    let lab = Lab::start(options).await?;
    let (n, flight, http) = (lab.connectors.len(), lab.gateway.flight_addr, lab.gateway.http_addr);
    println!(
        "{}",
        lang.pick(
            format!("{n} 个连接器和网关已启动（Flight SQL {flight}，HTTP {http}）"),
            format!("{n} connectors and the gateway are up (Flight SQL {flight}, HTTP {http})")
        )
    );
    let deployment = match plan {
        Some((replicas, state, haproxy, exe)) => match start_replicas(&lab, &args, replicas, state, haproxy, exe).await
        {
            Ok(deployment) => Some(deployment),
            Err(e) => {
                let _ = lab.stop().await;
                return Err(e);
            }
        },
        None => None,
    };
    let front = match &deployment {
        Some(d) => Front {
            flight: d.haproxy.flight_addr,
            http: d.haproxy.http_addr,
            public: d.replicas.first().and_then(|r| r.public_addr),
        },
        None => lab.front(),
    };
    let p12 = export_p12(&lab);
    if let Err(reason) = &p12 {
        tracing::warn!(%reason, "no PKCS#12 files for browsers");
    }
    let result = tour(&lab, &front, args.lang).await;
    if let Err(e) = &result {
        eprintln!("{}: {e}", lang.pick("演示失败", "tour failed"));
    }
    if result.is_ok() {
        where_things_are(&args, &p12, &front, deployment.as_ref());
    }
    let served =
        if args.serve && result.is_ok() { serve(&lab, &front, deployment.as_ref(), lang).await } else { Ok(()) };
    let stopped = match deployment {
        Some(deployment) => deployment.stop().await,
        None => Ok(()),
    };
    lab.stop().await?;
    served?;
    stopped.map_err(|e| format!("stopping the replicas: {e}"))?;
    result.map(|()| println!("\n{}", lang.pick("演示结束", "demo finished")))
}

/// `--replicas N`: N gateway replicas, each a `creditgate gateway` process
/// on the shared state (configs and state directories in DIR/replicas, logs
/// in DIR/logs), the first with the public listener, and HAProxy in front.
async fn start_replicas(
    lab: &Lab,
    args: &DemoArgs,
    replicas: usize,
    state: crate::replicas::SharedState,
    haproxy: PathBuf,
    exe: PathBuf,
) -> Result<crate::replicas::Deployment, String> {
    let lang = args.lang;
    println!(
        "{}",
        lang.pick(
            format!(
                "正在启动 {replicas} 个网关副本（独立进程，共享状态在 PostgreSQL {}，模式 {}）和 HAProxy（TCP 直通）",
                state.url, state.schema
            ),
            format!(
                "starting {replicas} gateway replicas (separate processes, shared state in PostgreSQL {}, schema {}) \
                 and HAProxy (TCP passthrough)",
                state.url, state.schema
            )
        )
    );
    let options = crate::replicas::DeploymentOptions {
        exe,
        haproxy,
        replicas,
        state,
        dir: args.dir.join("replicas"),
        haproxy_config: args.dir.join("haproxy.cfg"),
        logs: args.log_file().map(|_| args.dir.join("logs")),
        public_on_first: true,
        rust_log: None,
    };
    let deployment = crate::replicas::Deployment::start(&lab.gateway_config, &options).await?;
    for r in &deployment.replicas {
        println!(
            "  {} pid {:<7} Flight SQL {}  HTTP {}{}",
            r.id,
            r.pid(),
            r.flight_addr,
            r.http_addr,
            r.public_addr.map(|a| format!("  {} {a}", lang.pick("公示", "public"))).unwrap_or_default()
        );
    }
    println!(
        "  HAProxy pid {} Flight SQL {}  HTTP {}  ({})",
        deployment.haproxy.pid(),
        deployment.haproxy.flight_addr,
        deployment.haproxy.http_addr,
        lang.pick("轮询；以下导览经由 HAProxy", "round robin; the tour below goes through HAProxy")
    );
    Ok(deployment)
}

/// `--serve`: writes DIR/endpoints.json and keeps everything running until
/// Ctrl-C or SIGTERM.
async fn serve(
    lab: &Lab,
    front: &Front,
    deployment: Option<&crate::replicas::Deployment>,
    lang: Lang,
) -> Result<(), String> {
    let mut document = lab.endpoints_document(front);
    if let (Some(deployment), Some(fields)) = (deployment, document.as_object_mut())
        && let serde_json::Value::Object(extra) = deployment.endpoints()
    {
        fields.extend(extra);
    }
    let path = lab.write_endpoints_document(document)?;
    println!(
        "\n{}: {}",
        lang.pick(
            "一切保持运行。端点、CA 和调用方证书",
            "Everything keeps running. Endpoints, CA and caller certificates"
        ),
        path.display()
    );
    let reloader = match deployment {
        None => {
            println!(
                "{}",
                lang.pick(
                    "按 Ctrl-C 停止；SIGHUP 重新加载策略和 CRL。",
                    "Press Ctrl-C to stop; SIGHUP reloads the policy and the CRLs."
                )
            );
            creditgate_server::reload_on_sighup(&lab.gateway)
        }
        Some(_) => {
            println!(
                "{}",
                lang.pick(
                    "按 Ctrl-C 停止（先停 HAProxy，再停各副本）；向副本的 pid（见 endpoints.json）发送 SIGHUP 重新加载其策略和 CRL。",
                    "Press Ctrl-C to stop (HAProxy first, then the replicas); SIGHUP to a replica's pid \
                     (endpoints.json) reloads its policy and CRLs."
                )
            );
            None
        }
    };
    creditgate_server::shutdown_signal().await;
    if let Some(task) = reloader {
        task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificates, `endpoints.json`, the policy and the console name each
    /// organisation the same way: a demo caller's certificate organisation
    /// is the policy's Chinese name of its principal's organisation.
    #[test]
    fn demo_certificates_carry_the_policys_organisation_names() {
        let policy = creditgate_policy::Policy::parse(DEMO_POLICY, "demo-policy.toml").expect("demo policy");
        for spec in CALLERS.iter().filter(|s| s.known) {
            let identity = creditgate_certs::ca::spiffe_uri(
                creditgate_certs::ca::DEFAULT_TRUST_DOMAIN,
                &spec.name.replace('_', "-"),
            );
            let principal = policy
                .principals()
                .iter()
                .find(|p| p.identity == identity)
                .unwrap_or_else(|| panic!("no principal for {identity}"));
            let names = policy.organization_names().get(&principal.organization).expect("organisation named");
            assert_eq!(spec.organization, names.zh, "caller {}", spec.name);
        }
    }
}
