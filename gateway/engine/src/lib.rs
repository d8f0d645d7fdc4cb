//! The creditgate engine: everything between a verified connection and the
//! data, without the listeners.
//!
//! - [`permit`]: [`Caller`] (who), [`Intent`] (what is asked), [`Permit`]
//!   (what is allowed, made only by [`Engine::authorize`]) and the request's
//!   audit scope, closed exactly once.
//! - [`engine`]: the policy snapshot and its reload, the federation, the
//!   per-request sessions of secure views, planning and execution.
//! - [`error`]: the one table of stable error codes; refusals say why,
//!   failures show a reference id or a source's name only.
//! - [`publication`]: the public window's publication periods.
//! - [`audit`], [`limits`], [`metrics`], [`federation`], [`sql_gate`],
//!   [`encode`], [`config`]: the parts the engine is made of.
//!
//! Front ends (the server crate) read a request into an [`Intent`], ask for
//! a [`Permit`], and hand it to the engine or to an operation (the ops
//! crate); nothing reaches data, consents or the audit log without one.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod encode;
pub mod engine;
pub mod error;
pub mod federation;
pub mod limits;
pub mod metrics;
pub mod permit;
pub mod prepared;
pub mod publication;
pub mod sql_gate;
pub mod state;

pub use config::GatewayConfig;
pub use engine::{Consents, Engine, PURPOSE_HEADER, Planned, PreparedMode, PreparedOutput, read_mask_functions, today};
pub use error::GatewayError;
pub use permit::{Caller, Disclosure, Frontend, Intent, Permit};

/// A fresh random request id (16 hex characters).
pub fn request_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // Fall back to the clock; ids only need to be distinct in logs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    hex::encode(bytes)
}
