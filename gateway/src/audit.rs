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
        self.append_receipt(record).await.map(|_| ())
    }

    /// [`append`](Self::append), returning the record's sequence number (0
    /// when the log is disabled for benchmarking).
    pub async fn append_receipt(&self, mut record: NewRecord) -> Result<u64, GatewayError> {
        if !self.enabled {
            return Ok(0);
        }
        record.refusal_reason = record.refusal_reason.map(|reason| self.redact_text(&reason));
        let log = Arc::clone(&self.log);
        let result = tokio::task::spawn_blocking(move || log.append(record)).await;
        match result {
            Ok(Ok(receipt)) => Ok(receipt.seq),
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

    /// Appends `record` in the background, for what is known only after the
    /// release (a stream's end). A failure is logged; the request it
    /// completes was already recorded before anything left.
    pub fn append_detached(&self, record: NewRecord) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no runtime to append a stream-end audit record");
            return;
        };
        let auditor = self.clone();
        handle.spawn(async move {
            if let Err(error) = auditor.append(record).await {
                tracing::error!(%error, "appending a stream-end audit record failed");
            }
        });
    }

    /// Replaces every word of `text` that is a valid unified social credit
    /// code or resident ID (quoted or not, e.g. echoed by a parser error)
    /// by `subject:<hash>`, and every word shaped like one that fails its
    /// check by `<identifier withheld>`, so refusal reasons and recorded
    /// paths never carry an identifier.
    pub fn redact_text(&self, text: &str) -> String {
        let is_word = |c: char| c.is_ascii_alphanumeric();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(is_word) {
            out.push_str(&rest[..start]);
            let word_len = rest[start..].find(|c: char| !is_word(c)).unwrap_or(rest.len() - start);
            let word = &rest[start..start + word_len];
            if !identifier_shaped(word) {
                out.push_str(word);
            } else if let Some(key) = self.subject_of(word) {
                out.push_str("subject:");
                out.push_str(&self.hasher.hash(&key));
            } else {
                // A near-miss (a typo of a real identifier) is personal data too.
                out.push_str("<identifier withheld>");
            }
            rest = &rest[start + word_len..];
        }
        out.push_str(rest);
        out
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

/// Whether `word` has the shape of a credit code or resident ID: 15 or 18
/// characters, digits and capital letters only, mostly digits.
fn identifier_shaped(word: &str) -> bool {
    (word.len() == 15 || word.len() == 18)
        && word.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && word.bytes().filter(u8::is_ascii_digit).count() >= 8
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
