//! Subject lookups: "everything about this company / this seller", for one
//! subject, across every relevant source, in parallel.
//!
//! The identifier is validated while the request is read, before anything
//! else (nothing reaches a source for a bad one). The legal basis is decided
//! by the policy when the permit is made: statutory duty (agency), licence
//! (credit agency, enterprise subject), consent (credit agency or platform
//! presenting one; always for individuals), or public data (platform,
//! enterprise subject); a consent is then verified here. Each dataset is
//! read with the subject-key equality applied at the source — the one
//! raw-key predicate a connector may see — under the caller's row policy and
//! masks. Every dataset the caller's policy grants is reported with its
//! status, including those whose source has never answered (`unavailable`);
//! a failed, slow or unreachable source makes the answer `incomplete`.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::RecordedQuery;
use creditgate_consent::{CheckContext, ConsentArtefact, SubjectRef, VerifiedConsent};
use creditgate_engine::encode::batches_to_json;
use creditgate_engine::error::source_message;
use creditgate_engine::federation::Dataset;
use creditgate_engine::{Caller, Disclosure, Engine, GatewayError, Intent, Permit};
use creditgate_ident::{DatasetName, SubjectKind};
use creditgate_policy::{DatasetGrant, LegalBasis, Operation};
use creditgate_remote::RemoteTable;
use datafusion::logical_expr::{Expr, col, lit, placeholder};
use serde::Deserialize;
use tracing::Instrument;

/// The Flight action type of a lookup.
pub const LOOKUP_ACTION: &str = "creditgate.lookup";

/// Largest number of datasets one lookup may name.
pub const MAX_LOOKUP_DATASETS: usize = 64;

/// The body of `POST /v1/lookup` (and of the Flight action `creditgate.lookup`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Who is looked up.
    pub subject: SubjectRequest,
    /// The purpose code (overrides the header).
    #[serde(default)]
    pub purpose: Option<String>,
    /// The subject's consent artefact, when the legal basis is consent.
    #[serde(default)]
    pub consent: Option<serde_json::Value>,
    /// Datasets to read; all the caller may see when absent.
    #[serde(default)]
    pub datasets: Option<Vec<String>>,
}

/// The subject of a lookup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    /// `credit_code` or `resident_id`.
    #[serde(rename = "type")]
    pub kind: SubjectKind,
    /// The identifier.
    pub id: String,
}

/// Why a lookup goes ahead: the basis the policy decided, or a verified consent.
#[derive(Debug, Clone)]
enum Basis {
    Decided(String),
    Consent(Box<VerifiedConsent>),
}

impl Basis {
    fn label(&self) -> String {
        match self {
            Basis::Decided(label) => label.clone(),
            Basis::Consent(c) => c.legal_basis(),
        }
    }
}

fn key_column(grant: &DatasetGrant, kind: SubjectKind) -> Option<&str> {
    match kind {
        SubjectKind::CreditCode => grant.subject_keys.credit_code.as_deref(),
        SubjectKind::ResidentId => grant.subject_keys.resident_id.as_deref(),
    }
}

/// One dataset a lookup will read, as the caller's grant and the consent
/// (if any) allow it.
struct Planned {
    /// The grant as read: columns outside the consent's column list removed.
    grant: DatasetGrant,
    /// The subject-key column the key equality is applied to.
    key_column: String,
    /// The consent's data date range on the dataset's record date, applied
    /// at the source with the subject key.
    range: Option<Expr>,
    /// Granted columns the consent does not cover: not read, not returned.
    withheld: Vec<String>,
    /// The date range as reported to the caller.
    range_info: Option<serde_json::Value>,
}

impl Planned {
    /// A dataset read under the caller's grant alone.
    fn unrestricted(grant: &DatasetGrant, key_column: &str) -> Planned {
        Planned {
            grant: grant.clone(),
            key_column: key_column.to_string(),
            range: None,
            withheld: Vec::new(),
            range_info: None,
        }
    }

    /// A dataset read under a consent: the consent's column list (if it has
    /// one for this dataset) narrows the grant — a granted column it does not
    /// name is withheld, except the dispute flag, which the policy always
    /// shows with a record so a disputed record is never passed off as
    /// undisputed — and its data date range (if any) restricts rows by the
    /// dataset's record date. The error says why the dataset cannot be read
    /// under this consent.
    fn under_consent(grant: &DatasetGrant, key_column: &str, consent: &VerifiedConsent) -> Result<Planned, String> {
        let mut planned = Planned::unrestricted(grant, key_column);
        if let Some(allowed) = consent.columns(grant.dataset.as_str()) {
            let dispute = grant.dispute_column.as_deref();
            let (kept, withheld): (Vec<_>, Vec<_>) = std::mem::take(&mut planned.grant.columns)
                .into_iter()
                .partition(|c| allowed.contains(&c.name) || dispute == Some(c.name.as_str()));
            if !kept.iter().any(|c| dispute != Some(c.name.as_str())) {
                return Err("none of the columns granted to this caller is covered by the consent".to_string());
            }
            planned.grant.columns = kept;
            planned.withheld = withheld.into_iter().map(|c| c.name).collect();
        }
        let (from, to) = consent.data_range();
        planned.range = grant.date_range_predicate(from, to).map_err(|e| e.to_string())?;
        if planned.range.is_some() {
            planned.range_info = Some(serde_json::json!({"column": grant.date_column, "from": from, "to": to}));
        }
        Ok(planned)
    }
}

pub(crate) fn consent_error(refusal: creditgate_consent::ConsentRefusal) -> GatewayError {
    GatewayError::ConsentRefused { code: refusal.code(), message: refusal.to_string() }
}

/// Runs a lookup for `caller`: reads the request into an intent (the
/// identifier validated first), asks for a permit, reads every dataset, and
/// returns the JSON document. One audit record covers the whole lookup and
/// is durable before the document is returned. `header_purpose` is the
/// purpose of the call's header or metadata; the body's `purpose` wins.
pub async fn lookup(
    engine: &Engine,
    caller: Caller,
    header_purpose: Option<String>,
    request: LookupRequest,
) -> Result<serde_json::Value, GatewayError> {
    let purpose = request.purpose.clone().or(header_purpose);
    let kind = request.subject.kind;
    let operation = Operation::Lookup { subject: kind, consent: request.consent.is_some() };
    let requested = request.datasets.clone().unwrap_or_default();
    // 1. The identifier, before anything else.
    let subject = match SubjectRef::parse(kind, &request.subject.id) {
        Ok(subject) => subject,
        Err(e) => {
            // Refused before anything is sent to a source; recorded without the identifier.
            let field = match kind {
                SubjectKind::CreditCode => "subject.id (credit_code)",
                SubjectKind::ResidentId => "subject.id (resident_id)",
            };
            let recorded = RecordedQuery::Lookup(serde_json::json!({
                "subject": {"type": kind, "hash": null, "invalid": true},
                "datasets": request.datasets,
            }));
            let intent = Intent::new(operation, purpose, recorded).naming(requested);
            return Err(engine.refuse(caller, intent, GatewayError::BadRequest(format!("{field}: {e}"))).await);
        }
    };
    let audit_key = match kind {
        SubjectKind::CreditCode => creditgate_audit::SubjectKey::CreditCode(subject.id().to_string()),
        SubjectKind::ResidentId => creditgate_audit::SubjectKey::ResidentId(subject.id().to_string()),
    };
    let subject_hash = engine.auditor().hasher().hash(&audit_key);
    let consent_id = request.consent.as_ref().and_then(|c| c.get("consent_id")).and_then(|v| v.as_str());
    let consent_id = consent_id.filter(|id| creditgate_consent::is_consent_id(id));
    let recorded = RecordedQuery::Lookup(serde_json::json!({
        "subject": {"type": kind, "hash": subject_hash},
        "datasets": request.datasets,
        "consent_id": consent_id,
    }));
    let intent = Intent::new(operation, purpose, recorded).with_subjects(vec![subject_hash]).naming(requested);
    let permit = engine.authorize(caller, intent).await?;
    let span = tracing::Span::current();
    match read(engine, &permit, &request, &subject, None).await {
        Ok(done) => {
            let source_list: Vec<&str> = done.disclosure.sources.iter().map(|s| s.source.as_str()).collect();
            span.record("sources", source_list.join(",").as_str());
            span.record("rows", done.disclosure.rows.unwrap_or_default());
            permit.allow(done.disclosure).await?;
            Ok(done.document)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// A finished lookup: the document and what it disclosed.
pub(crate) struct Done {
    /// The lookup's answer: every dataset with its status, rows and masks.
    pub(crate) document: serde_json::Value,
    /// What it disclosed, for the audit record.
    pub(crate) disclosure: Disclosure,
}

/// Reads `subject` under `permit`: the legal basis (a consent verified and
/// its use counted), every dataset `request` names (all the caller's grants
/// that concern this kind of subject when it names none), in parallel.
/// `columns`, when given, narrows each dataset to the columns listed for it
/// (the dispute flag and the subject key are always read): a grade reads
/// only what its rules need.
pub(crate) async fn read(
    engine: &Engine,
    permit: &Permit,
    request: &LookupRequest,
    subject: &SubjectRef,
    columns: Option<&BTreeMap<String, Vec<String>>>,
) -> Result<Done, GatewayError> {
    let purpose = permit.purpose().map(|p| p.to_string()).unwrap_or_default();
    let requested: Option<Vec<String>> = request.datasets.clone();
    if requested.as_ref().is_some_and(|d| d.len() > MAX_LOOKUP_DATASETS) {
        return Err(GatewayError::BadRequest(format!("datasets: at most {MAX_LOOKUP_DATASETS} may be named")));
    }
    // Every dataset the policy grants, available or not: a source that has
    // not answered is reported as `unavailable`, never left out.
    let grants: BTreeMap<DatasetName, DatasetGrant> =
        engine.policy().grants_for(permit.principal()).into_iter().map(|g| (g.dataset.clone(), g)).collect();

    // 2. The legal basis, decided by the policy; a consent is verified here.
    let basis = match (permit.legal_basis(), &request.consent) {
        (LegalBasis::Consent, Some(artefact)) => Basis::Consent(Box::new(
            verify_consent(engine, permit.caller(), artefact, subject, &purpose, requested.as_deref()).await?,
        )),
        (other, _) => Basis::Decided(other.label()),
    };

    // 3. Which datasets, each with its status.
    let consented: Option<Vec<String>> = match &basis {
        Basis::Consent(c) => Some(c.datasets().to_vec()),
        Basis::Decided(_) => None,
    };
    let mut plan: Vec<(String, Result<Planned, String>)> = Vec::new();
    let names: Vec<String> = match &requested {
        Some(list) => list.clone(),
        None => grants.keys().map(DatasetName::to_string).collect(),
    };
    for name in names {
        let entry = match grants.get(name.as_str()) {
            None => Err("not granted to this caller".to_string()),
            Some(grant) => match (key_column(grant, subject.kind()), &basis) {
                (None, _) => Err("has no key column for this kind of subject".to_string()),
                (Some(_), _) if consented.as_ref().is_some_and(|c| !c.contains(&name)) => {
                    Err("not covered by the consent".to_string())
                }
                (Some(column), Basis::Consent(consent)) => Planned::under_consent(grant, column, consent),
                (Some(column), Basis::Decided(_)) => Ok(Planned::unrestricted(grant, column)),
            },
        };
        let entry = match (entry, columns.and_then(|c| c.get(&name))) {
            (Ok(mut planned), Some(needed)) => {
                let dispute = planned.grant.dispute_column.clone();
                let key = planned.key_column.clone();
                planned.grant.columns.retain(|c| {
                    needed.contains(&c.name) || dispute.as_deref() == Some(c.name.as_str()) || c.name == key
                });
                Ok(planned)
            }
            (entry, _) => entry,
        };
        // Datasets chosen by default that do not concern this caller or
        // this kind of subject are simply skipped.
        let irrelevant = grants.get(name.as_str()).is_none_or(|g| key_column(g, subject.kind()).is_none());
        if requested.is_none() && irrelevant {
            continue;
        }
        plan.push((name, entry));
    }

    // A consent use is counted once the lookup is going ahead.
    let consent_status = match (&basis, engine.consents()) {
        (Basis::Consent(verified), Some(consents)) => {
            let uses = consents.store.try_use_verified(verified).await.map_err(crate::consent::book_error)?;
            Some(serde_json::json!({"id": verified.consent_id(), "uses": uses, "max_uses": verified.max_uses()}))
        }
        _ => None,
    };

    // 4. Fan out in parallel, each dataset with the subject key applied at the source.
    let today = creditgate_engine::today();
    let key_value = subject.id().to_string();
    let session = engine.engine()?;
    let available: BTreeMap<DatasetName, (Dataset, arrow::datatypes::SchemaRef)> =
        engine.federation().available().into_iter().map(|(d, s)| (d.name.clone(), (d, s))).collect();
    let (generation, federation) = (engine.policy_generation(), engine.federation().generation());
    let masks = engine.masks_for(permit.principal());
    let futures = plan.iter().map(|(_, entry)| {
        let key_value = key_value.clone();
        let (session, available, masks) = (&session, &available, masks.as_ref());
        async move {
            let planned = match entry {
                Ok(planned) => planned,
                Err(reason) => return Err(("denied", reason.clone())),
            };
            let (grant, column, range) = (&planned.grant, &planned.key_column, planned.range.as_ref());
            // The grant alone decides what is read: its plan is built once and
            // the key bound per lookup. A consent's narrowing is planned each time.
            let cache = (range.is_none() && planned.withheld.is_empty()).then(|| {
                let read: Vec<&str> = grant.columns.iter().map(|c| c.name.as_str()).collect();
                format!(
                    "{}\n{}\n{column}\n{generation}\n{federation}\n{today}\n{}",
                    permit.principal().name,
                    grant.dataset,
                    read.join(",")
                )
            });
            read_subject(engine, masks, session, available, grant, column, &key_value, range, today, cache).await
        }
    });
    let results = futures::future::join_all(futures).await;

    let mut datasets = serde_json::Map::new();
    let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sources = Vec::new();
    let mut incomplete = false;
    let mut total_rows = 0u64;
    for ((name, entry), result) in plan.into_iter().zip(results) {
        let planned = entry.as_ref().ok();
        let withheld = planned.map(|p| p.withheld.as_slice()).unwrap_or_default();
        // How each granted column is shown; `withheld` for one the consent does not cover.
        let masks: serde_json::Map<String, serde_json::Value> = grants
            .get(name.as_str())
            .map(|g| {
                g.columns
                    .iter()
                    .map(|c| {
                        let shown =
                            if withheld.contains(&c.name) { "withheld".to_string() } else { c.mask.to_string() };
                        (c.name.clone(), shown.into())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let source = engine.federation().datasets().iter().find(|d| d.name == name).map(|d| d.source.clone());
        let (status, body) = match result {
            Ok(batches) => {
                let rows = batches_to_json(&batches)?;
                total_rows += rows.len() as u64;
                touched.insert(
                    name.clone(),
                    planned.map(|p| p.grant.columns.iter().map(|c| c.name.clone()).collect()).unwrap_or_default(),
                );
                let mut body = serde_json::json!({"status": "ok", "rows": rows, "masks": masks});
                if let Some(range) = planned.and_then(|p| p.range_info.clone()) {
                    body["data_range"] = range;
                }
                ("ok", body)
            }
            Err((status, message)) => {
                if status != "denied" {
                    incomplete = true;
                }
                (status, serde_json::json!({"status": status, "error": message, "rows": [], "masks": masks}))
            }
        };
        if let Some(source) = source {
            sources.push(creditgate_audit::SourceStatus { source: source.to_string(), status: status.to_string() });
        }
        datasets.insert(name, body);
    }
    let document = serde_json::json!({
        "request_id": permit.caller().request_id(),
        "subject": {"type": subject.kind(), "id_masked": mask_subject(subject)},
        "purpose": purpose,
        "legal_basis": basis.label(),
        "consent": consent_status,
        "incomplete": incomplete,
        "datasets": datasets,
    });
    let columns = creditgate_engine::audit::column_accesses(&touched, &grants);
    let disclosure = Disclosure {
        legal_basis: Some(basis.label()),
        datasets: touched.keys().cloned().collect(),
        columns,
        rows: Some(total_rows),
        sources,
        ..Disclosure::default()
    };
    Ok(Done { document, disclosure })
}

async fn verify_consent(
    engine: &Engine,
    caller: &Caller,
    artefact: &serde_json::Value,
    subject: &SubjectRef,
    purpose: &str,
    datasets: Option<&[String]>,
) -> Result<VerifiedConsent, GatewayError> {
    let Some(consents) = engine.consents() else {
        return Err(GatewayError::PolicyRefused("this gateway trusts no consent issuer".to_string()));
    };
    let artefact = ConsentArtefact::from_value(artefact.clone()).map_err(consent_error)?;
    let caller_org = caller.identity().and_then(|i| i.org_id.clone()).unwrap_or_default();
    let ledger = consents.store.ledger(&artefact.consent_id).await.map_err(crate::consent::book_error)?;
    let context = CheckContext {
        issuers: &consents.issuers,
        ledger: &ledger,
        caller_org: &caller_org,
        subject,
        purpose,
        datasets: datasets.unwrap_or(&[]),
        now: chrono::Utc::now(),
    };
    creditgate_consent::verify(&artefact, &context).map_err(consent_error)
}

/// Reads one dataset for one subject: row policy, key equality and the
/// consent's data date range (`range`, if any) at the source, as one
/// mandatory predicate; masks in the view; the source's own deadlines.
#[allow(clippy::too_many_arguments)]
async fn read_subject(
    engine: &Engine,
    masks: &creditgate_policy::MaskUdfs,
    session: &datafusion::prelude::SessionContext,
    available: &BTreeMap<DatasetName, (Dataset, arrow::datatypes::SchemaRef)>,
    grant: &DatasetGrant,
    key_column: &str,
    key_value: &str,
    range: Option<&Expr>,
    today: chrono::NaiveDate,
    cache: Option<String>,
) -> Result<Vec<arrow::array::RecordBatch>, (&'static str, String)> {
    let Some((dataset, schema)) = available.get(&grant.dataset).cloned() else {
        let source = engine.federation().datasets().iter().find(|d| d.name == grant.dataset).map(|d| d.source.clone());
        return Err(match source {
            Some(source) => {
                ("unavailable", format!("source `{source}` has not been reached since the gateway started"))
            }
            None => {
                ("unavailable", "the policy grants this dataset but no connector of this gateway serves it".to_string())
            }
        });
    };
    let Some(source) = engine.federation().source(&dataset.source).cloned() else {
        return Err(("error", "unknown source".to_string()));
    };
    let deadline = source.deadlines().total.min(source.deadlines().first_batch * 2);
    // The fast path: a physical plan built once for this key (principal,
    // dataset, key column, policy generation, federation, day) with the
    // subject key as the placeholder `$1` of the pushed statement. A lookup
    // binds the key as that parameter's value: the connector runs its
    // prepared statement, and the key never becomes SQL text.
    let cache = cache.filter(|_| engine.lookup_plans().enabled());
    if let Some(cache_key) = &cache
        && let Some(cached) = engine.lookup_plans().get(cache_key)
    {
        let bound = bind_key(cached, key_value).map_err(|e| ("error", e))?;
        return run_plan(session, bound, deadline).await;
    }
    let predicate = grant.row_predicate(today).map_err(|e| ("error", e.to_string()))?;
    let key = match cache {
        Some(_) => col(key_column).eq(placeholder(KEY_PLACEHOLDER)),
        None => col(key_column).eq(lit(key_value.to_string())),
    };
    let mut mandatory = match predicate {
        Some(p) => p.and(key),
        None => key,
    };
    if let Some(range) = range {
        mandatory = mandatory.and(range.clone());
    }
    let mandatory = Some(mandatory);
    let remote = RemoteTable::new(source, dataset.remote_table.clone(), schema)
        .with_mandatory_filter(mandatory)
        .with_raw_columns(grant.raw_columns());
    let view = creditgate_policy::secure_view(Arc::new(remote), grant, masks).map_err(|e| ("error", e.to_string()))?;
    if let Some(cache_key) = cache {
        let built = async {
            let frame = session.read_table(view)?;
            frame.create_physical_plan().await
        };
        let plan = built.await.map_err(|e| ("error", GatewayError::from_datafusion(e, true).client_message()))?;
        let bound = bind_key(Arc::clone(&plan), key_value).map_err(|e| ("error", e))?;
        engine.lookup_plans().insert(cache_key, plan);
        return run_plan(session, bound, deadline).await;
    }
    // Planned and run on a task of its own, so the datasets of one lookup
    // plan in parallel on every core; aborted if the deadline passes.
    let session = session.clone();
    let work = tokio::spawn(
        async move {
            let frame = session.read_table(view).map_err(|e| GatewayError::from_datafusion(e, true))?;
            frame.collect().await.map_err(|e| GatewayError::from_datafusion(e, false))
        }
        .in_current_span(),
    );
    finish(work, deadline).await
}

/// The placeholder of the subject key in a cached lookup plan's statement.
const KEY_PLACEHOLDER: &str = "$1";

/// `plan` (a cached lookup plan) with `key` bound as the value of its
/// remote scan's one placeholder. Exactly one scan with exactly one
/// placeholder must be there, or the plan is not used.
fn bind_key(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    key: &str,
) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>, String> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        KEY_PLACEHOLDER,
        arrow::datatypes::DataType::Utf8,
        false,
    )]));
    let row = arrow::array::RecordBatch::try_new(schema, vec![Arc::new(arrow::array::StringArray::from(vec![key]))])
        .map_err(|e| format!("binding the subject key: {e}"))?;
    let mut bound = 0usize;
    let plan = plan
        .transform_down(|node| {
            let Some(scan) = node.downcast_ref::<creditgate_remote::RemoteScanExec>() else {
                return Ok(Transformed::no(node));
            };
            if scan.placeholders() == 0 {
                return Ok(Transformed::no(node));
            }
            bound += scan.placeholders();
            let scan = scan.with_parameters(row.clone());
            Ok(Transformed::yes(Arc::new(scan) as Arc<dyn datafusion::physical_plan::ExecutionPlan>))
        })
        .map_err(|e| format!("binding the subject key: {e}"))?
        .data;
    if bound != 1 {
        return Err(format!("a cached lookup plan held {bound} subject keys instead of one"));
    }
    Ok(plan)
}

/// Runs a bound lookup plan on a task of its own, within `deadline`.
async fn run_plan(
    session: &datafusion::prelude::SessionContext,
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    deadline: std::time::Duration,
) -> Result<Vec<arrow::array::RecordBatch>, (&'static str, String)> {
    let task = session.task_ctx();
    let work = tokio::spawn(
        async move {
            datafusion::physical_plan::collect(plan, task).await.map_err(|e| GatewayError::from_datafusion(e, false))
        }
        .in_current_span(),
    );
    finish(work, deadline).await
}

async fn finish(
    work: tokio::task::JoinHandle<Result<Vec<arrow::array::RecordBatch>, GatewayError>>,
    deadline: std::time::Duration,
) -> Result<Vec<arrow::array::RecordBatch>, (&'static str, String)> {
    let mut work = AbortOnDrop(work);
    let outcome = tokio::time::timeout(deadline, &mut work.0)
        .await
        .map(|joined| joined.unwrap_or_else(|e| Err(GatewayError::internal(format!("a dataset read stopped: {e}")))));
    match outcome {
        Ok(Ok(batches)) => Ok(batches),
        Ok(Err(GatewayError::Source(e))) => {
            Err((if e.status_label() == "timeout" { "timeout" } else { "error" }, source_message(&e)))
        }
        Ok(Err(e)) => Err(("error", e.client_message())),
        Err(_) => Err(("timeout", format!("no answer within {} ms", deadline.as_millis()))),
    }
}

/// Aborts the task when dropped (a lookup past its deadline stops its reads).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn mask_subject(subject: &SubjectRef) -> String {
    let id: Vec<char> = subject.id().chars().collect();
    let keep = |n: usize| id.iter().take(n).collect::<String>();
    match subject.kind() {
        SubjectKind::CreditCode => subject.id().to_string(),
        SubjectKind::ResidentId => format!(
            "{}{}{}",
            keep(6),
            "*".repeat(id.len().saturating_sub(10)),
            id[id.len().saturating_sub(4)..].iter().collect::<String>()
        ),
    }
}
