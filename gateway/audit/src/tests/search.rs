//! Subject hashing, search, subject reports and statistics.

use chrono::{Duration, NaiveDate, TimeZone as _, Utc};

use super::{Env, caller, sample};
use crate::{
    AuditQuery, AuditRecord, ColumnAccess, FlagRule, Outcome, RecordedQuery, StatsQuery, SubjectHasher, SubjectKey,
    compute_stats,
};

const SECRET: &[u8] = b"deployment-secret-0123456789";

#[test]
fn subject_hash_is_keyed_normalised_and_short() {
    let h = SubjectHasher::new(SECRET).expect("hasher");
    let a = h.hash_str("resident_id:11010519491231002x").expect("hash");
    let b = h.hash(&SubjectKey::ResidentId(" 110105 19491231002X".to_owned()));
    assert_eq!(a, b, "normalisation: whitespace and case");
    assert_eq!(a.len(), 32);
    assert!(crate::subject::is_subject_hash(&a));
    let other = SubjectHasher::new(b"another-secret-0123456789").expect("hasher");
    assert_ne!(a, other.hash_str("resident_id:11010519491231002X").expect("hash"), "keyed");
    assert_ne!(a, h.hash_str("credit_code:11010519491231002X").expect("hash"), "kind is part of the key");
    assert!(SubjectHasher::new(b"short").is_err());
    assert!(h.hash_str("passport:123").is_err());
    assert!(h.hash_str("credit_code:").is_err());
}

#[test]
fn search_filters_pages_newest_first() {
    let env = Env::new();
    let log = env.open();
    let h = SubjectHasher::new(SECRET).expect("hasher");
    let subject = h.hash_str("credit_code:91310000MA1FL1234X").expect("hash");
    for i in 1..=10 {
        let mut r = sample(i);
        if i % 2 == 0 {
            r.caller = caller("bob", "bank-b");
            r.purpose = Some("supervision".to_owned());
            r.legal_basis = Some("duty:supervision".to_owned());
        }
        if i % 3 == 0 {
            r.outcome = Outcome::Refused;
            r.refusal_reason = Some("purpose not allowed".to_owned());
        }
        if i == 4 || i == 7 {
            r.subject_hashes = vec![subject.clone()];
            r.query = RecordedQuery::Lookup(serde_json::json!({"subject": subject, "datasets": ["penalties"]}));
            r.datasets = vec!["penalties".to_owned()];
            r.columns = vec![ColumnAccess {
                dataset: "penalties".to_owned(),
                column: "amount".to_owned(),
                mask: "range".to_owned(),
            }];
        }
        log.append(r).expect("append");
    }

    let all = log.search(&AuditQuery::default()).expect("search");
    assert_eq!(all.total, 10);
    assert_eq!(all.items.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).rev().collect::<Vec<_>>());

    let bob = log
        .search(&AuditQuery { organization: Some("bank-b".to_owned()), limit: 2, offset: 1, ..Default::default() })
        .expect("search");
    assert_eq!(bob.total, 5);
    assert_eq!(bob.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![8, 6]);

    let by_fp = log.search(&AuditQuery { caller: Some("fp-bob".to_owned()), ..Default::default() }).expect("search");
    assert_eq!(by_fp.total, 5);
    let refused = log.search(&AuditQuery { outcome: Some(Outcome::Refused), ..Default::default() }).expect("search");
    assert_eq!(refused.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![9, 6, 3]);
    let ds = log
        .search(&AuditQuery {
            dataset: Some("penalties".to_owned()),
            purpose: Some("credit_check".to_owned()),
            ..Default::default()
        })
        .expect("search");
    assert_eq!(ds.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7]);
    let future =
        log.search(&AuditQuery { from: Some(Utc::now() + Duration::hours(1)), ..Default::default() }).expect("search");
    assert_eq!(future.total, 0);
    let by_subject = log
        .search(&AuditQuery {
            subject_hash: Some(h.hash_str("credit_code:91310000ma1fl1234x").expect("hash")),
            ..Default::default()
        })
        .expect("search");
    assert_eq!(by_subject.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 4]);

    let report = log.subject_report(&subject).expect("report");
    assert_eq!(report.len(), 2);
    assert_eq!(report[0].caller_name, "alice");
    assert_eq!(report[0].legal_basis.as_deref(), Some("consent:c-7"));
    assert_eq!(report[1].caller_name, "bob");
    assert_eq!(report[1].purpose.as_deref(), Some("supervision"));
    assert_eq!(report[1].columns[0].mask, "range");

    // The raw identifier never reaches the files.
    for seg in env.segments() {
        let text = std::fs::read_to_string(seg).expect("read");
        assert!(!text.contains("91310000MA1FL1234X"));
    }

    let today = Utc::now().date_naive();
    let stats = log.stats(&StatsQuery { from: today, to: today, flag_rule: FlagRule::default() }).expect("stats");
    let total: u64 = stats.daily.iter().map(|d| d.requests).sum();
    let refusals: u64 = stats.daily.iter().map(|d| d.refusals).sum();
    assert_eq!((total, refusals), (10, 3));
    assert!(stats.flagged.is_empty());
}

fn at(day: NaiveDate, fp: &str, subjects: &[String], outcome: Outcome) -> AuditRecord {
    let mut r = sample(0);
    r.caller = caller(fp, &format!("org-{fp}"));
    r.subject_hashes = subjects.to_vec();
    r.outcome = outcome;
    let t = Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).expect("time"));
    AuditRecord::seal(r, 1, t, crate::GENESIS_HASH.to_owned()).expect("seal")
}

fn subjects(prefix: u32, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("{:032x}", u128::from(prefix) << 64 | u128::from(i))).collect()
}

#[test]
fn stats_count_per_day_org_purpose_and_flag_jumps() {
    let to = NaiveDate::from_ymd_opt(2025, 3, 10).expect("date");
    let mut records = Vec::new();
    // "steady": 10 distinct subjects a day for 7 days, 25 today → avg 10, 25 < 30: not flagged.
    // "jumpy": 2 a day for 7 days, 25 today → avg 2, 25 > 6 and ≥ 20: flagged.
    // "small": 0 before, 5 today → below the floor: not flagged.
    for d in 1..=7u64 {
        let day = to.checked_sub_days(chrono::Days::new(d)).expect("day");
        records.push(at(day, "steady", &subjects(d as u32, 10), Outcome::Allowed));
        records.push(at(day, "jumpy", &subjects(100 + d as u32, 2), Outcome::Allowed));
    }
    records.push(at(to, "steady", &subjects(50, 25), Outcome::Allowed));
    records.push(at(to, "jumpy", &subjects(150, 20), Outcome::Allowed));
    records.push(at(to, "jumpy", &subjects(151, 5), Outcome::Refused));
    records.push(at(to, "small", &subjects(200, 5), Outcome::Refused));

    let stats = compute_stats(&records, &StatsQuery { from: to, to, flag_rule: FlagRule::default() });
    assert_eq!(stats.flagged.len(), 1, "{:?}", stats.flagged);
    let f = &stats.flagged[0];
    assert_eq!((f.name.as_str(), f.distinct_subjects), ("jumpy", 25));
    assert!((f.trailing_daily_average - 2.0).abs() < 1e-9);
    let jumpy = stats.daily.iter().find(|d| d.organization == "org-jumpy").expect("row");
    assert_eq!((jumpy.day, jumpy.requests, jumpy.refusals), (to, 2, 1));
    assert_eq!(stats.daily.len(), 3, "only the requested day: {:?}", stats.daily);

    let week = compute_stats(
        &records,
        &StatsQuery { from: to.checked_sub_days(chrono::Days::new(7)).expect("d"), to, flag_rule: FlagRule::default() },
    );
    assert_eq!(week.daily.iter().map(|d| d.requests).sum::<u64>(), records.len() as u64);

    let strict = compute_stats(
        &records,
        &StatsQuery { from: to, to, flag_rule: FlagRule { ratio: 2.0, min_distinct_subjects: 5, trailing_days: 7 } },
    );
    assert_eq!(strict.flagged.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["jumpy", "steady", "small"]);
}
