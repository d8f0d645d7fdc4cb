//! The gateway's side of the audit log: what goes into a record, the redaction
//! of identifiers in SQL text, and the fail-closed append.
//!
//! Records go to an [`AuditSink`]: the audit log itself in every deployment.
//! The benchmark measures the cost of auditing by passing another sink in
//! code; no configuration turns the audit off.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use creditgate_audit::ColumnAccess;
use creditgate_audit::{AuditError, AuditLog, AuditStore, NewRecord, SubjectHasher};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

use crate::error::GatewayError;

/// Where audit records are written. The deployment's [`AuditStore`] (the
/// state directory's log or the shared log in PostgreSQL) is the one sink
/// of a deployment; a sink must make a record durable before `append`
/// returns.
pub trait AuditSink: Send + Sync + 'static {
    /// Appends `record` durably; returns its sequence number.
    fn append(&self, record: NewRecord) -> Result<u64, AuditError>;
}

/// The log itself as the sink.
struct StoreSink(Arc<dyn AuditStore>);

impl AuditSink for StoreSink {
    fn append(&self, record: NewRecord) -> Result<u64, AuditError> {
        self.0
            .append_many(vec![record])?
            .pop()
            .map(|receipt| receipt.seq)
            .ok_or_else(|| AuditError::WriteFailed { reason: "the log returned no receipt".to_owned() })
    }
}

/// Appends records durably (fsync, group commit) before results are released.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<dyn AuditStore>,
    local: Option<Arc<AuditLog>>,
    sink: Arc<dyn AuditSink>,
    hasher: Arc<SubjectHasher>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor writing to `log`, hashing subjects with `hasher`;
    /// `local` is the same log when it is the state directory's.
    pub fn new(log: Arc<dyn AuditStore>, local: Option<Arc<AuditLog>>, hasher: Arc<SubjectHasher>) -> Self {
        let sink: Arc<dyn AuditSink> = Arc::new(StoreSink(Arc::clone(&log)));
        Self { log, local, sink, hasher }
    }

    /// The same auditor writing to `sink` instead of the log (which is
    /// still what the officer API reads).
    pub fn with_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The log (for the privacy-officer API).
    pub fn log(&self) -> &Arc<dyn AuditStore> {
        &self.log
    }

    /// The state directory's log, when the audit is kept there (not in
    /// the shared state).
    pub fn local_log(&self) -> Option<&Arc<AuditLog>> {
        self.local.as_ref()
    }

    /// The subject hasher (the same key is used to write and to search).
    pub fn hasher(&self) -> &SubjectHasher {
        &self.hasher
    }

    /// Appends `record`; returns its sequence number only once it is
    /// durable. Any failure is a refusal of the request (fail closed).
    pub async fn append(&self, mut record: NewRecord) -> Result<u64, GatewayError> {
        record.refusal_reason = record.refusal_reason.map(|reason| self.redact_text(&reason));
        let sink = Arc::clone(&self.sink);
        let result = tokio::task::spawn_blocking(move || sink.append(record)).await;
        match result {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(AuditError::StoreUnavailable { reason })) => {
                tracing::error!(%reason, "audit database unreachable; refusing the request");
                Err(GatewayError::StateUnavailable { what: "the audit log" })
            }
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

    /// `text` (a refusal reason, a recorded path) with every credit code,
    /// resident ID or mobile number in it replaced by its keyed hash, and
    /// every near-miss withheld, so recorded text never carries an identifier.
    pub fn redact_text(&self, text: &str) -> String {
        creditgate_audit::redact_text(text, &self.hasher)
    }

    /// What the audit record keeps of `sql`: the statement normalized from
    /// its parse (comments dropped, every literal a numbered placeholder,
    /// unusual identifiers replaced), or only its size and a keyed digest if
    /// it does not parse; and the keyed hashes of every subject identifier in
    /// it, in any quoting or as a number.
    pub fn redact_sql(&self, sql: &str) -> (String, Vec<String>) {
        creditgate_audit::normalize_sql(sql, &self.hasher).into_parts()
    }
}

/// How a purpose is recorded: exactly as received, except that identifiers
/// in it are replaced like in any recorded text and that it is capped (a
/// refused request must not grow the log by what the caller sent).
pub fn recorded_purpose(raw: &str) -> String {
    const MAX: usize = 256;
    if raw.len() <= MAX {
        return raw.to_string();
    }
    let mut end = MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…<{} bytes>", &raw[..end], raw.len())
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

/// Column accesses for the record, with the mask the caller's grants apply
/// to each; a column no grant covers (which a plan over secure views cannot
/// read) is recorded as `withheld`.
pub fn column_accesses(
    touched: &BTreeMap<String, Vec<String>>,
    grants: &BTreeMap<creditgate_ident::DatasetName, creditgate_policy::DatasetGrant>,
) -> Vec<ColumnAccess> {
    touched
        .iter()
        .flat_map(|(dataset, columns)| {
            columns.iter().map(|column| ColumnAccess {
                dataset: dataset.clone(),
                column: column.clone(),
                mask: grants
                    .get(dataset.as_str())
                    .and_then(|g| g.column(column))
                    .map(|c| c.mask.to_string())
                    .unwrap_or_else(|| "withheld".to_string()),
            })
        })
        .collect()
}
