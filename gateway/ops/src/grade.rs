//! Graded supervision: a credit grade of one enterprise (or individual
//! business), computed on request from the sources under the caller's
//! permit, explained rule by rule, never stored.
//!
//! A grade is a lookup plus rules. The subject's credit code is validated
//! while the request is read; the permit is a lookup's (an individual
//! business is a natural person: a duty or a consent, as for a resident
//! ID); the lookup reads, from every dataset the template's rules use, only
//! the columns those rules read — under the caller's row policy and masks —
//! and the template is evaluated over what came back
//! ([`creditgate_grade::evaluate`]). A dataset the caller may not read, a
//! column it may not see or sees masked, or a source that failed leaves
//! the rules on it *not evaluated*: the grade is then incomplete and given
//! as a range, never guessed. Nothing is cached or kept; the audit record
//! says which template graded whom, the grade, and the rules that fired.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::RecordedQuery;
use creditgate_consent::SubjectRef;
use creditgate_engine::{Caller, Disclosure, Engine, GatewayError, Intent, Permit};
use creditgate_grade::{Assessment, Input, Template};
use creditgate_ident::SubjectKind;
use creditgate_policy::Operation;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::lookup::{LookupRequest, SubjectRequest};

/// The Flight action type of a grade.
pub const GRADE_ACTION: &str = "creditgate.grade";

/// Largest number of credit codes one batch may list.
pub const MAX_BATCH: usize = 10_000;

/// Longest review reason, in characters.
pub const MAX_REVIEW_REASON_CHARS: usize = 2000;

/// The body of `POST /v1/grades/{credit_code}` and of the Flight action
/// `creditgate.grade` (`GET /v1/grades/{credit_code}` takes the code from
/// the path and the purpose from the header).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeRequest {
    /// The subject's unified social credit code.
    #[serde(default)]
    pub credit_code: String,
    /// The purpose code (overrides the header).
    #[serde(default)]
    pub purpose: Option<String>,
    /// The subject's consent artefact, when the legal basis is consent.
    #[serde(default)]
    pub consent: Option<Value>,
}

/// The body of `POST /v1/grades`: a batch, of listed codes or of a district.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to [`MAX_BATCH`] credit codes (duplicates are graded once).
    #[serde(default)]
    pub credit_codes: Vec<String>,
    /// Instead of codes: every enterprise registered in this district
    /// (6-digit division code, `market.enterprises.district_code`), read
    /// under the caller's policy; at most [`MAX_BATCH`].
    #[serde(default)]
    pub district: Option<String>,
    /// The purpose code (overrides the header).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// The body of `POST /v1/grades/{request_id}/review`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The graded subject's credit code (as in the grade).
    pub credit_code: String,
    /// Why a person should look at the grade again (the subject's words).
    pub reason: String,
    /// The purpose code (overrides the header).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// What a batch sends: one line per subject, then the summary.
#[derive(Debug, Clone)]
pub enum BatchItem {
    /// One subject's grade, or why it was not graded.
    Line(Value),
    /// `{"progress": {"done", "total"}}`: sent while lines without warnings
    /// are held back (at most about a hundred per batch), so a client can
    /// show how far the batch has come.
    Progress(Value),
    /// The last item: how many were graded, incomplete, refused.
    Summary(Value),
}

/// A validated subject of a grade.
#[derive(Debug, Clone)]
struct Subject {
    reference: SubjectRef,
    hash: String,
    person: bool,
}

fn template(engine: &Engine) -> Result<Arc<Template>, GatewayError> {
    engine.grading().cloned().ok_or_else(|| {
        GatewayError::NotFound("grades: this gateway has no grading template ([grading] in its config)".to_string())
    })
}

fn subject(engine: &Engine, code: &str) -> Result<Subject, String> {
    let reference = SubjectRef::parse(SubjectKind::CreditCode, code).map_err(|e| e.to_string())?;
    let person =
        creditgate_ident::CreditCode::parse(reference.id()).map(|c| c.is_individual_business()).unwrap_or(false);
    let hash = engine.auditor().hasher().hash(&creditgate_audit::SubjectKey::CreditCode(reference.id().to_string()));
    Ok(Subject { reference, hash, person })
}

fn consent_id(consent: Option<&Value>) -> Option<&str> {
    consent.and_then(|c| c.get("consent_id")).and_then(Value::as_str).filter(|id| creditgate_consent::is_consent_id(id))
}

fn template_datasets(template: &Template) -> Vec<String> {
    template.datasets().keys().map(|d| d.to_string()).collect()
}

fn intent(template: &Template, subject: &Subject, purpose: Option<String>, consent: Option<&Value>) -> Intent {
    let operation = Operation::Grade { person: subject.person, consent: consent.is_some() };
    let recorded = RecordedQuery::Lookup(json!({
        "grade": {"template": template.template.id, "version": template.template.version},
        "subject": {"type": "credit_code", "hash": subject.hash},
        "consent_id": consent_id(consent),
    }));
    Intent::new(operation, purpose, recorded)
        .with_subjects(vec![subject.hash.clone()])
        .naming(template_datasets(template))
}

/// Grades one subject for `caller`: reads the request into an intent (the
/// credit code validated first), asks for a permit, runs the lookup and the
/// rules, and returns the answer. One audit record covers the grade, durable
/// before the answer is returned.
pub async fn grade(
    engine: &Engine,
    caller: Caller,
    header_purpose: Option<String>,
    request: GradeRequest,
) -> Result<Value, GatewayError> {
    let purpose = request.purpose.clone().or(header_purpose);
    let refused_intent = |purpose: Option<String>| {
        let recorded = RecordedQuery::Lookup(json!({"grade": {}, "subject": {"type": "credit_code", "hash": null}}));
        Intent::new(Operation::Grade { person: false, consent: request.consent.is_some() }, purpose, recorded)
    };
    let template = match template(engine) {
        Ok(template) => template,
        Err(error) => return Err(engine.refuse(caller, refused_intent(purpose), error).await),
    };
    let subject = match subject(engine, &request.credit_code) {
        Ok(subject) => subject,
        Err(e) => {
            let error = GatewayError::BadRequest(format!("credit_code: {e}"));
            return Err(engine.refuse(caller, refused_intent(purpose), error).await);
        }
    };
    let intent = intent(&template, &subject, purpose, request.consent.as_ref());
    let permit = engine.authorize(caller, intent).await?;
    match compute(engine, &permit, &template, &subject, request.consent).await {
        Ok((document, disclosure)) => {
            permit.allow(disclosure).await?;
            Ok(document)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// Runs the lookup and the rules for one subject under `permit`: the
/// answer and what it disclosed (the audit record's grade summary in it).
async fn compute(
    engine: &Engine,
    permit: &Permit,
    template: &Template,
    subject: &Subject,
    consent: Option<Value>,
) -> Result<(Value, Disclosure), GatewayError> {
    let columns: BTreeMap<String, Vec<String>> = template
        .datasets()
        .into_iter()
        .map(|(dataset, columns)| (dataset.to_string(), columns.into_iter().map(str::to_string).collect()))
        .collect();
    let consent_id = consent_id(consent.as_ref()).map(str::to_string);
    // Under a consent, only the datasets it names are asked for (the
    // artefact is verified by the lookup, which refuses anything it does
    // not cover); the template's others are not evaluated.
    let named: Option<Vec<String>> = consent.as_ref().map(|c| {
        c.get("datasets")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    });
    let (asked, uncovered): (Vec<String>, Vec<String>) =
        columns.keys().cloned().partition(|d| named.as_ref().is_none_or(|named| named.contains(d)));
    if asked.is_empty() {
        return Err(GatewayError::ConsentRefused {
            code: "consent.dataset_not_covered",
            message: "the consent covers none of the datasets the grading template reads".to_string(),
        });
    }
    let request = LookupRequest {
        subject: SubjectRequest { kind: SubjectKind::CreditCode, id: subject.reference.id().to_string() },
        purpose: None,
        consent,
        datasets: Some(asked),
    };
    let mut done = crate::lookup::read(engine, permit, &request, &subject.reference, Some(&columns)).await?;
    // The rows move out of the lookup's document (only its header is used below).
    let read = match done.document.get_mut("datasets").map(Value::take) {
        Some(Value::Object(read)) => read,
        _ => serde_json::Map::new(),
    };

    // What the caller may see of each dataset: its rows and how each column is shown.
    let mut statuses = serde_json::Map::new();
    let mut seen: BTreeMap<String, (Vec<Value>, BTreeMap<String, String>)> = BTreeMap::new();
    let mut unreadable: BTreeMap<String, String> = BTreeMap::new();
    for (name, mut body) in read {
        let status = body.get("status").and_then(Value::as_str).unwrap_or("error").to_string();
        statuses.insert(name.clone(), json!(status));
        if status == "ok" {
            let rows = match body.get_mut("rows").map(Value::take) {
                Some(Value::Array(rows)) => rows,
                _ => Vec::new(),
            };
            let shown = body
                .get("masks")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(c, v)| (c.clone(), v.as_str().unwrap_or("withheld").to_string())).collect())
                .unwrap_or_default();
            seen.insert(name.clone(), (rows, shown));
        } else {
            let why = body.get("error").and_then(Value::as_str).unwrap_or("not read");
            unreadable.insert(name.clone(), format!("{status}: {why}"));
        }
    }
    for name in uncovered {
        statuses.insert(name.clone(), json!("denied"));
        unreadable.insert(name, "denied: not covered by the consent".to_string());
    }
    let mut inputs: BTreeMap<String, Input<'_>> = BTreeMap::new();
    for (name, (rows, shown)) in &seen {
        inputs.insert(name.clone(), Input::Rows { rows, shown });
    }
    for (name, why) in &unreadable {
        inputs.insert(name.clone(), Input::Unreadable(why.clone()));
    }
    let today = creditgate_engine::today();
    let assessment = creditgate_grade::evaluate(template, &inputs, today);
    let request_id = permit.caller().request_id().to_string();
    let document = answer(template, subject, &assessment, &done.document, statuses, &request_id, today);
    let mut disclosure = done.disclosure;
    disclosure.what = Some(RecordedQuery::Lookup(json!({
        "grade": summary(template, &assessment),
        "subject": {"type": "credit_code", "hash": subject.hash},
        "consent_id": consent_id,
    })));
    Ok((document, disclosure))
}

/// The grade as the audit record keeps it: template, grade, which rules fired.
fn summary(template: &Template, a: &Assessment) -> Value {
    let ids = |status: creditgate_grade::Status| -> Vec<&str> {
        a.rules.iter().filter(|r| r.status == status).map(|r| r.id.as_str()).collect()
    };
    json!({
        "template": template.template.id,
        "version": template.template.version,
        "grade": a.grade,
        "complete": a.complete,
        "range": [a.best, a.worst],
        "fired": ids(creditgate_grade::Status::Fired),
        "not_evaluated": ids(creditgate_grade::Status::NotEvaluated),
        "warnings": a.warnings,
    })
}

/// The answer to the caller.
fn answer(
    template: &Template,
    subject: &Subject,
    a: &Assessment,
    lookup: &Value,
    statuses: serde_json::Map<String, Value>,
    request_id: &str,
    today: chrono::NaiveDate,
) -> Value {
    let rules: Vec<Value> = template
        .rules
        .iter()
        .zip(&a.rules)
        .map(|(rule, outcome)| {
            let evidence: Vec<Value> = outcome
                .evidence
                .iter()
                .map(|e| json!({"dataset": rule.dataset, "record_key": rule.record_key, "record": e.record, "fields": e.fields}))
                .collect();
            json!({
                "id": rule.id,
                "title": rule.title,
                "citation": rule.citation,
                "dataset": rule.dataset,
                "status": outcome.status,
                "points": outcome.points,
                "points_range": outcome.points_range,
                "direct_grade": rule.grade,
                "warning": rule.warning,
                "reason": outcome.reason,
                "matched": outcome.matched,
                "evidence": evidence,
            })
        })
        .collect();
    let title = |grade: &Option<String>| {
        grade.as_deref().and_then(|g| template.bands.iter().find(|b| b.grade == g)).and_then(|b| b.title.clone())
    };
    let mut document = json!({
        "request_id": request_id,
        "official": false,
        "subject": {"type": "credit_code", "id": subject.reference.id(), "natural_person": subject.person},
        "template": {"id": template.template.id, "version": template.template.version, "title": template.template.title},
        "computed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "as_of": today.to_string(),
        "purpose": lookup.get("purpose"),
        "legal_basis": lookup.get("legal_basis"),
        "consent": lookup.get("consent"),
        "complete": a.complete,
        "grade": a.grade,
        "grade_title": title(&a.grade),
        "score": a.score,
        "range": {"best": a.best, "worst": a.worst, "score_min": a.score_range[0], "score_max": a.score_range[1]},
        "warnings": a.warnings,
        "rules": rules,
        "datasets": statuses,
    });
    if subject.person {
        document["review"] = json!({
            "method": "POST",
            "path": format!("/v1/grades/{request_id}/review"),
            "body": {"credit_code": subject.reference.id(), "reason": "…"},
            "note": "An automated assessment of a natural person (PIPL §24): the subject may ask for an \
                     explanation and for a person to review it; the request is recorded for the privacy officer.",
        });
    }
    document
}

/// Validates a batch's codes: the distinct subjects in order, or the
/// problem naming the first bad entries.
fn batch_subjects(engine: &Engine, codes: &[String]) -> Result<Vec<Subject>, GatewayError> {
    if codes.is_empty() || codes.len() > MAX_BATCH {
        return Err(GatewayError::BadRequest(format!(
            "credit_codes: list between 1 and {MAX_BATCH} codes (got {})",
            codes.len()
        )));
    }
    let mut subjects = Vec::with_capacity(codes.len());
    let mut seen = std::collections::HashSet::new();
    let mut bad = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        match subject(engine, code) {
            Ok(subject) => {
                if seen.insert(subject.hash.clone()) {
                    subjects.push(subject);
                }
            }
            Err(e) => bad.push(format!("credit_codes[{i}]: {e}")),
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(5);
        let more = if n > 5 { format!(" (and {} more)", n - 5) } else { String::new() };
        return Err(GatewayError::BadRequest(format!("{}{more}; nothing was graded", bad.join("; "))));
    }
    Ok(subjects)
}

/// Grades a batch for `caller`: every code validated first (one bad code
/// refuses the batch, nothing graded); one permit per subject from
/// [`Engine::authorize_batch`] (the batch's quota all or nothing), each
/// grade recorded before its line is sent; at most `concurrency` grades at
/// once. Lines of subjects with a fired warning come first, as they are
/// ready, with progress lines while the others are held; the others
/// follow, then the summary.
pub async fn batch(
    engine: Arc<Engine>,
    caller: Caller,
    header_purpose: Option<String>,
    request: BatchRequest,
) -> Result<futures::stream::BoxStream<'static, BatchItem>, GatewayError> {
    let purpose = request.purpose.clone().or(header_purpose);
    let batch_intent = |template: Option<&Template>, n: usize| {
        let recorded = RecordedQuery::Lookup(json!({
            "grade_batch": {
                "template": template.map(|t| t.template.id.clone()),
                "version": template.map(|t| t.template.version.clone()),
                "subjects": n,
            }
        }));
        Intent::new(Operation::Grade { person: false, consent: false }, purpose.clone(), recorded)
    };
    let template = match template(&engine) {
        Ok(template) => template,
        Err(error) => return Err(engine.refuse(caller, batch_intent(None, 0), error).await),
    };
    let codes = match &request.district {
        None => request.credit_codes.clone(),
        Some(_) if !request.credit_codes.is_empty() => {
            let error = GatewayError::BadRequest("give credit_codes or a district, not both".to_string());
            return Err(engine.refuse(caller, batch_intent(Some(&template), 0), error).await);
        }
        Some(district) => match district_codes(&engine, caller.clone(), purpose.clone(), district).await {
            Ok(codes) => codes,
            Err(error) => return Err(error),
        },
    };
    let subjects = match batch_subjects(&engine, &codes) {
        Ok(subjects) => subjects,
        Err(error) => {
            return Err(engine.refuse(caller, batch_intent(Some(&template), codes.len()), error).await);
        }
    };
    let items: Vec<Intent> = subjects.iter().map(|s| intent(&template, s, purpose.clone(), None)).collect();
    let total = subjects.len();
    let permits = engine
        .authorize_batch(caller, batch_intent(Some(&template), total).naming(template_datasets(&template)), items)
        .await?;
    let concurrency = engine
        .config()
        .grading
        .as_ref()
        .map_or(creditgate_engine::config::DEFAULT_BATCH_CONCURRENCY, |g| g.batch_concurrency);
    let (sender, receiver) = tokio::sync::mpsc::channel::<BatchItem>(concurrency * 2);
    let template_name = format!("{}@{}", template.template.id, template.template.version);
    let work = subjects.into_iter().zip(permits).map(move |(subject, permit)| {
        let (engine, template) = (Arc::clone(&engine), Arc::clone(&template));
        async move {
            let code = subject.reference.id().to_string();
            let permit = match permit {
                Ok(permit) => permit,
                Err(error) => return (false, refused_line(&code, &error), Tally::Refused),
            };
            match compute(&engine, &permit, &template, &subject, None).await {
                Ok((document, disclosure)) => match permit.allow(disclosure).await {
                    Ok(_) => {
                        let warned = document["warnings"].as_array().is_some_and(|w| !w.is_empty());
                        let tally =
                            if document["complete"] == json!(true) { Tally::Complete } else { Tally::Incomplete };
                        (warned, document, tally)
                    }
                    Err(error) => (false, refused_line(&code, &error), Tally::Refused),
                },
                Err(error) => {
                    let error = permit.refuse(error).await;
                    (false, refused_line(&code, &error), Tally::Refused)
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut running = futures::stream::iter(work).buffer_unordered(concurrency);
        let mut held = Vec::new();
        let every = (total / 100).max(1);
        let (mut complete, mut incomplete, mut refused, mut warned) = (0usize, 0usize, 0usize, 0usize);
        while let Some((warning, line, tally)) = running.next().await {
            match tally {
                Tally::Complete => complete += 1,
                Tally::Incomplete => incomplete += 1,
                Tally::Refused => refused += 1,
            }
            if warning {
                warned += 1;
                if sender.send(BatchItem::Line(line)).await.is_err() {
                    return;
                }
            } else {
                held.push(line);
            }
            let done = complete + incomplete + refused;
            if done % every == 0 && done < total {
                let progress = json!({"progress": {"done": done, "total": total}});
                if sender.send(BatchItem::Progress(progress)).await.is_err() {
                    return;
                }
            }
        }
        for line in held {
            if sender.send(BatchItem::Line(line)).await.is_err() {
                return;
            }
        }
        let summary = json!({"summary": {
            "total": total,
            "done": complete + incomplete + refused,
            "complete": complete,
            "incomplete": incomplete,
            "refused": refused,
            "with_warnings": warned,
            "template": template_name,
            "official": false,
        }});
        let _ = sender.send(BatchItem::Summary(summary)).await;
    });
    let stream =
        futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        );
    Ok(stream.boxed())
}

/// How one subject of a batch ended.
#[derive(Debug, Clone, Copy)]
enum Tally {
    Complete,
    Incomplete,
    Refused,
}

/// The credit codes of the enterprises registered in `district`, read as
/// a query under the caller's policy from the register `[grading.registry]`
/// names (its own permit and record; the caller must be granted that
/// dataset): at most [`MAX_BATCH`].
async fn district_codes(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    district: &str,
) -> Result<Vec<String>, GatewayError> {
    let recorded = RecordedQuery::Lookup(json!({"grade_batch_selection": {"district": district}}));
    let registry = engine.config().grading.as_ref().and_then(|g| g.registry.clone());
    let Some(registry) = registry else {
        let intent = Intent::new(Operation::Query, purpose, recorded);
        let error = GatewayError::BadRequest(
            "district: this gateway has no register of enterprises for district batches ([grading.registry]); \
             list the credit codes instead"
                .to_string(),
        );
        return Err(engine.refuse(caller, intent, error).await);
    };
    let intent = Intent::new(Operation::Query, purpose, recorded).naming(vec![registry.dataset.clone()]);
    if district.len() != 6 || !district.chars().all(|c| c.is_ascii_digit()) {
        let error = GatewayError::BadRequest(format!(
            "district: a 6-digit division code such as 370202, not `{}`",
            district.chars().take(20).collect::<String>()
        ));
        return Err(engine.refuse(caller, intent, error).await);
    }
    let permit = engine.authorize(caller, intent).await?;
    // Digits only (checked above): the literal needs no escaping.
    let (dataset, code, column) = (&registry.dataset, &registry.credit_code, &registry.district);
    let sql =
        format!("SELECT {code} FROM {dataset} WHERE {column} = '{district}' ORDER BY {code} LIMIT {}", MAX_BATCH + 1);
    let read = engine.collect_parts(&permit, &[("district".to_string(), sql)]).await;
    let (results, disclosure) = match read {
        Ok(read) => read,
        Err(error) => return Err(permit.refuse(error).await),
    };
    let mut codes = Vec::new();
    for batch in results.iter().flat_map(|(_, batches)| batches) {
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| GatewayError::internal(format!("district codes: {e}")))?;
        if let Some(strings) = column.as_any().downcast_ref::<arrow::array::StringArray>() {
            codes.extend(strings.iter().flatten().map(str::to_string));
        }
    }
    if codes.len() > MAX_BATCH {
        let error = GatewayError::BadRequest(format!(
            "district: more than {MAX_BATCH} enterprises are registered in {district}; list their codes in batches"
        ));
        return Err(permit.refuse(error).await);
    }
    if codes.is_empty() {
        let error = GatewayError::NotFound(format!("district: no enterprise you may see is registered in {district}"));
        return Err(permit.refuse(error).await);
    }
    permit.allow(disclosure).await?;
    Ok(codes)
}

fn refused_line(code: &str, error: &GatewayError) -> Value {
    let c = error.code();
    json!({"subject": {"type": "credit_code", "id": code}, "error": {"code": c.code, "message": error.client_message()}})
}

/// Records a request for human review of grade `grade_id` (PIPL §24) made
/// by the caller that received it: the grade must be one of the caller's,
/// of this subject (found in the audit log); the record names the grade
/// and carries the reason (identifiers in it redacted) for the privacy
/// officer. Nothing else is released.
pub async fn review(
    engine: &Engine,
    caller: Caller,
    header_purpose: Option<String>,
    grade_id: &str,
    request: ReviewRequest,
) -> Result<Value, GatewayError> {
    let purpose = request.purpose.clone().or(header_purpose);
    let id_ok =
        grade_id.len() <= 40 && !grade_id.is_empty() && grade_id.chars().all(|c| c.is_ascii_hexdigit() || c == '.');
    let recorded_id = if id_ok { Some(grade_id.to_string()) } else { None };
    let parsed = subject(engine, &request.credit_code);
    let hash = parsed.as_ref().ok().map(|s| s.hash.clone());
    let reason: String = engine.auditor().redact_text(request.reason.trim());
    let recorded = RecordedQuery::Lookup(json!({
        "grade_review": {"grade_request_id": recorded_id, "reason": reason.chars().take(MAX_REVIEW_REASON_CHARS).collect::<String>()},
        "subject": {"type": "credit_code", "hash": hash},
    }));
    let mut intent = Intent::new(Operation::GradeReview, purpose, recorded);
    if let Some(hash) = &hash {
        intent = intent.with_subjects(vec![hash.clone()]);
    }
    let problem = match (&parsed, id_ok) {
        (Err(e), _) => Some(format!("credit_code: {e}")),
        (_, false) => Some("the grade id is the request_id of a grade (hexadecimal)".to_string()),
        _ if request.reason.trim().is_empty() => Some("reason: say why the grade should be reviewed".to_string()),
        _ if request.reason.chars().count() > MAX_REVIEW_REASON_CHARS => {
            Some(format!("reason: at most {MAX_REVIEW_REASON_CHARS} characters"))
        }
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(engine.refuse(caller, intent, GatewayError::BadRequest(problem)).await);
    }
    let permit = engine.authorize(caller, intent).await?;
    let found =
        find_grade(engine, permit.principal().name.as_str(), hash.as_deref().unwrap_or_default(), grade_id).await;
    match found {
        Ok(true) => {
            let seq = permit.allow(Disclosure::default()).await?;
            Ok(json!({
                "grade_request_id": grade_id,
                "status": "recorded",
                "audit_seq": seq,
                "note": "The request for human review is recorded in the audit log; the privacy officer sees it \
                         with the grade it concerns.",
            }))
        }
        Ok(false) => Err(permit
            .refuse(GatewayError::NotFound(format!("no grade {grade_id} of this subject was computed for this caller")))
            .await),
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// Whether the audit log holds an allowed grade with request id `grade_id`
/// of subject `hash` made by `caller`.
async fn find_grade(engine: &Engine, caller: &str, hash: &str, grade_id: &str) -> Result<bool, GatewayError> {
    let log = Arc::clone(engine.auditor().log());
    let query = creditgate_audit::AuditQuery {
        caller: Some(caller.to_string()),
        subject_hash: Some(hash.to_string()),
        outcome: Some(creditgate_audit::Outcome::Allowed),
        limit: 1000,
        ..Default::default()
    };
    let grade_id = grade_id.to_string();
    tokio::task::spawn_blocking(move || {
        let mut query = query;
        loop {
            let page = log.search(&query).map_err(|e| GatewayError::internal(format!("audit search: {e}")))?;
            let found = page.items.iter().any(|r| {
                r.request_id == grade_id && matches!(&r.query, RecordedQuery::Lookup(v) if v.get("grade").is_some())
            });
            if found {
                return Ok(true);
            }
            if page.items.is_empty() || query.offset + page.items.len() >= page.total {
                return Ok(false);
            }
            query.offset += page.items.len();
        }
    })
    .await
    .map_err(|e| GatewayError::internal(format!("audit search stopped: {e}")))?
}
