//! Prepared statements: a caller's SQL planned once against its secure
//! views, with `$1`, `$2`, … (or `?`) placeholders bound per execution.
//!
//! - A [`Statement`] is made under a planning-only permit
//!   ([`Engine::prepare`](crate::Engine::prepare)) and belongs to one
//!   [`Owner`]: the certificate (fingerprint), the purpose exactly as
//!   received and the principal. It remembers the policy generation it was
//!   planned under; after a policy reload it is refused
//!   ([`PreparedRefusal::PolicyReloaded`]), never silently re-planned under
//!   different rules.
//! - Binding ([`Engine::bind_prepared`](crate::Engine::bind_prepared))
//!   converts the parameter rows to the parameter types the plan inferred
//!   (an untyped parameter is text) and keeps them as a [`Binding`] with its
//!   own key. Parameters are values: they replace the placeholders of the
//!   logical plan as literals (`LogicalPlan::with_param_values`), so a
//!   parameter compared with a masked column is compared with the masked
//!   value, exactly like a literal in the text, and is never parsed as SQL.
//! - Every execution asks for its own permit (purpose, licence, role, rate
//!   limit, quota) and writes its own audit record
//!   ([`RecordedQuery::Prepared`]): the normalized statement, and each bound
//!   row as keyed digests; subject identifiers among the values are hashed
//!   into the record's subjects as literals are.
//!
//! The store is bounded ([`MAX_PREPARED_STATEMENTS`], [`MAX_BINDINGS`]):
//! the least recently used entry makes room, and its handle is then refused
//! as unknown.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use creditgate_audit::RecordedQuery;
use creditgate_ident::DatasetName;
use creditgate_policy::DatasetGrant;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;

use crate::audit::Auditor;
use crate::error::{GatewayError, PreparedRefusal};
use crate::permit::Caller;

/// Most prepared statements the gateway keeps (all callers together).
pub const MAX_PREPARED_STATEMENTS: usize = 4096;
/// Most parameter bindings the gateway keeps (all statements together).
pub const MAX_BINDINGS: usize = 4096;
/// Most parameter rows one execution may bind.
pub const MAX_EXECUTION_ROWS: usize = 1000;
/// Most bytes of Arrow data one binding may hold (the kept bindings stay bounded in memory).
pub const MAX_BINDING_BYTES: usize = 1024 * 1024;

/// Who a prepared statement belongs to: the certificate, the purpose as
/// received, the principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    fingerprint: String,
    purpose: Option<String>,
    principal: String,
}

impl Owner {
    /// The owner a request of `caller` for `purpose` would be.
    pub fn of(caller: &Caller, purpose: Option<&str>) -> Owner {
        Owner {
            fingerprint: caller.fingerprint().to_string(),
            purpose: purpose.map(str::to_string),
            principal: caller.name().to_string(),
        }
    }
}

/// The catalog a plan was made against: the policy, the federation and the
/// day (retention windows move with it).
pub(crate) type CatalogKey = (u64, u64, chrono::NaiveDate);

/// The logical plan of a statement and what it was planned against.
#[derive(Debug, Clone)]
pub(crate) struct PlanSlot {
    pub(crate) key: CatalogKey,
    pub(crate) plan: LogicalPlan,
    pub(crate) grants: Arc<BTreeMap<DatasetName, DatasetGrant>>,
    pub(crate) deep: bool,
}

/// A statement planned once for one owner.
#[derive(Debug)]
pub struct Statement {
    pub(crate) owner: Owner,
    pub(crate) generation: u64,
    /// The text planned (`?` numbered as `$n`).
    pub(crate) sql: String,
    /// What the audit records of it.
    pub(crate) recorded: String,
    /// Subjects named in the text itself.
    pub(crate) subjects: Vec<String>,
    /// Datasets it names.
    pub(crate) datasets: Vec<String>,
    /// The type of `$1`, `$2`, …
    pub(crate) parameters: Vec<DataType>,
    /// The result schema announced at preparation (every execution streams it).
    pub(crate) schema: SchemaRef,
    pub(crate) slot: Mutex<PlanSlot>,
}

impl Statement {
    /// The parameter schema clients bind against: `$1`, `$2`, … nullable.
    pub fn parameter_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .parameters
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("${}", i + 1), t.clone(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The result schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// How many parameters it takes.
    pub fn parameter_count(&self) -> usize {
        self.parameters.len()
    }

    pub(crate) fn check_owner(&self, owner: &Owner) -> Result<(), GatewayError> {
        if &self.owner == owner { Ok(()) } else { Err(GatewayError::Prepared(PreparedRefusal::OtherCaller)) }
    }

    /// The audit description of an execution with `binding`.
    pub(crate) fn recorded(&self, binding: Option<&Binding>) -> RecordedQuery {
        RecordedQuery::Prepared {
            statement: self.recorded.clone(),
            parameters: binding.map(|b| b.digests.clone()).unwrap_or_default(),
        }
    }

    /// The subjects of an execution with `binding`: the text's and the values'.
    pub(crate) fn subjects(&self, binding: Option<&Binding>) -> Vec<String> {
        let mut subjects = self.subjects.clone();
        for s in binding.map(|b| b.subjects.as_slice()).unwrap_or_default() {
            if !subjects.contains(s) {
                subjects.push(s.clone());
            }
        }
        subjects
    }
}

/// Parameter rows bound to a statement.
#[derive(Debug)]
pub struct Binding {
    pub(crate) statement: String,
    pub(crate) rows: Vec<Vec<ScalarValue>>,
    pub(crate) digests: Vec<Vec<Option<String>>>,
    pub(crate) subjects: Vec<String>,
}

impl Binding {
    /// How many rows are bound.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

/// What a handle's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedKey {
    /// A statement, unbound (or bound by a client that keeps the first handle).
    Statement(String),
    /// A binding of a statement.
    Bound(String),
}

impl PreparedKey {
    const STATEMENT: &'static str = "prepared-statement:";
    const BOUND: &'static str = "prepared-binding:";

    /// Reads a key made by [`PreparedKey::to_key`].
    pub fn parse(key: &str) -> Option<PreparedKey> {
        if let Some(id) = key.strip_prefix(Self::STATEMENT) {
            return Some(PreparedKey::Statement(id.to_string()));
        }
        key.strip_prefix(Self::BOUND).map(|id| PreparedKey::Bound(id.to_string()))
    }

    /// The text sealed into the client's handle.
    pub fn to_key(&self) -> String {
        match self {
            PreparedKey::Statement(id) => format!("{}{id}", Self::STATEMENT),
            PreparedKey::Bound(id) => format!("{}{id}", Self::BOUND),
        }
    }
}

/// A bounded map whose least recently used entry makes room.
#[derive(Debug)]
pub(crate) struct Lru<V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<String, (V, u64)>,
}

impl<V: Clone> Lru<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Lru { capacity, tick: 0, entries: HashMap::new() }
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: String, value: V) {
        self.tick += 1;
        if self.entries.len() >= self.capacity
            && !self.entries.contains_key(&key)
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (value, self.tick));
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(v, _)| v)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct Inner {
    statements: Lru<Arc<Statement>>,
    bindings: Lru<Arc<Binding>>,
    /// The last binding of each statement, for clients that keep using the
    /// statement's first handle after binding.
    last_bound: Lru<Arc<Binding>>,
    /// Statements of HTTP requests with parameters, by owner and text.
    texts: Lru<String>,
}

/// The gateway's prepared statements and bindings.
#[derive(Debug)]
pub struct PreparedStore {
    inner: Mutex<Inner>,
}

impl Default for PreparedStore {
    fn default() -> Self {
        PreparedStore::with_capacity(MAX_PREPARED_STATEMENTS, MAX_BINDINGS)
    }
}

/// A fresh random id (128 bits, hex).
fn fresh_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // Only if the OS has no entropy source at all; the id then is still
        // unique within the process.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        bytes[..8].copy_from_slice(&NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_be_bytes());
    }
    hex::encode(bytes)
}

impl PreparedStore {
    /// A store keeping at most `statements` statements and `bindings` bindings.
    pub fn with_capacity(statements: usize, bindings: usize) -> PreparedStore {
        PreparedStore {
            inner: Mutex::new(Inner {
                statements: Lru::new(statements.max(1)),
                bindings: Lru::new(bindings.max(1)),
                last_bound: Lru::new(statements.max(1)),
                texts: Lru::new(statements.max(1)),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `statement`; returns its key.
    pub(crate) fn insert(&self, statement: Statement) -> (PreparedKey, Arc<Statement>) {
        let id = fresh_id();
        let statement = Arc::new(statement);
        self.lock().statements.insert(id.clone(), Arc::clone(&statement));
        (PreparedKey::Statement(id), statement)
    }

    /// The statement of an HTTP request's text for `owner`, if planned before.
    pub(crate) fn by_text(&self, owner: &Owner, sql: &str) -> Option<Arc<Statement>> {
        let mut inner = self.lock();
        let id = inner.texts.get(&text_key(owner, sql))?;
        inner.statements.get(&id)
    }

    /// Keeps the statement of an HTTP request's text.
    pub(crate) fn insert_text(&self, statement: Statement) -> Arc<Statement> {
        let key = text_key(&statement.owner, &statement.sql);
        let (PreparedKey::Statement(id) | PreparedKey::Bound(id), statement) = self.insert(statement);
        self.lock().texts.insert(key, id);
        statement
    }

    /// The statement of `key` and the binding it names (or the statement's
    /// last binding).
    pub(crate) fn resolve(&self, key: &PreparedKey) -> Result<(Arc<Statement>, Option<Arc<Binding>>), GatewayError> {
        let unknown = || GatewayError::Prepared(PreparedRefusal::Unknown);
        let mut inner = self.lock();
        match key {
            PreparedKey::Statement(id) => {
                let statement = inner.statements.get(id).ok_or_else(unknown)?;
                let last = inner.last_bound.get(id);
                Ok((statement, last))
            }
            PreparedKey::Bound(id) => {
                let binding = inner.bindings.get(id).ok_or_else(unknown)?;
                let statement = inner.statements.get(&binding.statement).ok_or_else(unknown)?;
                Ok((statement, Some(binding)))
            }
        }
    }

    /// Keeps `binding`; returns its key.
    pub(crate) fn bind(&self, binding: Binding) -> PreparedKey {
        let id = fresh_id();
        let statement = binding.statement.clone();
        let binding = Arc::new(binding);
        let mut inner = self.lock();
        inner.last_bound.insert(statement, Arc::clone(&binding));
        inner.bindings.insert(id.clone(), binding);
        PreparedKey::Bound(id)
    }

    /// Forgets the statement of `key` (closing a binding's handle forgets the binding only).
    pub(crate) fn close(&self, key: &PreparedKey, owner: &Owner) {
        let mut inner = self.lock();
        match key {
            PreparedKey::Statement(id) => {
                if inner.statements.get(id).is_some_and(|s| &s.owner == owner) {
                    inner.statements.remove(id);
                    inner.last_bound.remove(id);
                }
            }
            PreparedKey::Bound(id) => {
                let owned = inner
                    .bindings
                    .get(id)
                    .and_then(|b| inner.statements.get(&b.statement))
                    .is_some_and(|s| &s.owner == owner);
                if owned {
                    inner.bindings.remove(id);
                }
            }
        }
    }

    /// How many statements are kept.
    pub fn len(&self) -> usize {
        self.lock().statements.len()
    }

    /// Whether no statement is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn text_key(owner: &Owner, sql: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [owner.fingerprint.as_str(), owner.purpose.as_deref().unwrap_or("\u{0}"), &owner.principal, sql] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// The parameter types of `plan`: `$1` … `$n` (`n` the highest number
/// used, at least `written`); a parameter whose type the plan does not fix
/// is text.
pub(crate) fn parameter_types(plan: &LogicalPlan, written: usize) -> Result<Vec<DataType>, GatewayError> {
    let found = plan.get_parameter_types().map_err(|e| GatewayError::InvalidQuery(e.strip_backtrace()))?;
    let mut numbered = BTreeMap::new();
    for (id, data_type) in found {
        let n = id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1).ok_or_else(|| {
            GatewayError::InvalidQuery(format!(
                "parameter `{}`: only positional parameters ($1, $2, … or ?) are supported",
                id.chars().take(32).collect::<String>()
            ))
        })?;
        numbered.insert(n, data_type);
    }
    let count = numbered.keys().next_back().copied().unwrap_or(0).max(written);
    Ok((1..=count).map(|n| numbered.get(&n).cloned().flatten().unwrap_or(DataType::Utf8)).collect())
}

/// Converts bound Arrow rows (Flight `DoPut`) to the statement's parameter
/// types. Column `i` is `$i+1`, whatever its name. Messages name the
/// parameter and the types, never a value.
pub(crate) fn rows_from_arrow(
    types: &[DataType],
    batches: &[RecordBatch],
) -> Result<Vec<Vec<ScalarValue>>, GatewayError> {
    let options = CastOptions { safe: false, ..CastOptions::default() };
    let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    if bytes > MAX_BINDING_BYTES {
        return Err(GatewayError::InvalidParameters(format!(
            "the bound parameters take {bytes} bytes; one binding holds at most {MAX_BINDING_BYTES}"
        )));
    }
    let mut rows = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        if batch.num_columns() != types.len() {
            return Err(GatewayError::InvalidParameters(format!(
                "the statement takes {} parameter(s); {} were bound",
                types.len(),
                batch.num_columns()
            )));
        }
        let mut columns = Vec::with_capacity(types.len());
        for (i, (column, wanted)) in batch.columns().iter().zip(types).enumerate() {
            let converted = if column.data_type() == wanted {
                Arc::clone(column)
            } else {
                cast_with_options(column, wanted, &options).map_err(|_| {
                    GatewayError::InvalidParameters(format!(
                        "parameter ${}: a {} value cannot be used as {wanted}",
                        i + 1,
                        column.data_type()
                    ))
                })?
            };
            columns.push(converted);
        }
        for row in 0..batch.num_rows() {
            let values = columns
                .iter()
                .map(|c| ScalarValue::try_from_array(c.as_ref(), row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| GatewayError::internal(format!("reading a bound parameter: {e}")))?;
            rows.push(values);
        }
    }
    check_row_count(rows.len())?;
    Ok(rows)
}

/// Converts JSON parameter values (HTTP `params`) to the statement's
/// parameter types: `null` is NULL; a string, number or boolean is
/// converted as `CAST(value AS type)` would.
pub(crate) fn row_from_json(
    types: &[DataType],
    values: &[serde_json::Value],
) -> Result<Vec<ScalarValue>, GatewayError> {
    if values.len() != types.len() {
        return Err(GatewayError::InvalidParameters(format!(
            "the statement takes {} parameter(s); {} were given",
            types.len(),
            values.len()
        )));
    }
    values
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (value, wanted))| {
            let scalar = match value {
                serde_json::Value::Null => return ScalarValue::try_from(wanted).map_err(GatewayError::internal),
                serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
                serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => ScalarValue::Int64(Some(i)),
                    (None, Some(f)) => ScalarValue::Float64(Some(f)),
                    _ => ScalarValue::Utf8(Some(n.to_string())),
                },
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    return Err(GatewayError::InvalidParameters(format!(
                        "parameter ${}: give a string, a number, a boolean or null",
                        i + 1
                    )));
                }
            };
            let kind = scalar.data_type();
            cast_scalar(scalar, wanted).ok_or_else(|| {
                GatewayError::InvalidParameters(format!(
                    "parameter ${}: a {kind} value cannot be used as {wanted}",
                    i + 1
                ))
            })
        })
        .collect()
}

fn cast_scalar(value: ScalarValue, wanted: &DataType) -> Option<ScalarValue> {
    if &value.data_type() == wanted {
        return Some(value);
    }
    let array = value.to_array().ok()?;
    let options = CastOptions { safe: false, ..CastOptions::default() };
    let cast = cast_with_options(&array, wanted, &options).ok()?;
    if cast.is_null(0) && !array.is_null(0) {
        return None;
    }
    ScalarValue::try_from_array(cast.as_ref(), 0).ok()
}

fn check_row_count(rows: usize) -> Result<(), GatewayError> {
    if rows > MAX_EXECUTION_ROWS {
        return Err(GatewayError::InvalidParameters(format!(
            "{rows} parameter rows were bound; one execution takes at most {MAX_EXECUTION_ROWS}"
        )));
    }
    Ok(())
}

/// The binding of `rows` to the statement `statement_id`: the rows, and
/// for the audit each value's keyed digest and the subjects among them.
pub(crate) fn binding(auditor: &Auditor, statement_id: String, rows: Vec<Vec<ScalarValue>>) -> Binding {
    let texts: Vec<Vec<Option<String>>> = rows.iter().map(|row| row.iter().map(value_text).collect()).collect();
    let (digests, subjects) = digests(auditor, &texts);
    Binding { statement: statement_id, rows, digests, subjects }
}

/// For the audit: the keyed digest of each value's text (`None` for NULL),
/// and the keyed hashes of the subject identifiers among the values, found
/// as in literals (any text holding a credit code, resident ID or mobile
/// number).
pub(crate) fn digests(auditor: &Auditor, rows: &[Vec<Option<String>>]) -> (Vec<Vec<Option<String>>>, Vec<String>) {
    let hasher = auditor.hasher();
    let mut subjects = Vec::new();
    let digests = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|text| {
                    let text = text.as_deref()?;
                    for key in creditgate_audit::subject_keys_in(text) {
                        let hash = hasher.hash(&key);
                        if !subjects.contains(&hash) {
                            subjects.push(hash);
                        }
                    }
                    Some(hasher.digest(text.as_bytes()))
                })
                .collect()
        })
        .collect();
    (digests, subjects)
}

/// The text of a JSON parameter as the audit digests it (`None` for null).
pub(crate) fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The text of a value as the audit digests it (`None` for NULL).
fn value_text(value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return None;
    }
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Some(s.clone())
        }
        other => Some(other.to_string()),
    }
}

/// Most physical plans the lookup fast path keeps.
pub const MAX_LOOKUP_PLANS: usize = 2048;

/// Physical plans of lookup reads, built once per key (the caller decides
/// what the key covers) and reused with the subject key bound per request;
/// bounded, least recently used first out; hits and misses in the metrics
/// (`creditgate_plan_cache_total{cache="lookup"}`).
pub struct LookupPlans {
    plans: Mutex<Lru<Arc<dyn datafusion::physical_plan::ExecutionPlan>>>,
    metrics: Arc<crate::metrics::Metrics>,
    enabled: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LookupPlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupPlans").finish_non_exhaustive()
    }
}

impl LookupPlans {
    pub(crate) fn new(metrics: Arc<crate::metrics::Metrics>) -> LookupPlans {
        LookupPlans {
            plans: Mutex::new(Lru::new(MAX_LOOKUP_PLANS)),
            metrics,
            enabled: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether plans are kept (on by default).
    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turns keeping plans on or off (off: every lookup plans each read, as
    /// before the fast path; the benchmark compares the two). Turning it off
    /// forgets the kept plans.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, std::sync::atomic::Ordering::Relaxed);
        if !enabled {
            *self.plans.lock().unwrap_or_else(|p| p.into_inner()) = Lru::new(MAX_LOOKUP_PLANS);
        }
    }

    /// The plan kept under `key`, counted as a hit or a miss.
    pub fn get(&self, key: &str) -> Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let found = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(key);
        self.metrics.plan_cache("lookup", if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// Keeps `plan` under `key`.
    pub fn insert(&self, key: String, plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>) {
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).insert(key, plan);
    }

    /// How many plans are kept.
    pub fn len(&self) -> usize {
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_nothing_else_parses() {
        for key in [PreparedKey::Statement("ab".into()), PreparedKey::Bound("cd".into())] {
            assert_eq!(PreparedKey::parse(&key.to_key()), Some(key));
        }
        assert_eq!(PreparedKey::parse("SELECT 1"), None);
    }

    #[test]
    fn the_least_recently_used_entry_makes_room() {
        let mut lru = Lru::new(2);
        lru.insert("a".to_string(), 1);
        lru.insert("b".to_string(), 2);
        assert_eq!(lru.get("a"), Some(1));
        lru.insert("c".to_string(), 3);
        assert_eq!((lru.get("a"), lru.get("b"), lru.get("c")), (Some(1), None, Some(3)));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn json_values_convert_to_the_parameter_types_or_are_refused_without_the_value() {
        let types = [DataType::Utf8, DataType::Int64, DataType::Date32, DataType::Float64];
        let row = row_from_json(
            &types,
            &serde_json::from_str::<Vec<_>>(r#"["x' OR 1=1 --", 5, "2024-01-02", 1]"#).expect("json"),
        )
        .expect("converted");
        assert_eq!(row[0], ScalarValue::Utf8(Some("x' OR 1=1 --".into())));
        assert_eq!(row[1], ScalarValue::Int64(Some(5)));
        assert_eq!(row[2].data_type(), DataType::Date32);
        assert_eq!(row[3], ScalarValue::Float64(Some(1.0)));
        let nulls = row_from_json(&types, &vec![serde_json::Value::Null; 4]).expect("nulls");
        assert!(nulls.iter().zip(&types).all(|(v, t)| v.is_null() && &v.data_type() == t));
        let bad =
            row_from_json(&types, &serde_json::from_str::<Vec<_>>(r#"["a", "secret-7", null, null]"#).expect("json"))
                .expect_err("not a number");
        assert!(bad.to_string().contains("$2") && !bad.to_string().contains("secret-7"), "{bad}");
        let short = row_from_json(&types, &[serde_json::Value::Null]).expect_err("count");
        assert!(short.to_string().contains("takes 4"), "{short}");
    }

    #[test]
    fn arrow_rows_are_cast_per_position_and_counted() {
        use arrow::array::{Int32Array, NullArray, StringArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("0", DataType::Utf8, true),
            Field::new("1", DataType::Int32, true),
            Field::new("2", DataType::Null, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(NullArray::new(2)),
            ],
        )
        .expect("batch");
        let types = [DataType::Utf8, DataType::Int64, DataType::Date32];
        let rows = rows_from_arrow(&types, std::slice::from_ref(&batch)).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0], ScalarValue::Utf8(None));
        assert_eq!(rows[0][1], ScalarValue::Int64(Some(1)));
        assert_eq!(rows[0][2], ScalarValue::Date32(None));
        let wrong = rows_from_arrow(&types[..2], &[batch]).expect_err("3 columns for 2 parameters");
        assert!(wrong.to_string().contains("takes 2"), "{wrong}");
    }
}
