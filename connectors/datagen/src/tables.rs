//! The tables of the federation: column lists and row generators.
//!
//! Each table is a [`TableDef`]: a number of *units* and a function that
//! appends the rows of one unit (one row for most tables; one product's event
//! chain for `traceability.events`; one taxpayer's three yearly ratings for
//! `tax.credit_ratings`). Units are generated in order with the table's own
//! random stream, so a table's content does not depend on which thread
//! writes it or on any other table.

use std::fmt::Write as _;

use chrono::Datelike;

use crate::DatagenError;
use crate::pools::{
    ABNORMAL_REASONS, BLACK_LIST_BASES, COMMITMENTS, COMPLAINT_CATEGORIES, COMPLAINT_PROBLEMS, COMPLAINT_STATUS,
    COURIER_COMPLAINTS, COURIER_VIOLATIONS, DISTRICTS, FRAUD_CATEGORIES, LICENCE_TYPES, MARKET_DEPARTMENTS,
    OBLIGATIONS, PENALTY_VIOLATIONS, PLATFORM_VIOLATIONS, PRODUCTS, RED_LIST_BASES, REVIEWS, RISK_REASONS, SHOP_STATUS,
    TAX_VIOLATIONS,
};
use crate::rng::Rng;
use crate::sink::{Col, Kind, RowSink, opt, req};
use crate::world::{
    COURIER_COUNT, COURIER_FIRST, FEATURED_ENT, FEATURED_PERSON, NegDates, Owner, STAFF_COUNT, World, date, gcd,
    non_empty,
};

use Kind::{Bool, Date, Float, Int, Text, Timestamp};

/// Non-featured expired / disputed record ids sampled per table.
const SAMPLE_PER_TABLE: usize = 3;

/// Microseconds per day.
const DAY_MICROS: i64 = 86_400_000_000;
/// Microseconds per hour.
const HOUR_MICROS: i64 = 3_600_000_000;

/// Facts noted while generating, for the manifest's featured section.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub expired: Vec<String>,
    pub disputed: Vec<String>,
    pub blacklisted_shops: Vec<String>,
    sampled_expired: usize,
    sampled_disputed: usize,
}

impl Notes {
    /// Notes a negative record: every expired or disputed record about a
    /// featured subject, and the first few others of the table.
    fn negative(&mut self, id: &str, featured: bool, expired: bool, disputed: bool) {
        if expired && (featured || self.sampled_expired < SAMPLE_PER_TABLE) {
            self.expired.push(id.to_owned());
            self.sampled_expired += usize::from(!featured);
        }
        if disputed && (featured || self.sampled_disputed < SAMPLE_PER_TABLE) {
            self.disputed.push(id.to_owned());
            self.sampled_disputed += usize::from(!featured);
        }
    }
}

/// Generation state of one table.
pub(crate) struct Ctx<'w> {
    pub w: &'w World,
    pub rng: Rng,
    pub out: RowSink,
    pub notes: Notes,
    /// Running counter for tables whose rows outnumber their units.
    pub counter: u64,
    a: String,
    b: String,
    c: String,
    d: String,
    id: String,
}

impl<'w> Ctx<'w> {
    pub(crate) fn new(w: &'w World, def: &TableDef) -> Ctx<'w> {
        Ctx {
            w,
            rng: w.rng(def.source, crate::rng::tag(def.name)),
            out: RowSink::new(def.name, def.cols),
            notes: Notes::default(),
            counter: 0,
            a: String::with_capacity(64),
            b: String::with_capacity(64),
            c: String::with_capacity(64),
            d: String::with_capacity(64),
            id: String::with_capacity(64),
        }
    }
}

/// Signature of a unit generator.
pub(crate) type EmitFn = for<'w> fn(&mut Ctx<'w>, u64) -> Result<(), DatagenError>;

/// One table of one source.
pub(crate) struct TableDef {
    pub source: &'static str,
    pub name: &'static str,
    pub cols: &'static [Col],
    /// Number of units at this world's scale.
    pub units: fn(&World) -> u64,
    pub emit: EmitFn,
    /// Whether `--scale` multiplies this table (used to schedule big tables first).
    pub large: bool,
}

/// How a negative record relates to the featured subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An ordinary record.
    Normal,
    /// About a featured subject, recent.
    Recent,
    /// About a featured subject, past the retention period.
    Expired,
    /// About a featured subject, recent and disputed.
    Disputed,
    /// About a featured subject, still going on.
    Ongoing,
}

impl Role {
    fn featured(self) -> bool {
        self != Role::Normal
    }
}

/// Dates and the disputed flag of a negative record.
fn negative(c: &mut Ctx<'_>, role: Role, ongoing: f64) -> (NegDates, bool) {
    let w = c.w;
    match role {
        Role::Normal => {
            let d = w.neg_dates(&mut c.rng, ongoing);
            (d, c.rng.chance(0.04))
        }
        Role::Recent => (w.recent_dates(&mut c.rng), false),
        Role::Expired => (w.expired_dates(&mut c.rng), false),
        Role::Disputed => (w.recent_dates(&mut c.rng), true),
        Role::Ongoing => {
            let d = w.recent_dates(&mut c.rng);
            (NegDates { start: d.start, end: None }, false)
        }
    }
}

/// Records a negative row in the notes.
fn note(c: &mut Ctx<'_>, role: Role, d: &NegDates, disputed: bool) {
    let expired = c.w.is_expired(d);
    c.notes.negative(&c.id, role.featured(), expired, disputed);
}

fn money(rng: &mut Rng, lo: i64, hi: i64, step: i64) -> f64 {
    (rng.range(lo / step, hi / step) * step) as f64
}

fn year_of(days: i32) -> i32 {
    date(days).year()
}

/// Writes the subject columns (subject_type?, credit_code, resident_id,
/// name) of an owner.
fn subject_cols(c: &mut Ctx<'_>, o: Owner, with_type: bool, with_name: bool) -> Result<(), DatagenError> {
    c.w.owner_keys_into(o, &mut c.a, &mut c.b, &mut c.c)?;
    if with_type {
        c.out.text(match o {
            Owner::Ent(_) => "enterprise",
            Owner::Person(_) => "individual",
        });
    }
    c.out.text_opt(non_empty(&c.a));
    c.out.text_opt(non_empty(&c.b));
    if with_name {
        c.out.text(&c.c);
    }
    Ok(())
}

// ===================================================================== market

const ENTERPRISES: &[Col] = &[
    req("credit_code", Text),
    req("name", Text),
    req("legal_rep_name", Text),
    req("legal_rep_id", Text),
    req("registered_capital", Float),
    req("established_date", Date),
    req("district_code", Text),
    req("address", Text),
    req("business_scope", Text),
    req("status", Text),
    req("is_individual", Bool),
    req("phone", Text),
];

fn enterprises(c: &mut Ctx<'_>, i: u64) -> Result<(), DatagenError> {
    let w = c.w;
    w.ent_code_into(i, &mut c.a)?;
    c.out.text(&c.a);
    w.ent_name_into(i, &mut c.a);
    c.out.text(&c.a);
    let rep = w.ent_legal_rep(i);
    w.person_name_into(rep, &mut c.a);
    c.out.text(&c.a);
    w.person_id_into(rep, &mut c.a)?;
    c.out.text(&c.a);
    let individual = w.ent_is_individual(i);
    let capital = if i == FEATURED_ENT {
        500.0
    } else if individual {
        *c.rng.pick(&[1.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0])
    } else {
        *c.rng.pick(&[10.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0])
    };
    c.out.float(capital);
    let founded = if i == FEATURED_ENT { w.as_of - 2900 } else { w.as_of - c.rng.range(120, 25 * 365) as i32 };
    c.out.date(founded);
    c.out.text(w.ent_district(i).code);
    w.ent_address_into(i, &mut c.a);
    c.out.text(&c.a);
    c.out.text(w.ent_scope(i));
    c.out.text(w.ent_status(i));
    c.out.bool(individual);
    w.ent_phone_into(i, &mut c.a);
    c.out.text(&c.a);
    c.out.end_row();
    Ok(())
}

const LICENCES: &[Col] = &[
    req("licence_no", Text),
    req("credit_code", Text),
    req("licence_type", Text),
    req("issuer", Text),
    req("issued_date", Date),
    req("expiry_date", Date),
];

fn licences(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let ent = if u == 0 { FEATURED_ENT } else { w.random_ent(&mut c.rng) };
    let (kind, prefix) = if u == 0 { LICENCE_TYPES[0] } else { *c.rng.pick(&LICENCE_TYPES) };
    let d = w.ent_district(ent);
    c.out.textf(format_args!("{prefix}1{}{:07}", d.code, 1_000_000 + u * 7));
    w.ent_code_into(ent, &mut c.a)?;
    c.out.text(&c.a);
    c.out.text(kind);
    if d.name.ends_with('区') {
        c.out.textf(format_args!("青岛市{}行政审批服务局", d.name));
    } else {
        c.out.textf(format_args!("{}行政审批服务局", d.name));
    }
    let issued = w.as_of - c.rng.range(30, 6 * 365) as i32;
    c.out.date(issued);
    c.out.date(issued + 5 * 365);
    c.out.end_row();
    Ok(())
}

const PENALTIES: &[Col] = &[
    req("penalty_id", Text),
    req("credit_code", Text),
    req("decision_no", Text),
    req("violation", Text),
    req("amount", Float),
    req("decision_date", Date),
    req("event_end_date", Date),
    req("is_public", Bool),
    req("disputed", Bool),
    req("department", Text),
    req("penalty_kind", Text),
    req("annulled", Bool),
];

/// The kind of a generated penalty (its most severe part) from its hash.
fn penalty_kind(h: u64) -> &'static str {
    match h % 100 {
        0..12 => "warning",
        12..22 => "criticism",
        22..80 => "fine",
        80..90 => "confiscation",
        90..97 => "suspension",
        _ => "revocation",
    }
}

/// Penalties planted on the featured enterprise at the public window's
/// boundary days (SAMR Order 45): unit → (kind, amount, decision day,
/// annulled). Each pair is one day inside and one day outside its period.
fn planted_penalty(w: &World, u: u64) -> Option<(&'static str, f64, i32, bool)> {
    let short = w.first_shown(3);
    let long = w.first_shown(36);
    let low = crate::LOW_FINE_MAX as f64;
    let high = low + 100.0;
    Some(match u {
        3 => ("criticism", 0.0, short, false),
        4 => ("criticism", 0.0, short - 1, false),
        5 => ("fine", low, short, false),
        6 => ("fine", low, short - 1, false),
        7 => ("fine", high, long, false),
        8 => ("fine", high, long - 1, false),
        9 => ("warning", 0.0, w.as_of - 10, false),
        10 => ("fine", 80_000.0, w.as_of - 30, true),
        _ => return None,
    })
}

fn penalties(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (ent, role) = match u {
        0 => (FEATURED_ENT, Role::Expired),
        1 => (FEATURED_ENT, Role::Disputed),
        2 => (FEATURED_ENT, Role::Recent),
        _ if c.rng.chance(0.2) => (*c.rng.pick(&w.black_ents[1..]), Role::Normal),
        _ => (w.random_ent(&mut c.rng), Role::Normal),
    };
    let (mut d, disputed) = negative(c, role, 0.0);
    let planted = planted_penalty(w, u);
    let ent = if planted.is_some() { FEATURED_ENT } else { ent };
    if let Some((_, _, day, _)) = planted {
        d = NegDates { start: day, end: Some(day) };
    }
    c.id.clear();
    let _ = write!(c.id, "SCJG-CF-{:08}", u + 1);
    c.out.text(&c.id);
    w.ent_code_into(ent, &mut c.a)?;
    c.out.text(&c.a);
    c.out.textf(format_args!("青市监罚〔{}〕{}号", year_of(d.start), 1000 + u));
    c.out.text(if role == Role::Normal { c.rng.word(&PENALTY_VIOLATIONS) } else { PENALTY_VIOLATIONS[10] });
    let drawn = money(&mut c.rng, 2_000, 500_000, 100);
    // Kind and annulment come from their own hash: the table's stream stays as it was.
    let (kind, amount, annulled) = match planted {
        Some((kind, amount, _, annulled)) => (kind, amount, annulled),
        // The featured subjects' own penalties: a fine published for 3 years.
        None if role.featured() => ("fine", drawn.max(crate::LOW_FINE_MAX as f64 * 2.0), false),
        None => {
            let kind = penalty_kind(w.h("penalty.kind", u));
            let amount = if matches!(kind, "warning" | "criticism") { 0.0 } else { drawn };
            (kind, amount, w.h("penalty.annulled", u) % 100 < 3)
        }
    };
    c.out.float(amount);
    c.out.date(d.start);
    c.out.date(d.end.unwrap_or(d.start));
    let public = role.featured() || c.rng.chance(0.9);
    c.out.bool(public || planted.is_some());
    c.out.bool(disputed);
    c.out.text(c.rng.word(&MARKET_DEPARTMENTS));
    c.out.text(kind);
    c.out.bool(annulled);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

const ABNORMAL: &[Col] = &[
    req("record_id", Text),
    req("credit_code", Text),
    req("reason", Text),
    req("listed_date", Date),
    opt("removed_date", Date),
    opt("event_end_date", Date),
    req("disputed", Bool),
];

fn abnormal_operations(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (ent, role) = match u {
        0 => (FEATURED_ENT, Role::Recent),
        _ => (w.random_ent(&mut c.rng), Role::Normal),
    };
    let (d, disputed) = negative(c, role, 0.35);
    c.id.clear();
    let _ = write!(c.id, "SCJG-YC-{:08}", u + 1);
    c.out.text(&c.id);
    w.ent_code_into(ent, &mut c.a)?;
    c.out.text(&c.a);
    c.out.text(c.rng.word(&ABNORMAL_REASONS));
    c.out.date(d.start);
    c.out.date_opt(d.end);
    c.out.date_opt(d.end);
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

// ====================================================================== court

const DISHONEST: &[Col] = &[
    req("case_no", Text),
    req("subject_type", Text),
    opt("credit_code", Text),
    opt("resident_id", Text),
    req("name", Text),
    req("court", Text),
    req("obligation", Text),
    req("amount", Float),
    req("filing_date", Date),
    req("published_date", Date),
    opt("event_end_date", Date),
    req("disputed", Bool),
];

fn dishonest_debtors(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (owner, role) = match u {
        0 => (Owner::Ent(FEATURED_ENT), Role::Ongoing),
        1 => (Owner::Person(FEATURED_PERSON), Role::Disputed),
        2 => (Owner::Person(FEATURED_PERSON), Role::Expired),
        _ => {
            let from_black = c.rng.chance(0.5);
            let o = if c.rng.chance(0.5) {
                Owner::Ent(if from_black { *c.rng.pick(&w.black_ents[1..]) } else { w.random_ent(&mut c.rng) })
            } else {
                Owner::Person(if from_black { *c.rng.pick(&w.black_persons[1..]) } else { w.random_seller(&mut c.rng) })
            };
            (o, Role::Normal)
        }
    };
    let (d, disputed) = negative(c, role, 0.5);
    let district = match owner {
        Owner::Ent(i) => w.ent_district(i),
        Owner::Person(_) => c.rng.pick(&DISTRICTS),
    };
    c.id.clear();
    let _ = write!(c.id, "({})鲁{}执{}号", year_of(d.start), district.court_code, 1000 + u);
    c.out.text(&c.id);
    subject_cols(c, owner, true, true)?;
    c.out.text(district.court);
    c.out.text(c.rng.word(&OBLIGATIONS));
    let amount = money(&mut c.rng, 5_000, 3_000_000, 100);
    c.out.float(amount);
    c.out.date(d.start);
    // Published after filing, but not after the obligation was met.
    let published = (d.start + c.rng.range(3, 60) as i32).min(d.end.unwrap_or(w.as_of - 1));
    c.out.date(published);
    c.out.date_opt(d.end);
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

// ======================================================================== tax

const CREDIT_RATINGS: &[Col] = &[req("credit_code", Text), req("year", Int), req("rating", Text)];

/// Taxpayers with ratings (fixed).
const RATED_TAXPAYERS: u64 = 400;

fn credit_ratings(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let ent = if u == 0 {
        FEATURED_ENT
    } else {
        // Distinct enterprises: a stride coprime with the pool size.
        let first = COURIER_FIRST + COURIER_COUNT;
        let m = w.n_ent - first;
        let mut stride = 7919 % m;
        while gcd(stride, m) != 1 {
            stride += 1;
        }
        first + ((u - 1) * stride) % m
    };
    w.ent_code_into(ent, &mut c.a)?;
    let year = year_of(w.as_of);
    for (k, y) in (year - 3..year).enumerate() {
        c.out.text(&c.a);
        c.out.int(y);
        let rating = if ent == FEATURED_ENT {
            ["B", "C", "D"][k]
        } else {
            c.rng.weighted(&[("A", 15), ("B", 45), ("M", 20), ("C", 12), ("D", 8)])
        };
        c.out.text(rating);
        c.out.end_row();
    }
    Ok(())
}

const TAX_MAJOR: &[Col] = &[
    req("case_id", Text),
    req("credit_code", Text),
    req("violation_type", Text),
    req("amount", Float),
    req("decision_date", Date),
    req("event_end_date", Date),
    req("disputed", Bool),
];

fn tax_major_violations(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (ent, role) = match u {
        0 => (FEATURED_ENT, Role::Recent),
        1 => (FEATURED_ENT, Role::Expired),
        _ if c.rng.chance(0.3) => (*c.rng.pick(&w.black_ents[1..]), Role::Normal),
        _ => (w.random_ent(&mut c.rng), Role::Normal),
    };
    let (d, disputed) = negative(c, role, 0.0);
    c.id.clear();
    let _ = write!(c.id, "青税稽罚〔{}〕{}号", year_of(d.start), 100 + u);
    c.out.text(&c.id);
    w.ent_code_into(ent, &mut c.a)?;
    c.out.text(&c.a);
    c.out.text(c.rng.word(&TAX_VIOLATIONS));
    let amount = money(&mut c.rng, 100_000, 20_000_000, 1_000);
    c.out.float(amount);
    c.out.date(d.start);
    c.out.date(d.end.unwrap_or(d.start));
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

// ==================================================================== courier

const COURIER_COMPANIES: &[Col] = &[
    req("credit_code", Text),
    req("name", Text),
    req("licence_no", Text),
    req("brand", Text),
    req("district_code", Text),
];

fn courier_companies(c: &mut Ctx<'_>, k: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let ent = COURIER_FIRST + k;
    w.ent_code_into(ent, &mut c.a)?;
    c.out.text(&c.a);
    w.ent_name_into(ent, &mut c.a);
    c.out.text(&c.a);
    c.out.textf(format_args!("鲁{}{:03}", 2012 + k % 10, 100 + k));
    c.out.text(w.courier_brand(ent));
    c.out.text(w.ent_district(ent).code);
    c.out.end_row();
    Ok(())
}

const STAFF: &[Col] = &[
    req("staff_id", Text),
    req("resident_id", Text),
    req("name", Text),
    req("mobile", Text),
    req("company_credit_code", Text),
    req("hired_date", Date),
    req("credit_score", Int),
];

fn staff(c: &mut Ctx<'_>, s: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let person = w.staff_person(s);
    w.staff_id_into(s, &mut c.a);
    c.out.text(&c.a);
    w.person_id_into(person, &mut c.a)?;
    c.out.text(&c.a);
    w.person_name_into(person, &mut c.a);
    c.out.text(&c.a);
    w.person_mobile_into(person, &mut c.a);
    c.out.text(&c.a);
    w.ent_code_into(w.staff_company(s), &mut c.a)?;
    c.out.text(&c.a);
    c.out.date(w.as_of - c.rng.range(20, 8 * 365) as i32);
    let score = if s == 0 { 58 } else { c.rng.range(62, 100) as i32 };
    c.out.int(score);
    c.out.end_row();
    Ok(())
}

const COURIER_VIOLATION_COLS: &[Col] = &[
    req("violation_id", Text),
    opt("credit_code", Text),
    opt("staff_resident_id", Text),
    req("violation", Text),
    req("decision_date", Date),
    req("event_end_date", Date),
    req("disputed", Bool),
];

fn courier_violations(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (staff, role) = match u {
        0 => (Some(0), Role::Recent),
        1 => (Some(0), Role::Expired),
        _ if c.rng.chance(0.5) => (Some(c.rng.below(STAFF_COUNT)), Role::Normal),
        _ => (None, Role::Normal),
    };
    let (d, disputed) = negative(c, role, 0.0);
    c.id.clear();
    let _ = write!(c.id, "YZ-WG-{:08}", u + 1);
    c.out.text(&c.id);
    match staff {
        Some(s) => {
            c.out.text_opt(None);
            w.person_id_into(w.staff_person(s), &mut c.a)?;
            c.out.text(&c.a);
        }
        None => {
            let ent = w.random_courier(&mut c.rng);
            w.ent_code_into(ent, &mut c.a)?;
            c.out.text(&c.a);
            c.out.text_opt(None);
        }
    }
    c.out.text(c.rng.word(&COURIER_VIOLATIONS));
    c.out.date(d.start);
    c.out.date(d.end.unwrap_or(d.start));
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

const COURIER_COMPLAINT_COLS: &[Col] = &[
    req("complaint_id", Text),
    req("company_credit_code", Text),
    opt("staff_id", Text),
    req("category", Text),
    req("received_date", Date),
    req("resolved", Bool),
];

fn courier_complaints(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let staff = if u == 0 {
        Some(0)
    } else if c.rng.chance(0.6) {
        Some(c.rng.below(STAFF_COUNT))
    } else {
        None
    };
    let company = match staff {
        Some(s) => w.staff_company(s),
        None => w.random_courier(&mut c.rng),
    };
    c.out.textf(format_args!("YZTS{:08}", u + 1));
    w.ent_code_into(company, &mut c.a)?;
    c.out.text(&c.a);
    match staff {
        Some(s) => {
            w.staff_id_into(s, &mut c.a);
            c.out.text(&c.a);
        }
        None => c.out.text_opt(None),
    }
    c.out.text(c.rng.word(&COURIER_COMPLAINTS));
    let age = c.rng.range(1, 2 * 365);
    c.out.date(w.as_of - age as i32);
    c.out.bool(age > 15 && c.rng.chance(0.9));
    c.out.end_row();
    Ok(())
}

// ============================================================ complaints 12315

const COMPLAINTS_12315: &[Col] = &[
    req("complaint_id", Text),
    opt("merchant_credit_code", Text),
    opt("merchant_resident_id", Text),
    opt("shop_id", Text),
    req("complainant_name", Text),
    req("complainant_id", Text),
    req("complainant_mobile", Text),
    req("category", Text),
    req("description", Text),
    req("received_date", Date),
    req("status", Text),
];

fn complaints_12315(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    // (platform, shop) or an offline enterprise.
    let target: Result<(usize, u64), u64> = match u {
        0 => Ok((0, 0)),
        1 => Err(FEATURED_ENT),
        2 => Ok((0, 1)),
        _ if c.rng.chance(0.6) => {
            let p = c.rng.index(2);
            Ok((p, c.rng.below(w.n_shops[p])))
        }
        _ => Err(w.random_ent(&mut c.rng)),
    };
    let received = w.as_of - c.rng.range(1, 3 * 365) as i32;
    c.out.textf(format_args!("TS{}{:08}", year_of(received), u + 1));
    match target {
        Ok((p, k)) => {
            w.owner_keys_into(w.shop_owner(p, k), &mut c.a, &mut c.b, &mut c.c)?;
            c.out.text_opt(non_empty(&c.a));
            c.out.text_opt(non_empty(&c.b));
            w.shop_id_into(p, k, &mut c.d);
            c.out.text(&c.d);
            w.shop_name_into(p, k, &mut c.c);
        }
        Err(ent) => {
            w.ent_code_into(ent, &mut c.a)?;
            c.out.text(&c.a);
            c.out.text_opt(None);
            c.out.text_opt(None);
            c.c.clear();
            w.ent_name_into(ent, &mut c.c);
        }
    }
    let consumer = w.random_consumer(&mut c.rng);
    w.person_name_into(consumer, &mut c.a);
    c.out.text(&c.a);
    w.person_id_into(consumer, &mut c.a)?;
    c.out.text(&c.a);
    w.person_mobile_into(consumer, &mut c.a);
    c.out.text(&c.a);
    c.out.text(c.rng.word(&COMPLAINT_CATEGORIES));
    let bought = date(received - c.rng.range(1, 40) as i32);
    let (product, _) = *c.rng.pick(&PRODUCTS);
    let problem = c.rng.pick(&COMPLAINT_PROBLEMS);
    let place = if target.is_ok() { "在网店" } else { "在" };
    c.out.textf(format_args!(
        "消费者于{}年{}月{}日{place}“{}”购买{product}，{problem}，要求商家退款并赔偿。",
        bought.year(),
        bought.month(),
        bought.day(),
        c.c
    ));
    c.out.date(received);
    let status = if w.as_of - received < 10 { "已受理" } else { c.rng.weighted(&COMPLAINT_STATUS) };
    c.out.text(status);
    c.out.end_row();
    Ok(())
}

// ============================================================ credit platform

const RED_LIST: &[Col] = &[
    req("entry_id", Text),
    req("subject_type", Text),
    opt("credit_code", Text),
    opt("resident_id", Text),
    req("name", Text),
    req("basis", Text),
    req("listing_department", Text),
    req("listed_date", Date),
    req("expiry_date", Date),
];

fn red_list(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let person = c.rng.chance(0.1);
    let mut owner = Owner::Ent(FEATURED_ENT);
    for _ in 0..16 {
        owner = if person { Owner::Person(w.random_seller(&mut c.rng)) } else { Owner::Ent(w.random_ent(&mut c.rng)) };
        if !w.owner_blacklisted(owner) {
            break;
        }
    }
    c.out.textf(format_args!("XY-HON-{:08}", u + 1));
    subject_cols(c, owner, true, true)?;
    let (basis, dept) = if person { RED_LIST_BASES[2] } else { *c.rng.pick(&RED_LIST_BASES) };
    c.out.text(basis);
    c.out.text(dept);
    let listed = w.as_of - c.rng.range(10, 4 * 365) as i32;
    c.out.date(listed);
    c.out.date(listed + 3 * 365);
    c.out.end_row();
    Ok(())
}

const BLACK_LIST: &[Col] = &[
    req("entry_id", Text),
    req("subject_type", Text),
    opt("credit_code", Text),
    opt("resident_id", Text),
    req("name", Text),
    req("basis", Text),
    req("listing_department", Text),
    req("listed_date", Date),
    opt("event_end_date", Date),
    req("disputed", Bool),
    req("severity", Text),
];

/// Black-list entries planted on black-listed enterprises at the public
/// window's boundary days (minimum/maximum periods per severity): unit →
/// (severity, listing day, days until the cause ended, if it did). Each
/// pair is one day inside and one day outside its period.
fn planted_black_entry(w: &World, u: u64) -> Option<(&'static str, i32, Option<i32>)> {
    Some(match u {
        2 => ("serious", w.first_shown(36), None),
        4 => ("serious", w.first_shown(36) - 1, None),
        6 => ("serious", w.first_shown(6), Some(10)),
        8 => ("serious", w.first_shown(6) - 1, Some(10)),
        10 => ("general", w.first_shown(12), None),
        12 => ("general", w.first_shown(12) - 1, None),
        14 => ("general", w.first_shown(3), Some(5)),
        16 => ("general", w.first_shown(3) - 1, Some(5)),
        _ => return None,
    })
}

fn black_list(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let k = (u / 2) as usize;
    let (owner, role) = match u {
        0 => (Owner::Ent(FEATURED_ENT), Role::Ongoing),
        1 => (Owner::Person(FEATURED_PERSON), Role::Disputed),
        _ if u.is_multiple_of(2) => (Owner::Ent(w.black_ents[k]), Role::Normal),
        _ => (Owner::Person(w.black_persons[k]), Role::Normal),
    };
    let (mut d, disputed) = negative(c, role, 0.4);
    let planted = planted_black_entry(w, u);
    if let Some((_, listed, ended)) = planted {
        d = NegDates { start: listed, end: ended.map(|n| listed + n) };
    }
    c.id.clear();
    let _ = write!(c.id, "XY-HMD-{:08}", u + 1);
    c.out.text(&c.id);
    subject_cols(c, owner, true, true)?;
    let (basis, dept) = match owner {
        Owner::Ent(_) if u == 0 => BLACK_LIST_BASES[3],
        Owner::Ent(_) => *c.rng.pick(&BLACK_LIST_BASES),
        // Individuals: court, e-commerce or courier bases.
        Owner::Person(_) => BLACK_LIST_BASES[*c.rng.pick(&[0usize, 3, 4])],
    };
    c.out.text(basis);
    c.out.text(dept);
    c.out.date(d.start);
    c.out.date_opt(d.end);
    c.out.bool(disputed);
    let severity = match planted {
        Some((severity, _, _)) => severity,
        None if u < 2 => "serious",
        None if w.h("black.severity", u) % 100 < 40 => "serious",
        None => "general",
    };
    c.out.text(severity);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

// =============================================================== traceability

const PRODUCTS_COLS: &[Col] = &[
    req("barcode", Text),
    req("batch_no", Text),
    req("product_name", Text),
    req("producer_credit_code", Text),
    req("produced_date", Date),
];

fn products(c: &mut Ctx<'_>, k: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let p = w.product(k);
    w.barcode_into(k, &mut c.a);
    c.out.text(&c.a);
    w.batch_no_into(k, &mut c.a);
    c.out.text(&c.a);
    c.out.text(PRODUCTS[p.kind].0);
    w.ent_code_into(p.producer, &mut c.a)?;
    c.out.text(&c.a);
    c.out.date(p.produced);
    c.out.end_row();
    Ok(())
}

const EVENTS: &[Col] = &[
    req("event_id", Text),
    req("barcode", Text),
    req("batch_no", Text),
    req("event_type", Text),
    req("event_time", Timestamp),
    req("actor", Text),
    req("detail", Text),
];

const EVENT_TYPES: [&str; 6] = ["listed", "sold", "shipped", "signed", "reviewed", "complained"];

fn events(c: &mut Ctx<'_>, k: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let p = w.product(k);
    let len = if k < 3 { 6 } else { c.rng.weighted(&[(1usize, 5), (2, 5), (3, 10), (4, 25), (5, 40), (6, 15)]) };
    w.barcode_into(k, &mut c.a);
    w.batch_no_into(k, &mut c.b);
    // The shop that lists the batch.
    let (platform, shop) = if k < 3 {
        (0, 1)
    } else {
        let platform = c.rng.index(2);
        (platform, c.rng.below(w.n_shops[platform]))
    };
    w.shop_id_into(platform, shop, &mut c.c);
    let courier = w.random_courier(&mut c.rng);
    let (name, price) = PRODUCTS[p.kind];
    let mut t = i64::from(p.produced + c.rng.range(1, 30) as i32) * DAY_MICROS
        + c.rng.range(8, 20) * HOUR_MICROS
        + c.rng.range(0, 3599) * 1_000_000;
    for (step, kind) in EVENT_TYPES.iter().enumerate().take(len) {
        c.counter += 1;
        c.out.textf(format_args!("EV{:010}", c.counter));
        c.out.text(&c.a);
        c.out.text(&c.b);
        c.out.text(kind);
        c.out.timestamp(t);
        match step {
            0 => {
                c.out.text(&c.c);
                c.out.textf(format_args!("上架：{name}，售价{price:.2}元"));
            }
            1 => {
                c.out.text(&c.c);
                let order = c.rng.below(1_000_000_000_000);
                c.out.textf(format_args!("订单号 {order:012}，数量{}", c.rng.range(1, 5)));
            }
            2 => {
                w.ent_name_into(courier, &mut c.d);
                c.out.text(&c.d);
                let waybill = c.rng.below(10_000_000_000_000);
                c.out.textf(format_args!("运单号 {}{waybill:013}", courier_prefix(w.courier_brand(courier))));
            }
            3 => {
                c.out.text(c.rng.word(&["本人签收", "快递柜代收", "驿站代收", "门卫代收"]));
                c.out.text("已签收");
            }
            4 => {
                c.out.text("买家");
                let stars = c.rng.range(1, 5);
                c.out.textf(format_args!("{stars}星：{}", c.rng.pick(&REVIEWS)));
            }
            _ => {
                c.out.text("买家（12315投诉）");
                c.out.textf(format_args!("投诉：{}", c.rng.pick(&COMPLAINT_PROBLEMS)));
            }
        }
        c.out.end_row();
        t += c.rng.range(2, 72) * HOUR_MICROS + c.rng.range(0, 3599) * 1_000_000;
    }
    Ok(())
}

fn courier_prefix(brand: &str) -> &'static str {
    match brand {
        "顺丰" => "SF",
        "中通" => "ZT",
        "圆通" => "YT",
        "申通" => "ST",
        "韵达" => "YD",
        "极兔" => "JT",
        "京东" => "JD",
        _ => "EMS",
    }
}

// ==================================================================== payment

const FRAUD: &[Col] = &[
    req("report_id", Text),
    opt("merchant_credit_code", Text),
    opt("merchant_resident_id", Text),
    req("category", Text),
    req("amount", Float),
    req("reported_date", Date),
    opt("event_end_date", Date),
    req("disputed", Bool),
];

/// A merchant for payment records: black-listed with probability `black`.
fn merchant(c: &mut Ctx<'_>, black: f64) -> Owner {
    let w = c.w;
    let from_black = c.rng.chance(black);
    if c.rng.chance(0.5) {
        Owner::Ent(if from_black { *c.rng.pick(&w.black_ents[1..]) } else { w.random_ent(&mut c.rng) })
    } else {
        Owner::Person(if from_black { *c.rng.pick(&w.black_persons[1..]) } else { w.random_seller(&mut c.rng) })
    }
}

fn fraud_reports(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let (owner, role) = match u {
        0 => (Owner::Ent(FEATURED_ENT), Role::Recent),
        1 => (Owner::Person(FEATURED_PERSON), Role::Disputed),
        2 => (Owner::Person(FEATURED_PERSON), Role::Expired),
        _ => (merchant(c, 0.35), Role::Normal),
    };
    let (d, disputed) = negative(c, role, 0.3);
    c.id.clear();
    let _ = write!(c.id, "ZF-JB-{:08}", u + 1);
    c.out.text(&c.id);
    subject_cols(c, owner, false, false)?;
    c.out.text(c.rng.word(&FRAUD_CATEGORIES));
    let amount = money(&mut c.rng, 100, 800_000, 1) + c.rng.below(100) as f64 / 100.0;
    c.out.float(amount);
    c.out.date(d.start);
    c.out.date_opt(d.end);
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

const MERCHANT_RISK: &[Col] = &[
    opt("merchant_credit_code", Text),
    opt("merchant_resident_id", Text),
    req("risk_level", Text),
    req("flagged_date", Date),
    req("reason", Text),
];

fn merchant_risk(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let owner = match u {
        0 => Owner::Ent(FEATURED_ENT),
        1 => Owner::Person(FEATURED_PERSON),
        _ => merchant(c, 0.25),
    };
    subject_cols(c, owner, false, false)?;
    let level = if u < 2 { "high" } else { c.rng.weighted(&[("low", 50), ("medium", 35), ("high", 15)]) };
    c.out.text(level);
    c.out.date(w.as_of - c.rng.range(1, 2 * 365) as i32);
    c.out.text(c.rng.word(&RISK_REASONS));
    c.out.end_row();
    Ok(())
}

// ================================================================== platforms

const SHOPS: &[Col] = &[
    req("shop_id", Text),
    req("shop_name", Text),
    req("owner_type", Text),
    opt("owner_credit_code", Text),
    opt("owner_resident_id", Text),
    req("owner_name", Text),
    req("owner_mobile", Text),
    req("opened_date", Date),
    req("rating", Float),
    req("status", Text),
    req("real_name_verified", Bool),
];

fn shops<const P: usize>(c: &mut Ctx<'_>, k: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let owner = w.shop_owner(P, k);
    w.shop_id_into(P, k, &mut c.id);
    c.out.text(&c.id);
    w.shop_name_into(P, k, &mut c.a);
    c.out.text(&c.a);
    subject_cols(c, owner, true, true)?;
    let mobile_of = match owner {
        Owner::Ent(i) => w.ent_legal_rep(i),
        Owner::Person(j) => j,
    };
    w.person_mobile_into(mobile_of, &mut c.a);
    c.out.text(&c.a);
    c.out.date(w.shop_opened(P, k));
    let black = w.owner_blacklisted(owner);
    let rating = if black { c.rng.range(15, 38) } else { c.rng.range(35, 50) };
    c.out.float(rating as f64 / 10.0);
    c.out.text(if k < 2 { "营业中" } else { c.rng.weighted(&SHOP_STATUS) });
    // The platform's real-name verification mark (from its own hash).
    c.out.bool(k < 2 || w.h(if P == 0 { "shop.a.verified" } else { "shop.b.verified" }, k) % 100 < 92);
    c.out.end_row();
    if black {
        c.notes.blacklisted_shops.push(c.id.clone());
    }
    Ok(())
}

const PLATFORM_VIOLATION_COLS: &[Col] = &[
    req("violation_id", Text),
    req("shop_id", Text),
    opt("owner_credit_code", Text),
    opt("owner_resident_id", Text),
    req("violation", Text),
    req("decision_date", Date),
    req("event_end_date", Date),
    req("disputed", Bool),
];

fn platform_violations<const P: usize>(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let (k, role) = match (P, u) {
        (0, 0) => (0, Role::Disputed),
        (0, 1) => (1, Role::Expired),
        (0, 2) => (0, Role::Recent),
        (1, 0) => (0, Role::Recent),
        _ if c.rng.chance(0.3) => (*c.rng.pick(&w.black_shop_slots[P]), Role::Normal),
        _ => (c.rng.below(w.n_shops[P]), Role::Normal),
    };
    let (d, disputed) = negative(c, role, 0.0);
    c.id.clear();
    let _ = write!(c.id, "{}-WG-{:08}", if P == 0 { "PA" } else { "PB" }, u + 1);
    c.out.text(&c.id);
    w.shop_id_into(P, k, &mut c.d);
    c.out.text(&c.d);
    subject_cols(c, w.shop_owner(P, k), false, false)?;
    let violation = match role {
        Role::Normal => c.rng.pick(&PLATFORM_VIOLATIONS),
        _ => &PLATFORM_VIOLATIONS[0],
    };
    c.out.text(violation);
    c.out.date(d.start);
    c.out.date(d.end.unwrap_or(d.start));
    c.out.bool(disputed);
    c.out.end_row();
    note(c, role, &d, disputed);
    Ok(())
}

const COMMITMENT_COLS: &[Col] =
    &[req("shop_id", Text), req("commitment", Text), req("signed_date", Date), opt("owner_credit_code", Text)];

fn commitments<const P: usize>(c: &mut Ctx<'_>, u: u64) -> Result<(), DatagenError> {
    let w = c.w;
    let k = if u < 2 { u } else { c.rng.below(w.n_shops[P]) };
    w.shop_id_into(P, k, &mut c.a);
    c.out.text(&c.a);
    c.out.text(c.rng.word(&COMMITMENTS));
    let opened = w.shop_opened(P, k);
    c.out.date(opened + c.rng.below((w.as_of - opened).max(1) as u64) as i32);
    // The shop owner's credit code (none for a natural person).
    w.owner_keys_into(w.shop_owner(P, k), &mut c.a, &mut c.b, &mut c.c)?;
    c.out.text_opt(non_empty(&c.a));
    c.out.end_row();
    Ok(())
}

// ================================================================== registry

/// Sources in manifest order.
pub(crate) const SOURCES: [&str; 10] = [
    "market",
    "court",
    "tax",
    "courier",
    "complaints",
    "credit_platform",
    "traceability",
    "payment",
    "platform_a",
    "platform_b",
];

macro_rules! table {
    ($source:literal, $name:literal, $cols:expr, $units:expr, $emit:expr, $large:literal) => {
        TableDef { source: $source, name: $name, cols: $cols, units: $units, emit: $emit, large: $large }
    };
}

/// Every table, in manifest order.
pub(crate) fn all_tables() -> Vec<TableDef> {
    vec![
        table!("market", "enterprises", ENTERPRISES, |w| w.n_ent, enterprises, true),
        table!("market", "licences", LICENCES, |_| 1200, licences, false),
        table!("market", "penalties", PENALTIES, |w| 1000 * w.scale, penalties, true),
        table!("market", "abnormal_operations", ABNORMAL, |_| 300, abnormal_operations, false),
        table!("court", "dishonest_debtors", DISHONEST, |_| 400, dishonest_debtors, false),
        table!("tax", "credit_ratings", CREDIT_RATINGS, |_| RATED_TAXPAYERS, credit_ratings, false),
        table!("tax", "major_violations", TAX_MAJOR, |_| 250, tax_major_violations, false),
        table!("courier", "companies", COURIER_COMPANIES, |_| COURIER_COUNT, courier_companies, false),
        table!("courier", "staff", STAFF, |_| STAFF_COUNT, staff, false),
        table!("courier", "violations", COURIER_VIOLATION_COLS, |_| 300, courier_violations, false),
        table!("courier", "complaints", COURIER_COMPLAINT_COLS, |_| 400, courier_complaints, false),
        table!("complaints", "complaints", COMPLAINTS_12315, |w| 1000 * w.scale, complaints_12315, true),
        table!("credit_platform", "red_list", RED_LIST, |_| 300, red_list, false),
        table!(
            "credit_platform",
            "black_list",
            BLACK_LIST,
            |w| (w.black_ents.len() + w.black_persons.len()) as u64,
            black_list,
            false
        ),
        table!("traceability", "products", PRODUCTS_COLS, |w| w.n_products, products, true),
        table!("traceability", "events", EVENTS, |w| w.n_products, events, true),
        table!("payment", "fraud_reports", FRAUD, |_| 500, fraud_reports, false),
        table!("payment", "merchant_risk", MERCHANT_RISK, |_| 600, merchant_risk, false),
        table!("platform_a", "shops", SHOPS, |w| w.n_shops[0], shops::<0>, true),
        table!("platform_a", "violations", PLATFORM_VIOLATION_COLS, |_| 400, platform_violations::<0>, false),
        table!("platform_a", "commitments", COMMITMENT_COLS, |_| 500, commitments::<0>, false),
        table!("platform_b", "shops", SHOPS, |w| w.n_shops[1], shops::<1>, true),
        table!("platform_b", "violations", PLATFORM_VIOLATION_COLS, |_| 400, platform_violations::<1>, false),
        table!("platform_b", "commitments", COMMITMENT_COLS, |_| 500, commitments::<1>, false),
    ]
}
