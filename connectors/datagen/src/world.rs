//! The synthetic population: enterprises, people and platform shops, each a
//! pure function of `(seed, index)` so that any table can refer to any
//! subject without the population being held in memory.

use std::collections::HashSet;
use std::fmt::Write as _;

use chrono::{Datelike, Months, NaiveDate};
use creditgate_ident::{credit_code_check_char, resident_id_check_digit};

use crate::DatagenError;
use crate::pools::{
    BIRTH_PLACES, COMPOUND_SURNAMES, COURIER_BRANDS, DISTRICTS, District, ENTERPRISE_STATUS, FEATURED_ENTERPRISE_NAME,
    FEATURED_PERSON_NAME, GIVEN_FEMALE, GIVEN_MALE, INDUSTRIES, MOBILE_PREFIXES, ORG_FORMS, SHOP_KINDS, SHOP_SUFFIXES,
    SURNAMES, TRADE_CHARS,
};
use crate::rng::{Rng, hash3, permute, tag};

/// Index of the featured enterprise.
pub(crate) const FEATURED_ENT: u64 = 0;
/// Index of the featured individual.
pub(crate) const FEATURED_PERSON: u64 = 0;
/// First enterprise index that is a courier company.
pub(crate) const COURIER_FIRST: u64 = 1;
/// Number of courier companies.
pub(crate) const COURIER_COUNT: u64 = 30;
/// Shops per platform whose owner is deliberately drawn from the black list.
pub(crate) const BLACKLISTED_SHOPS_PER_PLATFORM: u64 = 12;
/// Subjects of each kind on the black list.
const BLACK_LIST_PER_KIND: usize = 150;
/// Courier staff (fixed).
pub(crate) const STAFF_COUNT: u64 = 800;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// 31^7: room for the seven free organisation-code characters.
const ORG_SPACE: u64 = 27_512_614_111;
/// Name combinations: 11 place prefixes × 64 × 64 trade chars × 16 industries × 3 forms.
const NAME_SPACE: u64 = 11 * 64 * 64 * 16 * 3;
/// Birth places × birth days (45 years) × sequence numbers.
const BIRTH_DAYS: u64 = 45 * 365;
const PERSON_SPACE: u64 = BIRTH_PLACES.len() as u64 * BIRTH_DAYS * 1000;

/// Days since 1970-01-01 of a date.
pub(crate) fn days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// The date `days` after 1970-01-01 (clamped to chrono's range).
pub(crate) fn date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS).unwrap_or(NaiveDate::MIN)
}

/// Who owns a platform shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// An enterprise (or individual business) by index.
    Ent(u64),
    /// A natural person by index.
    Person(u64),
}

/// Dates of a negative record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NegDates {
    /// Decision / filing / listing date.
    pub start: i32,
    /// When the adverse act or event ended (`None`: still going on).
    pub end: Option<i32>,
}

/// Derived population and the plan shared by every table.
pub(crate) struct World {
    pub seed: u64,
    pub as_of: i32,
    /// Negative records whose event ended before this day are past the
    /// five-year retention period (征信业管理条例 Art. 16).
    pub retention_boundary: i32,
    pub n_ent: u64,
    pub n_person: u64,
    /// People `0..n_seller` are the pool of individual sellers.
    pub n_seller: u64,
    pub n_shops: [u64; 2],
    pub n_products: u64,
    pub scale: u64,
    pub black_ents: Vec<u64>,
    pub black_persons: Vec<u64>,
    black_ent_set: HashSet<u64>,
    black_person_set: HashSet<u64>,
    /// Shops per platform (other than the featured ones) whose owner is
    /// drawn from the black list, sorted.
    pub black_shop_slots: [Vec<u64>; 2],
    org_key: u64,
    name_key: u64,
    person_key: u64,
    mobile_key: u64,
    barcode_key: u64,
}

impl World {
    pub(crate) fn new(seed: u64, scale: u32, as_of: NaiveDate) -> Result<World, DatagenError> {
        let scale = u64::from(scale);
        let boundary = as_of
            .checked_sub_months(Months::new(60))
            .ok_or(DatagenError::InvalidOptions("as_of is too early".into()))?;
        let n_ent = 1000 * scale;
        let n_person = 2000 * scale;
        let n_seller = 1000 * scale;
        let mut w = World {
            seed,
            as_of: days(as_of),
            retention_boundary: days(boundary),
            n_ent,
            n_person,
            n_seller,
            n_shops: [1000 * scale, 800 * scale],
            n_products: 250 * scale,
            scale,
            black_ents: Vec::new(),
            black_persons: Vec::new(),
            black_ent_set: HashSet::new(),
            black_person_set: HashSet::new(),
            black_shop_slots: [Vec::new(), Vec::new()],
            org_key: hash3(seed, tag("org.key"), 0),
            name_key: hash3(seed, tag("name.key"), 0),
            person_key: hash3(seed, tag("person.key"), 0),
            mobile_key: hash3(seed, tag("mobile.key"), 0),
            barcode_key: hash3(seed, tag("barcode.key"), 0),
        };
        let mut rng = Rng::new(seed, "blacklist", 0);
        let mut ents = vec![FEATURED_ENT];
        let mut ent_set: HashSet<u64> = ents.iter().copied().collect();
        while ents.len() < BLACK_LIST_PER_KIND {
            let i = COURIER_FIRST + COURIER_COUNT + rng.below(n_ent - COURIER_FIRST - COURIER_COUNT);
            if ent_set.insert(i) {
                ents.push(i);
            }
        }
        let mut persons = vec![FEATURED_PERSON];
        let mut person_set: HashSet<u64> = persons.iter().copied().collect();
        while persons.len() < BLACK_LIST_PER_KIND {
            let j = rng.below(n_seller);
            if person_set.insert(j) {
                persons.push(j);
            }
        }
        w.black_ents = ents;
        w.black_persons = persons;
        for p in 0..2 {
            let n = w.n_shops[p];
            let mut slots = HashSet::new();
            while (slots.len() as u64) < BLACKLISTED_SHOPS_PER_PLATFORM {
                slots.insert(2 + rng.below(n - 2));
            }
            let mut slots: Vec<u64> = slots.into_iter().collect();
            slots.sort_unstable();
            w.black_shop_slots[p] = slots;
        }
        w.black_ent_set = ent_set;
        w.black_person_set = person_set;
        Ok(w)
    }

    pub(crate) fn h(&self, label: &str, i: u64) -> u64 {
        hash3(self.seed, tag(label), i)
    }

    /// A random stream dedicated to one derivation of one subject.
    pub(crate) fn rng(&self, label: &str, i: u64) -> Rng {
        Rng::new(self.seed, label, i)
    }

    // ----------------------------------------------------------------- dates

    /// Dates of an ordinary negative record: decided within the last eight
    /// years; the event ends up to 400 days later (never today or later),
    /// or is still going on with probability `ongoing`. No end date falls
    /// within three days of the retention boundary.
    pub(crate) fn neg_dates(&self, rng: &mut Rng, ongoing: f64) -> NegDates {
        let mut start = self.as_of - rng.range(20, 8 * 365) as i32;
        if rng.chance(ongoing) {
            return NegDates { start, end: None };
        }
        let mut end = (start + rng.range(0, 400) as i32).min(self.as_of - 1);
        if (end - self.retention_boundary).abs() <= 3 {
            end = self.retention_boundary - 10;
            start = start.min(end);
        }
        NegDates { start, end: Some(end) }
    }

    /// Dates of a negative record that is past retention (ended more than
    /// five years and a month before `as_of`).
    pub(crate) fn expired_dates(&self, rng: &mut Rng) -> NegDates {
        let start = self.retention_boundary - rng.range(60, 900) as i32;
        let end = start + rng.range(0, 29) as i32;
        NegDates { start, end: Some(end) }
    }

    /// Dates of a recent negative record (ended within the last two years).
    pub(crate) fn recent_dates(&self, rng: &mut Rng) -> NegDates {
        let start = self.as_of - rng.range(40, 700) as i32;
        let end = (start + rng.range(0, 30) as i32).min(self.as_of - 1);
        NegDates { start, end: Some(end) }
    }

    /// The first day D from which a publication period of `months` (D +
    /// `months`, as the Civil Code counts months) still includes `as_of`;
    /// the boundary records of the public window are planted around it.
    pub(crate) fn first_shown(&self, months: u32) -> i32 {
        let today = date(self.as_of);
        let end = |d: i32| date(d).checked_add_months(chrono::Months::new(months)).unwrap_or(NaiveDate::MAX);
        let mut d = self.as_of - months as i32 * 31;
        while end(d) < today {
            d += 1;
        }
        d
    }

    /// Whether a record with these dates is past the retention period.
    pub(crate) fn is_expired(&self, d: &NegDates) -> bool {
        d.end.is_some_and(|e| e < self.retention_boundary)
    }

    // ----------------------------------------------------------- enterprises

    /// Whether enterprise `i` is a courier company.
    pub(crate) fn is_courier(&self, i: u64) -> bool {
        (COURIER_FIRST..COURIER_FIRST + COURIER_COUNT).contains(&i)
    }

    /// Whether enterprise `i` is an individual business (个体工商户).
    pub(crate) fn ent_is_individual(&self, i: u64) -> bool {
        i != FEATURED_ENT && !self.is_courier(i) && self.h("ent.indiv", i) % 100 < 25
    }

    /// District of enterprise `i`.
    pub(crate) fn ent_district(&self, i: u64) -> &'static District {
        if i == FEATURED_ENT {
            return &DISTRICTS[0];
        }
        if self.is_courier(i) {
            let k = i - COURIER_FIRST;
            return &DISTRICTS[((k / 8 + k % 8) % 10) as usize];
        }
        &DISTRICTS[(self.h("ent.district", i) % DISTRICTS.len() as u64) as usize]
    }

    /// Writes the credit code of enterprise `i` into `buf` (cleared first).
    pub(crate) fn ent_code_into(&self, i: u64, buf: &mut String) -> Result<(), DatagenError> {
        buf.clear();
        buf.push('9');
        buf.push(if self.ent_is_individual(i) { '2' } else { '1' });
        buf.push_str(self.ent_district(i).code);
        buf.push_str("MA");
        let mut p = permute(i, ORG_SPACE, self.org_key);
        let mut chars = [b'0'; 7];
        for slot in chars.iter_mut().rev() {
            *slot = CHARSET[(p % 31) as usize];
            p /= 31;
        }
        for c in chars {
            buf.push(char::from(c));
        }
        let check = credit_code_check_char(buf)?;
        buf.push(check);
        Ok(())
    }

    /// Name-space position of enterprise `i` (a bijection below `NAME_SPACE`).
    fn ent_name_pos(&self, i: u64) -> u64 {
        permute(i, NAME_SPACE, self.name_key)
    }

    /// Industry index of enterprise `i`.
    pub(crate) fn ent_industry(&self, i: u64) -> usize {
        (self.ent_name_pos(i) / (11 * 64 * 64) % 16) as usize
    }

    /// Writes the registered name of enterprise `i` into `buf`.
    pub(crate) fn ent_name_into(&self, i: u64, buf: &mut String) {
        buf.clear();
        if i == FEATURED_ENT {
            buf.push_str(FEATURED_ENTERPRISE_NAME);
            return;
        }
        if self.is_courier(i) {
            let _ = write!(buf, "青岛{}{}快递服务有限公司", self.ent_district(i).short, self.courier_brand(i));
            return;
        }
        let p = self.ent_name_pos(i);
        let place = (p % 11) as usize;
        let c1 = TRADE_CHARS[(p / 11 % 64) as usize];
        let c2 = TRADE_CHARS[(p / (11 * 64) % 64) as usize];
        let industry = (p / (11 * 64 * 64) % 16) as usize;
        let form = (p / (11 * 64 * 64 * 16) % 3) as usize;
        if self.ent_is_individual(i) {
            let kind = SHOP_KINDS[industry % SHOP_KINDS.len()].0;
            let _ = write!(buf, "{}{c1}{c2}{kind}", self.ent_district(i).name);
        } else {
            buf.push_str("青岛");
            if place > 0 {
                buf.push_str(DISTRICTS[place - 1].short);
            }
            let _ = write!(buf, "{c1}{c2}{}{}", INDUSTRIES[industry].word, ORG_FORMS[form]);
        }
    }

    /// Business scope of enterprise `i`.
    pub(crate) fn ent_scope(&self, i: u64) -> &'static str {
        if self.is_courier(i) {
            "快递服务；国内货物运输代理；道路货物运输（不含危险货物）"
        } else if i == FEATURED_ENT {
            INDUSTRIES[0].scope
        } else if self.ent_is_individual(i) {
            SHOP_KINDS[self.ent_industry(i) % SHOP_KINDS.len()].1
        } else {
            INDUSTRIES[self.ent_industry(i)].scope
        }
    }

    /// Legal representative (or operator) of enterprise `i`, a person index.
    pub(crate) fn ent_legal_rep(&self, i: u64) -> u64 {
        self.h("ent.rep", i) % self.n_person
    }

    /// Registration status of enterprise `i`.
    pub(crate) fn ent_status(&self, i: u64) -> &'static str {
        if i == FEATURED_ENT || self.is_courier(i) {
            return ENTERPRISE_STATUS[0].0;
        }
        self.rng("ent.status", i).weighted(&ENTERPRISE_STATUS)
    }

    /// Writes a street address in the district of enterprise `i`.
    pub(crate) fn ent_address_into(&self, i: u64, buf: &mut String) {
        let d = self.ent_district(i);
        let mut r = self.rng("ent.address", i);
        let (street, road) = *r.pick(&d.streets);
        buf.clear();
        let _ = write!(buf, "山东省青岛市{}{street}{road}{}号", d.name, r.range(1, 388));
        if !self.ent_is_individual(i) && r.chance(0.6) {
            let _ = write!(buf, "{}层{}室", r.range(2, 28), r.range(1, 20) * 100 + r.range(1, 12));
        } else {
            buf.push_str("网点");
        }
    }

    /// Writes the contact phone of enterprise `i` (a Qingdao landline or the
    /// legal representative's mobile).
    pub(crate) fn ent_phone_into(&self, i: u64, buf: &mut String) {
        let h = self.h("ent.phone", i);
        if h.is_multiple_of(2) {
            buf.clear();
            let _ = write!(buf, "0532-8{:07}", (h >> 8) % 10_000_000);
        } else {
            self.person_mobile_into(self.ent_legal_rep(i), buf);
        }
    }

    /// Brand of courier company `i`.
    pub(crate) fn courier_brand(&self, i: u64) -> &'static str {
        COURIER_BRANDS[(i.saturating_sub(COURIER_FIRST) % 8) as usize]
    }

    /// A random enterprise that is neither a courier nor the featured one.
    pub(crate) fn random_ent(&self, rng: &mut Rng) -> u64 {
        let first = COURIER_FIRST + COURIER_COUNT;
        first + rng.below(self.n_ent - first)
    }

    /// A random courier company.
    pub(crate) fn random_courier(&self, rng: &mut Rng) -> u64 {
        COURIER_FIRST + rng.below(COURIER_COUNT)
    }

    // ---------------------------------------------------------------- people

    /// Position of person `j` in the (birth place, birth day, sequence) space.
    fn person_pos(&self, j: u64) -> u64 {
        permute(j, PERSON_SPACE, self.person_key)
    }

    /// Birth date of person `j` (days since epoch): aged 18 to 63 at `as_of`.
    pub(crate) fn person_birth(&self, j: u64) -> i32 {
        let p = self.person_pos(j);
        let day = (p / 1000) % BIRTH_DAYS;
        self.as_of - 18 * 365 - 5 - day as i32
    }

    /// Whether person `j` is male (odd sequence number).
    pub(crate) fn person_is_male(&self, j: u64) -> bool {
        self.person_pos(j) % 2 == 1
    }

    /// Writes the resident ID of person `j` into `buf`.
    pub(crate) fn person_id_into(&self, j: u64, buf: &mut String) -> Result<(), DatagenError> {
        let p = self.person_pos(j);
        let seq = p % 1000;
        let place = BIRTH_PLACES[((p / 1000 / BIRTH_DAYS) % BIRTH_PLACES.len() as u64) as usize];
        let birth = date(self.person_birth(j));
        buf.clear();
        let _ = write!(buf, "{place}{:04}{:02}{:02}{seq:03}", birth.year(), birth.month(), birth.day());
        let check = resident_id_check_digit(buf)?;
        buf.push(check);
        Ok(())
    }

    /// Writes the name of person `j` into `buf`.
    pub(crate) fn person_name_into(&self, j: u64, buf: &mut String) {
        buf.clear();
        if j == FEATURED_PERSON {
            buf.push_str(FEATURED_PERSON_NAME);
            return;
        }
        let mut r = self.rng("person.name", j);
        if r.chance(0.04) {
            buf.push_str(r.word(&COMPOUND_SURNAMES));
        } else {
            // Common surnames more often: pick from a prefix of random length.
            let n = 1 + r.index(SURNAMES.len());
            buf.push_str(SURNAMES[r.index(n)]);
        }
        let given: &[&str] = if self.person_is_male(j) { &GIVEN_MALE } else { &GIVEN_FEMALE };
        buf.push_str(r.word(given));
        if r.chance(0.7) {
            buf.push_str(r.word(given));
        }
    }

    /// Writes the mobile number of person `j` into `buf` (unique per person).
    pub(crate) fn person_mobile_into(&self, j: u64, buf: &mut String) {
        let prefix = MOBILE_PREFIXES[(self.h("person.mobile", j) % MOBILE_PREFIXES.len() as u64) as usize];
        let rest = permute(j, 100_000_000, self.mobile_key);
        buf.clear();
        let _ = write!(buf, "{prefix}{rest:08}");
    }

    /// A random individual seller.
    pub(crate) fn random_seller(&self, rng: &mut Rng) -> u64 {
        rng.below(self.n_seller)
    }

    /// A random consumer (any person who is not courier staff).
    pub(crate) fn random_consumer(&self, rng: &mut Rng) -> u64 {
        rng.below(self.n_person - STAFF_COUNT)
    }

    /// Person index of courier staff member `s`.
    pub(crate) fn staff_person(&self, s: u64) -> u64 {
        self.n_person - 1 - s
    }

    /// Courier company employing staff member `s`.
    pub(crate) fn staff_company(&self, s: u64) -> u64 {
        COURIER_FIRST + self.h("staff.company", s) % COURIER_COUNT
    }

    /// Writes the staff ID of courier staff member `s`.
    pub(crate) fn staff_id_into(&self, s: u64, buf: &mut String) {
        buf.clear();
        let _ = write!(buf, "KD{:07}", 1_000_001 + s);
    }

    // ----------------------------------------------------------- black list

    /// Whether enterprise `i` is on the black list.
    pub(crate) fn ent_blacklisted(&self, i: u64) -> bool {
        self.black_ent_set.contains(&i)
    }

    /// Whether person `j` is on the black list.
    pub(crate) fn person_blacklisted(&self, j: u64) -> bool {
        self.black_person_set.contains(&j)
    }

    /// Whether the owner is on the black list.
    pub(crate) fn owner_blacklisted(&self, o: Owner) -> bool {
        match o {
            Owner::Ent(i) => self.ent_blacklisted(i),
            Owner::Person(j) => self.person_blacklisted(j),
        }
    }

    // ----------------------------------------------------------------- shops

    /// Writes the ID of shop `k` of platform `p` (0 = A, 1 = B).
    pub(crate) fn shop_id_into(&self, p: usize, k: u64, buf: &mut String) {
        buf.clear();
        let (prefix, base) = if p == 0 { ("PA", 10_000_001) } else { ("PB", 20_000_001) };
        let _ = write!(buf, "{prefix}{}", base + k);
    }

    /// Owner of shop `k` of platform `p`.
    pub(crate) fn shop_owner(&self, p: usize, k: u64) -> Owner {
        match (p, k) {
            (0, 0) => return Owner::Person(FEATURED_PERSON),
            (0, 1) | (1, 0) => return Owner::Ent(FEATURED_ENT),
            _ => {}
        }
        let mut r = self.rng(if p == 0 { "shop.a.owner" } else { "shop.b.owner" }, k);
        if let Ok(slot) = self.black_shop_slots[p].binary_search(&k) {
            return if slot % 2 == 0 {
                Owner::Ent(*r.pick(&self.black_ents[1..]))
            } else {
                Owner::Person(*r.pick(&self.black_persons[1..]))
            };
        }
        let want_ent = r.chance(0.4);
        let mut owner = Owner::Ent(FEATURED_ENT);
        for _ in 0..16 {
            owner =
                if want_ent { Owner::Ent(self.random_ent(&mut r)) } else { Owner::Person(self.random_seller(&mut r)) };
            if !self.owner_blacklisted(owner) {
                break;
            }
        }
        owner
    }

    /// Writes the name of shop `k` of platform `p`.
    pub(crate) fn shop_name_into(&self, p: usize, k: u64, buf: &mut String) {
        buf.clear();
        if self.shop_owner(p, k) == Owner::Ent(FEATURED_ENT) {
            buf.push_str(if p == 0 { "澜屿优选官方旗舰店" } else { "澜屿优选生活馆" });
            return;
        }
        let mut r = self.rng(if p == 0 { "shop.a.name" } else { "shop.b.name" }, k);
        let _ = write!(buf, "{}{}{}", r.pick(&TRADE_CHARS), r.pick(&TRADE_CHARS), r.pick(&SHOP_SUFFIXES));
    }

    /// Writes the identifier columns of an owner: (credit code, resident ID)
    /// with exactly one filled, plus the owner's name.
    pub(crate) fn owner_keys_into(
        &self,
        o: Owner,
        code: &mut String,
        id: &mut String,
        name: &mut String,
    ) -> Result<(), DatagenError> {
        match o {
            Owner::Ent(i) => {
                self.ent_code_into(i, code)?;
                id.clear();
                self.ent_name_into(i, name);
            }
            Owner::Person(j) => {
                code.clear();
                self.person_id_into(j, id)?;
                self.person_name_into(j, name);
            }
        }
        Ok(())
    }
}

/// `Some(s)` unless empty.
pub(crate) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// A traceable product batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Product {
    /// Index into [`crate::pools::PRODUCTS`].
    pub kind: usize,
    /// Producer (enterprise index).
    pub producer: u64,
    /// Production date (days since epoch).
    pub produced: i32,
}

impl World {
    /// Opening date of shop `k` of platform `p` (days since epoch).
    pub(crate) fn shop_opened(&self, p: usize, k: u64) -> i32 {
        let mut r = self.rng(if p == 0 { "shop.a.opened" } else { "shop.b.opened" }, k);
        self.as_of - r.range(30, 10 * 365) as i32
    }

    /// Product batch `k`.
    pub(crate) fn product(&self, k: u64) -> Product {
        let mut r = self.rng("product", k);
        let kind = r.index(crate::pools::PRODUCTS.len());
        let producer = if k < 3 { FEATURED_ENT } else { self.random_ent(&mut r) };
        let produced = self.as_of - r.range(60, 3 * 365) as i32;
        Product { kind, producer, produced }
    }

    /// Writes the EAN-13 barcode of product batch `k` (Chinese GS1 prefix 690).
    pub(crate) fn barcode_into(&self, k: u64, buf: &mut String) {
        let body = permute(k, 1_000_000_000, self.barcode_key);
        buf.clear();
        let _ = write!(buf, "690{body:09}");
        let sum: u32 = buf.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
        let check = (10 - sum % 10) % 10;
        let _ = write!(buf, "{check}");
    }

    /// Writes the batch number of product batch `k`.
    pub(crate) fn batch_no_into(&self, k: u64, buf: &mut String) {
        let p = self.product(k);
        let d = date(p.produced);
        buf.clear();
        let _ = write!(buf, "B{:04}{:02}{:02}-{:02}", d.year(), d.month(), d.day(), 1 + k % 12);
    }
}

/// Greatest common divisor.
pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
