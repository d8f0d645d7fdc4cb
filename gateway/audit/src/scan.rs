//! Finding subject identifiers in free text, and the text redactor.
//!
//! The unit of scanning is a *run*: a maximal sequence of ASCII letters and
//! digits (anything else — space, punctuation, `_`, `%`, quotes, non-ASCII —
//! ends a run). A run is checked whole; when it is not an identifier
//! itself, each maximal run of digits inside it (with one trailing `X`/`x`
//! after 17 digits) is checked too, so `id13812345678` or `x370213…1234` are
//! found. Lengths checked:
//!
//! | length | checked as |
//! |---|---|
//! | 11 | mobile number |
//! | 13 | `86` + mobile number |
//! | 15 | first-generation resident ID (hashed in its 18-character form); `0086` + mobile number |
//! | 18 | unified social credit code and resident ID (both, when both validate) |
//!
//! A run longer than 18 characters, with at least 8 digits and not made of
//! hexadecimal digits only (hashes, fingerprints), is also searched for an
//! 18-character credit code or resident ID glued to other characters
//! (`x91350100M000100Y43`).
//!
//! A run that has the *shape* of a credit code or resident ID (15 or 18
//! letters and digits, at least 8 of them digits) but fails its checks, and
//! any run of [`MIN_SUSPICIOUS_DIGITS`] or more digits that is not itself an
//! identifier (`313812345678` holds a mobile number after its first digit),
//! is a near miss: often a typo or a disguise of a real identifier, so
//! personal data too. Digit runs inside this crate's own `subject:<hash>` and
//! `hmac:<digest>` are not near misses, so redacting twice keeps them.
//!
//! Not found: identifiers written with separators (`138-1234-5678`), in
//! full-width digits, or glued inside a run of hexadecimal digits; these do
//! not match a stored identifier either. The SQL normalizer does not rely on
//! this scan to keep values out of its text (it removes every literal).

use std::ops::Range;

use creditgate_ident::{CreditCode, Mobile, ResidentId};

use crate::subject::{SubjectHasher, SubjectKey, is_subject_hash};

/// What precedes a keyed hash or digest this crate writes into text.
const OWN_PREFIXES: [&str; 2] = ["subject:", "hmac:"];

/// Shortest digit run that the normalizer treats as identifier-like even when
/// it validates as nothing (the length of a mobile number).
pub const MIN_SUSPICIOUS_DIGITS: usize = 11;

/// What a stretch of text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HitKind {
    /// Valid identifiers (more than one when an 18-character run is both a
    /// credit code and a resident ID).
    Valid(Vec<SubjectKey>),
    /// Shaped like a credit code or resident ID, but invalid.
    NearMiss,
}

/// One identifier (or near miss) found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Byte range in the scanned text.
    pub range: Range<usize>,
    /// What it is.
    pub kind: HitKind,
}

/// The subject keys a candidate string validates as (empty if none).
fn keys_of(candidate: &str) -> Vec<SubjectKey> {
    let mut keys = Vec::new();
    let b = candidate.as_bytes();
    match b.len() {
        11 => {
            if let Ok(m) = Mobile::parse(candidate) {
                keys.push(SubjectKey::Mobile(m.as_str().to_owned()));
            }
        }
        13 if candidate.starts_with("86") => {
            if let Ok(m) = Mobile::parse(&candidate[2..]) {
                keys.push(SubjectKey::Mobile(m.as_str().to_owned()));
            }
        }
        15 => {
            if let Ok(id) = ResidentId::parse(candidate) {
                keys.push(SubjectKey::ResidentId(id.as_str().to_owned()));
            }
            if candidate.starts_with("0086")
                && let Ok(m) = Mobile::parse(&candidate[4..])
            {
                keys.push(SubjectKey::Mobile(m.as_str().to_owned()));
            }
        }
        18 => {
            if let Ok(code) = CreditCode::parse(candidate) {
                keys.push(SubjectKey::CreditCode(code.as_str().to_owned()));
            }
            if let Ok(id) = ResidentId::parse(candidate) {
                keys.push(SubjectKey::ResidentId(id.as_str().to_owned()));
            }
        }
        _ => {}
    }
    keys
}

/// Whether a run has the shape of a credit code or resident ID.
fn shaped(run: &str) -> bool {
    (run.len() == 15 || run.len() == 18) && run.bytes().filter(u8::is_ascii_digit).count() >= 8
}

/// Maximal runs of ASCII letters and digits, as byte ranges.
pub(crate) fn runs(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        Some(start..i)
    })
}

/// Maximal digit runs inside `run` (offsets relative to the text), each
/// extended by one `X`/`x` after exactly 17 digits.
fn digit_runs(text: &str, run: Range<usize>) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = run.start;
    while i < run.end {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < run.end && b[i].is_ascii_digit() {
            i += 1;
        }
        if i - start == 17 && i < run.end && (b[i] == b'X' || b[i] == b'x') {
            i += 1;
        }
        out.push(start..i);
    }
    out
}

/// Every identifier and near miss in `text`, in order, without overlaps.
pub(crate) fn find(text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for run in runs(text) {
        let whole = &text[run.clone()];
        let keys = keys_of(whole);
        if !keys.is_empty() {
            hits.push(Hit { range: run, kind: HitKind::Valid(keys) });
            continue;
        }
        // Our own `subject:<hash>` / `hmac:<digest>` output: digit runs in
        // a hash are not near misses (so redacting twice keeps the hash), but
        // a valid identifier hidden in hash-shaped text is still found.
        let own_hash = is_subject_hash(whole) && OWN_PREFIXES.iter().any(|p| text[..run.start].ends_with(p));
        let mut inner = Vec::new();
        for d in digit_runs(text, run.clone()) {
            let part = &text[d.clone()];
            let keys = keys_of(part);
            if !keys.is_empty() {
                inner.push(Hit { range: d, kind: HitKind::Valid(keys) });
            } else if (shaped(part) || part.len() >= MIN_SUSPICIOUS_DIGITS) && !own_hash {
                inner.push(Hit { range: d, kind: HitKind::NearMiss });
            }
        }
        if !inner.is_empty() {
            hits.extend(inner);
        } else if shaped(whole) {
            hits.push(Hit { range: run, kind: HitKind::NearMiss });
        } else if whole.len() > 18 && !own_hash && !is_hex(whole) && digit_count(whole) >= 8 {
            hits.extend(glued_windows(text, run));
        }
    }
    hits
}

/// Whether `s` is made of hexadecimal digits only (a hash, a fingerprint).
fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn digit_count(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

/// Credit codes and resident IDs glued to other letters and digits
/// (`x91350100M000100Y43`): every 18-character window of a longer run,
/// left to right, without overlaps.
fn glued_windows(text: &str, run: Range<usize>) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut i = run.start;
    while i + 18 <= run.end {
        let keys: Vec<SubjectKey> =
            keys_of(&text[i..i + 18]).into_iter().filter(|k| !matches!(k, SubjectKey::Mobile(_))).collect();
        if keys.is_empty() {
            i += 1;
        } else {
            hits.push(Hit { range: i..i + 18, kind: HitKind::Valid(keys) });
            i += 18;
        }
    }
    hits
}

/// The valid subject keys in `text`, in order of appearance, without
/// duplicates. Scans as described in the [module docs](self): whole runs of
/// letters and digits, and digit runs inside them.
pub fn subject_keys_in(text: &str) -> Vec<SubjectKey> {
    let mut out: Vec<SubjectKey> = Vec::new();
    for hit in find(text) {
        if let HitKind::Valid(keys) = hit.kind {
            for k in keys {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out
}

/// Whether `text` holds anything identifier-like: a valid identifier, a
/// near miss, or a run of [`MIN_SUSPICIOUS_DIGITS`] or more digits.
pub(crate) fn looks_sensitive(text: &str) -> bool {
    if !find(text).is_empty() {
        return true;
    }
    let mut digits = 0usize;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= MIN_SUSPICIOUS_DIGITS {
                return true;
            }
        } else {
            digits = 0;
        }
    }
    false
}

/// Text for refusal reasons, recorded paths and other free text: every
/// valid unified social credit code, resident ID or mobile number (see the
/// [module docs](self) for how they are found) is replaced by
/// `subject:<keyed hash>`, and every near miss (shaped like a credit code or
/// resident ID but failing its checks) by `<identifier withheld>`.
/// Everything else is kept as it is.
///
/// When a run is both a valid credit code and a valid resident ID, the
/// credit code's hash is written (the text can hold only one); use
/// [`subject_keys_in`] to get both.
pub fn redact_text(text: &str, hasher: &SubjectHasher) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for hit in find(text) {
        out.push_str(&text[last..hit.range.start]);
        match hit.kind {
            HitKind::Valid(keys) => match keys.first() {
                Some(key) => {
                    out.push_str("subject:");
                    out.push_str(&hasher.hash(key));
                }
                None => out.push_str("<identifier withheld>"),
            },
            HitKind::NearMiss => out.push_str("<identifier withheld>"),
        }
        last = hit.range.end;
    }
    out.push_str(&text[last..]);
    out
}
