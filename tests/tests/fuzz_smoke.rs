//! The fuzz harnesses of `tests/fuzz` (identifiers, consent artefacts,
//! policy files, HTTP bodies and the SQL gate), driven on the stable toolchain
//! inside the main build: every seed, then a few thousand generated inputs per
//! target, bounded (`CREDITGATE_FUZZ_SMOKE_ITERS`). The libFuzzer targets
//! themselves need nightly and cargo-fuzz; see `tests/fuzz/README.md`.

#[allow(dead_code, missing_docs, clippy::unwrap_used)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

include!("../fuzz/tests/common/smoke_tests.rs");
