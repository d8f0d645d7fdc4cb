//! Chinese subject identifiers for creditgate.
//!
//! Every query that names a subject goes through this crate first, so a bad
//! identifier is refused with a message that says which rule failed, before
//! any source is contacted. It validates, exactly per the national standards:
//!
//! * [`CreditCode`]: the 18-character unified social credit code
//!   (统一社会信用代码, GB 32100-2015), with its MOD 31 check character;
//! * [`ResidentId`]: the resident identity card number
//!   (居民身份证号码, GB 11643-1999), with its ISO 7064 MOD 11-2 check digit
//!   and a real, non-future birth date; 15-digit first-generation numbers are
//!   upgraded to 18 characters;
//! * [`Mobile`]: a mainland mobile number (11 digits, `1` then 3–9), also
//!   checked by [`is_valid_mobile`]. A mobile number is personal data that
//!   appears in queries and logs, not a subject key of the federation.
//!
//! [`Subject`] and [`SubjectKind`] tie the two subject identifier kinds to the
//! column names the federation uses (`credit_code`, `resident_id`).
//!
//! Error messages never repeat the whole identifier (a resident ID is
//! personal data); they name the kind of identifier, the rule, and where
//! useful the position and offending character.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Local, NaiveDate};
use serde::{Deserialize, Serialize};

/// The 31 symbols of a unified social credit code, in value order
/// (GB 32100-2015: digits and capital letters without I, O, Z, S, V).
pub const CREDIT_CODE_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1–17 of a unified social credit code (3^(i−1) mod 31).
pub const CREDIT_CODE_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Weights of positions 1–17 of a resident ID (ISO 7064 MOD 11-2).
pub const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check digit of a resident ID indexed by the weighted sum modulo 11.
const RESIDENT_ID_CHECK: &[u8; 11] = b"10X98765432";

/// Rule text quoted in messages about a credit code character.
const CREDIT_CODE_CHARSET_RULE: &str = "GB 32100-2015 uses 0-9 and A-Y without I, O, Z, S, V";

/// Rule text quoted in messages about a resident ID character.
const RESIDENT_ID_DIGIT_RULE: &str = "GB 11643-1999 uses digits 0-9, with X allowed only as the last (check) character";

/// Rule text quoted in messages about a 15-digit resident ID character.
const RESIDENT_ID_15_RULE: &str = "a 15-digit first-generation number has digits only";

/// The two kinds of subject identifier the federation knows.
///
/// Serialised in snake case (`credit_code`, `resident_id`), which is also the
/// column name used for the identifier in every source ([`Self::field_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// An organisation, identified by its unified social credit code.
    CreditCode,
    /// A natural person, identified by their resident ID number.
    ResidentId,
}

impl SubjectKind {
    /// The column name that holds this kind of identifier in the sources.
    pub fn field_name(self) -> &'static str {
        match self {
            SubjectKind::CreditCode => "credit_code",
            SubjectKind::ResidentId => "resident_id",
        }
    }

    /// Human-readable name of the identifier kind, as used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            SubjectKind::CreditCode => "unified social credit code",
            SubjectKind::ResidentId => "resident ID",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why an identifier was refused.
///
/// Each message starts with the identifier kind and names the rule that
/// failed; none contains the whole identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    /// The identifier has the wrong number of characters.
    #[error("{kind}: must be {expected}, got {got}")]
    Length {
        /// Which identifier kind was being parsed.
        kind: SubjectKind,
        /// What the standard requires, in words ("18 characters").
        expected: &'static str,
        /// How many characters were given (after trimming whitespace).
        got: usize,
    },
    /// A character outside the identifier's character set.
    #[error("{kind}: character '{ch}' at position {position} is not allowed ({rule})")]
    Character {
        /// Which identifier kind was being parsed.
        kind: SubjectKind,
        /// The offending character.
        ch: char,
        /// 1-based position of the offending character.
        position: usize,
        /// The character-set rule, in words.
        rule: &'static str,
    },
    /// The check character does not match the first 17 characters.
    #[error("{kind}: {}", check_message(*.kind))]
    CheckCharacter {
        /// Which identifier kind was being parsed.
        kind: SubjectKind,
    },
    /// The birth date of a resident ID is not a calendar date.
    #[error("resident ID: birth date {date} is not a real date")]
    BirthDateInvalid {
        /// The eight birth-date digits (YYYYMMDD) as given.
        date: String,
    },
    /// The birth date of a resident ID lies after today.
    #[error("resident ID: birth date {date} is in the future")]
    BirthDateInFuture {
        /// The birth date as YYYYMMDD.
        date: String,
    },
    /// A mobile number with the wrong number of characters.
    #[error("mobile number: must be 11 digits, got {got} characters")]
    MobileLength {
        /// How many characters were given (after trimming whitespace).
        got: usize,
    },
    /// A mobile number with a character that is not an ASCII digit.
    #[error("mobile number: character '{ch}' at position {position} is not allowed (digits 0-9 only)")]
    MobileCharacter {
        /// The offending character.
        ch: char,
        /// 1-based position of the offending character.
        position: usize,
    },
    /// A mobile number outside the mainland numbering plan.
    #[error("mobile number: {MOBILE_PREFIX_RULE}")]
    MobilePrefix,
}

/// Rule text quoted in messages about the first two digits of a mobile number.
const MOBILE_PREFIX_RULE: &str = "must start with 1 followed by a digit 3-9 (mainland numbering plan)";

fn check_message(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::CreditCode => "check character is wrong (GB 32100-2015, MOD 31)",
        SubjectKind::ResidentId => "check digit is wrong (GB 11643-1999, ISO 7064 MOD 11-2)",
    }
}

/// Value of a credit-code symbol (its index in [`CREDIT_CODE_CHARSET`]).
fn credit_code_value(c: char) -> Option<u32> {
    CREDIT_CODE_CHARSET.find(c).and_then(|i| u32::try_from(i).ok())
}

/// Upper-cases and validates the characters of a (partial) credit code.
fn normalise_credit_chars(s: &str) -> Result<String, IdentError> {
    let mut out = String::with_capacity(18);
    for (i, c) in s.chars().enumerate() {
        let up = c.to_ascii_uppercase();
        if credit_code_value(up).is_none() {
            return Err(IdentError::Character {
                kind: SubjectKind::CreditCode,
                ch: c,
                position: i + 1,
                rule: CREDIT_CODE_CHARSET_RULE,
            });
        }
        out.push(up);
    }
    Ok(out)
}

/// Computes the check character (position 18) of a unified social credit
/// code from its first 17 characters (GB 32100-2015).
///
/// Lowercase letters are accepted. Fails if `first17` is not 17 characters
/// from [`CREDIT_CODE_CHARSET`].
pub fn credit_code_check_char(first17: &str) -> Result<char, IdentError> {
    let len = first17.chars().count();
    if len != 17 {
        return Err(IdentError::Length {
            kind: SubjectKind::CreditCode,
            expected: "17 characters before the check character",
            got: len,
        });
    }
    let mut sum = 0u32;
    for (i, c) in first17.chars().enumerate() {
        let value = credit_code_value(c.to_ascii_uppercase()).ok_or(IdentError::Character {
            kind: SubjectKind::CreditCode,
            ch: c,
            position: i + 1,
            rule: CREDIT_CODE_CHARSET_RULE,
        })?;
        sum += value * CREDIT_CODE_WEIGHTS[i];
    }
    let index = (31 - sum % 31) % 31;
    Ok(char::from(CREDIT_CODE_CHARSET.as_bytes()[index as usize]))
}

/// A valid unified social credit code (统一社会信用代码, GB 32100-2015).
///
/// Always 18 upper-case characters from [`CREDIT_CODE_CHARSET`]. A value
/// built by [`CreditCode::parse`] or [`CreditCode::complete`] also has a
/// correct check character; only [`CreditCode::parse_lenient`] can produce
/// one that does not (and says so).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

impl CreditCode {
    /// Parses a credit code: surrounding whitespace is trimmed, lowercase
    /// letters are upper-cased, then length, character set and check
    /// character are verified.
    pub fn parse(s: &str) -> Result<CreditCode, IdentError> {
        let (code, warning) = Self::parse_lenient(s)?;
        match warning {
            Some(err) => Err(err),
            None => Ok(code),
        }
    }

    /// "Warn, don't reject" parsing for imported data.
    ///
    /// Shape errors (length, character set) still fail. A wrong check
    /// character is returned as a warning next to the code, because some
    /// codes issued in early pilot regions fail the check. Lookups should use
    /// [`CreditCode::parse`].
    pub fn parse_lenient(s: &str) -> Result<(CreditCode, Option<IdentError>), IdentError> {
        let s = s.trim();
        let len = s.chars().count();
        if len != 18 {
            return Err(IdentError::Length { kind: SubjectKind::CreditCode, expected: "18 characters", got: len });
        }
        let code = normalise_credit_chars(s)?;
        let expected = credit_code_check_char(&code[..17])?;
        let warning =
            (!code.ends_with(expected)).then_some(IdentError::CheckCharacter { kind: SubjectKind::CreditCode });
        Ok((CreditCode(code), warning))
    }

    /// Builds a credit code from its first 17 characters by appending the
    /// check character.
    pub fn complete(first17: &str) -> Result<CreditCode, IdentError> {
        let check = credit_code_check_char(first17)?;
        let mut code = normalise_credit_chars(first17)?;
        code.push(check);
        Ok(CreditCode(code))
    }

    /// The code as an 18-character string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The administrative division code (positions 3–8), e.g. `370202`.
    pub fn division_code(&self) -> &str {
        &self.0[2..8]
    }

    /// Whether the code is an individual business's (个体工商户: registration
    /// authority `9`, market regulation, and entity type `2`, GB 32100-2015):
    /// a natural person trades under it.
    pub fn is_individual_business(&self) -> bool {
        self.0.starts_with("92")
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CreditCode {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CreditCode {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CreditCode> for String {
    fn from(code: CreditCode) -> String {
        code.0
    }
}

impl AsRef<str> for CreditCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Computes the check character (position 18) of a resident ID from its
/// first 17 digits (GB 11643-1999, ISO 7064 MOD 11-2). Returns a digit or `X`.
pub fn resident_id_check_digit(first17: &str) -> Result<char, IdentError> {
    let len = first17.chars().count();
    if len != 17 {
        return Err(IdentError::Length {
            kind: SubjectKind::ResidentId,
            expected: "17 digits before the check digit",
            got: len,
        });
    }
    let mut sum = 0u32;
    for (i, c) in first17.chars().enumerate() {
        let digit = c.to_digit(10).ok_or(IdentError::Character {
            kind: SubjectKind::ResidentId,
            ch: c,
            position: i + 1,
            rule: RESIDENT_ID_DIGIT_RULE,
        })?;
        sum += digit * RESIDENT_ID_WEIGHTS[i];
    }
    Ok(char::from(RESIDENT_ID_CHECK[(sum % 11) as usize]))
}

/// A valid 18-character resident identity card number
/// (居民身份证号码, GB 11643-1999).
///
/// The check digit is correct, a trailing `x` is normalised to `X`, and the
/// birth date is a real date that was not in the future when parsed.
///
/// `Debug` masks the number (first 6 and last 4 characters kept), so a
/// stray `{:?}` in a log line does not leak it; `Display` and
/// [`ResidentId::as_str`] give the full number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId {
    id: String,
    birth_date: NaiveDate,
}

impl ResidentId {
    /// Parses a resident ID, using today's local date for the "birth date not
    /// in the future" rule. See [`ResidentId::parse_at`].
    pub fn parse(s: &str) -> Result<ResidentId, IdentError> {
        Self::parse_at(s, Local::now().date_naive())
    }

    /// Parses a resident ID as of `today`.
    ///
    /// Surrounding whitespace is trimmed. Accepts 18 characters (17 digits
    /// and a check digit, `x` or `X` allowed last) or a 15-digit
    /// first-generation number, which is upgraded by inserting `19` before
    /// the two-digit birth year and appending the computed check digit.
    pub fn parse_at(s: &str, today: NaiveDate) -> Result<ResidentId, IdentError> {
        let s = s.trim();
        let len = s.chars().count();
        match len {
            18 => {
                let mut id = String::with_capacity(18);
                for (i, c) in s.chars().enumerate() {
                    let ok = c.is_ascii_digit() || (i == 17 && (c == 'x' || c == 'X'));
                    if !ok {
                        return Err(IdentError::Character {
                            kind: SubjectKind::ResidentId,
                            ch: c,
                            position: i + 1,
                            rule: RESIDENT_ID_DIGIT_RULE,
                        });
                    }
                    id.push(c.to_ascii_uppercase());
                }
                let check = resident_id_check_digit(&id[..17])?;
                if !id.ends_with(check) {
                    return Err(IdentError::CheckCharacter { kind: SubjectKind::ResidentId });
                }
                Self::with_birth_date(id, today)
            }
            15 => {
                if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
                    return Err(IdentError::Character {
                        kind: SubjectKind::ResidentId,
                        ch: c,
                        position: i + 1,
                        rule: RESIDENT_ID_15_RULE,
                    });
                }
                let mut id = String::with_capacity(18);
                id.push_str(&s[..6]);
                id.push_str("19");
                id.push_str(&s[6..]);
                let check = resident_id_check_digit(&id)?;
                id.push(check);
                Self::with_birth_date(id, today)
            }
            got => Err(IdentError::Length {
                kind: SubjectKind::ResidentId,
                expected: "18 characters (or 15 digits for a first-generation number)",
                got,
            }),
        }
    }

    /// Builds a resident ID from its first 17 digits by appending the check
    /// digit; the birth date is checked against today's local date.
    pub fn complete(first17: &str) -> Result<ResidentId, IdentError> {
        Self::complete_at(first17, Local::now().date_naive())
    }

    /// Like [`ResidentId::complete`], checking the birth date against `today`.
    pub fn complete_at(first17: &str, today: NaiveDate) -> Result<ResidentId, IdentError> {
        let check = resident_id_check_digit(first17)?;
        let mut id = String::with_capacity(18);
        id.push_str(first17);
        id.push(check);
        Self::with_birth_date(id, today)
    }

    /// Validates the birth date of an 18-character ID whose characters and
    /// check digit are already known to be right.
    fn with_birth_date(id: String, today: NaiveDate) -> Result<ResidentId, IdentError> {
        let digits = &id[6..14];
        let invalid = || IdentError::BirthDateInvalid { date: digits.to_owned() };
        let year: i32 = digits[..4].parse().map_err(|_| invalid())?;
        let month: u32 = digits[4..6].parse().map_err(|_| invalid())?;
        let day: u32 = digits[6..].parse().map_err(|_| invalid())?;
        let birth_date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(invalid)?;
        if birth_date > today {
            return Err(IdentError::BirthDateInFuture { date: digits.to_owned() });
        }
        Ok(ResidentId { id, birth_date })
    }

    /// The 18-character number.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Date of birth (positions 7–14).
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// Whether the holder is male (odd sequence code, position 17).
    pub fn is_male(&self) -> bool {
        self.id.as_bytes()[16] % 2 == 1
    }

    /// The address code of the place of registration (positions 1–6).
    pub fn address_code(&self) -> &str {
        &self.id[..6]
    }

    /// Age in whole years on `on`.
    pub fn age_on(&self, on: NaiveDate) -> i32 {
        let b = self.birth_date;
        let mut age = on.year() - b.year();
        if (on.month(), on.day()) < (b.month(), b.day()) {
            age -= 1;
        }
        age
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId(\"{}********{}\")", &self.id[..6], &self.id[14..])
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for ResidentId {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for ResidentId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl Serialize for ResidentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for ResidentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ResidentId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is a mainland mobile number: 11 digits, starting with `1`,
/// second digit 3–9. No trimming is done (see [`Mobile::parse`], which trims).
pub fn is_valid_mobile(s: &str) -> bool {
    s.len() == s.trim().len() && Mobile::parse(s).is_ok()
}

/// A mainland mobile number: 11 ASCII digits, the first `1`, the second 3–9.
///
/// There is no check digit, so any number of this shape is accepted.
/// `Debug` masks the middle four digits (`138****5678`); `Display` and
/// [`Mobile::as_str`] give the whole number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mobile(String);

impl Mobile {
    /// Parses a mobile number: surrounding whitespace is trimmed, then the
    /// length (11), the character set (digits) and the prefix (`1`, then 3–9)
    /// are checked, in that order.
    pub fn parse(s: &str) -> Result<Mobile, IdentError> {
        let s = s.trim();
        let got = s.chars().count();
        if got != 11 {
            return Err(IdentError::MobileLength { got });
        }
        if let Some((i, ch)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(IdentError::MobileCharacter { ch, position: i + 1 });
        }
        let b = s.as_bytes();
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(IdentError::MobilePrefix);
        }
        Ok(Mobile(s.to_owned()))
    }

    /// The number as 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mobile(\"{}****{}\")", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Mobile {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Mobile {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Mobile> for String {
    fn from(m: Mobile) -> String {
        m.0
    }
}

impl AsRef<str> for Mobile {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A validated subject: an enterprise (or other organisation) or an
/// individual.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An organisation, by unified social credit code.
    Enterprise(CreditCode),
    /// A natural person, by resident ID.
    Individual(ResidentId),
}

impl Subject {
    /// Parses `s` as the identifier kind `kind` (see [`CreditCode::parse`]
    /// and [`ResidentId::parse`]).
    pub fn parse(kind: SubjectKind, s: &str) -> Result<Subject, IdentError> {
        match kind {
            SubjectKind::CreditCode => CreditCode::parse(s).map(Subject::Enterprise),
            SubjectKind::ResidentId => ResidentId::parse(s).map(Subject::Individual),
        }
    }

    /// The kind of identifier this subject carries.
    pub fn kind(&self) -> SubjectKind {
        match self {
            Subject::Enterprise(_) => SubjectKind::CreditCode,
            Subject::Individual(_) => SubjectKind::ResidentId,
        }
    }

    /// The identifier as a string.
    pub fn as_str(&self) -> &str {
        match self {
            Subject::Enterprise(code) => code.as_str(),
            Subject::Individual(id) => id.as_str(),
        }
    }
}

pub mod names;
pub use names::{DatasetName, NameError, NameKind, SourceName, is_dataset_name, is_identifier};

#[cfg(test)]
mod tests;
