//! The SQL normalizer and the text redactor: every literal form, every
//! identifier kind, shape of ordinary SQL, unparsed and deep input, a
//! property test, and the end-to-end check that no raw identifier reaches a
//! file of the audit directory.

use std::collections::BTreeSet;

use creditgate_ident::{CreditCode, ResidentId};
use proptest::prelude::*;

use super::{Env, sample};
use crate::scan::looks_sensitive;
use crate::{
    AuditQuery, MAX_NORMALIZE_BYTES, NormalizedSql, RecordedQuery, SubjectHash, SubjectHasher, SubjectKey,
    SubjectKeyKind, normalize_sql, redact_text, subject_keys_in,
};

const SECRET: &[u8] = b"deployment-secret-0123456789";

fn hasher() -> SubjectHasher {
    SubjectHasher::new(SECRET).expect("hasher")
}

/// A valid credit code (with letters) and one made of digits only.
const CREDIT_CODE: &str = "91350100M000100Y43";
/// An 18-character resident ID whose check character is `X`.
const RESIDENT_ID_X: &str = "11010519491231002X";
/// A 15-digit first-generation resident ID; its 18-character form is [`RESIDENT_ID_X`].
const RESIDENT_ID_15: &str = "110105491231002";
/// A mobile number.
const MOBILE: &str = "13812345678";

/// An all-digit 18-character resident ID that is not also a valid credit code.
fn resident_id_digits() -> String {
    for seq in 100..999u32 {
        let first17 = format!("37021319900101{seq:03}");
        let id = ResidentId::complete(&first17).expect("id");
        if !id.as_str().ends_with('X') && CreditCode::parse(id.as_str()).is_err() {
            return id.as_str().to_owned();
        }
    }
    unreachable!("some sequence number gives a digit check character")
}

/// One identifier under test: how it is written, the forms that must not
/// appear in any record, and the subject key it must be hashed as.
struct Ident {
    written: String,
    forbidden: Vec<String>,
    key: SubjectKey,
}

fn identifiers() -> Vec<Ident> {
    let digits = resident_id_digits();
    vec![
        Ident {
            written: CREDIT_CODE.to_owned(),
            forbidden: vec![CREDIT_CODE.to_owned()],
            key: SubjectKey::CreditCode(CREDIT_CODE.to_owned()),
        },
        Ident {
            written: RESIDENT_ID_X.to_owned(),
            forbidden: vec![RESIDENT_ID_X.to_owned(), RESIDENT_ID_X[..17].to_owned()],
            key: SubjectKey::ResidentId(RESIDENT_ID_X.to_owned()),
        },
        Ident { written: digits.clone(), forbidden: vec![digits.clone()], key: SubjectKey::ResidentId(digits) },
        Ident {
            written: RESIDENT_ID_15.to_owned(),
            forbidden: vec![RESIDENT_ID_15.to_owned(), RESIDENT_ID_X.to_owned(), RESIDENT_ID_X[..17].to_owned()],
            key: SubjectKey::ResidentId(RESIDENT_ID_X.to_owned()),
        },
        Ident {
            written: MOBILE.to_owned(),
            forbidden: vec![MOBILE.to_owned()],
            key: SubjectKey::Mobile(MOBILE.to_owned()),
        },
    ]
}

/// Asserts that none of `forbidden` occurs in `text` (case-insensitively).
fn assert_absent(text: &str, forbidden: &[String], context: &str) {
    let upper = text.to_uppercase();
    for f in forbidden {
        assert!(!upper.contains(&f.to_uppercase()), "{f} survives in {text:?} ({context})");
    }
}

fn expected(h: &SubjectHasher, keys: &[&SubjectKey]) -> Vec<SubjectHash> {
    keys.iter().map(|k| SubjectHash { kind: k.kind(), hash: h.hash(k) }).collect()
}

/// `E'\x39…'`: the first character written as a hex escape.
fn escaped_hex(id: &str) -> String {
    let (first, rest) = id.split_at(1);
    format!("E'\\x{}{rest}'", hex::encode(first))
}

/// `U&'\0039…'`: the first character written as a Unicode escape.
fn unicode_escaped(id: &str) -> String {
    let (first, rest) = id.split_at(1);
    format!("U&'\\00{}{rest}'", hex::encode(first))
}

/// Every literal form and position of the issue, as templates over the
/// identifier; `numeric` marks forms that need an all-digit identifier.
fn forms(id: &str) -> Vec<(&'static str, String, bool)> {
    let half = id.len() / 2;
    let (a, b) = id.split_at(half);
    vec![
        ("single", format!("SELECT name FROM people WHERE k = '{id}'"), false),
        ("lowercase", format!("SELECT name FROM people WHERE k = '{}'", id.to_lowercase()), false),
        ("dollar", format!("SELECT name FROM people WHERE k = $${id}$$"), false),
        ("tagged dollar", format!("SELECT name FROM people WHERE k = $tag${id}$tag$"), false),
        ("escape", format!("SELECT name FROM people WHERE k = E'{id}'"), false),
        ("escape with \\x", format!("SELECT name FROM people WHERE k = {}", escaped_hex(id)), false),
        ("national", format!("SELECT name FROM people WHERE k = N'{id}'"), false),
        ("hex", format!("SELECT name FROM people WHERE k = X'{}'", hex::encode(id)), false),
        ("unicode", format!("SELECT name FROM people WHERE k = {}", unicode_escaped(id)), false),
        ("numeric", format!("SELECT name FROM people WHERE k = CAST({id} AS VARCHAR)"), true),
        ("numeric bare", format!("SELECT name FROM people WHERE n = {id}"), true),
        ("typed", format!("SELECT name FROM people WHERE k = VARCHAR '{id}'"), false),
        ("interval", format!("SELECT name FROM people WHERE t > now() - INTERVAL '{id}' SECOND"), false),
        ("line comment", format!("SELECT name FROM people -- {id}\nWHERE k = 1"), false),
        ("block comment", format!("SELECT name /* {id} */ FROM people"), false),
        ("quoted alias", format!("SELECT name AS \"{id}\" FROM people"), false),
        ("quoted column", format!("SELECT \"{id}\" FROM people"), false),
        ("table alias", format!("SELECT p.name FROM people AS \"{id}\" JOIN q ON true"), false),
        ("like", format!("SELECT name FROM people WHERE k LIKE '%{id}%'"), false),
        ("in list", format!("SELECT name FROM people WHERE k IN ('a', '{id}', 3)"), false),
        ("subquery", format!("SELECT name FROM people WHERE id IN (SELECT id FROM other WHERE k = '{id}')"), false),
        ("cte", format!("WITH c AS (SELECT '{id}' AS k) SELECT name FROM people JOIN c ON people.k = c.k"), false),
        ("concatenation", format!("SELECT name FROM people WHERE k = '{a}' || '{b}'"), false),
        ("concat()", format!("SELECT name FROM people WHERE k = concat('{a}', '{b}')"), false),
    ]
}

#[test]
fn every_literal_form_with_every_identifier_kind() {
    let h = hasher();
    let mut checked = 0;
    for ident in identifiers() {
        let all_digits = ident.written.bytes().all(|b| b.is_ascii_digit());
        for (form, sql, numeric) in forms(&ident.written) {
            if numeric && !all_digits {
                continue;
            }
            let context = format!("{form}: {sql}");
            let n = normalize_sql(&sql, &h);
            assert!(n.parsed, "{context} -> {}", n.text);
            assert_absent(&n.text, &ident.forbidden, &context);
            assert!(!looks_sensitive(&n.text), "{context} -> {}", n.text);
            if !form.contains("comment") {
                assert!(n.text.contains(":p") || n.text.contains("\":i"), "{context} -> {}", n.text);
            }
            assert_eq!(n.subjects, expected(&h, &[&ident.key]), "{context} -> {}", n.text);
            checked += 1;
        }
    }
    assert!(checked >= 100, "{checked}");
}

#[test]
fn the_kind_of_each_hash_is_right() {
    let h = hasher();
    let sql = format!(
        "SELECT name FROM people WHERE a = '{CREDIT_CODE}' OR b = $${RESIDENT_ID_15}$$ OR c = {MOBILE} OR d = '{CREDIT_CODE}'"
    );
    let n = normalize_sql(&sql, &h);
    let kinds: Vec<SubjectKeyKind> = n.subjects.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![SubjectKeyKind::CreditCode, SubjectKeyKind::ResidentId, SubjectKeyKind::Mobile]);
    assert_eq!(n.subject_hashes().len(), 3, "no duplicates");
    assert_eq!(n.subjects[1].hash, h.hash_str(&format!("resident_id:{RESIDENT_ID_X}")).expect("hash"));
    assert_eq!(n.subjects[1].hash, h.hash_str(&format!("resident_id:{RESIDENT_ID_15}")).expect("hash"), "15 → 18");
    assert_eq!(n.subjects[2].hash, h.hash_str(&format!("mobile:{MOBILE}")).expect("hash"));
    assert_eq!(
        n.text, "SELECT name FROM people WHERE a = :p1 OR b = :p2 OR c = :p3 OR d = :p4",
        "each literal has its own number"
    );
}

#[test]
fn ordinary_sql_keeps_its_shape() {
    let h = hasher();
    for (sql, want) in [
        (
            format!("SELECT name FROM market.enterprises WHERE credit_code = '{CREDIT_CODE}'"),
            "SELECT name FROM market.enterprises WHERE credit_code = :p1",
        ),
        (
            "select e.name, count(*) as n from market.enterprises e join market.penalties p \
             on p.credit_code = e.credit_code where p.amount > 1000 and p.year between 2020 and 2024 \
             group by e.name having count(*) >= 2 order by n desc limit 10"
                .to_owned(),
            "SELECT e.name, count(*) AS n FROM market.enterprises e JOIN market.penalties p \
             ON p.credit_code = e.credit_code WHERE p.amount > :p1 AND p.year BETWEEN :p2 AND :p3 \
             GROUP BY e.name HAVING count(*) >= :p4 ORDER BY n DESC LIMIT :p5",
        ),
        (
            format!("WITH c AS (SELECT resident_id FROM people WHERE mobile = '{MOBILE}') SELECT * FROM c -- bye"),
            "WITH c AS (SELECT resident_id FROM people WHERE mobile = :p1) SELECT * FROM c",
        ),
        (
            "SELECT \"Name\", `b`, x IS NULL, TRUE, NULL FROM t WHERE d = DATE '2024-01-01'".to_owned(),
            "SELECT \"Name\", `b`, x IS NULL, true, NULL FROM t WHERE d = DATE :p1",
        ),
        (
            format!("SELECT name AS \"{RESIDENT_ID_X}\", \"姓名\" FROM t ORDER BY \"{RESIDENT_ID_X}\""),
            "SELECT name AS \":i1\", \":i2\" FROM t ORDER BY \":i1\"",
        ),
    ] {
        let n = normalize_sql(&sql, &h);
        assert!(n.parsed, "{sql}");
        assert_eq!(n.text, want, "{sql}");
    }
}

#[test]
fn caller_placeholders_are_kept_and_reserved_forms_are_not() {
    let h = hasher();
    let n = normalize_sql("SELECT a FROM t WHERE b = $1 AND c = ? AND d = :name AND e = :p1 AND f = 'x'", &h);
    assert_eq!(n.text, "SELECT a FROM t WHERE b = $1 AND c = ? AND d = :name AND e = :p1 AND f = :p2");
    // `:p1` above is the caller's, renumbered as a literal: every `:pN` stands for a removed value.
    let n = normalize_sql("SELECT a FROM t WHERE e = :p7", &h);
    assert_eq!(n.text, "SELECT a FROM t WHERE e = :p1");
    let n = normalize_sql(&format!("SELECT a FROM t WHERE e = ${MOBILE}"), &h);
    assert_absent(&n.text, &[MOBILE.to_owned()], "a placeholder named by a mobile number");
    assert_eq!(n.subjects, expected(&h, &[&SubjectKey::Mobile(MOBILE.to_owned())]));
}

#[test]
fn non_identifier_numbers_are_placeholders_but_not_subjects() {
    let h = hasher();
    let invalid_check = format!("{}1", &RESIDENT_ID_X[..17]);
    for sql in [
        "SELECT a FROM t WHERE year = 2024 AND n = 12345 AND s = 'hello' AND f = 3.14".to_owned(),
        format!("SELECT a FROM t WHERE k = '{invalid_check}'"),
        "SELECT a FROM t WHERE k = '12812345678'".to_owned(),
        "SELECT a FROM t WHERE k = '91350100M000100Y44'".to_owned(),
        "SELECT a FROM t WHERE k = 20240101123456".to_owned(),
    ] {
        let n = normalize_sql(&sql, &h);
        assert!(n.parsed, "{sql}");
        assert!(n.subjects.is_empty(), "{sql}: {:?}", n.subjects);
        assert!(n.text.contains(":p1"), "{sql} -> {}", n.text);
        for literal in ["2024", "12345", "hello", "3.14", "12812345678", "Y44", "20240101123456"] {
            assert!(!n.text.contains(literal), "{sql} -> {}", n.text);
        }
        assert_absent(&n.text, std::slice::from_ref(&invalid_check), &sql);
    }
}

#[test]
fn unparsed_statements_keep_size_digest_and_subjects_only() {
    let h = hasher();
    let sql = format!("SELEC name FROM people WHERE k = '{MOBILE}' /* {CREDIT_CODE} */ AND id = $${RESIDENT_ID_15}");
    let n = normalize_sql(&sql, &h);
    assert!(!n.parsed);
    let prefix = format!("<unparsed SQL: {} bytes, digest hmac:", sql.len());
    assert!(n.text.starts_with(&prefix) && n.text.ends_with('>'), "{}", n.text);
    assert!(!n.text.contains("people") && !n.text.contains("SELEC"), "no text at all: {}", n.text);
    let all: Vec<String> = identifiers().into_iter().flat_map(|i| i.forbidden).collect();
    assert_absent(&n.text[prefix.len()..], &all, "unparsed");
    let want = [
        SubjectKey::Mobile(MOBILE.to_owned()),
        SubjectKey::CreditCode(CREDIT_CODE.to_owned()),
        SubjectKey::ResidentId(RESIDENT_ID_X.to_owned()),
    ];
    assert_eq!(n.subjects, expected(&h, &want.iter().collect::<Vec<_>>()));
    // The digest is keyed and stable.
    assert_eq!(normalize_sql(&sql, &h).text, n.text);
    let other = SubjectHasher::new(b"another-secret-0123456789").expect("hasher");
    assert_ne!(normalize_sql(&sql, &other).text, n.text);
    assert_ne!(normalize_sql(&format!("{sql} "), &h).text, n.text);
}

#[test]
fn oversized_statements_are_not_parsed_but_still_hashed() {
    let h = hasher();
    let sql = format!("SELECT '{}', '{MOBILE}'", "x".repeat(MAX_NORMALIZE_BYTES));
    let n = normalize_sql(&sql, &h);
    assert!(!n.parsed);
    assert!(n.text.len() < 100, "{}", n.text);
    assert_eq!(n.subjects, expected(&h, &[&SubjectKey::Mobile(MOBILE.to_owned())]));
}

/// Runs `f` on a thread with the stack of a tokio worker (2 MiB).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).expect("spawn").join().expect("no stack overflow")
}

#[test]
fn deep_and_long_statements_stay_on_a_small_stack() {
    let results = on_small_stack(|| {
        let h = hasher();
        let big = 64 * 1024;
        let inputs = [
            format!("SELECT {}", vec!["1"; big / 4].join(" + ")),
            format!("SELECT a FROM t WHERE {}", vec!["a = 1"; big / 10].join(" OR ")),
            vec!["SELECT 1"; big / 16].join(" UNION ALL "),
            format!("SELECT {}1{}", "(".repeat(big / 2), ")".repeat(big / 2)),
            format!("SELECT {}1", "NOT ".repeat(big / 4)),
            format!("SELECT {}1", "- ".repeat(big / 2)),
            format!("SELECT x{}", "::INT".repeat(big / 5)),
            format!("SELECT {}", vec!["'a'"; big / 8].join(" || ")),
            format!("SELECT a FROM t WHERE k IN ({})", vec!["'x'"; big / 5].join(", ")),
            // Just within the bound: parsed.
            format!("SELECT a FROM t WHERE {} OR k = '{MOBILE}'", vec!["a = 1"; 400].join(" OR ")),
            format!("{} UNION ALL SELECT '{MOBILE}'", vec!["SELECT 1"; 300].join(" UNION ALL ")),
        ];
        inputs.iter().map(|sql| (sql.len(), normalize_sql(sql, &h))).collect::<Vec<(usize, NormalizedSql)>>()
    });
    let parsed: Vec<bool> = results.iter().map(|(_, n)| n.parsed).collect();
    assert_eq!(parsed, vec![false, false, false, false, false, false, false, false, true, true, true]);
    for (_, n) in &results[9..] {
        assert_eq!(n.subjects.len(), 1);
        assert!(!n.text.contains(MOBILE));
    }
}

#[test]
fn multiple_statements_and_empty_text() {
    let h = hasher();
    let n = normalize_sql(&format!("SELECT 1; SELECT a FROM t WHERE k = '{MOBILE}'"), &h);
    assert_eq!(n.text, "SELECT :p1; SELECT a FROM t WHERE k = :p2");
    let n = normalize_sql("", &h);
    assert!(n.parsed && n.text.is_empty() && n.subjects.is_empty());
    let n = normalize_sql(&format!("-- only a comment {MOBILE}"), &h);
    assert_eq!(n.text, "");
    assert_eq!(n.subjects.len(), 1, "a comment naming a subject is still an access to record");
}

#[test]
fn redact_text_covers_every_kind_and_near_misses() {
    let h = hasher();
    let hash = |k: SubjectKey| format!("subject:{}", h.hash(&k));
    let text = format!(
        "bad path /v1/x/{MOBILE}/{} and {RESIDENT_ID_15}; id{MOBILE}, code {}",
        CREDIT_CODE.to_lowercase(),
        RESIDENT_ID_X
    );
    let out = redact_text(&text, &h);
    assert_eq!(
        out,
        format!(
            "bad path /v1/x/{}/{} and {}; id{}, code {}",
            hash(SubjectKey::Mobile(MOBILE.to_owned())),
            hash(SubjectKey::CreditCode(CREDIT_CODE.to_owned())),
            hash(SubjectKey::ResidentId(RESIDENT_ID_X.to_owned())),
            hash(SubjectKey::Mobile(MOBILE.to_owned())),
            hash(SubjectKey::ResidentId(RESIDENT_ID_X.to_owned())),
        )
    );
    let near = format!("{}1", &RESIDENT_ID_X[..17]);
    assert_eq!(redact_text(&format!("/x/{near}/y"), &h), "/x/<identifier withheld>/y");
    assert_eq!(redact_text("/x/91350100M000100Y44/y", &h), "/x/<identifier withheld>/y");
    // Negative controls: ordinary text, numbers and non-mobiles are kept.
    let plain = "purpose credit_check is not allowed for role analyst (2024, 12345, 1281234567, seq 1200000000)";
    assert_eq!(redact_text(plain, &h), plain);
    let ids = "no identifiers here: 12345 CG-REQ-001 6f1c2a9e0b7d4c3f8a1e5d2b9c0f7a6e req-01HZX3";
    assert_eq!(redact_text(ids, &h), ids);
    let fingerprint = "certificate 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 is revoked";
    assert_eq!(redact_text(fingerprint, &h), fingerprint);
    // Long digit runs that only contain an identifier are withheld.
    assert_eq!(
        redact_text(&format!("n=3{MOBILE} t=1700000000000"), &h),
        "n=<identifier withheld> t=<identifier withheld>"
    );
    // A credit code glued to other characters is still found.
    assert_eq!(
        redact_text(&format!("x{CREDIT_CODE}"), &h),
        format!("x{}", hash(SubjectKey::CreditCode(CREDIT_CODE.to_owned())))
    );
    // Redacting twice keeps the hashes.
    assert_eq!(redact_text(&out, &h), out);
}

#[test]
fn subject_keys_in_text() {
    let keys = subject_keys_in(&format!("{CREDIT_CODE} x{MOBILE}y 86{MOBILE} 0086{MOBILE} {RESIDENT_ID_15}"));
    assert_eq!(
        keys,
        vec![
            SubjectKey::CreditCode(CREDIT_CODE.to_owned()),
            SubjectKey::Mobile(MOBILE.to_owned()),
            SubjectKey::ResidentId(RESIDENT_ID_X.to_owned()),
        ]
    );
    assert!(subject_keys_in("138-1234-5678 12345 SELECT").is_empty());
}

#[test]
fn subject_keys_parse_identify_and_hide_their_value() {
    let h = hasher();
    let m = SubjectKey::parse(" mobile: 138 1234 5678").expect("mobile");
    assert_eq!(m, SubjectKey::Mobile(MOBILE.to_owned()));
    assert_eq!(m.normalised(), format!("mobile:{MOBILE}"));
    assert_eq!(m.kind().as_str(), "mobile");
    assert!(SubjectKey::parse("mobile:12812345678").is_err());
    assert!(SubjectKey::parse("mobile:").is_err());
    assert!(SubjectKey::parse("phone:13812345678").is_err());
    assert_eq!(
        h.hash(&SubjectKey::parse(&format!("resident_id:{RESIDENT_ID_15}")).expect("15")),
        h.hash(&SubjectKey::ResidentId(RESIDENT_ID_X.to_owned())),
        "a 15-digit number hashes as its 18-character form"
    );
    assert_ne!(h.hash(&m), h.hash(&SubjectKey::ResidentId(MOBILE.to_owned())), "the kind is part of the hash");
    for (raw, kind) in [
        (CREDIT_CODE, SubjectKeyKind::CreditCode),
        (RESIDENT_ID_X, SubjectKeyKind::ResidentId),
        (RESIDENT_ID_15, SubjectKeyKind::ResidentId),
        (MOBILE, SubjectKeyKind::Mobile),
    ] {
        let key = SubjectKey::from_identifier(&format!(" {raw} ")).expect(raw);
        assert_eq!(key.kind(), kind, "{raw}");
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(&raw[..8]), "{dbg}");
    }
    let err = SubjectKey::from_identifier("1381234567").expect_err("10 digits").to_string();
    assert!(err.contains("mobile number") && !err.contains("1381234567"), "{err}");
}

#[test]
fn the_subject_hasher_digest_is_domain_separated() {
    let h = hasher();
    let key = SubjectKey::Mobile(MOBILE.to_owned());
    assert_ne!(h.digest(key.normalised().as_bytes()), h.hash(&key));
    assert_eq!(h.digest(b"x").len(), crate::subject::SUBJECT_HASH_LEN);
}

/// End to end at the log level: records built with the normalizer and the
/// redactor, appended to a real log; no file in the directory holds a raw
/// identifier, and the subject search finds each record.
#[test]
fn no_raw_identifier_reaches_the_audit_directory() {
    let h = hasher();
    let env = Env::new();
    let log = env.open();
    let idents = identifiers();
    let mut seqs = Vec::new();
    for (i, ident) in idents.iter().enumerate() {
        for (j, (form, sql, numeric)) in forms(&ident.written).into_iter().enumerate() {
            if numeric && !ident.written.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let n = normalize_sql(&sql, &h);
            let mut r = sample((i * 100 + j) as u64);
            r.subject_hashes = n.subject_hashes();
            r.query = RecordedQuery::Sql(n.text);
            r.refusal_reason = Some(redact_text(&format!("{form}: no row for {} in {sql}", ident.written), &h));
            let receipt = log.append(r).expect("append");
            seqs.push((i, receipt.seq));
        }
        // An unparsed statement too.
        let n = normalize_sql(&format!("SELEC * WHERE x = '{}'", ident.written), &h);
        assert!(!n.parsed);
        let mut r = sample(9000 + i as u64);
        r.subject_hashes = n.subject_hashes();
        r.query = RecordedQuery::Sql(n.text);
        seqs.push((i, log.append(r).expect("append").seq));
    }
    log.close().expect("close");
    drop(log);

    let mut files = 0;
    for entry in std::fs::read_dir(env.dir()).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let text = String::from_utf8_lossy(&bytes).to_uppercase();
        for ident in &idents {
            for f in &ident.forbidden {
                assert!(!text.contains(&f.to_uppercase()), "{f} found in {}", path.display());
            }
        }
        files += 1;
    }
    assert!(files >= 3, "segments, checkpoints, keys");

    let log = env.open();
    for (raw, key_kind) in [
        (CREDIT_CODE.to_owned(), SubjectKeyKind::CreditCode),
        (RESIDENT_ID_X.to_owned(), SubjectKeyKind::ResidentId),
        (RESIDENT_ID_15.to_owned(), SubjectKeyKind::ResidentId),
        (MOBILE.to_owned(), SubjectKeyKind::Mobile),
    ] {
        let key = SubjectKey::from_identifier(&raw).expect("identifier");
        assert_eq!(key.kind(), key_kind);
        let hash = h.hash(&key);
        let page =
            log.search(&AuditQuery { subject_hash: Some(hash.clone()), limit: 1000, ..Default::default() }).expect("s");
        let found: BTreeSet<u64> = page.items.iter().map(|r| r.seq).collect();
        let want: BTreeSet<u64> = seqs
            .iter()
            .filter(|(i, _)| SubjectKey::from_identifier(&idents[*i].written).is_ok_and(|k| h.hash(&k) == hash))
            .map(|(_, s)| *s)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(found, want, "search by {key_kind}");
        assert_eq!(log.subject_report(&hash).expect("report").len(), want.len(), "report by {key_kind}");
    }
    // Negative control: a subject never queried has no accesses.
    let nobody = h.hash(&SubjectKey::Mobile("13900000000".to_owned()));
    assert!(log.subject_report(&nobody).expect("report").is_empty());
    log.close().expect("close");
}

// ---------------------------------------------------------------------------
// Property test: random statements with random identifiers in random forms.

const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

fn credit_code() -> impl Strategy<Value = String> {
    proptest::collection::vec(0usize..31, 17).prop_map(|v| {
        let first17: String = v.into_iter().map(|i| char::from(CHARSET.as_bytes()[i])).collect();
        CreditCode::complete(&first17).expect("complete").as_str().to_owned()
    })
}

fn resident_id() -> impl Strategy<Value = (String, String)> {
    (100_000u32..=999_999, 1930i32..=2010, 1u32..=12, 1u32..=28, 0u32..=999, any::<bool>()).prop_map(
        |(addr, y, m, d, seq, old)| {
            if old {
                let written = format!("{addr:06}{:02}{m:02}{d:02}{seq:03}", y % 100);
                let full = ResidentId::parse(&written).expect("15").as_str().to_owned();
                (written, full)
            } else {
                let id = ResidentId::complete(&format!("{addr:06}{y:04}{m:02}{d:02}{seq:03}")).expect("id");
                (id.as_str().to_owned(), id.as_str().to_owned())
            }
        },
    )
}

fn mobile() -> impl Strategy<Value = String> {
    (3u8..=9, 0u64..1_000_000_000).prop_map(|(second, rest)| format!("1{second}{rest:09}"))
}

/// (written form, forms that must not appear).
fn any_identifier() -> impl Strategy<Value = (String, Vec<String>)> {
    prop_oneof![
        credit_code().prop_map(|c| (c.clone(), vec![c])),
        resident_id().prop_map(|(w, full)| {
            let mut forbidden = vec![w.clone(), full.clone()];
            if w.len() == 15 {
                forbidden.push(full[..17].to_owned());
            }
            (w, forbidden)
        }),
        mobile().prop_map(|m| (m.clone(), vec![m])),
    ]
}

/// An expression holding `id` in one of many forms.
fn embed(id: &str, form: usize) -> String {
    let digits = id.bytes().all(|b| b.is_ascii_digit());
    let (a, b) = id.split_at(id.len() / 2);
    match form % 17 {
        0 => format!("'{id}'"),
        1 => format!("$${id}$$"),
        2 => format!("$q${id}$q$"),
        3 => format!("E'{id}'"),
        4 => escaped_hex(id),
        5 => format!("N'{id}'"),
        6 => format!("X'{}'", hex::encode(id)),
        7 => unicode_escaped(id),
        8 if digits => id.to_owned(),
        8 => format!("'{}'", id.to_lowercase()),
        9 => format!("'%{id}%'"),
        10 => format!("1 /* {id} */"),
        11 => format!("1 -- {id}\n"),
        12 => format!("(SELECT 1 AS \"{id}\")"),
        13 => format!("'{a}' || '{b}'"),
        14 => format!("concat('{a}', '{b}')"),
        15 => format!("CAST('{id}' AS VARCHAR)"),
        _ => format!("\"{id}\""),
    }
}

/// A statement with `exprs` in assorted positions.
fn statement(exprs: &[String], shape: usize) -> String {
    let e = |i: usize| exprs.get(i).cloned().unwrap_or_else(|| "2024".to_owned());
    match shape % 4 {
        0 => {
            format!("SELECT {}, name FROM market.enterprises WHERE credit_code = {} AND x IN (1, {})", e(0), e(1), e(2))
        }
        1 => format!(
            "WITH c AS (SELECT {} AS k) SELECT p.name FROM people p JOIN c ON p.k = c.k WHERE p.m LIKE {} OR p.n = {}",
            e(0),
            e(1),
            e(2)
        ),
        2 => format!(
            "SELECT name FROM people WHERE id IN (SELECT id FROM other WHERE k = {} AND j <> {}) ORDER BY {}",
            e(0),
            e(1),
            e(2)
        ),
        _ => format!("SELECT CASE WHEN a = {} THEN {} ELSE 12345 END AS r FROM t GROUP BY {}", e(0), e(1), e(2)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn prop_no_raw_identifier_survives_and_every_one_is_hashed(
        ids in proptest::collection::vec(any_identifier(), 1..=3),
        forms in proptest::collection::vec(0usize..17, 3),
        shape in 0usize..4,
    ) {
        let h = hasher();
        let exprs: Vec<String> = ids.iter().zip(&forms).map(|((w, _), f)| embed(w, *f)).collect();
        let sql = statement(&exprs, shape);
        let n = normalize_sql(&sql, &h);
        let forbidden: Vec<String> = ids.iter().flat_map(|(_, f)| f.clone()).collect();
        let text = if n.parsed { n.text.clone() } else { n.text["<unparsed SQL: ".len()..].to_owned() };
        let upper = text.to_uppercase();
        for f in &forbidden {
            prop_assert!(!upper.contains(&f.to_uppercase()), "{} survives: {} -> {}", f, sql, n.text);
        }
        if n.parsed {
            prop_assert!(!looks_sensitive(&n.text), "{} -> {}", sql, n.text);
        }
        let hashes = n.subject_hashes();
        for (written, _) in &ids {
            let key = SubjectKey::from_identifier(written).expect("valid");
            prop_assert!(hashes.contains(&h.hash(&key)), "{} not hashed: {}", written, sql);
        }
    }
}

#[test]
fn an_already_parsed_statement_normalizes_alike() {
    use sqlparser::dialect::GenericDialect;
    let h = hasher();
    let mut checked = 0;
    for ident in identifiers() {
        for (form, sql, _) in forms(&ident.written) {
            let Ok(mut parsed) = sqlparser::parser::Parser::parse_sql(&GenericDialect {}, &sql) else { continue };
            let Some(statement) = parsed.pop() else { continue };
            let a = crate::normalize_parsed_sql(&sql, &statement, &h);
            assert_eq!(a, normalize_sql(&sql, &h), "{form}: {sql}");
            checked += 1;
        }
    }
    assert!(checked >= 100, "{checked}");
}

#[test]
#[ignore = "timing, run with --release --ignored --nocapture"]
fn timing_of_a_typical_lookup() {
    use sqlparser::dialect::GenericDialect;
    let h = hasher();
    let sql = "SELECT e.name, count(*) AS n FROM market.enterprises e JOIN market.penalties p \
               ON p.credit_code = e.credit_code WHERE p.credit_code = '91350100M000100Y43' \
               AND p.year BETWEEN 2020 AND 2024 GROUP BY e.name ORDER BY n DESC LIMIT 10";
    let statement = sqlparser::parser::Parser::parse_sql(&GenericDialect {}, sql).expect("parse").remove(0);
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(normalize_sql(sql, &h));
    }
    println!("normalize_sql: {:?} per call", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(crate::normalize_parsed_sql(sql, &statement, &h));
    }
    println!("normalize_parsed_sql: {:?} per call", t.elapsed() / n);
}
