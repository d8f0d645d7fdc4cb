//! Consent operations: revoking a consent, and reading its state.
//!
//! Both take a permit (operation `consent_revoke` / `consent_status`) and
//! leave exactly one audit record. A consent's state — its use count and the
//! times it was used, i.e. when a person's credit was checked and by whom —
//! is the business of the consent's grantee, its issuer and the agency
//! overseeing consents about its kind of subject; anyone else gets the same
//! 404 as for an unknown or malformed id.

use creditgate_audit::RecordedQuery;
use creditgate_consent::ConsentArtefact;
use creditgate_engine::{Caller, Disclosure, Engine, GatewayError, Intent, Permit};
use creditgate_ident::SubjectKind;
use creditgate_policy::Operation;

use crate::lookup::consent_error;

/// How a consent id is recorded: itself when well-formed, else a marker (a
/// malformed id may be anything the caller typed).
fn recorded_id(consent_id: &str) -> &str {
    if creditgate_consent::is_consent_id(consent_id) { consent_id } else { "<malformed id>" }
}

/// Revokes a consent: allowed for its issuer and for an agency overseeing
/// consents about its kind of subject (see `revoke_inner`). `presented` is
/// the signed consent artefact, which an oversight agency may present to
/// revoke a consent this gateway has not seen used.
pub async fn revoke(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    consent_id: &str,
    presented: Option<&serde_json::Value>,
) -> Result<serde_json::Value, GatewayError> {
    let recorded = RecordedQuery::Lookup(serde_json::json!({
        "consent_revoke": recorded_id(consent_id), "artefact_presented": presented.is_some(),
    }));
    let intent = Intent::new(Operation::ConsentRevoke, purpose, recorded);
    if !creditgate_consent::is_consent_id(consent_id) {
        let error = GatewayError::BadRequest("consent_id: must be 1-128 characters from A-Z a-z 0-9 . _ -".into());
        return Err(engine.refuse(caller, intent, error).await);
    }
    let permit = engine.authorize(caller, intent).await?;
    match revoke_inner(engine, &permit, consent_id, presented).await {
        Ok(document) => {
            let basis = Some(format!("consent:{consent_id}"));
            permit.allow(Disclosure { legal_basis: basis, ..Disclosure::default() }).await?;
            Ok(document)
        }
        Err(error) => Err(permit.refuse(error).await),
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
async fn revoke_inner(
    engine: &Engine,
    permit: &Permit,
    consent_id: &str,
    presented: Option<&serde_json::Value>,
) -> Result<serde_json::Value, GatewayError> {
    let caller = permit.caller();
    let consents = engine.consents().ok_or_else(|| GatewayError::NotFound("consents are not configured".into()))?;
    let org = caller.identity().and_then(|i| i.org_id.clone()).unwrap_or_default();
    let known = consents.store.statuses(consent_id).await.map_err(book_error)?;

    // 1. The issuer, for its own consent.
    if let Some(issuer) = consents.issuers.issuer_ids().find(|id| *id == org) {
        let newly = consents.store.revoke(Some(issuer), consent_id, caller.name(), None).await.map_err(book_error)?;
        tracing::info!(consent.id = %consent_id, consent.issuer = %issuer, client.name = %caller.name(), "consent revoked by its issuer");
        return Ok(serde_json::json!({
            "consent_id": consent_id, "issuer": issuer, "revoked": true, "newly_revoked": newly, "revoked_as": "issuer",
        }));
    }

    // 2. An agency overseeing consents about this kind of subject.
    let policy = engine.policy();
    let oversight = policy.consent_oversight(caller.principal());
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
            _ => format!("one of the trusted issuers {}", consents.issuers.issuer_ids().collect::<Vec<_>>().join(", ")),
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
                if creditgate_consent::is_consent_id(&artefact.consent_id) {
                    artefact.consent_id.as_str()
                } else {
                    "<malformed id>"
                }
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
        let newly =
            consents.store.revoke(Some(&artefact.issuer), consent_id, caller.name(), None).await.map_err(book_error)?;
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
    let newly =
        consents.store.revoke(target.issuer.as_deref(), consent_id, caller.name(), None).await.map_err(book_error)?;
    tracing::info!(consent.id = %consent_id, client.name = %caller.name(), "consent revoked by an oversight agency");
    Ok(serde_json::json!({
        "consent_id": consent_id, "issuer": target.issuer, "revoked": true, "newly_revoked": newly,
        "revoked_as": "oversight",
    }))
}

/// Use count and revocation state of a consent, for its grantee, its issuer
/// and the agency overseeing consents about its kind of subject. For anyone
/// else, and for an unknown or malformed id, the same 404. Every read is
/// audited.
pub async fn status(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    consent_id: &str,
) -> Result<serde_json::Value, GatewayError> {
    let recorded = RecordedQuery::Lookup(serde_json::json!({"consent_status": recorded_id(consent_id)}));
    let intent = Intent::new(Operation::ConsentStatus, purpose, recorded);
    let permit = engine.authorize(caller, intent).await?;
    match status_inner(engine, &permit, consent_id).await {
        Ok(document) => {
            permit.allow(Disclosure::default()).await?;
            Ok(document)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// The one answer for a consent the caller may not see, or that does not exist.
/// The gateway error for a failed consent-book operation: the consent's
/// refusal, a bad argument, a retryable refusal when the shared state is
/// unreachable, else an internal failure.
pub(crate) fn book_error(e: creditgate_engine::state::ConsentBookError) -> GatewayError {
    use creditgate_engine::state::ConsentBookError;
    match e {
        ConsentBookError::State(state) => creditgate_engine::state::state_error("consents", &state),
        ConsentBookError::Consent(e) => match (e.refusal(), &e) {
            (Some(refusal), _) => consent_error(refusal.clone()),
            (None, creditgate_consent::ConsentError::InvalidInput { field, reason }) => {
                GatewayError::BadRequest(format!("{field}: {reason}"))
            }
            (None, _) => GatewayError::internal(format!("consent store: {e}")),
        },
    }
}

fn not_visible() -> GatewayError {
    GatewayError::NotFound(
        "no consent with this id is visible to you (only its grantee, its issuer and its oversight agency see it)"
            .to_string(),
    )
}

async fn status_inner(engine: &Engine, permit: &Permit, consent_id: &str) -> Result<serde_json::Value, GatewayError> {
    let Some(consents) = engine.consents() else { return Err(not_visible()) };
    if !creditgate_consent::is_consent_id(consent_id) {
        return Err(not_visible());
    }
    let org = permit.caller().identity().and_then(|i| i.org_id.clone()).unwrap_or_default();
    let policy = engine.policy();
    let oversight = policy.consent_oversight(permit.principal());
    let visible = |status: &creditgate_consent::ConsentStatus| {
        let grantee = !org.is_empty() && status.grantee.as_deref() == Some(org.as_str());
        let issuer = !org.is_empty() && status.issuer.as_deref() == Some(org.as_str());
        let overseer = match status.subject_type {
            Some(kind) => oversight.contains(&kind),
            None => [SubjectKind::CreditCode, SubjectKind::ResidentId].iter().all(|k| oversight.contains(k)),
        };
        grantee || issuer || overseer
    };
    let shown: Vec<creditgate_consent::ConsentStatus> =
        consents.store.statuses(consent_id).await.map_err(book_error)?.into_iter().filter(visible).collect();
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
    Ok(match shown.as_slice() {
        [] => return Err(not_visible()),
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
