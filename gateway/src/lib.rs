//! The `creditgate` command line: config → telemetry → listeners, plus the
//! offline tools (certificates, policy check, audit verification, consents,
//! data generation) and the `demo` and `bench` subcommands of the tooling
//! crate. The gateway itself lives in the engine, ops and server crates.

#![forbid(unsafe_code)]

pub mod cli;
