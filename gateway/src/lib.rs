//! The creditgate gateway: authenticates callers by client certificate, plans
//! their SQL with DataFusion over the federation's remote tables, fans out to
//! the connectors, and streams merged results back over Flight SQL and
//! HTTP/JSON. Also home of the `creditgate` command line (`cli`) and the
//! `demo` main job.

pub mod audit;
pub mod audit_api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod demo_backend;
pub mod encode;
pub mod error;
pub mod federation;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod lookup;
pub mod metrics;
pub mod public;
pub mod sql_gate;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use gateway::{Caller, Frontend, Gateway, RunningGateway};

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
