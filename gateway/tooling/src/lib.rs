//! creditgate tooling: what runs the product without being the product.
//!
//! - [`demo`]: the lab (certificates, generated data, connectors and a
//!   gateway on loopback) and the guided tour, `creditgate demo`;
//! - [`demo_backend`]: the lab's data in PostgreSQL or MariaDB instead of
//!   Parquet;
//! - [`bench`]: `creditgate bench`, measurements side by side, `BENCHMARKS.md`;
//! - [`client`]: small Flight SQL and HTTP clients over mTLS, used by the
//!   tour, the benchmark and the tests.
//!
//! The product crates (engine, ops, server) never depend on this one.

#![forbid(unsafe_code)]

pub mod bench;
pub mod client;
pub mod demo;
pub mod demo_backend;
pub mod grade_cli;
pub mod replicas;
