//! The public disclosure window: server TLS only, no client certificate, the
//! policy's `public` principal. `GET /public/v1/enterprises/{credit-code}`
//! returns the sections the gateway's `[public]` configuration lists (for
//! the demo: registration, public penalties, red and black list status), each
//! read through the public role's secure views.

use creditgate_audit::{RecordedQuery, SubjectKey};
use creditgate_engine::config::SectionShape;
use creditgate_engine::encode::batches_to_json;
use creditgate_engine::{Caller, Engine, GatewayError, Intent};
use creditgate_ident::CreditCode;
use creditgate_policy::Operation;

/// Path prefix of the enterprise disclosure endpoint.
pub const ENTERPRISE_PATH: &str = "/public/v1/enterprises/";

/// An enterprise's disclosure page as JSON, for the public `caller`. `raw`
/// is the credit code from the path (decoded); it is validated before
/// anything else, and nothing is sent to any source for a bad one.
pub async fn enterprise(engine: &Engine, caller: Caller, raw: &str) -> Result<serde_json::Value, GatewayError> {
    // The public listener's purpose is its own: disclosure.
    let purpose = caller.principal().purposes.first().cloned();
    let code = match CreditCode::parse(raw) {
        Ok(code) => code,
        Err(e) => {
            let what = RecordedQuery::Request(format!("GET {ENTERPRISE_PATH}{}", engine.auditor().redact_text(raw)));
            let intent = Intent::new(Operation::Disclosure, purpose, what);
            return Err(engine.refuse(caller, intent, GatewayError::BadRequest(format!("credit_code: {e}"))).await);
        }
    };
    let code = code.as_str();
    let hash = engine.auditor().hasher().hash(&SubjectKey::CreditCode(code.to_string()));
    let sections = &engine.config().public.sections;
    let what = RecordedQuery::Lookup(serde_json::json!({
        "endpoint": "public enterprise disclosure",
        "subject": {"type": "credit_code", "hash": hash},
    }));
    let intent = Intent::new(Operation::Disclosure, purpose, what)
        .with_subjects(vec![hash])
        .naming(sections.iter().map(|s| s.dataset.clone()).collect());
    let permit = engine.authorize(caller, intent).await?;
    if sections.is_empty() {
        let error = GatewayError::NotFound("this gateway's public window discloses nothing".to_string());
        return Err(permit.refuse(error).await);
    }
    let parts: Vec<(String, String)> = sections.iter().map(|s| (s.name.clone(), s.sql(code))).collect();
    let page = async {
        let (results, disclosure) = engine.collect_parts(&permit, &parts).await?;
        let mut body = serde_json::Map::new();
        body.insert("credit_code".into(), code.into());
        for ((name, batches), section) in results.iter().zip(sections) {
            let rows = batches_to_json(batches)?;
            match section.shape {
                SectionShape::Record => match rows.into_iter().next() {
                    Some(first) => {
                        body.insert(name.clone(), first);
                    }
                    None if body.len() == 1 => {
                        // The first section is the registration.
                        return Err(GatewayError::NotFound(format!(
                            "no enterprise is registered with credit code {code}"
                        )));
                    }
                    None => {
                        body.insert(name.clone(), serde_json::Value::Null);
                    }
                },
                SectionShape::Records => {
                    body.insert(name.clone(), rows.into());
                }
                SectionShape::Membership => {
                    body.insert(format!("on_{name}"), (!rows.is_empty()).into());
                    body.insert(name.clone(), rows.into());
                }
            }
        }
        Ok((serde_json::Value::Object(body), disclosure))
    };
    match page.await {
        Ok((body, disclosure)) => {
            permit.allow(disclosure).await?;
            Ok(body)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}
