//! The gateway's side of the audit log: what goes into a record, the redaction
//! of identifiers in SQL text, and the fail-closed append.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::{AuditLog, ColumnAccess, NewRecord, SubjectHasher, SubjectKey};
use creditgate_ident::{CreditCode, ResidentId};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

use crate::error::GatewayError;

/// Appends records durably (fsync, group commit) before results are released.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<AuditLog>,
    hasher: Arc<SubjectHasher>,
    enabled: bool,
}

impl Auditor {
    /// An auditor writing to `log`, hashing subjects with `hasher`.
    pub fn new(log: Arc<AuditLog>, hasher: Arc<SubjectHasher>) -> Self {
        Self { log, hasher, enabled: true }
    }

    /// Benchmarking only: an auditor that records nothing.
    pub fn disabled(mut self) -> Self {
        tracing::warn!(
            "THE AUDIT LOG IS DISABLED (audit.enabled = false): requests are not recorded; benchmarking only"
        );
        self.enabled = false;
        self
    }

    /// The log (for the privacy-officer API).
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// The subject hasher (the same key is used to write and to search).
    pub fn hasher(&self) -> &SubjectHasher {
        &self.hasher
    }

    /// Appends `record`; returns only once it is durable. Any failure is a
    /// refusal of the request (fail closed).
    pub async fn append(&self, record: NewRecord) -> Result<(), GatewayError> {
        if !self.enabled {
            return Ok(());
        }
        let log = Arc::clone(&self.log);
        let result = tokio::task::spawn_blocking(move || log.append(record)).await;
        match result {
            Ok(Ok(_receipt)) => Ok(()),
            Ok(Err(error)) => {
                tracing::error!(%error, "audit log append failed; refusing the request");
                Err(GatewayError::AuditUnavailable)
            }
            Err(join) => {
                tracing::error!(error = %join, "audit task failed; refusing the request");
                Err(GatewayError::AuditUnavailable)
            }
        }
    }

    /// Replaces every string literal in `sql` that is a valid unified social
    /// credit code or resident ID by `'subject:<hash>'`, returning the redacted
    /// SQL and the hashes (so "who accessed this subject" works for SQL too,
    /// and the log never holds a raw identifier).
    pub fn redact_sql(&self, sql: &str) -> (String, Vec<String>) {
        let mut out = String::with_capacity(sql.len());
        let mut hashes = Vec::new();
        let mut rest = sql;
        while let Some(start) = rest.find('\'') {
            out.push_str(&rest[..=start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('\'') else {
                out.push_str(after);
                return (out, hashes);
            };
            let literal = &after[..end];
            match self.subject_of(literal) {
                Some(key) => {
                    let hash = self.hasher.hash(&key);
                    out.push_str("subject:");
                    out.push_str(&hash);
                    if !hashes.contains(&hash) {
                        hashes.push(hash);
                    }
                }
                None => out.push_str(literal),
            }
            out.push('\'');
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        (out, hashes)
    }

    fn subject_of(&self, literal: &str) -> Option<SubjectKey> {
        let trimmed = literal.trim();
        if let Ok(code) = CreditCode::parse(trimmed) {
            return Some(SubjectKey::CreditCode(code.as_str().to_string()));
        }
        if let Ok(id) = ResidentId::parse(trimmed) {
            return Some(SubjectKey::ResidentId(id.as_str().to_string()));
        }
        None
    }
}

/// Datasets read by a plan, with the columns fetched from each (in plan order).
pub fn datasets_and_columns(plan: &LogicalPlan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = match (scan.table_name.schema(), scan.table_name.table()) {
                (Some(schema), table) => format!("{schema}.{table}"),
                (None, table) => table.to_string(),
            };
            let columns = out.entry(name).or_default();
            for field in scan.projected_schema.fields() {
                if !columns.contains(field.name()) {
                    columns.push(field.name().clone());
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Column accesses for the record, with the mask applied to each (`mask_of`
/// returns the policy's mask name for a dataset column).
pub fn column_accesses(
    touched: &BTreeMap<String, Vec<String>>,
    mask_of: impl Fn(&str, &str) -> String,
) -> Vec<ColumnAccess> {
    touched
        .iter()
        .flat_map(|(dataset, columns)| {
            columns.iter().map(|column| ColumnAccess {
                dataset: dataset.clone(),
                column: column.clone(),
                mask: mask_of(dataset, column),
            })
        })
        .collect()
}
