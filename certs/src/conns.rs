//! The registry of open TLS connections and each connection's shared state.
//!
//! Every connection accepted through [`ReloadableTrust::incoming`] is
//! registered here with its peer certificate chain. The registry can then
//! re-check every open connection against a new CRL set and *cut* those whose
//! certificate is no longer acceptable, and it enforces a maximum connection
//! age.
//!
//! Cutting works below HTTP: the connection's [`TlsConn`] makes every read and
//! write fail from then on, and wakes the task driving it, so hyper or tonic
//! end the connection and every stream on it (in-flight calls end with an
//! error). The state is shared with every clone of the connection's
//! [`ConnInfo`], so a request handler can also ask, cheaply, whether its
//! connection is still valid ([`ConnInfo::still_valid`]).
//!
//! [`ReloadableTrust::incoming`]: crate::revocation::ReloadableTrust::incoming
//! [`TlsConn`]: crate::tls::TlsConn
//! [`ConnInfo`]: crate::tls::ConnInfo
//! [`ConnInfo::still_valid`]: crate::tls::ConnInfo::still_valid

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use tokio::sync::Notify;

use crate::identity::Identity;

/// Why a connection is being closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The connection reached its maximum age. The certificate is still
    /// valid: the client may reconnect.
    MaxAge,
    /// The peer certificate no longer verifies for another reason than
    /// revocation or an expired CRL (for instance it expired while the
    /// connection was open).
    NoLongerTrusted,
    /// The CRL of the peer certificate's issuer is past its next update and
    /// CRL expiry is enforced (fail closed).
    CrlExpired,
    /// The peer certificate (or a CA certificate in its chain) is revoked.
    Revoked,
}

impl CloseReason {
    /// Whether the reason is about the certificate (a new connection with it
    /// would be refused), rather than about the connection.
    pub fn invalidates_certificate(self) -> bool {
        match self {
            CloseReason::MaxAge => false,
            CloseReason::NoLongerTrusted | CloseReason::CrlExpired | CloseReason::Revoked => true,
        }
    }

    /// A short stable label (logs, metrics).
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::MaxAge => "max_age",
            CloseReason::NoLongerTrusted => "no_longer_trusted",
            CloseReason::CrlExpired => "crl_expired",
            CloseReason::Revoked => "revoked",
        }
    }
}

impl fmt::Display for CloseReason {
    /// A message a client can act on (no internal details).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::MaxAge => "the connection reached its maximum age; reconnect",
            CloseReason::NoLongerTrusted => "the client certificate is no longer accepted",
            CloseReason::CrlExpired => {
                "the revocation list of the client certificate's issuer has expired; the server refuses \
                 its certificates until a current one is installed"
            }
            CloseReason::Revoked => "the client certificate has been revoked",
        })
    }
}

// Connection states, ordered: a state only ever moves to a larger value
// (`fetch_max`), so a revocation overrides a pending max-age close and
// nothing re-opens a cut connection. Each reason has two states: *refusing*
// (the server decided; requests are refused and streams end with a status
// naming the reason, but the transport still carries that status to the
// client) and *cut* (reads and writes fail). Certificate reasons go through
// refusing first and are cut [`REFUSE_GRACE`] later; a max-age close drains
// gracefully first.
const OPEN: u8 = 0;
/// Max age reached: the HTTP layer should close gracefully.
const DRAINING: u8 = 2;
/// Max age plus grace reached: I/O cut.
const CUT_MAX_AGE: u8 = 3;
const REFUSING_NO_LONGER_TRUSTED: u8 = 4;
const CUT_NO_LONGER_TRUSTED: u8 = 5;
const REFUSING_CRL_EXPIRED: u8 = 6;
const CUT_CRL_EXPIRED: u8 = 7;
const REFUSING_REVOKED: u8 = 8;
const CUT_REVOKED: u8 = 9;

/// How long a connection whose certificate is no longer accepted keeps its
/// transport after the decision, so that the streams in flight on it can
/// end with a status that names the reason (instead of a transport error).
/// Requests are refused from the decision on.
pub const REFUSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// State shared by a connection's [`crate::tls::TlsConn`], every clone of its
/// [`crate::tls::ConnInfo`] and the registry.
pub(crate) struct ConnShared {
    state: AtomicU8,
    /// Only tracked connections register wakers (untracked ones are never cut).
    tracked: bool,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
    changed: Notify,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnState")
            .field("tracked", &self.tracked)
            .field("close_reason", &self.close_reason())
            .field("cut", &self.is_cut())
            .finish()
    }
}

impl ConnShared {
    pub(crate) fn new(tracked: bool) -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU8::new(OPEN),
            tracked,
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
            changed: Notify::new(),
        })
    }

    pub(crate) fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// `None` while open; the reason once a close was requested or done.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        match self.state.load(Ordering::Acquire) {
            OPEN => None,
            DRAINING | CUT_MAX_AGE => Some(CloseReason::MaxAge),
            REFUSING_NO_LONGER_TRUSTED | CUT_NO_LONGER_TRUSTED => Some(CloseReason::NoLongerTrusted),
            REFUSING_CRL_EXPIRED | CUT_CRL_EXPIRED => Some(CloseReason::CrlExpired),
            _ => Some(CloseReason::Revoked),
        }
    }

    /// The reason, once reads and writes are cut.
    pub(crate) fn cut_reason(&self) -> Option<CloseReason> {
        if self.is_cut() { self.close_reason() } else { None }
    }

    pub(crate) fn is_cut(&self) -> bool {
        matches!(
            self.state.load(Ordering::Acquire),
            CUT_MAX_AGE | CUT_NO_LONGER_TRUSTED | CUT_CRL_EXPIRED | CUT_REVOKED
        )
    }

    pub(crate) fn register_read(&self, waker: &std::task::Waker) {
        self.read_waker.register(waker);
    }

    pub(crate) fn register_write(&self, waker: &std::task::Waker) {
        self.write_waker.register(waker);
    }

    /// Asks the HTTP layer to close gracefully (max age reached).
    pub(crate) fn request_close(&self) -> bool {
        self.advance(DRAINING)
    }

    /// Cuts reads and writes; returns whether this call cut it (false when
    /// it already was cut for this or a stronger reason).
    pub(crate) fn cut(&self, reason: CloseReason) -> bool {
        self.advance(match reason {
            CloseReason::MaxAge => CUT_MAX_AGE,
            CloseReason::NoLongerTrusted => CUT_NO_LONGER_TRUSTED,
            CloseReason::CrlExpired => CUT_CRL_EXPIRED,
            CloseReason::Revoked => CUT_REVOKED,
        })
    }

    /// Decides to close for `reason` without cutting yet: requests are
    /// refused and [`ConnShared::closing`] resolves, while the transport
    /// still works (see [`REFUSE_GRACE`]). Returns whether this call
    /// decided it.
    pub(crate) fn refuse(&self, reason: CloseReason) -> bool {
        self.advance(Self::refusing_state(reason))
    }

    fn refusing_state(reason: CloseReason) -> u8 {
        match reason {
            CloseReason::MaxAge => DRAINING,
            CloseReason::NoLongerTrusted => REFUSING_NO_LONGER_TRUSTED,
            CloseReason::CrlExpired => REFUSING_CRL_EXPIRED,
            CloseReason::Revoked => REFUSING_REVOKED,
        }
    }

    fn advance(&self, to: u8) -> bool {
        let before = self.state.fetch_max(to, Ordering::AcqRel);
        if before >= to {
            return false;
        }
        self.read_waker.wake();
        self.write_waker.wake();
        self.changed.notify_waiters();
        true
    }

    /// Resolves once a close was requested or the connection was cut.
    pub(crate) async fn closing(self: Arc<Self>) -> CloseReason {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.close_reason() {
                return reason;
            }
            notified.await;
        }
    }
}

/// One open connection, as listed by
/// [`ReloadableTrust::connections`](crate::revocation::ReloadableTrust::connections).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnSummary {
    /// The peer's TCP address.
    pub remote_addr: SocketAddr,
    /// The peer's identity name ([`Identity::name`]), if it presented a certificate.
    pub identity: Option<String>,
    /// The peer certificate's serial (lowercase hex), if any.
    pub serial: Option<String>,
    /// The peer certificate's issuer (distinguished name), if any.
    pub issuer: Option<String>,
    /// SHA-256 fingerprint of the peer certificate, if any.
    pub fingerprint: Option<String>,
    /// How long the connection has been open.
    pub age: Duration,
    /// Set once the server decided to close it.
    pub closing: Option<CloseReason>,
}

/// A connection closed because of a reload, as listed in a
/// [`ReloadReport`](crate::revocation::ReloadReport).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClosedConn {
    /// The peer's TCP address.
    pub remote_addr: SocketAddr,
    /// The peer's identity name.
    pub identity: Option<String>,
    /// The peer certificate's serial (lowercase hex).
    pub serial: Option<String>,
    /// The peer certificate's issuer.
    pub issuer: Option<String>,
    /// Why it was closed.
    pub reason: CloseReason,
}

/// Cuts `state` for `reason` after [`REFUSE_GRACE`] (at once outside a
/// Tokio runtime, where nothing could carry a status anyway).
fn cut_after_grace(state: &Arc<ConnShared>, reason: CloseReason) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let state = Arc::downgrade(state);
            runtime.spawn(async move {
                tokio::time::sleep(REFUSE_GRACE).await;
                if let Some(state) = state.upgrade() {
                    state.cut(reason);
                }
            });
        }
        Err(_) => {
            state.cut(reason);
        }
    }
}

/// A registered connection.
pub(crate) struct Registered {
    pub(crate) state: Arc<ConnShared>,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) identity: Option<Arc<Identity>>,
    /// The peer's chain as presented, leaf first (empty without client auth).
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) issuer: Option<String>,
    pub(crate) opened: Instant,
}

impl Registered {
    /// Re-verifies the peer chain with `verifier`; on failure cuts the
    /// connection and says why. Connections without a certificate, or
    /// already cut, are left alone.
    ///
    /// With `grace`, the connection is refused at once and cut
    /// [`REFUSE_GRACE`] later, so that its streams in flight end with a
    /// status naming the reason; without, it is cut at once (a connection
    /// that has served nothing yet).
    pub(crate) fn revalidate(
        &self,
        verifier: &dyn ClientCertVerifier,
        now: UnixTime,
        grace: bool,
    ) -> Option<ClosedConn> {
        let (leaf, intermediates) = self.chain.split_first()?;
        if self.state.close_reason().is_some_and(CloseReason::invalidates_certificate) {
            return None;
        }
        let error = verifier.verify_client_cert(leaf, intermediates, now).err()?;
        let reason = close_reason_for(&error);
        if grace {
            if !self.state.refuse(reason) {
                return None;
            }
            cut_after_grace(&self.state, reason);
        } else if !self.state.cut(reason) {
            return None;
        }
        let closed = self.closed(reason);
        tracing::info!(
            peer.addr = %self.remote_addr,
            client.identity = closed.identity.as_deref().unwrap_or("-"),
            client.serial = closed.serial.as_deref().unwrap_or("-"),
            client.issuer = closed.issuer.as_deref().unwrap_or("-"),
            close.reason = reason.label(),
            error = %error,
            "closing an open connection: its client certificate is no longer accepted"
        );
        Some(closed)
    }

    pub(crate) fn closed(&self, reason: CloseReason) -> ClosedConn {
        ClosedConn {
            remote_addr: self.remote_addr,
            identity: self.identity.as_ref().map(|id| id.name()),
            serial: self.identity.as_ref().map(|id| id.serial.clone()),
            issuer: self.issuer.clone(),
            reason,
        }
    }

    fn summary(&self) -> ConnSummary {
        ConnSummary {
            remote_addr: self.remote_addr,
            identity: self.identity.as_ref().map(|id| id.name()),
            serial: self.identity.as_ref().map(|id| id.serial.clone()),
            issuer: self.issuer.clone(),
            fingerprint: self.identity.as_ref().map(|id| id.fingerprint.clone()),
            age: self.opened.elapsed(),
            closing: self.state.close_reason(),
        }
    }
}

/// Maps a verification error to the reason a connection is closed for.
pub(crate) fn close_reason_for(error: &rustls::Error) -> CloseReason {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::Revoked) => CloseReason::Revoked,
        rustls::Error::InvalidCertificate(C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. }) => {
            CloseReason::CrlExpired
        }
        _ => CloseReason::NoLongerTrusted,
    }
}

/// The open connections, by registration id.
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<Registered>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub(crate) fn insert(&self, conn: Registered) -> (u64, Arc<Registered>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(conn);
        self.lock().insert(id, Arc::clone(&conn));
        (id, conn)
    }

    pub(crate) fn remove(&self, id: u64) -> Option<Arc<Registered>> {
        self.lock().remove(&id)
    }

    /// The registered connections at this instant (the lock is not held
    /// while the caller works on them).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Registered>> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn summaries(&self) -> Vec<ConnSummary> {
        let mut list: Vec<ConnSummary> = self.snapshot().iter().map(|c| c.summary()).collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.age));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Registered>>> {
        // The map stays consistent even if a holder panicked (single inserts/removes).
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        let state = ConnShared::new(true);
        assert_eq!(state.close_reason(), None);
        assert!(state.request_close());
        assert_eq!(state.close_reason(), Some(CloseReason::MaxAge));
        assert!(!state.is_cut(), "a max-age request is graceful");
        assert!(state.cut(CloseReason::Revoked));
        assert_eq!(state.cut_reason(), Some(CloseReason::Revoked));
        // A weaker reason never overrides a stronger one.
        assert!(!state.cut(CloseReason::MaxAge));
        assert!(!state.request_close());
        assert_eq!(state.close_reason(), Some(CloseReason::Revoked));
        assert!(CloseReason::Revoked.invalidates_certificate());
        assert!(!CloseReason::MaxAge.invalidates_certificate());
    }

    #[test]
    fn a_certificate_reason_refuses_before_it_cuts_and_cutting_keeps_the_reason() {
        let state = ConnShared::new(true);
        assert!(state.refuse(CloseReason::Revoked));
        assert_eq!(state.close_reason(), Some(CloseReason::Revoked));
        assert!(!state.is_cut(), "refusing leaves the transport to carry the status");
        // The max-age timer firing meanwhile neither cuts nor weakens it.
        assert!(!state.request_close());
        assert!(!state.cut(CloseReason::MaxAge));
        assert!(!state.is_cut());
        assert!(!state.refuse(CloseReason::NoLongerTrusted));
        assert!(state.cut(CloseReason::Revoked));
        assert_eq!(state.cut_reason(), Some(CloseReason::Revoked));
        assert!(!state.refuse(CloseReason::Revoked));
    }

    #[tokio::test]
    async fn a_refused_connection_is_cut_after_the_grace() {
        let state = ConnShared::new(true);
        assert!(state.refuse(CloseReason::CrlExpired));
        cut_after_grace(&state, CloseReason::CrlExpired);
        assert!(!state.is_cut(), "cut only after the grace");
        let cut = tokio::time::timeout(REFUSE_GRACE * 20, async {
            while !state.is_cut() {
                tokio::time::sleep(REFUSE_GRACE / 10).await;
            }
        });
        assert!(cut.await.is_ok(), "never cut");
        assert_eq!(state.cut_reason(), Some(CloseReason::CrlExpired));
    }

    #[tokio::test]
    async fn closing_resolves_on_request_even_if_it_came_first() {
        let state = ConnShared::new(true);
        let waiter = tokio::spawn(Arc::clone(&state).closing());
        tokio::task::yield_now().await;
        state.cut(CloseReason::CrlExpired);
        assert_eq!(waiter.await.expect("join"), CloseReason::CrlExpired);
        // Already closing: resolves at once.
        assert_eq!(Arc::clone(&state).closing().await, CloseReason::CrlExpired);
    }

    #[test]
    fn verification_errors_map_to_reasons() {
        use rustls::CertificateError as C;
        let reason = |e: C| close_reason_for(&rustls::Error::InvalidCertificate(e));
        assert_eq!(reason(C::Revoked), CloseReason::Revoked);
        assert_eq!(reason(C::ExpiredRevocationList), CloseReason::CrlExpired);
        assert_eq!(reason(C::Expired), CloseReason::NoLongerTrusted);
        assert_eq!(reason(C::UnknownIssuer), CloseReason::NoLongerTrusted);
    }
}
