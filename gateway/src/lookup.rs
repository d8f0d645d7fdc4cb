//! Subject lookups: "everything about this company / this seller", for one
//! subject, across every relevant source, in parallel.
//!
//! The identifier is validated before anything else (nothing reaches a source
//! for a bad one). The legal basis is decided from the caller's role, the
//! purpose and the subject: statutory duty (agency), licence (credit agency,
//! enterprise subject), consent (credit agency or platform, individual subject;
//! always for individuals), or public data (platform, enterprise subject).
//! Each dataset is then read with the subject-key equality applied at the
//! source — the one raw-key predicate a connector may see — under the caller's
//! row policy and masks. Every source reports its own status; a failed or slow
//! source makes the answer `incomplete`, never a hang.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use creditgate_audit::RecordedQuery;
use creditgate_consent::{CheckContext, ConsentArtefact, ConsentStore, SubjectRef, TrustedIssuers, VerifiedConsent};
use creditgate_ident::SubjectKind;
use creditgate_policy::{DatasetGrant, Role};
use creditgate_remote::RemoteTable;
use datafusion::logical_expr::{Expr, col, lit};
use serde::Deserialize;
use tracing::Instrument;

use crate::encode::batches_to_json;
use crate::error::GatewayError;
use crate::gateway::{Caller, Gateway};

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

/// Trusted consent issuers and the store of revocations and use counts.
pub struct Consents {
    /// Issuer public keys.
    pub issuers: TrustedIssuers,
    /// Revocations and use counts.
    pub store: ConsentStore,
}

/// Why a lookup was allowed.
#[derive(Debug, Clone)]
enum Basis {
    Duty(String),
    Licence(String),
    Consent(VerifiedConsent),
    PublicData,
}

impl Basis {
    fn label(&self) -> String {
        match self {
            Basis::Duty(code) => format!("duty:{code}"),
            Basis::Licence(number) => format!("licence:{number}"),
            Basis::Consent(c) => c.legal_basis(),
            Basis::PublicData => "public-data".to_string(),
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
        if let Some(allowed) = consent.columns(&grant.dataset) {
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

fn consent_error(refusal: creditgate_consent::ConsentRefusal) -> GatewayError {
    GatewayError::ConsentRefused { code: refusal.code(), message: refusal.to_string() }
}

impl Gateway {
    /// Runs a lookup and returns the JSON document. One audit record covers
    /// the whole lookup and is durable before the document is returned.
    pub async fn lookup(&self, caller: &Caller, request: LookupRequest) -> Result<serde_json::Value, GatewayError> {
        // 1. The identifier, before anything else.
        let field = match request.subject.kind {
            SubjectKind::CreditCode => "subject.id (credit_code)",
            SubjectKind::ResidentId => "subject.id (resident_id)",
        };
        let subject = match SubjectRef::parse(request.subject.kind, &request.subject.id) {
            Ok(subject) => subject,
            Err(e) => {
                // Refused before anything is sent to a source; recorded without the identifier.
                let error = GatewayError::BadRequest(format!("{field}: {e}"));
                let recorded = RecordedQuery::Lookup(serde_json::json!({
                    "subject": {"type": request.subject.kind, "hash": null, "invalid": true},
                    "purpose": caller.purpose,
                    "datasets": request.datasets,
                }));
                self.audit_refusal(caller, recorded, Vec::new(), &error).await?;
                return Err(error);
            }
        };
        let audit_key = match request.subject.kind {
            SubjectKind::CreditCode => creditgate_audit::SubjectKey::CreditCode(subject.id().to_string()),
            SubjectKind::ResidentId => creditgate_audit::SubjectKey::ResidentId(subject.id().to_string()),
        };
        let subject_hash = self.auditor().hasher().hash(&audit_key);
        let consent_id = request.consent.as_ref().and_then(|c| c.get("consent_id")).and_then(|v| v.as_str());
        let recorded = RecordedQuery::Lookup(serde_json::json!({
            "subject": {"type": request.subject.kind, "hash": subject_hash},
            "purpose": caller.purpose,
            "datasets": request.datasets,
            "consent_id": consent_id,
        }));
        match self.lookup_inner(caller, &request, &subject).await {
            Ok((document, touched, grants, basis, sources, rows)) => {
                let source_list: Vec<&str> = sources.iter().map(|s| s.source.as_str()).collect();
                tracing::Span::current().record("sources", source_list.join(",").as_str());
                let columns = crate::audit::column_accesses(&touched, |dataset, column| {
                    grants.get(dataset).and_then(|g| g.column(column)).map(|c| c.mask.to_string()).unwrap_or_default()
                });
                let record = creditgate_audit::NewRecord {
                    legal_basis: Some(basis.label()),
                    datasets: touched.keys().cloned().collect(),
                    columns,
                    subject_hashes: vec![subject_hash],
                    row_count: Some(rows),
                    sources,
                    ..caller.record_of(recorded)
                };
                let span = tracing::Span::current();
                span.record("rows", rows);
                span.record("duration_ms", caller.elapsed_ms());
                span.record("outcome", "ok");
                self.record(caller, record).await?;
                self.metrics().request(caller.frontend.label(), "ok", Duration::from_millis(caller.elapsed_ms()));
                Ok(document)
            }
            Err(error) => {
                self.audit_refusal(caller, recorded, vec![subject_hash], &error).await?;
                Err(error)
            }
        }
    }

    async fn lookup_inner(
        &self,
        caller: &Caller,
        request: &LookupRequest,
        subject: &SubjectRef,
    ) -> Result<
        (
            serde_json::Value,
            BTreeMap<String, Vec<String>>,
            Arc<BTreeMap<String, DatasetGrant>>,
            Basis,
            Vec<creditgate_audit::SourceStatus>,
            u64,
        ),
        GatewayError,
    > {
        self.authorize_data(caller)?;
        self.admit(caller)?;
        let purpose = caller.purpose.clone().unwrap_or_default();
        let (_, grants) = self.catalog_for(caller);
        let requested: Option<Vec<String>> = request.datasets.clone();
        if requested.as_ref().is_some_and(|d| d.len() > MAX_LOOKUP_DATASETS) {
            return Err(GatewayError::BadRequest(format!("datasets: at most {MAX_LOOKUP_DATASETS} may be named")));
        }

        // 2. The legal basis.
        let principal = &caller.principal;
        let individual = subject.kind() == SubjectKind::ResidentId;
        let basis = match (principal.role, individual, &request.consent) {
            (Role::Agency, _, _) => {
                if !principal.duty_codes.iter().any(|d| d == &purpose) {
                    return Err(GatewayError::PolicyRefused(format!(
                        "purpose \"{purpose}\" is not one of {}'s statutory duties ({})",
                        principal.name,
                        principal.duty_codes.join(", ")
                    )));
                }
                Basis::Duty(purpose.clone())
            }
            (Role::CreditAgency | Role::Platform, _, Some(artefact)) => {
                Basis::Consent(self.verify_consent(caller, artefact, subject, &purpose, requested.as_deref())?)
            }
            (Role::CreditAgency | Role::Platform, true, None) => {
                return Err(GatewayError::PolicyRefused(
                    "looking up an individual requires the individual's written consent for this purpose \
                     (credit-industry regulation Art. 18, PIPL §23): send the signed consent artefact as `consent`"
                        .to_string(),
                ));
            }
            (Role::CreditAgency, false, None) => match &principal.licence {
                Some(licence) => Basis::Licence(licence.number.clone()),
                None => {
                    return Err(GatewayError::PolicyRefused(
                        "credit agencies need a licence to look up enterprises".into(),
                    ));
                }
            },
            (Role::Platform, false, None) => Basis::PublicData,
            (Role::PrivacyOfficer | Role::Public, _, _) => {
                return Err(GatewayError::PolicyRefused(format!(
                    "role {} may not look up subjects",
                    principal.role.as_str()
                )));
            }
        };

        // 3. Which datasets, each with its status.
        let consented: Option<Vec<String>> = match &basis {
            Basis::Consent(c) => Some(c.datasets().to_vec()),
            _ => None,
        };
        let mut plan: Vec<(String, Result<Planned, String>)> = Vec::new();
        let names: Vec<String> = match &requested {
            Some(list) => list.clone(),
            None => grants.keys().cloned().collect(),
        };
        for name in names {
            let entry = match grants.get(&name) {
                None => Err("not granted to this caller".to_string()),
                Some(grant) => match (key_column(grant, subject.kind()), &basis) {
                    (None, _) => Err("has no key column for this kind of subject".to_string()),
                    (Some(_), _) if consented.as_ref().is_some_and(|c| !c.contains(&name)) => {
                        Err("not covered by the consent".to_string())
                    }
                    (Some(column), Basis::Consent(consent)) => Planned::under_consent(grant, column, consent),
                    (Some(column), _) => Ok(Planned::unrestricted(grant, column)),
                },
            };
            // Datasets chosen by default that do not concern this caller or
            // this kind of subject are simply skipped.
            let irrelevant = grants.get(&name).is_none_or(|g| key_column(g, subject.kind()).is_none());
            if requested.is_none() && irrelevant {
                continue;
            }
            plan.push((name, entry));
        }

        // A consent use is counted once the lookup is going ahead.
        let consent_status = match (&basis, self.consents()) {
            (Basis::Consent(verified), Some(consents)) => {
                let uses = consents.store.try_use_verified(verified).map_err(|e| match e.refusal() {
                    Some(refusal) => consent_error(refusal.clone()),
                    None => {
                        tracing::error!(error = %e, "consent store failure");
                        GatewayError::Internal("consent store".to_string())
                    }
                })?;
                Some(serde_json::json!({"id": verified.consent_id(), "uses": uses, "max_uses": verified.max_uses()}))
            }
            _ => None,
        };

        // 4. Fan out in parallel, each dataset with the subject key applied at the source.
        let today = chrono::Local::now().date_naive();
        let key_value = subject.id().to_string();
        let engine = self.engine()?;
        let available: BTreeMap<String, (crate::federation::Dataset, arrow::datatypes::SchemaRef)> =
            self.federation().available().into_iter().map(|(d, s)| (d.name.clone(), (d, s))).collect();
        let futures = plan.iter().map(|(_, entry)| {
            let key_value = key_value.clone();
            let (engine, available) = (&engine, &available);
            async move {
                let planned = match entry {
                    Ok(planned) => planned,
                    Err(reason) => return Err(("denied", reason.clone())),
                };
                let (grant, column, range) = (&planned.grant, &planned.key_column, planned.range.as_ref());
                self.read_subject(engine, available, grant, column, &key_value, range, today).await
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
                .get(&name)
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
            let source = self.federation().datasets().iter().find(|d| d.name == name).map(|d| d.source.clone());
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
                sources.push(creditgate_audit::SourceStatus { source, status: status.to_string() });
            }
            datasets.insert(name, body);
        }
        let document = serde_json::json!({
            "request_id": caller.request_id,
            "subject": {"type": subject.kind(), "id_masked": mask_subject(subject)},
            "purpose": purpose,
            "legal_basis": basis.label(),
            "consent": consent_status,
            "incomplete": incomplete,
            "datasets": datasets,
        });
        Ok((document, touched, grants, basis, sources, total_rows))
    }

    fn verify_consent(
        &self,
        caller: &Caller,
        artefact: &serde_json::Value,
        subject: &SubjectRef,
        purpose: &str,
        datasets: Option<&[String]>,
    ) -> Result<VerifiedConsent, GatewayError> {
        let Some(consents) = self.consents() else {
            return Err(GatewayError::PolicyRefused("this gateway trusts no consent issuer".to_string()));
        };
        let artefact = ConsentArtefact::from_value(artefact.clone()).map_err(consent_error)?;
        let caller_org = caller.identity.as_ref().and_then(|i| i.org_id.clone()).unwrap_or_default();
        let context = CheckContext {
            issuers: &consents.issuers,
            ledger: &consents.store,
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
        &self,
        engine: &datafusion::prelude::SessionContext,
        available: &BTreeMap<String, (crate::federation::Dataset, arrow::datatypes::SchemaRef)>,
        grant: &DatasetGrant,
        key_column: &str,
        key_value: &str,
        range: Option<&Expr>,
        today: chrono::NaiveDate,
    ) -> Result<Vec<arrow::array::RecordBatch>, (&'static str, String)> {
        let Some((dataset, schema)) = available.get(&grant.dataset).cloned() else {
            return Err(("error", "the source has not been reached yet".to_string()));
        };
        let Some(source) = self.federation().source(&dataset.source).cloned() else {
            return Err(("error", "unknown source".to_string()));
        };
        let deadline = source.deadlines().total.min(source.deadlines().first_batch * 2);
        let predicate = grant.row_predicate(today).map_err(|e| ("error", e.to_string()))?;
        let key = col(key_column).eq(lit(key_value.to_string()));
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
        let view = creditgate_policy::secure_view(Arc::new(remote), grant, self.masks())
            .map_err(|e| ("error", e.to_string()))?;
        // Planned and run on a task of its own, so the datasets of one lookup
        // plan in parallel on every core; aborted if the deadline passes.
        let engine = engine.clone();
        let work = tokio::spawn(
            async move {
                let frame = engine.read_table(view).map_err(|e| GatewayError::from_datafusion(e, true))?;
                frame.collect().await.map_err(|e| GatewayError::from_datafusion(e, false))
            }
            .in_current_span(),
        );
        let mut work = AbortOnDrop(work);
        let outcome = tokio::time::timeout(deadline, &mut work.0).await.map(|joined| {
            joined.unwrap_or_else(|e| Err(GatewayError::Internal(format!("a dataset read stopped: {e}"))))
        });
        match outcome {
            Ok(Ok(batches)) => Ok(batches),
            Ok(Err(GatewayError::Source(e))) => {
                Err((if e.status_label() == "timeout" { "timeout" } else { "error" }, e.to_string()))
            }
            Ok(Err(e)) => Err(("error", e.client_message())),
            Err(_) => Err(("timeout", format!("no answer within {} ms", deadline.as_millis()))),
        }
    }
}

impl Gateway {
    /// Revokes a consent: allowed for its issuer and for an agency overseeing
    /// consents about its kind of subject (see `revoke_inner`).
    ///
    /// `presented` is the signed consent artefact, which an oversight agency
    /// may present to revoke a consent this gateway has not seen used.
    pub async fn revoke_consent(
        &self,
        caller: &Caller,
        consent_id: &str,
        presented: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, GatewayError> {
        let recorded = RecordedQuery::Lookup(
            serde_json::json!({"consent_revoke": consent_id, "artefact_presented": presented.is_some()}),
        );
        let result = self.revoke_inner(caller, consent_id, presented);
        self.audit_consent_operation(caller, recorded, Some(format!("consent:{consent_id}")), result).await
    }

    /// Writes the one audit record of a consent operation (allowed or refused)
    /// and returns its result; fails closed if the record cannot be written.
    async fn audit_consent_operation(
        &self,
        caller: &Caller,
        recorded: RecordedQuery,
        legal_basis: Option<String>,
        result: Result<serde_json::Value, GatewayError>,
    ) -> Result<serde_json::Value, GatewayError> {
        match result {
            Ok(document) => {
                let record = creditgate_audit::NewRecord { legal_basis, ..caller.record_of(recorded) };
                self.record(caller, record).await?;
                Ok(document)
            }
            Err(error) => {
                self.audit_refusal(caller, recorded, Vec::new(), &error).await?;
                Err(error)
            }
        }
    }

    /// Who may revoke (in this order):
    ///
    /// 1. the consent's issuer: a caller whose organisation (the `org` of its
    ///    SPIFFE identity) is a trusted consent issuer revokes *its own*
    ///    consent with this id — recorded under that issuer, whether or not
    ///    the consent was used here;
    /// 2. the subject's oversight agency: an agency principal whose policy
    ///    entry lists the consent's kind of subject under
    ///    `consent_oversight`. The gateway knows a consent's issuer and kind
    ///    of subject from its first use here, so an agency can revoke only a
    ///    consent this gateway has seen (before that, only its issuer can).
    ///
    /// Anyone else is refused (403) with a message naming who may revoke.
    fn revoke_inner(
        &self,
        caller: &Caller,
        consent_id: &str,
        presented: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, GatewayError> {
        let consents = self.consents().ok_or_else(|| GatewayError::NotFound("consents are not configured".into()))?;
        let store_error = |e: creditgate_consent::ConsentError| match e.refusal() {
            Some(refusal) => consent_error(refusal.clone()),
            None => match &e {
                creditgate_consent::ConsentError::InvalidInput { field, reason } => {
                    GatewayError::BadRequest(format!("{field}: {reason}"))
                }
                _ => {
                    tracing::error!(error = %e, "consent store failure");
                    GatewayError::Internal("consent store".to_string())
                }
            },
        };
        if !creditgate_consent::is_consent_id(consent_id) {
            return Err(GatewayError::BadRequest(
                "consent_id: must be 1-128 characters from A-Z a-z 0-9 . _ -".to_string(),
            ));
        }
        let org = caller.identity.as_ref().and_then(|i| i.org_id.clone()).unwrap_or_default();
        let known = consents.store.statuses(consent_id);

        // 1. The issuer, for its own consent.
        if let Some(issuer) = consents.issuers.issuer_ids().find(|id| *id == org) {
            let newly =
                consents.store.revoke(Some(issuer), consent_id, &caller.principal.name, None).map_err(store_error)?;
            tracing::info!(consent.id = %consent_id, consent.issuer = %issuer, client.name = %caller.name(), "consent revoked by its issuer");
            return Ok(serde_json::json!({
                "consent_id": consent_id, "issuer": issuer, "revoked": true, "newly_revoked": newly, "revoked_as": "issuer",
            }));
        }

        // 2. An agency overseeing consents about this kind of subject.
        let policy = self.policy();
        let oversight = policy.consent_oversight(&caller.principal);
        let kinds_label =
            |kinds: &mut dyn Iterator<Item = SubjectKind>| kinds.map(|k| k.field_name()).collect::<Vec<_>>().join(", ");
        let refuse = |why: String| {
            let overseers = |kind: SubjectKind| {
                let names: Vec<&str> = policy.consent_overseers(kind).map(|p| p.name.as_str()).collect();
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            };
            let kind = match known.as_slice() {
                [one] => one.subject_type,
                _ => None,
            };
            let agencies = match kind {
                Some(kind) => format!("for {} subjects: {}", kind.field_name(), overseers(kind)),
                None => format!(
                    "for credit_code subjects: {}; for resident_id subjects: {}",
                    overseers(SubjectKind::CreditCode),
                    overseers(SubjectKind::ResidentId)
                ),
            };
            let issuer = match known.as_slice() {
                [one] if one.issuer.is_some() => format!("organisation {}", one.issuer.as_deref().unwrap_or_default()),
                _ => format!(
                    "one of the trusted issuers {}",
                    consents.issuers.issuer_ids().collect::<Vec<_>>().join(", ")
                ),
            };
            GatewayError::PolicyRefused(format!(
                "consent {consent_id} may be revoked only by its issuer ({issuer}) or by an agency whose statutory \
                 duty covers consent oversight for the consent's kind of subject ({agencies}); {why}"
            ))
        };
        if oversight.is_empty() {
            return Err(refuse(format!("{} is neither", caller.name())));
        }
        // The agency presents the signed consent: its issuer and subject are
        // known from the artefact, whether or not it was used here.
        if let Some(value) = presented {
            let artefact = ConsentArtefact::from_value(value.clone()).map_err(consent_error)?;
            if artefact.consent_id != consent_id {
                return Err(GatewayError::BadRequest(format!(
                    "consent: the artefact is consent {}, not {consent_id}",
                    creditgate_consent::is_consent_id(&artefact.consent_id)
                        .then_some(artefact.consent_id.as_str())
                        .unwrap_or("<malformed id>")
                )));
            }
            creditgate_consent::authenticate(&artefact, &consents.issuers).map_err(consent_error)?;
            let kind = artefact.subject.kind();
            if !oversight.contains(&kind) {
                return Err(refuse(format!(
                    "it is about a {} subject and {} oversees consents about {} subjects only",
                    kind.field_name(),
                    caller.name(),
                    kinds_label(&mut oversight.iter().copied())
                )));
            }
            let newly = consents
                .store
                .revoke(Some(&artefact.issuer), consent_id, &caller.principal.name, None)
                .map_err(store_error)?;
            tracing::info!(consent.id = %consent_id, client.name = %caller.name(), "consent revoked by an oversight agency (artefact presented)");
            return Ok(serde_json::json!({
                "consent_id": consent_id, "issuer": artefact.issuer, "revoked": true, "newly_revoked": newly,
                "revoked_as": "oversight",
            }));
        }
        let target = match known.as_slice() {
            [] => {
                return Err(refuse(format!(
                    "it has not been used at this gateway, so its subject is not known here: present the signed \
                     consent as `consent` in the request body (or ask its issuer); {} oversees {} subjects",
                    caller.name(),
                    kinds_label(&mut oversight.iter().copied())
                )));
            }
            [one] => one,
            several => {
                let issuers: Vec<&str> = several.iter().filter_map(|s| s.issuer.as_deref()).collect();
                return Err(GatewayError::BadRequest(format!(
                    "consent id {consent_id} is recorded for several issuers ({}); ask the issuer to revoke it",
                    issuers.join(", ")
                )));
            }
        };
        // An entry from before the store recorded subject kinds: only an
        // agency overseeing every kind can be sure it covers it.
        let covered = match target.subject_type {
            Some(kind) => oversight.contains(&kind),
            None => [SubjectKind::CreditCode, SubjectKind::ResidentId].iter().all(|k| oversight.contains(k)),
        };
        if !covered {
            return Err(refuse(format!(
                "{} oversees consents about {} subjects only",
                caller.name(),
                kinds_label(&mut oversight.iter().copied())
            )));
        }
        let newly = consents
            .store
            .revoke(target.issuer.as_deref(), consent_id, &caller.principal.name, None)
            .map_err(store_error)?;
        tracing::info!(consent.id = %consent_id, client.name = %caller.name(), "consent revoked by an oversight agency");
        Ok(serde_json::json!({
            "consent_id": consent_id, "issuer": target.issuer, "revoked": true, "newly_revoked": newly,
            "revoked_as": "oversight",
        }))
    }

    /// Use count and revocation state of a consent, for callers who work with
    /// consents (not the public role). Every read is audited.
    pub async fn consent_status(&self, caller: &Caller, consent_id: &str) -> Result<serde_json::Value, GatewayError> {
        let recorded = RecordedQuery::Lookup(serde_json::json!({"consent_status": consent_id}));
        let result = if caller.principal.role == Role::Public {
            Err(GatewayError::PolicyRefused("the public role may not read consent records".to_string()))
        } else {
            self.consent_status_inner(consent_id)
        };
        self.audit_consent_operation(caller, recorded, None, result).await
    }

    fn consent_status_inner(&self, consent_id: &str) -> Result<serde_json::Value, GatewayError> {
        let consents = self.consents().ok_or_else(|| GatewayError::NotFound("consents are not configured".into()))?;
        let describe = |status: &creditgate_consent::ConsentStatus| {
            serde_json::json!({
                "consent_id": consent_id,
                "issuer": status.issuer,
                "uses": status.uses,
                "max_uses": status.max_uses,
                "revoked": status.revoked.is_some(),
                "first_use": status.first_use,
                "last_use": status.last_use,
            })
        };
        Ok(match consents.store.statuses(consent_id).as_slice() {
            [] => serde_json::json!({"consent_id": consent_id, "uses": 0, "revoked": false}),
            [one] => describe(one),
            // The same id from several issuers: one record each, and in sum.
            several => serde_json::json!({
                "consent_id": consent_id,
                "uses": several.iter().map(|s| u64::from(s.uses)).sum::<u64>(),
                "revoked": several.iter().all(|s| s.revoked.is_some()),
                "by_issuer": several.iter().map(describe).collect::<Vec<_>>(),
            }),
        })
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
