//! Several gateway replicas behind HAProxy: `creditgate demo --serve
//! --replicas N --state postgres://…`, and the tests that check a balancer in
//! front of the replicas changes nothing a caller sees.
//!
//! - [`replica_config`]: a replica's gateway config, made from the lab's (the
//!   same connectors, policy and deployment secret; the shared state in
//!   PostgreSQL; its own replica id and state directory);
//! - [`ReplicaProcess`]: one `creditgate gateway --config FILE` child process
//!   and the listeners it reported;
//! - [`haproxy_config`] and [`Haproxy`]: HAProxy in TCP mode (passthrough:
//!   mutual TLS ends at the replica, so a caller's identity still comes from
//!   its own client certificate), round robin over the replicas' Flight SQL
//!   ports on one front port and their HTTP ports on another;
//! - [`Deployment`]: all of it started and stopped together.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use creditgate_engine::config::{GatewayConfig, StateBackend};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// The demo's PostgreSQL schema of the shared state (`--state-schema`).
pub const DEFAULT_SCHEMA: &str = "creditgate_demo";
/// How long a replica may take to report its listeners.
pub const REPLICA_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a replica may take to stop after SIGTERM before it is killed:
/// the gateway's default shutdown grace (10 s) and its final checkpoint.
pub const REPLICA_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long HAProxy may take until its front ports accept connections.
pub const HAPROXY_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the message about a missing HAProxy points.
pub const HAPROXY_INSTALL_HINT: &str =
    "install it with scripts/haproxy.sh (as root; it runs apt-get install haproxy) or `apt-get install haproxy`";

/// Where the replicas keep their shared state.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// `postgres://user@host:port/database`, without a password.
    pub url: String,
    /// The PostgreSQL schema of the tables (created and migrated at start).
    pub schema: String,
    /// Environment variable holding the database password, if it needs one.
    pub password_env: Option<String>,
    /// Pooled connections per replica (the gateway's default when `None`).
    pub pool_size: Option<u32>,
}

impl SharedState {
    /// State in `schema` of the database at `url`, no password, default pool.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        SharedState { url: url.into(), schema: schema.into(), password_env: None, pool_size: None }
    }
}

/// The replica ids of `n` replicas: `gw-1` … `gw-N`.
pub fn replica_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("gw-{i}")).collect()
}

/// The gateway config of replica `id`: `base` (the lab's config: its
/// connectors, policy, certificates and deployment secret) with the shared
/// state in PostgreSQL, the replica id `id`, the state directory
/// `dir/state` (its audit signing key), listeners on free loopback ports and
/// the public listener only when `public` is set. Relative paths (of `base`
/// and `dir`) are made absolute against the current directory, so the config
/// file can live anywhere. Every problem of the resulting `[state]` table is
/// reported.
pub fn replica_config(
    base: &GatewayConfig,
    dir: &Path,
    id: &str,
    state: &SharedState,
    public: bool,
) -> Result<GatewayConfig, String> {
    let mut config = base.clone();
    // Every replica shares the deployment secret, so subject hashes and
    // keyed-hash pseudonyms agree whichever replica answers.
    config.state.secret_file = Some(base.state.secret_path());
    config.state.dir = dir.join("state");
    config.state.backend = StateBackend::Postgres;
    config.state.url = Some(state.url.clone());
    config.state.schema = Some(state.schema.clone());
    config.state.replica_id = Some(id.to_string());
    config.state.password_env = state.password_env.clone();
    config.state.password_file = None;
    config.state.pool_size = state.pool_size;
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.server.flight_listen = loopback;
    config.server.http_listen = loopback;
    config.server.public_listen = public.then_some(loopback);
    // A gateway reads a relative path in its config against the config
    // file's folder; the lab's (and `dir`) are against this process's.
    let cwd = std::env::current_dir().map_err(|e| format!("replica {id}: no current directory: {e}"))?;
    config.resolve_paths(&cwd);
    let problems = config.state.problems();
    if !problems.is_empty() {
        return Err(format!("replica {id}: {}", problems.join("; ")));
    }
    Ok(config)
}

/// Writes `config` as TOML to `path` (its folder created).
pub fn write_config(path: &Path, config: &GatewayConfig) -> Result<(), String> {
    use creditgate_files::{Access, Existing};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let text = toml::to_string_pretty(config).map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    creditgate_files::write_atomic(path, text.as_bytes(), Access::Public, Existing::Replace).map_err(|e| e.to_string())
}

/// Standard output and error of a child: appended to `log`, or inherited
/// when `None`.
fn log_stdio(log: Option<&Path>) -> Result<(Stdio, Stdio), String> {
    match log {
        None => Ok((Stdio::inherit(), Stdio::inherit())),
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let copy = file.try_clone().map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Ok((Stdio::from(file), Stdio::from(copy)))
        }
    }
}

/// The last lines of `log`, to explain why a child stopped (or where its
/// output went).
fn log_tail(log: Option<&Path>) -> String {
    const LINES: usize = 15;
    match log {
        None => "its output is above".to_string(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
                format!("the last lines of {}:\n{tail}", path.display())
            }
            Err(e) => format!("its log {} cannot be read: {e}", path.display()),
        },
    }
}

/// Sends SIGTERM to `child` (with the `kill` command: this crate has no
/// unsafe code); SIGKILL when that cannot be done. Nothing when it has exited.
async fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let Some(pid) = child.id() else { return };
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.start_kill();
    }
}

/// SIGTERM, then waits up to `timeout` for `child` to exit; kills it after that.
async fn stop_child(child: &mut Child, what: &str, timeout: Duration) -> Result<ExitStatus, String> {
    terminate(child).await;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| format!("{what}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("{what} did not stop within {} s of SIGTERM and was killed", timeout.as_secs()))
        }
    }
}

/// A running `creditgate gateway --config FILE` process.
pub struct ReplicaProcess {
    /// The replica id (`[state] replica_id`).
    pub id: String,
    /// Its config file.
    pub config_file: PathBuf,
    /// Its log file (standard error), when not inherited.
    pub log_file: Option<PathBuf>,
    /// Its own Flight SQL address.
    pub flight_addr: SocketAddr,
    /// Its own HTTP address.
    pub http_addr: SocketAddr,
    /// Its public listener, when it has one.
    pub public_addr: Option<SocketAddr>,
    child: Child,
}

impl ReplicaProcess {
    /// Starts `exe gateway --config config_file` (`exe` is the `creditgate`
    /// binary) and waits until it reports its listeners (the public one too
    /// when `public` is set). Its standard error is appended to `log`
    /// (inherited when `None`); `rust_log` sets its `RUST_LOG`.
    pub async fn start(
        exe: &Path,
        id: &str,
        config_file: &Path,
        public: bool,
        log: Option<&Path>,
        rust_log: Option<&str>,
    ) -> Result<ReplicaProcess, String> {
        let (_, stderr) = log_stdio(log)?;
        let mut command = Command::new(exe);
        command.args(["gateway", "--config"]).arg(config_file).stdout(Stdio::piped()).stderr(stderr).kill_on_drop(true);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().map_err(|e| format!("cannot start replica {id} ({}): {e}", exe.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| format!("replica {id}: no standard output"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let deadline = tokio::time::Instant::now() + REPLICA_START_TIMEOUT;
        let (mut flight, mut http, mut public_addr) = (None, None, None);
        let parse = |label: &str, text: &str| -> Result<SocketAddr, String> {
            text.trim().parse().map_err(|e| format!("replica {id} reported a {label} address `{}`: {e}", text.trim()))
        };
        while flight.is_none() || http.is_none() || (public && public_addr.is_none()) {
            match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Some(addr) = line.strip_prefix("flight sql:") {
                        flight = Some(parse("Flight SQL", addr)?);
                    } else if let Some(addr) = line.strip_prefix("http:") {
                        http = Some(parse("HTTP", addr)?);
                    } else if let Some(addr) = line.strip_prefix("public:") {
                        public_addr = Some(parse("public", addr)?);
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                        Ok(Ok(status)) => status.to_string(),
                        _ => "still running, output closed".to_string(),
                    };
                    return Err(format!("replica {id} did not start ({status}); {}", log_tail(log)));
                }
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(format!(
                        "replica {id} did not report its listeners within {} s and was killed; {}",
                        REPLICA_START_TIMEOUT.as_secs(),
                        log_tail(log)
                    ));
                }
            }
        }
        // Keep reading, so the replica never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (Some(flight_addr), Some(http_addr)) = (flight, http) else {
            return Err(format!("replica {id} did not report its listeners"));
        };
        Ok(ReplicaProcess {
            id: id.to_string(),
            config_file: config_file.to_path_buf(),
            log_file: log.map(Path::to_path_buf),
            flight_addr,
            http_addr,
            public_addr,
            child,
        })
    }

    /// Its process id (0 once it has been reaped).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Stops it with SIGTERM (it finishes in-flight requests and writes a
    /// final signed checkpoint), killing it after [`REPLICA_STOP_TIMEOUT`].
    pub async fn stop(mut self) -> Result<ExitStatus, String> {
        let what = format!("replica {}", self.id);
        stop_child(&mut self.child, &what, REPLICA_STOP_TIMEOUT).await
    }

    /// The replica as HAProxy balances it.
    pub fn backend(&self) -> Backend {
        Backend { id: self.id.clone(), flight: self.flight_addr, http: self.http_addr }
    }
}

/// One replica as HAProxy sees it: its id (the HAProxy server name) and its
/// Flight SQL and HTTP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The replica id.
    pub id: String,
    /// Its Flight SQL address.
    pub flight: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
}

/// The `haproxy.cfg` of HAProxy in TCP mode in front of `backends`: the
/// Flight SQL front end on `flight_front` and the HTTP front end on
/// `http_front`, each balancing round robin over the replicas' own ports,
/// with a plain TCP connect as health check (no TLS: nothing for the
/// gateway to record). Refused: no backend, and a replica id HAProxy cannot
/// use as a server name.
pub fn haproxy_config(
    flight_front: SocketAddr,
    http_front: SocketAddr,
    backends: &[Backend],
) -> Result<String, String> {
    if backends.is_empty() {
        return Err("haproxy.cfg: no replica to balance".to_string());
    }
    for b in backends {
        let usable =
            !b.id.is_empty() && b.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !usable {
            return Err(format!("haproxy.cfg: replica id `{}` is not a usable server name (A-Z a-z 0-9 . _ -)", b.id));
        }
    }
    let servers = |port: fn(&Backend) -> SocketAddr| -> String {
        backends.iter().map(|b| format!("    server {} {}\n", b.id, port(b))).collect()
    };
    Ok(format!(
        "\
# HAProxy in front of {n} creditgate gateway replicas, TCP passthrough:
# mutual TLS ends at each replica, so a caller's identity still comes from
# its own client certificate. A connection stays on one replica; new
# connections go round robin. (Written by creditgate.)
global
    maxconn 4096
    log stderr format raw local0 notice

defaults
    mode tcp
    log global
    timeout connect 5s
    # Flight SQL result streams and long HTTP downloads: an hour of silence at most.
    timeout client 1h
    timeout server 1h
    timeout check 5s
    # A replica that refuses the connection: try again, on another one.
    retries 2
    option redispatch

frontend flight_sql
    bind {flight_front}
    default_backend replicas_flight_sql

frontend http
    bind {http_front}
    default_backend replicas_http

backend replicas_flight_sql
    balance roundrobin
    # Health check: a TCP connect, every 2 s; out after 2 failures, back after 1 success.
    default-server check inter 2s fall 2 rise 1
{flight_servers}
backend replicas_http
    balance roundrobin
    default-server check inter 2s fall 2 rise 1
{http_servers}",
        n = backends.len(),
        flight_servers = servers(|b| b.flight),
        http_servers = servers(|b| b.http),
    ))
}

/// The `haproxy` binary: on `PATH`, else in `/usr/sbin` or `/usr/local/sbin`
/// (Debian installs it there, outside a normal user's `PATH`).
pub fn find_haproxy() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("haproxy")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/haproxy"), PathBuf::from("/usr/local/sbin/haproxy")])
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("HAProxy is not installed (no `haproxy` on PATH); {HAPROXY_INSTALL_HINT}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Two free loopback ports (bound together, so they differ, and released:
/// HAProxy binds them next).
fn free_ports() -> Result<(SocketAddr, SocketAddr), String> {
    let problem = |e: std::io::Error| format!("cannot find a free loopback port: {e}");
    let first = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(problem)?;
    let second = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(problem)?;
    Ok((first.local_addr().map_err(problem)?, second.local_addr().map_err(problem)?))
}

/// A running HAProxy (`haproxy -f CONFIG -db`, a child process).
pub struct Haproxy {
    /// The balanced Flight SQL front end.
    pub flight_addr: SocketAddr,
    /// The balanced HTTP front end.
    pub http_addr: SocketAddr,
    /// Its config file.
    pub config_file: PathBuf,
    /// Its log file, when not inherited.
    pub log_file: Option<PathBuf>,
    child: Child,
}

impl Haproxy {
    /// Writes [`haproxy_config`] for `backends` to `config_file`, with front
    /// ends on two free loopback ports, checks it (`haproxy -c`), starts
    /// `binary -f config_file -db` and waits until both front ports accept
    /// connections. Its output is appended to `log` (inherited when `None`).
    /// A front port taken in the meantime is retried on new ports.
    pub async fn start(
        binary: &Path,
        config_file: &Path,
        backends: &[Backend],
        log: Option<&Path>,
    ) -> Result<Haproxy, String> {
        const ATTEMPTS: usize = 3;
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let (flight_addr, http_addr) = free_ports()?;
            let text = haproxy_config(flight_addr, http_addr, backends)?;
            {
                use creditgate_files::{Access, Existing};
                creditgate_files::write_atomic(config_file, text.as_bytes(), Access::Public, Existing::Replace)
                    .map_err(|e| e.to_string())?;
            }
            let check = Command::new(binary)
                .args(["-c", "-f"])
                .arg(config_file)
                .output()
                .await
                .map_err(|e| format!("cannot run {}: {e}; {HAPROXY_INSTALL_HINT}", binary.display()))?;
            if !check.status.success() {
                return Err(format!(
                    "HAProxy refuses {} ({}): {}{}",
                    config_file.display(),
                    check.status,
                    String::from_utf8_lossy(&check.stdout),
                    String::from_utf8_lossy(&check.stderr)
                ));
            }
            let (stdout, stderr) = log_stdio(log)?;
            let mut child = Command::new(binary)
                .args(["-f"])
                .arg(config_file)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
            match wait_for_ports(&mut child, &[flight_addr, http_addr]).await {
                Ok(()) => {
                    return Ok(Haproxy {
                        flight_addr,
                        http_addr,
                        config_file: config_file.to_path_buf(),
                        log_file: log.map(Path::to_path_buf),
                        child,
                    });
                }
                Err(reason) => {
                    let _ = stop_child(&mut child, "haproxy", Duration::from_secs(5)).await;
                    last = format!("HAProxy did not start: {reason}; {}", log_tail(log));
                    // A port someone else took between our probe and HAProxy's bind: new ports.
                    if !last.contains("cannot bind") && !last.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Its process id (0 once it has been reaped).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Stops it (SIGTERM: HAProxy closes its connections and exits at once).
    pub async fn stop(mut self) -> Result<ExitStatus, String> {
        stop_child(&mut self.child, "haproxy", Duration::from_secs(10)).await
    }
}

/// Waits until every address in `addrs` accepts a TCP connection, while
/// `child` runs.
async fn wait_for_ports(child: &mut Child, addrs: &[SocketAddr]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + HAPROXY_START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        let mut all = true;
        for addr in addrs {
            let connect = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr));
            all &= matches!(connect.await, Ok(Ok(_)));
        }
        if all {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "its front ports {} did not accept connections within {} s",
                addrs.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(", "),
                HAPROXY_START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What [`Deployment::start`] starts.
#[derive(Debug, Clone)]
pub struct DeploymentOptions {
    /// The `creditgate` binary the replicas run.
    pub exe: PathBuf,
    /// The `haproxy` binary ([`find_haproxy`]).
    pub haproxy: PathBuf,
    /// Number of replicas, `gw-1` … `gw-N`.
    pub replicas: usize,
    /// Where they keep their shared state.
    pub state: SharedState,
    /// Folder of the replicas' configs and state directories
    /// (`DIR/gw-1/gateway.toml`, `DIR/gw-1/state`, …).
    pub dir: PathBuf,
    /// Where HAProxy's config goes.
    pub haproxy_config: PathBuf,
    /// Folder of the log files (`gateway-gw-1.log`, …, `haproxy.log`);
    /// output inherited when `None`.
    pub logs: Option<PathBuf>,
    /// Whether the first replica has the public listener (the others never do).
    pub public_on_first: bool,
    /// `RUST_LOG` of the replicas (inherited when `None`).
    pub rust_log: Option<String>,
}

/// Replicas of a gateway, each a separate process on the shared state, and
/// HAProxy in front of them.
pub struct Deployment {
    /// The replicas, in order (`gw-1` first).
    pub replicas: Vec<ReplicaProcess>,
    /// The balancer.
    pub haproxy: Haproxy,
    /// Their shared state.
    pub state: SharedState,
}

impl Deployment {
    /// Writes a config per replica from `base` ([`replica_config`]), starts
    /// the replicas one after the other (the first migrates the schema),
    /// then HAProxy in front of them. Whatever started is stopped again when
    /// a later step fails.
    pub async fn start(base: &GatewayConfig, options: &DeploymentOptions) -> Result<Deployment, String> {
        if options.replicas < 2 {
            return Err(format!("a deployment of replicas needs at least 2 of them, not {}", options.replicas));
        }
        let mut replicas: Vec<ReplicaProcess> = Vec::new();
        let outcome = async {
            for (i, id) in replica_ids(options.replicas).iter().enumerate() {
                let public = options.public_on_first && i == 0;
                let dir = options.dir.join(id);
                let config = replica_config(base, &dir, id, &options.state, public)?;
                let file = dir.join("gateway.toml");
                write_config(&file, &config)?;
                let log = options.logs.as_ref().map(|logs| logs.join(format!("gateway-{id}.log")));
                let replica =
                    ReplicaProcess::start(&options.exe, id, &file, public, log.as_deref(), options.rust_log.as_deref())
                        .await?;
                replicas.push(replica);
            }
            let backends: Vec<Backend> = replicas.iter().map(ReplicaProcess::backend).collect();
            let log = options.logs.as_ref().map(|logs| logs.join("haproxy.log"));
            Haproxy::start(&options.haproxy, &options.haproxy_config, &backends, log.as_deref()).await
        }
        .await;
        match outcome {
            Ok(haproxy) => Ok(Deployment { replicas, haproxy, state: options.state.clone() }),
            Err(e) => {
                for replica in replicas {
                    let _ = replica.stop().await;
                }
                Err(e)
            }
        }
    }

    /// The balanced front ends and each replica, for `endpoints.json`:
    /// `replicas` (id, own Flight SQL and HTTP addresses, public listener,
    /// process id, config and log files), `state` (backend, URL — never with
    /// a password — and schema) and `haproxy` (front ends, process id,
    /// config file).
    pub fn endpoints(&self) -> serde_json::Value {
        serde_json::json!({
            "replicas": self.replicas.iter().map(|r| serde_json::json!({
                "id": r.id,
                "flight_sql": format!("grpc+tls://{}", r.flight_addr),
                "http": format!("https://{}", r.http_addr),
                "public": r.public_addr.map(|a| format!("https://{a}")),
                "pid": r.pid(),
                "config": r.config_file,
                "log": r.log_file,
            })).collect::<Vec<_>>(),
            "state": {
                "backend": "postgres",
                "url": self.state.url,
                "schema": self.state.schema,
            },
            "haproxy": {
                "flight_sql": format!("grpc+tls://{}", self.haproxy.flight_addr),
                "http": format!("https://{}", self.haproxy.http_addr),
                "pid": self.haproxy.pid(),
                "config": self.haproxy.config_file,
                "log": self.haproxy.log_file,
            },
        })
    }

    /// Stops HAProxy, then every replica (SIGTERM; each finishes its
    /// in-flight requests and writes a final checkpoint). Every process is
    /// stopped even when one fails; the failures are reported together.
    pub async fn stop(self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = self.haproxy.stop().await {
            problems.push(e);
        }
        let stops = self.replicas.into_iter().map(|r| async move {
            let id = r.id.clone();
            match r.stop().await {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("replica {id} exited with {status}")),
                Err(e) => Err(e),
            }
        });
        for outcome in futures::future::join_all(stops).await {
            if let Err(e) = outcome {
                problems.push(e);
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

/// A query result as text, for comparing two results cell by cell: each
/// column as `name: type`, then each row's cells as displayed (`NULL` for a
/// null), whatever the batches' boundaries.
pub fn cells(batches: &[arrow::array::RecordBatch]) -> (Vec<String>, Vec<Vec<String>>) {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let columns = batches
        .first()
        .map(|b| b.schema().fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect())
        .unwrap_or_default();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<Option<ArrayFormatter<'_>>> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok()).collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.as_ref().map_or_else(|| "(not displayable)".to_string(), |f| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    (columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends() -> Vec<Backend> {
        (1..=3)
            .map(|i| Backend {
                id: format!("gw-{i}"),
                flight: SocketAddr::from((Ipv4Addr::LOCALHOST, 7000 + i)),
                http: SocketAddr::from((Ipv4Addr::LOCALHOST, 7080 + i)),
            })
            .collect()
    }

    #[test]
    fn the_config_balances_every_replica_in_tcp_mode() {
        let flight = SocketAddr::from((Ipv4Addr::LOCALHOST, 9000));
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, 9080));
        let text = haproxy_config(flight, http, &backends()).expect("config");
        assert!(text.contains("mode tcp"), "{text}");
        assert!(text.contains("bind 127.0.0.1:9000") && text.contains("bind 127.0.0.1:9080"), "{text}");
        assert_eq!(text.matches("balance roundrobin").count(), 2, "{text}");
        for i in 1..=3 {
            assert!(text.contains(&format!("server gw-{i} 127.0.0.1:{}", 7000 + i)), "{text}");
            assert!(text.contains(&format!("server gw-{i} 127.0.0.1:{}", 7080 + i)), "{text}");
        }
        assert!(!text.contains("mode http") && !text.contains("ssl"), "passthrough only: {text}");
    }

    #[test]
    fn the_config_refuses_no_replica_and_unusable_names() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9000));
        assert!(haproxy_config(addr, addr, &[]).is_err());
        let mut bad = backends();
        bad[1].id = "gw 2".to_string();
        let e = haproxy_config(addr, addr, &bad).expect_err("a space in a server name");
        assert!(e.contains("gw 2"), "{e}");
    }

    #[test]
    fn replica_ids_count_from_one() {
        assert_eq!(replica_ids(3), ["gw-1", "gw-2", "gw-3"]);
    }
}
