//! Masked values are for reading, not for relating: the two
//! re-identification paths of issue 14 (complainants' masked mobiles and
//! names matched against the masked mobiles of legal representatives, whose
//! names market regulation sees; individual debtors linked to enterprises on
//! masked resident IDs) work on the old demo masks with the rule switched
//! off, are refused with it on, and with the new demo masks are refused or
//! no better than chance; every relating construct is refused on a masked column over Flight SQL
//! and HTTP, and allowed on a keyed-hash and on an unmasked column (negative
//! controls); reading a masked column (select, literal comparison, sort,
//! count) stays allowed.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, RecordBatch, StringArray};
use creditgate_engine::PURPOSE_HEADER;
use creditgate_tests::{HttpConn, OLD_MASKS_POLICY, reference_session, start_lab, start_lab_with};
use creditgate_tooling::client::flight_error_text;
use creditgate_tooling::demo::{DEMO_POLICY, Lab};

/// The red team's join: a complainant's masked mobile and the first
/// character of the masked name against a legal representative's masked
/// mobile and raw name.
const ATTACK: &str = "\
    SELECT c.complaint_id, e.legal_rep_name \
    FROM complaints.complaints c \
    JOIN market.enterprises e \
      ON c.complainant_mobile = e.phone \
     AND substr(c.complainant_name, 1, 1) = substr(e.legal_rep_name, 1, 1)";

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = arrow::compute::cast(batch.column(column), &arrow::datatypes::DataType::Utf8).expect("cast");
        let array = array.as_any().downcast_ref::<StringArray>().expect("strings");
        out.extend((0..array.len()).map(|i| if array.is_null(i) { String::new() } else { array.value(i).to_string() }));
    }
    out
}

/// The second path: the credit agency links individual dishonest debtors to
/// the enterprises they represent, without consent, on masked resident IDs.
const DEBTOR_LINK: &str = "\
    SELECT d.case_no, e.credit_code \
    FROM court.dishonest_debtors d \
    JOIN market.enterprises e ON d.resident_id = e.legal_rep_id \
    WHERE d.subject_type = 'individual'";

async fn agency_query(lab: &Lab, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let mut client = lab.flight_client("credit_agency").expect("client");
    client.set_header(PURPOSE_HEADER, "credit_report");
    client.query(sql).await.map_err(|e| flight_error_text(&e))
}

async fn samr_query(lab: &Lab, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let mut client = lab.flight_client("samr").expect("client");
    client.set_header(PURPOSE_HEADER, "supervision");
    client.query(sql).await.map_err(|e| flight_error_text(&e))
}

async fn http_query(conn: &mut HttpConn, sql: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let reply = conn.request("POST", "/v1/query", &[("accept", "application/json")], Some(body)).await.expect("HTTP");
    (reply.status, reply.json())
}

/// The policy with `[masking] relate_masked_values = true` (the enforcement off).
fn relaxed(policy: &str) -> String {
    format!("{policy}\n[masking]\nrelate_masked_values = true\n")
}

fn use_policy(lab: &Lab, policy: &str) {
    std::fs::write(lab.dir.join("policy.toml"), policy).expect("write policy");
    lab.gateway_handle.reload_policy().expect("reload");
}

/// The red team's mobile join without the name condition: every legal
/// representative whose masked phone equals a complainant's masked mobile.
const PREFIX_ONLY: &str = "\
    SELECT c.complaint_id, e.legal_rep_name \
    FROM complaints.complaints c JOIN market.enterprises e ON c.complainant_mobile = e.phone";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_masked_joins_re_identify_on_the_old_masks_and_not_on_the_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(dir.path(), |o| o.policy = Some(OLD_MASKS_POLICY.to_string())).await;
    let reference = reference_session(&lab).await;
    let raw = reference
        .sql("SELECT complaint_id, complainant_name FROM complaints.complaints")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("raw complaints");
    let truth: BTreeMap<String, String> = strings(&raw, 0).into_iter().zip(strings(&raw, 1)).collect();

    // Old masks, the rule on (the default): both joins refused, naming the column and the rule.
    let refused = samr_query(&lab, ATTACK).await.expect_err("the re-identifying join must be refused");
    assert!(refused.contains("CG-POL-002"), "{refused}");
    assert!(refused.contains("complaints.complaints.complainant_mobile"), "{refused}");
    assert!(refused.contains("join"), "{refused}");
    let refused = agency_query(&lab, DEBTOR_LINK).await.expect_err("the debtor link must be refused");
    assert!(refused.contains("CG-POL-002") && refused.contains("court.dishonest_debtors.resident_id"), "{refused}");

    // Old masks, the rule switched off: the joins run, and their answers are
    // right (checked against the raw files): the two paths.
    use_policy(&lab, &relaxed(OLD_MASKS_POLICY));
    let batches = samr_query(&lab, ATTACK).await.expect("with relating allowed the join runs");
    let ids = strings(&batches, 0);
    let names = strings(&batches, 1);
    let identified: BTreeSet<&String> = ids.iter().collect();
    let correct = ids.iter().zip(&names).filter(|(id, name)| truth.get(*id) == Some(*name)).count();
    // The attack is real on this data: many complainants, nearly all named right.
    assert!(identified.len() >= 50, "only {} complainants matched", identified.len());
    assert!(correct * 10 >= ids.len() * 9, "{correct} of {} matches correct", ids.len());
    println!(
        "old masks, relating allowed: {} complainants of {} matched, {correct} of {} rows naming the right person",
        identified.len(),
        truth.len(),
        ids.len()
    );
    let linked = agency_query(&lab, DEBTOR_LINK).await.expect("with relating allowed the link runs");
    let links = linked.iter().map(|b| b.num_rows()).sum::<usize>();
    let raw_links = reference
        .sql(
            "SELECT count(*) FROM court.dishonest_debtors d JOIN market.enterprises e \
             ON d.resident_id = e.legal_rep_id WHERE d.subject_type = 'individual'",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("raw links");
    let raw_links: usize = strings(&raw_links, 0).first().and_then(|n| n.parse().ok()).expect("count");
    // Every true link is found (masked IDs equal when the raw ones do), and
    // nearly every row found is a true one.
    assert!(raw_links > 0 && links >= raw_links, "{links} rows linked, {raw_links} true links");
    assert!(raw_links * 10 >= links * 9, "{links} rows linked, only {raw_links} true links");
    println!("old masks, relating allowed: {links} debtor records linked to enterprises ({raw_links} true links)");

    // The new demo policy, the rule on: the mobile join is refused
    // (mobile_prefix is still a mask that may not relate); the debtor link
    // runs, as the ID is a keyed hash against a withheld (NULL) ID, and links nobody.
    use_policy(&lab, DEMO_POLICY);
    let refused = samr_query(&lab, ATTACK).await.expect_err("refused with the new masks too");
    assert!(
        refused.contains("CG-POL-002") && refused.contains("complaints.complaints.complainant_mobile"),
        "{refused}"
    );
    let linked = agency_query(&lab, DEBTOR_LINK).await.expect("a keyed hash against NULL may be joined");
    assert_eq!(linked.iter().map(|b| b.num_rows()).sum::<usize>(), 0, "no debtor linked to an enterprise");

    // The new demo policy with the rule switched off: the same attacks are
    // no better than chance. The name is hidden (`*` never equals a
    // surname), so the red team's join matches nobody; matched on the
    // carrier prefix alone, every complainant has at least min_k (5)
    // candidates, so a guess among them is right at most 1 time in 5.
    use_policy(&lab, &relaxed(DEMO_POLICY));
    let batches = samr_query(&lab, ATTACK).await.expect("runs with relating allowed");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0, "nobody re-identified");
    let batches = samr_query(&lab, PREFIX_ONLY).await.expect("runs with relating allowed");
    let ids = strings(&batches, 0);
    let names = strings(&batches, 1);
    let mut candidates: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &ids {
        *candidates.entry(id).or_default() += 1;
    }
    let fewest = candidates.values().copied().min().unwrap_or(0);
    let correct = ids.iter().zip(&names).filter(|(id, name)| truth.get(*id) == Some(*name)).count();
    assert!(fewest >= 5, "a complainant with only {fewest} candidates");
    assert!(correct * 5 <= ids.len(), "{correct} of {} candidate rows name the right person", ids.len());
    println!(
        "new masks, relating allowed, prefix only: {} complainants, each with ≥ {fewest} candidates; \
         {correct} of {} candidate rows name the right person ({:.1}%)",
        candidates.len(),
        ids.len(),
        100.0 * correct as f64 / ids.len().max(1) as f64
    );
    let linked = agency_query(&lab, DEBTOR_LINK).await.expect("runs");
    assert_eq!(linked.iter().map(|b| b.num_rows()).sum::<usize>(), 0, "no debtor linked to an enterprise");

    // Switched back on by reload: refused again at the next query.
    use_policy(&lab, DEMO_POLICY);
    assert!(samr_query(&lab, ATTACK).await.expect_err("refused again").contains("CG-POL-002"));
    lab.stop().await.expect("stop");
}

/// A query template with `{c}` for the column under test.
struct Case {
    name: &'static str,
    sql: &'static str,
}

const TABLE: &str = "complaints.complaints";

/// Every relating construct, on `{c}` (and `{t}` for the dataset).
const RELATING: &[Case] = &[
    Case { name: "join key", sql: "SELECT count(*) FROM {t} a JOIN {t} b ON a.{c} = b.{c}" },
    Case { name: "join using", sql: "SELECT count(*) FROM {t} a JOIN {t} b USING ({c})" },
    Case {
        name: "join key under a function",
        sql: "SELECT count(*) FROM {t} a JOIN {t} b ON upper(a.{c}) = upper(b.{c})",
    },
    Case {
        name: "join condition (inequality)",
        sql: "SELECT count(*) FROM {t} a JOIN {t} b ON a.complaint_id = b.complaint_id AND a.{c} <> b.{c}",
    },
    Case { name: "cross join filtered", sql: "SELECT count(*) FROM {t} a, {t} b WHERE a.{c} = b.{c}" },
    Case {
        name: "IN subquery",
        sql: "SELECT count(*) FROM {t} WHERE {c} IN (SELECT {c} FROM {t} WHERE status IS NOT NULL)",
    },
    Case {
        name: "correlated EXISTS",
        sql: "SELECT count(*) FROM {t} a WHERE EXISTS (SELECT 1 FROM {t} b WHERE b.{c} = a.{c} AND b.complaint_id <> a.complaint_id)",
    },
    Case {
        name: "correlated scalar subquery",
        sql: "SELECT (SELECT count(*) FROM {t} b WHERE b.{c} = a.{c}) AS n FROM {t} a LIMIT 5",
    },
    Case { name: "INTERSECT", sql: "SELECT {c} FROM {t} INTERSECT SELECT {c} FROM {t}" },
    Case { name: "EXCEPT", sql: "SELECT {c} FROM {t} EXCEPT SELECT {c} FROM {t} WHERE status = 'x'" },
    Case { name: "UNION (distinct)", sql: "SELECT {c} FROM {t} UNION SELECT {c} FROM {t}" },
    Case { name: "GROUP BY", sql: "SELECT {c}, count(*) FROM {t} GROUP BY {c}" },
    Case { name: "GROUP BY an expression", sql: "SELECT count(*) FROM {t} GROUP BY substr({c}, 1, 4)" },
    Case { name: "DISTINCT", sql: "SELECT DISTINCT {c} FROM {t}" },
    Case { name: "PARTITION BY", sql: "SELECT count(*) OVER (PARTITION BY {c}) FROM {t}" },
    Case { name: "window ORDER BY (ranks)", sql: "SELECT dense_rank() OVER (ORDER BY {c}) FROM {t}" },
    Case { name: "window ORDER BY (neighbours)", sql: "SELECT lag(complaint_id) OVER (ORDER BY {c}) FROM {t}" },
    Case { name: "compared with another column", sql: "SELECT count(*) FROM {t} WHERE {c} = description" },
    Case {
        name: "a function of two columns, compared with a literal",
        sql: "SELECT count(*) FROM {t} a, (SELECT * FROM {t} LIMIT 50) b WHERE levenshtein(a.{c}, b.{c}) = 0",
    },
    Case {
        name: "NULLIF of two columns",
        sql: "SELECT count(*) FROM {t} a, (SELECT * FROM {t} LIMIT 50) b WHERE nullif(a.{c}, b.{c}) IS NULL",
    },
    Case {
        name: "CASE operand against another column",
        sql: "SELECT count(*) FROM {t} a, (SELECT * FROM {t} LIMIT 50) b WHERE CASE a.{c} WHEN b.{c} THEN true ELSE false END",
    },
    Case {
        name: "in a CTE, then joined",
        sql: "WITH m AS (SELECT {c} AS x FROM {t}) SELECT count(*) FROM m a JOIN m b ON a.x = b.x",
    },
    Case {
        name: "through a derived table",
        sql: "SELECT count(*) FROM (SELECT {c} AS x, complaint_id FROM {t}) a JOIN {t} b ON a.x = b.{c}",
    },
    Case {
        name: "CASE comparing two rows",
        sql: "SELECT sum(CASE WHEN a.{c} = b.{c} THEN 1 ELSE 0 END) FROM {t} a CROSS JOIN (SELECT * FROM {t} LIMIT 3) b",
    },
];

fn render(sql: &str, column: &str) -> String {
    sql.replace("{t}", TABLE).replace("{c}", column)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_relating_construct_is_refused_on_a_masked_column_and_allowed_on_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(dir.path()).await;
    let mut http = HttpConn::open(&lab, "samr").await.expect("HTTP");
    // `complainant_mobile`: sensitive, masked `mobile` for samr (refused);
    // `complainant_id`: sensitive, keyed hash (allowed: the way to relate);
    // `category`: restricted, unmasked (allowed).
    for case in RELATING {
        let masked = render(case.sql, "complainant_mobile");
        let flight = samr_query(&lab, &masked).await;
        let error = flight.expect_err(&format!("{}: a masked column was used to relate rows over Flight", case.name));
        assert!(
            error.contains("CG-POL-002") && error.contains("complaints.complaints.complainant_mobile"),
            "{}: {error}",
            case.name
        );
        let (status, body) = http_query(&mut http, &masked).await;
        assert_eq!(status, 403, "{}: {body}", case.name);
        assert_eq!(body["error"]["code"], "CG-POL-002", "{}: {body}", case.name);

        for allowed in ["complainant_id", "category"] {
            let sql = render(case.sql, allowed);
            if let Err(e) = samr_query(&lab, &sql).await {
                panic!("{} on `{allowed}` must be allowed over Flight: {e}", case.name);
            }
            let (status, body) = http_query(&mut http, &sql).await;
            assert_eq!(status, 200, "{} on `{allowed}` over HTTP: {body}", case.name);
        }
    }
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reading_a_masked_column_stays_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(dir.path()).await;
    let reads = [
        "SELECT complainant_mobile, complainant_name FROM complaints.complaints ORDER BY complainant_mobile LIMIT 5",
        "SELECT count(*) FROM complaints.complaints WHERE complainant_mobile = '138****0000'",
        "SELECT count(*) FROM complaints.complaints WHERE complainant_mobile LIKE '13%'",
        "SELECT count(complainant_mobile), count(DISTINCT complainant_mobile) FROM complaints.complaints",
        "SELECT complainant_mobile FROM complaints.complaints UNION ALL SELECT phone FROM market.enterprises LIMIT 3",
        "SELECT category, count(*) FROM complaints.complaints WHERE complainant_mobile IS NOT NULL GROUP BY category",
        "SELECT upper(complainant_name) FROM complaints.complaints LIMIT 3",
        "SELECT c.complainant_mobile FROM complaints.complaints c \
         JOIN market.enterprises e ON c.merchant_credit_code = e.credit_code LIMIT 3",
    ];
    for sql in reads {
        if let Err(e) = samr_query(&lab, sql).await {
            panic!("reading must stay allowed: {sql}: {e}");
        }
    }
    lab.stop().await.expect("stop");
}
