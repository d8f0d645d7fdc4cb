//! creditgate operations: what a permit allows beyond SQL.
//!
//! - [`lookup`]: subject lookups across every source, with the legal basis
//!   the policy decided and consents verified and counted;
//! - [`grade`]: graded supervision — a credit grade computed from a lookup
//!   by the grading template's rules, one subject or a batch, and requests
//!   for its human review;
//! - [`consent`]: revoking consents and reading their state;
//! - [`officer`]: the privacy officer's audit API (search, subject reports,
//!   statistics, verification);
//! - [`public`]: the public disclosure window, from configuration;
//! - [`linkage`]: the linkability report of masked columns on the live
//!   federation (for `creditgate policy linkage` and the officer API).
//!
//! Each operation reads its request into an intent, asks the engine for a
//! permit, runs, and closes the permit exactly once. Front ends (the server
//! crate) only parse bodies and write responses.

#![forbid(unsafe_code)]

pub mod consent;
pub mod grade;
pub mod linkage;
pub mod lookup;
pub mod officer;
pub mod public;
