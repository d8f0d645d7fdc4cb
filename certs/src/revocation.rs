//! Revocation that takes effect while the server runs.
//!
//! [`ReloadableTrust`] is a client-certificate trust (CA bundle + CRL files)
//! whose CRL set can be replaced while the server runs, and which keeps a
//! registry of the connections it accepted:
//!
//! - **Reload** on demand ([`ReloadableTrust::reload`], for a SIGHUP
//!   handler), when a CRL file changes (checked every
//!   [`RevocationOptions::check_interval`]: modification time, length and
//!   SHA-256 of the content), and when a CRL in force passes its
//!   `nextUpdate` (the file is read again).
//! - **Fail safe**: a CRL that does not parse, is not issued and signed by one
//!   of the configured CAs, or has a lower CRL number than the one in force is
//!   rejected, loudly (error log, [`RevocationCounters::reloads_rejected`]),
//!   and that file's previous CRLs stay in force. Never "no revocations".
//! - **Existing connections**: after every reload each open connection's
//!   certificate chain is verified again with the CRL set in force, exactly as
//!   a new handshake would be; a connection that fails is cut (reads and
//!   writes fail, so HTTP/2 and every gRPC/Flight stream on it end with an
//!   error), and its [`ConnInfo::still_valid`](crate::tls::ConnInfo::still_valid)
//!   turns false at once.
//! - **Expired CRLs**: with [`ClientTrust::enforce_crl_expiry`], a CRL past
//!   its `nextUpdate` fails closed: new handshakes of that CA's clients are
//!   refused ([`RevocationCounters::handshakes_refused_expired_crl`]) and open
//!   connections are cut at the next check.
//! - **Maximum connection age**: at [`RevocationOptions::max_connection_age`]
//!   a connection is asked to close gracefully
//!   ([`ConnInfo::closing`](crate::tls::ConnInfo::closing), for an HTTP layer
//!   that can send GOAWAY); one still open
//!   [`RevocationOptions::max_connection_age_grace`] later is closed under it
//!   (TLS close_notify and the lingering close of a dropped
//!   [`TlsConn`](crate::tls::TlsConn)).
//!
//! Every reload returns a [`ReloadReport`] (also logged, kept as
//! [`ReloadableTrust::last_report`] and passed to the
//! [`ReloadableTrust::on_report`] hook).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use futures::Stream;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use crate::conns::{CloseReason, ClosedConn, ConnSummary};
use crate::conns::{ConnShared, Registered, Registry, close_reason_for};
pub use crate::crl::CrlSummary;
use crate::crl::{CaCert, ValidCrl, validate_file};
use crate::tls::{self, ClientTrust, ConnInfo, IncomingOptions, TlsConn};
use crate::{CertError, load};

/// Default interval between checks of the CRL files for changes.
pub const DEFAULT_CRL_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Default maximum age of a connection.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(10 * 60);
/// Default time a connection past its maximum age gets to close gracefully
/// before it is closed under it.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

/// Shortest pause of the watcher, so a clock jump cannot make it spin.
const MIN_WATCH_PAUSE: Duration = Duration::from_millis(10);

/// How a [`ReloadableTrust`] watches its files and its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationOptions {
    /// How often the CRL files are checked for changes (and CRLs for a
    /// passed `nextUpdate`). Must be positive.
    pub check_interval: Duration,
    /// Connections are asked to close at this age; `None`: no limit. Must be
    /// positive when set.
    pub max_connection_age: Option<Duration>,
    /// A connection still open this long after its maximum age is closed
    /// under it.
    pub max_connection_age_grace: Duration,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            check_interval: DEFAULT_CRL_CHECK_INTERVAL,
            max_connection_age: Some(DEFAULT_MAX_CONNECTION_AGE),
            max_connection_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE,
        }
    }
}

/// What started a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadTrigger {
    /// The initial load.
    Startup,
    /// [`ReloadableTrust::reload`] (e.g. on SIGHUP).
    OnDemand,
    /// A CRL file's modification time, length or content changed.
    FileChanged,
    /// A CRL in force passed its `nextUpdate`.
    NextUpdatePassed,
}

impl ReloadTrigger {
    /// A short stable label.
    pub fn label(self) -> &'static str {
        match self {
            ReloadTrigger::Startup => "startup",
            ReloadTrigger::OnDemand => "on_demand",
            ReloadTrigger::FileChanged => "file_changed",
            ReloadTrigger::NextUpdatePassed => "next_update_passed",
        }
    }
}

/// What a reload did with one CRL file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CrlOutcome {
    /// New content, checked and put in force.
    Loaded,
    /// Same content as the CRLs in force.
    Unchanged,
    /// The file was refused; its previous CRLs stay in force.
    Rejected {
        /// Why (names the file's problem, never its content).
        reason: String,
    },
}

/// One CRL file in a [`ReloadReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrlFileReport {
    /// The file.
    pub path: PathBuf,
    /// What the reload did with it.
    #[serde(flatten)]
    pub outcome: CrlOutcome,
    /// The CRLs of this file in force after the reload (the new ones, or the
    /// previous ones when it was rejected).
    pub crls: Vec<CrlSummary>,
    /// Whether one of those is past its `nextUpdate`.
    pub expired: bool,
}

/// The result of one reload, for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// What started it.
    pub trigger: ReloadTrigger,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Generation of the CRL set in force afterwards (grows by one per
    /// change).
    pub generation: u64,
    /// Whether CRL expiry is enforced.
    pub enforce_crl_expiry: bool,
    /// One entry per configured CRL file, in configuration order.
    pub files: Vec<CrlFileReport>,
    /// Open connections checked again.
    pub connections_checked: usize,
    /// Connections this reload closed, and why.
    pub closed: Vec<ClosedConn>,
}

impl ReloadReport {
    /// No file was rejected.
    pub fn accepted(&self) -> bool {
        self.files.iter().all(|f| !matches!(f.outcome, CrlOutcome::Rejected { .. }))
    }

    /// How many connections this reload closed.
    pub fn connections_closed(&self) -> usize {
        self.closed.len()
    }

    /// Revoked serials in force after the reload, over all files.
    pub fn revoked_serials(&self) -> usize {
        self.files.iter().flat_map(|f| &f.crls).map(|c| c.revoked_serials).sum()
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CRL reload ({}): {}, generation {}",
            self.trigger.label(),
            if self.accepted() { "accepted" } else { "REJECTED" },
            self.generation
        )?;
        for file in &self.files {
            write!(f, "; {} ", file.path.display())?;
            match &file.outcome {
                CrlOutcome::Loaded => f.write_str("loaded")?,
                CrlOutcome::Unchanged => f.write_str("unchanged")?,
                CrlOutcome::Rejected { reason } => write!(f, "rejected ({reason}), previous kept")?,
            }
            for crl in &file.crls {
                write!(
                    f,
                    " [{} number {} revoking {}{}]",
                    crl.issuer,
                    crl.crl_number.as_deref().unwrap_or("none"),
                    crl.revoked_serials,
                    if file.expired { ", EXPIRED" } else { "" }
                )?;
            }
        }
        write!(f, "; {} connections checked, {} closed", self.connections_checked, self.closed.len())
    }
}

/// Counters of a [`ReloadableTrust`] (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RevocationCounters {
    /// Reloads where every CRL file was accepted (or unchanged).
    pub reloads_ok: u64,
    /// Reloads where at least one CRL file was rejected.
    pub reloads_rejected: u64,
    /// Open connections closed because their certificate was revoked.
    pub connections_closed_revoked: u64,
    /// Open connections closed because their certificate no longer verified
    /// for another reason (expired CRL under enforcement, expired certificate).
    pub connections_closed_untrusted: u64,
    /// Connections that ended after reaching their maximum age.
    pub connections_closed_max_age: u64,
    /// Handshakes refused because the certificate is revoked.
    pub handshakes_refused_revoked: u64,
    /// Handshakes refused because a CRL had expired (with enforcement).
    pub handshakes_refused_expired_crl: u64,
    /// Connections open now.
    pub open_connections: u64,
}

#[derive(Default)]
struct Stats {
    reloads_ok: AtomicU64,
    reloads_rejected: AtomicU64,
    closed_revoked: AtomicU64,
    closed_untrusted: AtomicU64,
    closed_max_age: AtomicU64,
    refused_revoked: AtomicU64,
    refused_expired_crl: AtomicU64,
}

/// A reload hook.
type ReportHook = Arc<dyn Fn(&ReloadReport) + Send + Sync>;

/// What a CRL file looked like when last read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stamp {
    Read { modified: Option<SystemTime>, len: u64, sha256: [u8; 32] },
    Unreadable(String),
}

struct FileState {
    path: PathBuf,
    /// As last read (accepted or not), to notice a change.
    seen: Stamp,
    /// SHA-256 of the content whose CRLs are in force.
    accepted_sha256: [u8; 32],
    crls: Vec<ValidCrl>,
}

struct Files {
    files: Vec<FileState>,
    /// `nextUpdate`s up to this time have been handled by a reload.
    expiry_handled_until: SystemTime,
}

struct CrlSet {
    generation: u64,
    verifier: Arc<dyn ClientCertVerifier>,
}

struct Inner {
    trust: ClientTrust,
    options: RevocationOptions,
    roots: Arc<RootCertStore>,
    cas: Vec<CaCert>,
    root_hints: Vec<DistinguishedName>,
    current: ArcSwap<CrlSet>,
    /// Held for the whole of a reload: reloads run one at a time.
    files: Mutex<Files>,
    registry: Registry,
    stats: Stats,
    hook: Mutex<Option<ReportHook>>,
    refusal_hook: Mutex<Option<RefusalHook>>,
    last_report: Mutex<Option<Arc<ReloadReport>>>,
    watcher_started: AtomicBool,
    /// Generation for which the expired-CRL refusal warning was logged.
    expired_warned: AtomicU64,
}

/// A client trust whose CRLs can change while the server runs, with the
/// registry of the connections it accepted. Cheap to clone (one shared
/// state).
#[derive(Clone)]
pub struct ReloadableTrust {
    inner: Arc<Inner>,
}

impl fmt::Debug for ReloadableTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableTrust")
            .field("ca_file", &self.inner.trust.ca_file)
            .field("crl_files", &self.inner.trust.crl_files)
            .field("generation", &self.generation())
            .field("open_connections", &self.inner.registry.len())
            .finish_non_exhaustive()
    }
}

impl ReloadableTrust {
    /// Loads the CA bundle and the CRLs. Fails — so start-up fails — on a
    /// missing or empty CA file, invalid options, and any CRL file that would
    /// be rejected by a reload (unreadable, not PEM, no CRL, not issued and
    /// signed by one of the CAs in `trust.ca_file`).
    ///
    /// CRLs of intermediate CAs (not in the CA file) are refused: their
    /// signature cannot be checked before they are put in force.
    pub fn new(trust: ClientTrust, options: RevocationOptions) -> Result<Self, CertError> {
        if options.check_interval.is_zero() {
            return Err(CertError::input("CRL check interval", "0s", "must be positive"));
        }
        if options.max_connection_age.is_some_and(|age| age.is_zero()) {
            return Err(CertError::input("maximum connection age", "0s", "must be positive (or unset)"));
        }
        let ca_certs = load::certs_from_pem_file(&trust.ca_file)?;
        let roots = Arc::new(tls::root_store_from(&trust.ca_file, &ca_certs)?);
        let cas = CaCert::from_bundle(&trust.ca_file, &ca_certs)?;
        let mut files = Vec::with_capacity(trust.crl_files.len());
        for path in &trust.crl_files {
            let (stamp, bytes) = read_file(path).map_err(|e| CertError::read(path, e))?;
            let crls = validate_file(&bytes, &cas, &trust.ca_file, &roots, &[])
                .map_err(|reason| CertError::CrlRejected { path: path.clone(), reason })?;
            let accepted_sha256 = match &stamp {
                Stamp::Read { sha256, .. } => *sha256,
                Stamp::Unreadable(_) => [0; 32],
            };
            files.push(FileState { path: path.clone(), seen: stamp, accepted_sha256, crls });
        }
        let verifier = build_verifier(&trust, &roots, &files)?;
        let root_hints = verifier.root_hint_subjects().to_vec();
        let now = SystemTime::now();
        let inner = Arc::new(Inner {
            trust,
            options,
            roots,
            cas,
            root_hints,
            current: ArcSwap::from_pointee(CrlSet { generation: 1, verifier }),
            files: Mutex::new(Files { files, expiry_handled_until: now }),
            registry: Registry::default(),
            stats: Stats::default(),
            hook: Mutex::new(None),
            refusal_hook: Mutex::new(None),
            last_report: Mutex::new(None),
            watcher_started: AtomicBool::new(false),
            expired_warned: AtomicU64::new(0),
        });
        let trust = ReloadableTrust { inner };
        let report = {
            let files = trust.inner.lock_files();
            let outcomes = vec![CrlOutcome::Loaded; files.files.len()];
            trust.report(ReloadTrigger::Startup, now, &files, outcomes, 0, Vec::new())
        };
        trust.publish(report);
        Ok(trust)
    }

    /// The trust configuration (CA bundle, CRL files, expiry enforcement).
    pub fn client_trust(&self) -> &ClientTrust {
        &self.inner.trust
    }

    /// The watch options.
    pub fn options(&self) -> RevocationOptions {
        self.inner.options
    }

    /// The client-certificate verifier: always the CRL set in force. Give it
    /// to every `ServerConfig` that should follow reloads.
    pub fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(LiveVerifier { inner: Arc::clone(&self.inner) })
    }

    /// [`tls::server_config`] with this trust's live verifier: clients must
    /// present a certificate chaining to the CA bundle and not revoked by the
    /// CRLs in force at their handshake.
    ///
    /// TLS session resumption is off: rustls does not verify the client
    /// certificate again when a session is resumed, so a client revoked since
    /// its first handshake could otherwise come back on its session ticket.
    /// Every connection makes a full handshake against the CRLs in force.
    pub fn server_config(
        &self,
        cert_file: &Path,
        key_file: &Path,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, CertError> {
        let config = tls::server_config_with_verifier(cert_file, key_file, self.verifier(), alpn)?;
        let mut config = Arc::unwrap_or_clone(config);
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// [`tls::incoming_with_options`] that registers every accepted
    /// connection with this trust (so reloads can close it and the maximum
    /// age applies). Several listeners may share one trust.
    ///
    /// At the first poll this also starts, once per trust, the background
    /// watcher that checks the CRL files every
    /// [`RevocationOptions::check_interval`]; it stops when the trust, every
    /// configuration using its verifier and every stream are dropped.
    pub fn incoming(
        &self,
        listener: TcpListener,
        config: Arc<ServerConfig>,
        options: IncomingOptions,
    ) -> impl Stream<Item = Result<TlsConn, io::Error>> + Send + 'static {
        tls::incoming_tracked(listener, config, options, Some(Tracker(Arc::clone(&self.inner))))
    }

    /// Reads every CRL file again now and puts the accepted ones in force,
    /// then checks every open connection again. Blocks while it reads files
    /// and verifies chains (milliseconds; more with many thousand
    /// connections): from async code prefer [`ReloadableTrust::reload_async`].
    pub fn reload(&self) -> ReloadReport {
        self.reload_with(ReloadTrigger::OnDemand)
    }

    /// [`ReloadableTrust::reload`] on Tokio's blocking pool.
    pub async fn reload_async(&self) -> ReloadReport {
        let trust = self.clone();
        match tokio::task::spawn_blocking(move || trust.reload()).await {
            Ok(report) => report,
            // The blocking task was cancelled (runtime shutting down) or
            // panicked: do the work here rather than lose the reload.
            Err(_) => self.reload(),
        }
    }

    /// Reloads if a CRL file changed since it was last read or a CRL in
    /// force passed its `nextUpdate`; what the watcher runs at every
    /// interval. Blocking, like [`ReloadableTrust::reload`].
    pub fn check(&self) -> Option<ReloadReport> {
        let trigger = {
            let files = self.inner.lock_files();
            let now = SystemTime::now();
            let changed = files.files.iter().any(|file| {
                let stamp = match read_file(&file.path) {
                    Ok((stamp, _)) => stamp,
                    Err(e) => Stamp::Unreadable(e.to_string()),
                };
                stamp != file.seen
            });
            if changed {
                Some(ReloadTrigger::FileChanged)
            } else if next_expiry(&files).is_some_and(|next| next <= now) {
                Some(ReloadTrigger::NextUpdatePassed)
            } else {
                None
            }
        };
        trigger.map(|trigger| self.reload_with(trigger))
    }

    /// Current counters.
    pub fn counters(&self) -> RevocationCounters {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RevocationCounters {
            reloads_ok: get(&s.reloads_ok),
            reloads_rejected: get(&s.reloads_rejected),
            connections_closed_revoked: get(&s.closed_revoked),
            connections_closed_untrusted: get(&s.closed_untrusted),
            connections_closed_max_age: get(&s.closed_max_age),
            handshakes_refused_revoked: get(&s.refused_revoked),
            handshakes_refused_expired_crl: get(&s.refused_expired_crl),
            open_connections: self.inner.registry.len() as u64,
        }
    }

    /// The open connections, oldest first.
    pub fn connections(&self) -> Vec<ConnSummary> {
        self.inner.registry.summaries()
    }

    /// The report of the latest reload (the start-up load at first).
    pub fn last_report(&self) -> Option<Arc<ReloadReport>> {
        self.inner.last_report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls `hook` with the report of every later reload, whatever
    /// triggered it (replaces an earlier hook). The hook runs on the
    /// reloading thread: keep it short.
    pub fn on_report(&self, hook: impl Fn(&ReloadReport) + Send + Sync + 'static) {
        *self.inner.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(hook));
    }

    /// Calls `hook` for every handshake refused because the client's
    /// certificate is revoked (or its CA's CRL expired under enforcement),
    /// for the audit trail (replaces an earlier hook). It runs inside the
    /// handshake: keep it short and non-blocking.
    pub fn on_refusal(&self, hook: impl Fn(&RefusedHandshake) + Send + Sync + 'static) {
        *self.inner.refusal_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(hook));
    }

    /// Generation of the CRL set in force (1 after start-up, +1 per change).
    pub fn generation(&self) -> u64 {
        self.inner.current.load().generation
    }

    fn reload_with(&self, trigger: ReloadTrigger) -> ReloadReport {
        let inner = &self.inner;
        let mut files = inner.lock_files();
        let now = SystemTime::now();
        let mut outcomes = Vec::with_capacity(files.files.len());
        let mut replaced: Vec<(usize, [u8; 32], Vec<ValidCrl>)> = Vec::new();
        for (i, file) in files.files.iter_mut().enumerate() {
            let outcome = match read_file(&file.path) {
                Err(e) => {
                    let reason = format!("cannot read the file: {e}");
                    file.seen = Stamp::Unreadable(e.to_string());
                    CrlOutcome::Rejected { reason }
                }
                Ok((stamp, bytes)) => {
                    let sha256 = match &stamp {
                        Stamp::Read { sha256, .. } => *sha256,
                        Stamp::Unreadable(_) => [0; 32],
                    };
                    file.seen = stamp;
                    if sha256 == file.accepted_sha256 {
                        CrlOutcome::Unchanged
                    } else {
                        match validate_file(&bytes, &inner.cas, &inner.trust.ca_file, &inner.roots, &file.crls) {
                            Ok(crls) => {
                                let old = std::mem::replace(&mut file.crls, crls);
                                replaced.push((i, file.accepted_sha256, old));
                                file.accepted_sha256 = sha256;
                                CrlOutcome::Loaded
                            }
                            Err(reason) => CrlOutcome::Rejected { reason },
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        if !replaced.is_empty() {
            match build_verifier(&inner.trust, &inner.roots, &files.files) {
                Ok(verifier) => {
                    let generation = inner.current.load().generation + 1;
                    inner.current.store(Arc::new(CrlSet { generation, verifier }));
                }
                Err(e) => {
                    // Each file passed on its own; should the set as a whole
                    // not build, keep the previous set entirely.
                    let reason = format!("the CRL set could not be built: {e}");
                    for (i, sha256, crls) in replaced {
                        files.files[i].accepted_sha256 = sha256;
                        files.files[i].crls = crls;
                        outcomes[i] = CrlOutcome::Rejected { reason: reason.clone() };
                    }
                }
            }
        }
        files.expiry_handled_until = now;

        // Check the open connections against the set now in force, the way
        // a new handshake would be checked.
        let set = inner.current.load_full();
        let conns = inner.registry.snapshot();
        let unix_now = UnixTime::now();
        let closed: Vec<ClosedConn> =
            conns.iter().filter_map(|conn| conn.revalidate(set.verifier.as_ref(), unix_now, true)).collect();
        for conn in &closed {
            inner.count_cut(conn.reason);
        }
        let rejected = outcomes.iter().any(|o| matches!(o, CrlOutcome::Rejected { .. }));
        let counter = if rejected { &inner.stats.reloads_rejected } else { &inner.stats.reloads_ok };
        counter.fetch_add(1, Ordering::Relaxed);
        let report = self.report(trigger, now, &files, outcomes, conns.len(), closed);
        drop(files);
        self.publish(report.clone());
        report
    }

    fn report(
        &self,
        trigger: ReloadTrigger,
        now: SystemTime,
        files: &Files,
        outcomes: Vec<CrlOutcome>,
        connections_checked: usize,
        closed: Vec<ClosedConn>,
    ) -> ReloadReport {
        let files = files
            .files
            .iter()
            .zip(outcomes)
            .map(|(file, outcome)| CrlFileReport {
                path: file.path.clone(),
                outcome,
                crls: file.crls.iter().map(|c| c.summary.clone()).collect(),
                expired: file.crls.iter().any(|c| c.expired_at(now)),
            })
            .collect();
        ReloadReport {
            trigger,
            at: DateTime::<Utc>::from(now),
            generation: self.generation(),
            enforce_crl_expiry: self.inner.trust.enforce_crl_expiry,
            files,
            connections_checked,
            closed,
        }
    }

    /// Logs the report, keeps it as the last one and calls the hook.
    fn publish(&self, report: ReloadReport) {
        let enforce = self.inner.trust.enforce_crl_expiry;
        for file in &report.files {
            let path = file.path.display();
            match &file.outcome {
                CrlOutcome::Loaded => {
                    for crl in &file.crls {
                        tracing::info!(
                            crl.file = %path,
                            crl.issuer = %crl.issuer,
                            crl.number = crl.crl_number.as_deref().unwrap_or("none"),
                            crl.revoked = crl.revoked_serials,
                            crl.next_update = ?crl.next_update,
                            reload.trigger = report.trigger.label(),
                            "CRL loaded"
                        );
                    }
                }
                CrlOutcome::Unchanged => {
                    tracing::debug!(crl.file = %path, reload.trigger = report.trigger.label(), "CRL unchanged")
                }
                CrlOutcome::Rejected { reason } => tracing::error!(
                    crl.file = %path,
                    reason = %reason,
                    reload.trigger = report.trigger.label(),
                    "CRL REJECTED: the previous revocation list of this file stays in force; fix the file"
                ),
            }
            if file.expired {
                for crl in file.crls.iter().filter(|c| c.next_update.is_some_and(|n| n <= report.at)) {
                    if enforce {
                        tracing::error!(
                            crl.file = %path,
                            crl.issuer = %crl.issuer,
                            crl.next_update = ?crl.next_update,
                            "CRL EXPIRED: clients of this CA are refused until a current CRL is installed \
                             (enforce_crl_expiry)"
                        );
                    } else {
                        tracing::warn!(
                            crl.file = %path,
                            crl.issuer = %crl.issuer,
                            crl.next_update = ?crl.next_update,
                            "CRL expired; still used because enforce_crl_expiry is off"
                        );
                    }
                }
            }
        }
        if report.trigger != ReloadTrigger::Startup {
            let summary = report.to_string();
            if report.accepted() {
                tracing::info!(
                    reload.trigger = report.trigger.label(),
                    crl.generation = report.generation,
                    conns.checked = report.connections_checked,
                    conns.closed = report.closed.len(),
                    report = %summary,
                    "CRL reload done"
                );
            } else {
                tracing::error!(
                    reload.trigger = report.trigger.label(),
                    crl.generation = report.generation,
                    conns.checked = report.connections_checked,
                    conns.closed = report.closed.len(),
                    report = %summary,
                    "CRL reload rejected a file"
                );
            }
        }
        let report = Arc::new(report);
        *self.inner.last_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&report));
        let hook = self.inner.hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&report);
        }
    }
}

impl Inner {
    fn lock_files(&self) -> MutexGuard<'_, Files> {
        // A panic mid-reload leaves each file's state whole (fields are
        // replaced, not edited), so the data is still usable.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_cut(&self, reason: CloseReason) {
        let counter = match reason {
            CloseReason::Revoked => &self.stats.closed_revoked,
            CloseReason::CrlExpired | CloseReason::NoLongerTrusted => &self.stats.closed_untrusted,
            CloseReason::MaxAge => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How long the watcher sleeps: the check interval, or less when a CRL's
    /// `nextUpdate` comes first.
    fn next_pause(&self) -> Duration {
        let files = self.lock_files();
        let interval = self.options.check_interval;
        let pause = match next_expiry(&files) {
            Some(next) => next.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(interval),
            None => interval,
        };
        pause.max(MIN_WATCH_PAUSE)
    }

    fn ensure_watcher(self: &Arc<Self>) {
        if self.trust.crl_files.is_empty() || self.watcher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.watcher_started.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                let pause = match weak.upgrade() {
                    Some(inner) => inner.next_pause(),
                    None => return,
                };
                tokio::time::sleep(pause).await;
                let Some(inner) = weak.upgrade() else { return };
                let trust = ReloadableTrust { inner };
                // Panics are contained by the blocking task; the next round
                // tries again.
                let _ = tokio::task::spawn_blocking(move || trust.check()).await;
            }
        });
    }
}

/// The earliest `nextUpdate` in force that no reload has handled yet.
fn next_expiry(files: &Files) -> Option<SystemTime> {
    files
        .files
        .iter()
        .flat_map(|f| &f.crls)
        .filter_map(|c| c.next_update)
        .filter(|next| *next > files.expiry_handled_until)
        .min()
}

/// Reads a file with its stamp (modification time, length, SHA-256).
fn read_file(path: &Path) -> io::Result<(Stamp, Vec<u8>)> {
    let modified = fs::metadata(path)?.modified().ok();
    let bytes = fs::read(path)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok((Stamp::Read { modified, len: bytes.len() as u64, sha256 }, bytes))
}

fn build_verifier(
    trust: &ClientTrust,
    roots: &Arc<RootCertStore>,
    files: &[FileState],
) -> Result<Arc<dyn ClientCertVerifier>, CertError> {
    let crls = files.iter().flat_map(|f| &f.crls).map(|c| c.der.clone()).collect();
    tls::webpki_verifier(trust, Arc::clone(roots), crls)
}

/// A handshake refused for revocation, as passed to
/// [`ReloadableTrust::on_refusal`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedHandshake {
    /// SHA-256 fingerprint of the client's certificate (lowercase hex).
    pub fingerprint: String,
    /// Its serial (lowercase hex) and issuer, when the certificate parses.
    pub serial: Option<String>,
    /// Its issuer's distinguished name.
    pub issuer: Option<String>,
    /// Why: [`CloseReason::Revoked`] or [`CloseReason::CrlExpired`].
    pub reason: CloseReason,
    /// Generation of the CRL set that refused it.
    pub crl_generation: u64,
}

type RefusalHook = Arc<dyn Fn(&RefusedHandshake) + Send + Sync>;

/// The verifier handed to rustls: the CRL set in force at each handshake.
struct LiveVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for LiveVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveVerifier").field("generation", &self.inner.current.load().generation).finish()
    }
}

impl ClientCertVerifier for LiveVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.current.load().verifier.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.current.load().verifier.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The CA bundle does not change on reload, nor do its subjects.
        &self.inner.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let set = self.inner.current.load();
        let result = set.verifier.verify_client_cert(end_entity, intermediates, now);
        if let Err(error) = &result {
            let stats = &self.inner.stats;
            match close_reason_for(error) {
                CloseReason::Revoked => {
                    stats.refused_revoked.fetch_add(1, Ordering::Relaxed);
                }
                CloseReason::CrlExpired => {
                    stats.refused_expired_crl.fetch_add(1, Ordering::Relaxed);
                    if self.inner.expired_warned.swap(set.generation, Ordering::Relaxed) != set.generation {
                        tracing::warn!(
                            crl.generation = set.generation,
                            "TLS handshake refused: the CRL of the client's CA has expired and \
                             enforce_crl_expiry is on; install a current CRL (further refusals are counted, \
                             not logged at warn)"
                        );
                    }
                }
                CloseReason::NoLongerTrusted | CloseReason::MaxAge => {}
            }
            let reason = close_reason_for(error);
            if matches!(reason, CloseReason::Revoked | CloseReason::CrlExpired) {
                let hook = self.inner.refusal_hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(hook) = hook {
                    let parsed = X509Certificate::from_der(end_entity).ok().map(|(_, c)| c);
                    hook(&RefusedHandshake {
                        fingerprint: crate::identity::fingerprint_hex(end_entity),
                        serial: parsed.as_ref().map(|c| crate::identity::serial_hex(c.raw_serial())),
                        issuer: parsed.as_ref().map(|c| c.issuer().to_string()),
                        reason,
                        crl_generation: set.generation,
                    });
                }
            }
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.current.load().verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.current.load().verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.current.load().verifier.supported_verify_schemes()
    }
}

/// Registers connections accepted by [`tls::incoming_tracked`].
#[derive(Clone)]
pub(crate) struct Tracker(Arc<Inner>);

impl Tracker {
    /// Generation of the CRL set in force; read before a handshake starts.
    pub(crate) fn generation(&self) -> u64 {
        self.0.current.load().generation
    }

    /// Starts the file watcher (once per trust).
    pub(crate) fn start(&self) {
        self.0.ensure_watcher();
    }

    /// Registers a connection whose handshake began at CRL generation
    /// `generation`. If a reload ran meanwhile, the handshake may have used
    /// the old set after the reload checked the open connections; a
    /// `resumed` session was not checked at all (possible only with a
    /// configuration other than [`ReloadableTrust::server_config`]'s). In
    /// both cases the chain is checked now against the set in force.
    pub(crate) fn register(
        &self,
        info: &ConnInfo,
        chain: Vec<CertificateDer<'static>>,
        generation: u64,
        resumed: bool,
    ) -> Tracking {
        let issuer = chain
            .first()
            .and_then(|leaf| X509Certificate::from_der(leaf).ok().map(|(_, cert)| cert.issuer().to_string()));
        let (id, registered) = self.0.registry.insert(Registered {
            state: Arc::clone(&info.state),
            remote_addr: info.remote_addr,
            identity: info.identity.clone(),
            chain,
            issuer,
            opened: Instant::now(),
        });
        let set = self.0.current.load_full();
        if (resumed || set.generation != generation)
            && let Some(closed) = registered.revalidate(set.verifier.as_ref(), UnixTime::now(), false)
        {
            self.0.count_cut(closed.reason);
        }
        let timer = self.0.options.max_connection_age.map(|age| {
            let (ended, on_end) = oneshot::channel();
            spawn_age_timer(Arc::downgrade(&info.state), age, self.0.options.max_connection_age_grace, on_end, info);
            ended
        });
        Tracking { inner: Arc::clone(&self.0), id, state: Arc::clone(&info.state), _ended: timer }
    }
}

/// Asks a connection to close at `age`, and cuts it `grace` later; ends
/// early when the connection ends (`on_end` fires when its sender drops).
fn spawn_age_timer(
    state: Weak<ConnShared>,
    age: Duration,
    grace: Duration,
    mut on_end: oneshot::Receiver<()>,
    info: &ConnInfo,
) {
    let peer = info.remote_addr;
    let who = info.identity.as_ref().map(|id| id.name()).unwrap_or_default();
    tokio::spawn(async move {
        tokio::select! {
            _ = &mut on_end => return,
            () = tokio::time::sleep(age) => {}
        }
        let Some(shared) = state.upgrade() else { return };
        if shared.request_close() {
            tracing::debug!(peer.addr = %peer, client.identity = %who, "connection reached its maximum age; closing");
        }
        drop(shared);
        tokio::select! {
            _ = &mut on_end => return,
            () = tokio::time::sleep(grace) => {}
        }
        if let Some(shared) = state.upgrade()
            && shared.cut(CloseReason::MaxAge)
        {
            tracing::info!(
                peer.addr = %peer,
                client.identity = %who,
                "connection still open after its maximum age and grace period; closing it"
            );
        }
    });
}

/// A registered connection; deregisters when dropped (with its `TlsConn`).
pub(crate) struct Tracking {
    inner: Arc<Inner>,
    id: u64,
    state: Arc<ConnShared>,
    /// Dropping it stops the connection's age timer.
    _ended: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for Tracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracking").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if self.inner.registry.remove(self.id).is_some() && self.state.close_reason() == Some(CloseReason::MaxAge) {
            self.inner.stats.closed_max_age.fetch_add(1, Ordering::Relaxed);
        }
    }
}
