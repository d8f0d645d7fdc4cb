//! Drives every fuzz harness on the stable toolchain (see
//! `creditgate_fuzz::smoke`). `CREDITGATE_FUZZ_SMOKE_ITERS` overrides the
//! number of generated inputs per target; `CREDITGATE_FUZZ_SMOKE_SEED` the
//! generator seed.

use creditgate_fuzz as fuzz;

include!("common/smoke_tests.rs");
