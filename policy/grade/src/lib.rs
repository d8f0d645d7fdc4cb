//! Graded supervision (信用分级分类监管): a credit grade computed from the
//! federation's records by rules kept as data, explained rule by rule,
//! never stored.
//!
//! - [`template`]: the rules file — a named, versioned template of rules
//!   (id, citation, dataset, predicate with a time window, effect: points or
//!   a direct grade, optionally a risk warning) and grade bands over the
//!   score; every problem of a file reported at once.
//! - [`eval`]: a template evaluated over what one caller may see of one
//!   subject. A rule that cannot be decided from that is *not evaluated*,
//!   and the grade is then a range, never a guess.
//!
//! The gateway runs a grade as one federated lookup under the caller's
//! permit (`creditgate-ops`), so only datasets and columns the caller's
//! policy shows count.

pub mod eval;
pub mod template;

#[cfg(test)]
mod tests;

pub use eval::{Assessment, Evidence, Input, RuleOutcome, Status, evaluate};
pub use template::{Band, Condition, Header, Literal, Names, Op, Rule, Template, Window};

/// The demo's grading template (`policy/grade/examples/demo-grading.toml`).
pub const DEMO_TEMPLATE: &str = include_str!("../examples/demo-grading.toml");
