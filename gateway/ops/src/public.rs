//! The public disclosure window: server TLS only, no client certificate, the
//! policy's `public` principal.
//!
//! - [`enterprise`]: `GET /public/v1/enterprises/{credit-code}`, the
//!   sections the gateway's `[public]` configuration lists, each read through
//!   the public role's secure views; records of a section with a
//!   publication rule are those in their period today (filtered at the
//!   source), each carrying `shown_until` and `publication_rule`;
//! - [`search`]: `GET /public/v1/search?q=`, a credit code or a prefix of
//!   the registered name over the first section, paginated;
//! - [`enterprise_csv`], [`search_csv`]: the same answers as CSV.
//!
//! Every request is authorized and audited as a disclosure, subjects as
//! keyed hashes (the search records the subjects it returned).

use creditgate_audit::{RecordedQuery, SubjectKey};
use creditgate_engine::config::{
    DisclosureSection, MAX_SEARCH_PAGE_SIZE, MIN_SEARCH_PREFIX_CHARS, SearchConfig, SectionShape,
};
use creditgate_engine::encode::batches_to_json;
use creditgate_engine::{Caller, Engine, GatewayError, Intent};
use creditgate_ident::CreditCode;
use creditgate_policy::Operation;
use serde_json::{Map, Value};

/// Path prefix of the enterprise disclosure endpoint.
pub const ENTERPRISE_PATH: &str = "/public/v1/enterprises/";
/// Path of the search endpoint.
pub const SEARCH_PATH: &str = "/public/v1/search";
/// Longest accepted name prefix, in characters.
pub const MAX_SEARCH_PREFIX_CHARS: usize = 50;
/// Highest page number of a search (deeper pages: refine the prefix).
pub const MAX_SEARCH_PAGE: u32 = 100;
/// Field of a shown record: the last day it is shown.
pub const SHOWN_UNTIL: &str = "shown_until";
/// Field of a shown record: the publication rule that decided it.
pub const PUBLICATION_RULE: &str = "publication_rule";

/// An enterprise's disclosure page as JSON, for the public `caller`. `raw`
/// is the credit code from the path (decoded); it is validated before
/// anything else, and nothing is sent to any source for a bad one.
///
/// The answer holds `credit_code`, one member per section (a record, or a
/// list of records; `on_<name>` for a membership), and `sections`: each
/// section's name, headings, shape, columns and publication rule, in page
/// order, so that a reader can show sections it does not know in advance.
pub async fn enterprise(engine: &Engine, caller: Caller, raw: &str) -> Result<Value, GatewayError> {
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
    let today = creditgate_engine::today();
    let page = async {
        let (results, disclosure) = engine.collect_parts(&permit, &parts).await?;
        let mut body = Map::new();
        body.insert("credit_code".into(), code.into());
        for (index, ((name, batches), section)) in results.iter().zip(sections).enumerate() {
            let rows = shown_records(section, batches_to_json(batches)?, today);
            match section.shape {
                SectionShape::Record => match rows.into_iter().next() {
                    Some(first) => {
                        body.insert(name.clone(), first);
                    }
                    None if index == 0 => {
                        // The first section is the registration.
                        return Err(GatewayError::NotFound(format!(
                            "no enterprise is registered with credit code {code}"
                        )));
                    }
                    None => {
                        body.insert(name.clone(), Value::Null);
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
        body.insert("sections".into(), sections.iter().map(section_description).collect::<Vec<_>>().into());
        body.insert("as_of".into(), today.to_string().into());
        Ok((Value::Object(body), disclosure))
    };
    match page.await {
        Ok((body, disclosure)) => {
            permit.allow(disclosure).await?;
            Ok(body)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// How the page describes a section: name, headings, shape, the columns
/// shown and the publication rule.
fn section_description(section: &DisclosureSection) -> Value {
    let heading = section.heading();
    let rule = section.publication.as_ref().map(|r| match r {
        creditgate_engine::publication::PublicationRule::SamrOrder45(_) => "samr_order_45",
        creditgate_engine::publication::PublicationRule::ListPeriods(_) => "list_periods",
    });
    serde_json::json!({
        "name": section.name,
        "title": {"zh": heading.zh, "en": heading.en},
        "shape": section.shape,
        "columns": section.columns,
        "publication": rule,
    })
}

/// The records of `section` shown today: with a publication rule, each
/// carries its last day and rule, and only the shown columns are kept (the
/// rule may read more). The source already filtered by the same rule; a
/// record it let through that the rule does not show is dropped and logged.
fn shown_records(section: &DisclosureSection, rows: Vec<Value>, today: chrono::NaiveDate) -> Vec<Value> {
    let Some(rule) = &section.publication else { return rows };
    let mut shown = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Object(mut record) = row else { continue };
        let Some(decided) = rule.decide(&record, today) else {
            tracing::error!(section = %section.name, "the source returned a record out of its publication period");
            continue;
        };
        if let Some(columns) = &section.columns {
            record.retain(|name, _| columns.iter().any(|c| c == name));
        }
        record.insert(SHOWN_UNTIL.into(), decided.until.to_string().into());
        record.insert(PUBLICATION_RULE.into(), decided.rule.into());
        shown.push(Value::Object(record));
    }
    shown
}

/// What a search asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SearchTerm {
    /// A valid credit code: that enterprise.
    Code(String),
    /// A prefix of the registered name.
    NamePrefix(String),
}

/// Reads `q`: an 18-character code-shaped term must be a valid credit code;
/// anything else is a name prefix of 2 to 50 characters, without control
/// characters.
fn search_term(q: &str) -> Result<SearchTerm, GatewayError> {
    let q = q.trim();
    let code_shaped = q.chars().count() == 18 && q.chars().all(|c| c.is_ascii_alphanumeric());
    if code_shaped {
        return match CreditCode::parse(&q.to_ascii_uppercase()) {
            Ok(code) => Ok(SearchTerm::Code(code.as_str().to_string())),
            Err(e) => Err(GatewayError::BadRequest(format!("q: looks like a credit code, but {e}"))),
        };
    }
    let chars = q.chars().count();
    if chars < MIN_SEARCH_PREFIX_CHARS {
        return Err(GatewayError::BadRequest(format!(
            "q: give a credit code or at least {MIN_SEARCH_PREFIX_CHARS} characters of the registered name"
        )));
    }
    if chars > MAX_SEARCH_PREFIX_CHARS {
        return Err(GatewayError::BadRequest(format!("q: at most {MAX_SEARCH_PREFIX_CHARS} characters")));
    }
    if q.chars().any(char::is_control) {
        return Err(GatewayError::BadRequest("q: control characters are not allowed".to_string()));
    }
    Ok(SearchTerm::NamePrefix(q.to_string()))
}

/// A SQL string literal matching values that start with `prefix` under
/// `LIKE` (with the default backslash escape).
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 3);
    out.push('\'');
    for c in prefix.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push_str("%'");
    out
}

/// One page of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Results per page (0: the configured size).
    pub per_page: u32,
}

impl PageRequest {
    /// Reads `page` and `per_page` query parameters (absent: the first page,
    /// the configured size); a malformed or out-of-range value is refused by name.
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, GatewayError> {
        let number = |name: &str, value: Option<&str>, max: u32| -> Result<u32, GatewayError> {
            match value {
                None => Ok(0),
                Some(text) => match text.parse::<u32>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(GatewayError::BadRequest(format!("{name}: must be a whole number from 1 to {max}"))),
                },
            }
        };
        Ok(Self {
            page: number("page", page, MAX_SEARCH_PAGE)?.max(1),
            per_page: number("per_page", per_page, MAX_SEARCH_PAGE_SIZE)?,
        })
    }
}

/// Searches the first section by credit code or registered-name prefix,
/// for the public `caller`. The answer: `q`, `by` (`credit_code` or
/// `name_prefix`), `page`, `per_page`, `has_more` and `results` (the
/// search's columns only).
pub async fn search(engine: &Engine, caller: Caller, q: &str, page: PageRequest) -> Result<Value, GatewayError> {
    let purpose = caller.principal().purposes.first().cloned();
    let public = &engine.config().public;
    let (Some(search), Some(section)) = (public.search.as_ref(), public.sections.first()) else {
        let what = RecordedQuery::Request(format!("GET {SEARCH_PATH}"));
        let intent = Intent::new(Operation::Disclosure, purpose, what);
        let error = GatewayError::NotFound("this gateway's public window has no search".to_string());
        return Err(engine.refuse(caller, intent, error).await);
    };
    let term = match search_term(q) {
        Ok(term) => term,
        Err(error) => {
            let what = RecordedQuery::Request(format!("GET {SEARCH_PATH}"));
            let intent = Intent::new(Operation::Disclosure, purpose, what);
            return Err(engine.refuse(caller, intent, error).await);
        }
    };
    let hasher = engine.auditor().hasher();
    let (by, subjects, predicate) = match &term {
        SearchTerm::Code(code) => {
            let hash = hasher.hash(&SubjectKey::CreditCode(code.clone()));
            ("credit_code", vec![hash], format!("{} = '{code}'", section.key))
        }
        SearchTerm::NamePrefix(prefix) => {
            ("name_prefix", Vec::new(), format!("{} LIKE {}", search.name, like_prefix(prefix)))
        }
    };
    // The name prefix is not recorded (it may be a person's name): only its length.
    let recorded = match &term {
        SearchTerm::Code(_) => {
            serde_json::json!({"endpoint": "public search", "by": by, "subject": {"type": "credit_code", "hash": subjects[0]}})
        }
        SearchTerm::NamePrefix(prefix) => {
            serde_json::json!({"endpoint": "public search", "by": by, "prefix_chars": prefix.chars().count()})
        }
    };
    let intent = Intent::new(Operation::Disclosure, purpose, RecordedQuery::Lookup(recorded))
        .with_subjects(subjects)
        .naming(vec![section.dataset.clone()]);
    let permit = engine.authorize(caller, intent).await?;
    let per_page = if page.per_page == 0 { search.page_size } else { page.per_page };
    let sql = search_sql(section, search, &predicate, page.page, per_page);
    let answer = async {
        let (mut results, mut disclosure) = engine.collect_parts(&permit, &[("search".to_string(), sql)]).await?;
        let batches = results.pop().map(|(_, b)| b).unwrap_or_default();
        let mut rows = batches_to_json(&batches)?;
        let has_more = rows.len() > per_page as usize;
        rows.truncate(per_page as usize);
        disclosure.rows = Some(rows.len() as u64);
        disclosure.subjects = rows
            .iter()
            .filter_map(|r| r.get(&section.key).and_then(Value::as_str))
            .filter(|code| matches!(&term, SearchTerm::NamePrefix(_)) && CreditCode::parse(code).is_ok())
            .map(|code| hasher.hash(&SubjectKey::CreditCode(code.to_string())))
            .collect();
        let body = serde_json::json!({
            "q": q.trim(),
            "by": by,
            "page": page.page,
            "per_page": per_page,
            "has_more": has_more,
            "results": rows,
        });
        Ok::<_, GatewayError>((body, disclosure))
    };
    match answer.await {
        Ok((body, disclosure)) => {
            permit.allow(disclosure).await?;
            Ok(body)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// One page of the search (one row more than the page, to tell whether there are more).
fn search_sql(section: &DisclosureSection, search: &SearchConfig, predicate: &str, page: u32, per_page: u32) -> String {
    let columns = search.result_columns(&section.key).join(", ");
    let offset = u64::from(page.saturating_sub(1)) * u64::from(per_page);
    format!(
        "SELECT {columns} FROM {} WHERE {predicate} ORDER BY {}, {} LIMIT {} OFFSET {offset}",
        section.dataset,
        search.name,
        section.key,
        per_page + 1
    )
}

use creditgate_engine::encode::csv_text as csv_field;

/// A cell: text defused against spreadsheet formulas, numbers and booleans as they are.
fn csv_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        other => csv_field(&other.to_string()),
    }
}

/// An enterprise page (the answer of [`enterprise`]) as CSV, one line per
/// field: `section,record,field,value` (`record` numbers the records of a
/// list from 1; a single record is 1).
pub fn enterprise_csv(page: &Value) -> String {
    let mut out = String::from("section,record,field,value\r\n");
    let sections = page["sections"].as_array().cloned().unwrap_or_default();
    for section in &sections {
        let Some(name) = section["name"].as_str() else { continue };
        let records: Vec<&Value> = match &page[name] {
            Value::Array(rows) => rows.iter().collect(),
            Value::Object(_) => vec![&page[name]],
            _ => Vec::new(),
        };
        for (n, record) in records.iter().enumerate() {
            for (field, value) in record.as_object().into_iter().flatten() {
                out.push_str(&format!("{},{},{},{}\r\n", csv_field(name), n + 1, csv_field(field), csv_value(value)));
            }
        }
    }
    out
}

/// A search answer (of [`search`]) as CSV: a header of the result columns, one line per result.
pub fn search_csv(answer: &Value) -> String {
    let rows = answer["results"].as_array().cloned().unwrap_or_default();
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let mut out = columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    for row in &rows {
        let line: Vec<String> = columns.iter().map(|c| csv_value(&row[c.as_str()])).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms() {
        assert_eq!(search_term(" 91350100M000100Y43 ").ok(), Some(SearchTerm::Code("91350100M000100Y43".into())));
        assert_eq!(search_term("91350100m000100y43").ok(), Some(SearchTerm::Code("91350100M000100Y43".into())));
        let bad = search_term("91350100M000100Y44").expect_err("check character");
        assert!(bad.to_string().contains("q: looks like a credit code"), "{bad}");
        assert!(search_term("青").is_err(), "one character is too short");
        assert_eq!(search_term("青岛").ok(), Some(SearchTerm::NamePrefix("青岛".into())));
        assert!(search_term(&"青".repeat(51)).is_err());
        assert!(search_term("青岛\u{0}").is_err());
    }

    #[test]
    fn like_prefixes_escape_wildcards_and_quotes() {
        assert_eq!(like_prefix("青岛"), "'青岛%'");
        assert_eq!(like_prefix("a%b_c\\d'e"), "'a\\%b\\_c\\\\d''e%'");
    }

    #[test]
    fn pages() {
        assert_eq!(PageRequest::parse(None, None).ok(), Some(PageRequest { page: 1, per_page: 0 }));
        assert_eq!(PageRequest::parse(Some("3"), Some("10")).ok(), Some(PageRequest { page: 3, per_page: 10 }));
        assert!(PageRequest::parse(Some("0"), None).is_err());
        assert!(PageRequest::parse(None, Some("51")).is_err());
        assert!(PageRequest::parse(Some("x"), None).is_err());
    }

    #[test]
    fn csv_of_a_page_and_a_search() {
        let page = serde_json::json!({
            "credit_code": "91350100M000100Y43",
            "enterprise": {"name": "澜屿, \"优选\""},
            "penalties": [{"id": "1", "amount": 5.0}, {"id": "2", "amount": null}],
            "sections": [{"name": "enterprise"}, {"name": "penalties"}],
        });
        let csv = enterprise_csv(&page);
        assert!(csv.starts_with("section,record,field,value\r\n"));
        assert!(csv.contains("enterprise,1,name,\"澜屿, \"\"优选\"\"\"\r\n"), "{csv}");
        assert!(csv.contains("penalties,2,amount,\r\n"), "{csv}");
        let answer = serde_json::json!({"results": [{"code": "A", "name": "x"}, {"code": "B", "name": "y,z"}]});
        assert_eq!(search_csv(&answer), "code,name\r\nA,x\r\nB,\"y,z\"\r\n");
    }
}
