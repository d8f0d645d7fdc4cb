//! Column masks: the [`Mask`] spec used in policy files and [`MaskUdfs`],
//! which turns a spec into a DataFusion expression over a column.
//!
//! | spec | input | output |
//! |---|---|---|
//! | `none` | any | the value |
//! | `partial(m,n)` | string | first *m* and last *n* characters kept, `*` per other character |
//! | `resident_id` | string | `partial(6,4)`: `370202********123X` |
//! | `mobile` | string | `partial(3,4)`: `138****5678` |
//! | `chinese_name` | string | `partial(1,0)`: `张*`, `欧阳娜娜` → `欧***` |
//! | `resident_id_strict` | string | `partial(1,2)`, the stricter resident-ID convention: `3***************3X` |
//! | `mobile_prefix` | string | `partial(3,0)`: the carrier prefix only, `138********` |
//! | `name_hidden` | string | a single `*` whatever the name (`张三` and `欧阳娜娜` → `*`): not even its length |
//! | `keyed_hash` | string (other scalars are cast to text first) | 32 lowercase hex characters of HMAC-SHA-256 under the deployment secret |
//! | `null` | any | a NULL of the column's type |
//! | `year_only` | date / timestamp | the calendar year as `Int32` |
//! | `range_bucket(w)` | number | `[lo, hi)` as text, `lo` a multiple of *w* |
//!
//! Characters are Unicode scalar values, not bytes. A value too short to
//! hide anything (*m + n* or fewer characters) is masked entirely, one `*`
//! per character. `chinese_name` applies the plain rule: it does not know
//! compound surnames (`欧阳娜娜` → `欧***`, where a by-hand mask would write
//! `欧阳**`); this never shows more than the convention allows. NULL in gives
//! NULL out for every mask; NaN and infinities give NULL in `range_bucket`.
//! `year_only` on a timestamp with a time zone takes the year in that zone.
//!
//! The stricter kinds exist because a mask that keeps many characters is a
//! pseudonym: `creditgate policy linkage` measures, per principal, how many
//! people share each masked value (k); a column whose k falls below the
//! policy's `[masking] min_k` needs one of them (or `keyed_hash`, or `null`).
//! The keyed-hash key is derived per organisation (or per principal, policy
//! `[masking] keyed_hash_scope`): see [`MaskUdfs::scoped`].

mod kernels;
mod udf;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, ScalarUDF, cast};
use ring::hmac;
use serde::Serialize;

use crate::PolicyError;

pub use kernels::{KEYED_HASH_HEX_LEN, write_keyed_hash, write_partial, write_stars};
pub use udf::MASK_FUNCTION_PREFIX;

/// The list of mask specs, for error messages.
pub const MASK_SPECS: &str = "none, partial(m,n), resident_id, resident_id_strict, mobile, mobile_prefix, \
                               chinese_name, name_hidden, keyed_hash, null, year_only, range_bucket(width)";

/// How a column's values are shown to a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mask {
    /// The raw value.
    None,
    /// Keep the first `keep_first` and last `keep_last` characters.
    Partial {
        /// Characters kept at the start.
        keep_first: u16,
        /// Characters kept at the end.
        keep_last: u16,
    },
    /// Resident ID number: first 6 + last 4 characters.
    ResidentId,
    /// Mobile number: first 3 + last 4 characters.
    Mobile,
    /// Chinese name: first character, `*` for each other one.
    ChineseName,
    /// Resident ID number, stricter: first 1 + last 2 characters.
    ResidentIdStrict,
    /// Mobile number, stricter: the first 3 characters (carrier prefix) only.
    MobilePrefix,
    /// A name shown as a single `*` (its length hidden too).
    NameHidden,
    /// Keyed hash (HMAC-SHA-256 with the deployment secret, 32 hex chars).
    KeyedHash,
    /// Always NULL.
    Null,
    /// Year of a date or timestamp.
    YearOnly,
    /// `[lo, hi)` bucket of the given width for amounts.
    RangeBucket {
        /// Bucket width (> 0).
        width: u64,
    },
}

impl Mask {
    /// Can this mask be applied to a column of `data_type`?
    pub fn applies_to(&self, data_type: &DataType) -> bool {
        match self {
            Mask::None | Mask::Null => true,
            Mask::Partial { .. }
            | Mask::ResidentId
            | Mask::Mobile
            | Mask::ChineseName
            | Mask::ResidentIdStrict
            | Mask::MobilePrefix
            | Mask::NameHidden => udf::is_string(data_type),
            Mask::KeyedHash => {
                udf::is_string(data_type)
                    || udf::is_numeric(data_type)
                    || udf::is_temporal(data_type)
                    || matches!(data_type, DataType::Boolean)
            }
            Mask::YearOnly => udf::is_temporal(data_type),
            Mask::RangeBucket { .. } => udf::is_numeric(data_type),
        }
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::None => f.write_str("none"),
            Mask::Partial { keep_first, keep_last } => {
                write!(f, "partial({keep_first},{keep_last})")
            }
            Mask::ResidentId => f.write_str("resident_id"),
            Mask::Mobile => f.write_str("mobile"),
            Mask::ChineseName => f.write_str("chinese_name"),
            Mask::ResidentIdStrict => f.write_str("resident_id_strict"),
            Mask::MobilePrefix => f.write_str("mobile_prefix"),
            Mask::NameHidden => f.write_str("name_hidden"),
            Mask::KeyedHash => f.write_str("keyed_hash"),
            Mask::Null => f.write_str("null"),
            Mask::YearOnly => f.write_str("year_only"),
            Mask::RangeBucket { width } => write!(f, "range_bucket({width})"),
        }
    }
}

impl Serialize for Mask {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a mask spec string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MaskParseError(String);

/// Parses `name(args)` into the name and its comma-separated arguments.
fn split_call(spec: &str) -> Option<(&str, Vec<&str>)> {
    let open = spec.find('(')?;
    let inner = spec[open + 1..].strip_suffix(')')?;
    Some((spec[..open].trim(), inner.split(',').map(str::trim).collect()))
}

impl FromStr for Mask {
    type Err = MaskParseError;

    fn from_str(spec: &str) -> Result<Mask, MaskParseError> {
        let spec = spec.trim();
        let simple = match spec {
            "none" => Some(Mask::None),
            "resident_id" => Some(Mask::ResidentId),
            "mobile" => Some(Mask::Mobile),
            "chinese_name" => Some(Mask::ChineseName),
            "resident_id_strict" => Some(Mask::ResidentIdStrict),
            "mobile_prefix" => Some(Mask::MobilePrefix),
            "name_hidden" => Some(Mask::NameHidden),
            "keyed_hash" => Some(Mask::KeyedHash),
            "null" => Some(Mask::Null),
            "year_only" => Some(Mask::YearOnly),
            _ => None,
        };
        if let Some(mask) = simple {
            return Ok(mask);
        }
        let unknown = || MaskParseError(format!("unknown mask \"{spec}\" (expected one of {MASK_SPECS})"));
        match split_call(spec) {
            Some(("partial", args)) => match args.as_slice() {
                [m, n] => match (m.parse::<u16>(), n.parse::<u16>()) {
                    (Ok(keep_first), Ok(keep_last)) => Ok(Mask::Partial { keep_first, keep_last }),
                    _ => Err(MaskParseError(format!(
                        "bad mask \"{spec}\": partial(m,n) takes two character counts (0..=65535)"
                    ))),
                },
                _ => Err(MaskParseError(format!("bad mask \"{spec}\": partial takes two arguments, partial(m,n)"))),
            },
            Some(("range_bucket", args)) => match args.as_slice() {
                [w] => match w.parse::<u64>() {
                    Ok(width) if width > 0 => Ok(Mask::RangeBucket { width }),
                    _ => Err(MaskParseError(format!(
                        "bad mask \"{spec}\": range_bucket(width) takes a positive integer width"
                    ))),
                },
                _ => Err(MaskParseError(format!(
                    "bad mask \"{spec}\": range_bucket takes one argument, range_bucket(width)"
                ))),
            },
            _ => Err(unknown()),
        }
    }
}

/// Minimum length of the deployment masking secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Whose key a keyed-hash pseudonym is made with (policy `[masking]
/// keyed_hash_scope`): one caller's pseudonyms never match another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyedHashScope {
    /// One key per organisation: the principals of one organisation share
    /// pseudonyms (the default).
    #[default]
    Organization,
    /// One key per principal.
    Principal,
}

impl KeyedHashScope {
    /// The spelling used in policy files.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyedHashScope::Organization => "organization",
            KeyedHashScope::Principal => "principal",
        }
    }
}

/// The mask functions of one deployment, keyed by its masking secret.
///
/// Build it once at start-up and share it; each caller's views are built
/// with [`MaskUdfs::scoped`], whose keyed hash uses a key derived for the
/// caller's organisation (or the caller itself), so pseudonyms relate the
/// records one caller sees and nobody else's.
pub struct MaskUdfs {
    /// HMAC key of the deployment secret, from which scoped keys are derived.
    derive: hmac::Key,
    keyed_hash: Arc<ScalarUDF>,
    keyed_hash_impl: Arc<udf::KeyedHash>,
    resident_id: Arc<ScalarUDF>,
    resident_id_strict: Arc<ScalarUDF>,
    mobile: Arc<ScalarUDF>,
    mobile_prefix: Arc<ScalarUDF>,
    chinese_name: Arc<ScalarUDF>,
    name_hidden: Arc<ScalarUDF>,
    year_only: Arc<ScalarUDF>,
}

impl fmt::Debug for MaskUdfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskUdfs").finish_non_exhaustive()
    }
}

/// Domain tag of the derivation of scoped keyed-hash keys.
const SCOPE_TAG: &[u8] = b"creditgate keyed-hash scope v1\0";

impl MaskUdfs {
    /// Builds the mask functions from the deployment secret (at least
    /// [`MIN_SECRET_LEN`] bytes; shorter secrets are refused so a
    /// misconfiguration cannot produce guessable pseudonyms).
    pub fn new(secret: &[u8]) -> Result<MaskUdfs, PolicyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(PolicyError::WeakSecret { min: MIN_SECRET_LEN, got: secret.len() });
        }
        let keyed_hash_impl = Arc::new(udf::KeyedHash::new(secret));
        let partial =
            |name: &str, m, n| Arc::new(ScalarUDF::new_from_impl(udf::PartialMask::new(name.to_owned(), m, n)));
        Ok(MaskUdfs {
            derive: hmac::Key::new(hmac::HMAC_SHA256, secret),
            keyed_hash: Arc::new(ScalarUDF::new_from_shared_impl(keyed_hash_impl.clone())),
            keyed_hash_impl,
            resident_id: partial("mask_resident_id", 6, 4),
            resident_id_strict: partial("mask_resident_id_strict", 1, 2),
            mobile: partial("mask_mobile", 3, 4),
            mobile_prefix: partial("mask_mobile_prefix", 3, 0),
            chinese_name: partial("mask_chinese_name", 1, 0),
            name_hidden: Arc::new(ScalarUDF::new_from_impl(udf::Hidden::new())),
            year_only: Arc::new(ScalarUDF::new_from_impl(udf::YearOnly::new())),
        })
    }

    /// The mask functions for one caller: the same functions, the keyed hash
    /// under a key derived from the deployment secret for `scope`'s owner —
    /// the principal's organisation ([`KeyedHashScope::Organization`]) or
    /// the principal itself ([`KeyedHashScope::Principal`]). Deterministic:
    /// the same caller gets the same pseudonyms in every request and after
    /// a restart; two organisations never share one.
    pub fn scoped(&self, scope: KeyedHashScope, principal: &crate::Principal) -> MaskUdfs {
        let owner = match scope {
            KeyedHashScope::Organization => principal.organization.as_str(),
            KeyedHashScope::Principal => principal.name.as_str(),
        };
        let mut message = Vec::with_capacity(SCOPE_TAG.len() + owner.len() + 16);
        message.extend_from_slice(SCOPE_TAG);
        message.extend_from_slice(scope.as_str().as_bytes());
        message.push(0);
        message.extend_from_slice(owner.as_bytes());
        let key = hmac::sign(&self.derive, &message);
        let keyed_hash_impl = Arc::new(udf::KeyedHash::new(key.as_ref()));
        MaskUdfs {
            derive: self.derive.clone(),
            keyed_hash: Arc::new(ScalarUDF::new_from_shared_impl(keyed_hash_impl.clone())),
            keyed_hash_impl,
            resident_id: Arc::clone(&self.resident_id),
            resident_id_strict: Arc::clone(&self.resident_id_strict),
            mobile: Arc::clone(&self.mobile),
            mobile_prefix: Arc::clone(&self.mobile_prefix),
            chinese_name: Arc::clone(&self.chinese_name),
            name_hidden: Arc::clone(&self.name_hidden),
            year_only: Arc::clone(&self.year_only),
        }
    }

    /// The keyed-hash pseudonym of `value`, exactly as the `keyed_hash` mask
    /// of these functions computes it.
    pub fn pseudonym(&self, value: &str) -> String {
        udf::pseudonym(&self.keyed_hash_impl, value)
    }

    /// The masked expression of `column` (of type `data_type`), or `None`
    /// if the mask does not apply to that type.
    pub fn try_expr(&self, mask: &Mask, column: Expr, data_type: &DataType) -> Option<Expr> {
        if !mask.applies_to(data_type) {
            return None;
        }
        let call = |udf: &Arc<ScalarUDF>, arg: Expr| Some(udf.call(vec![arg]));
        match *mask {
            Mask::None => Some(column),
            Mask::Null => Some(typed_null(data_type)),
            Mask::ResidentId => call(&self.resident_id, column),
            Mask::Mobile => call(&self.mobile, column),
            Mask::ChineseName => call(&self.chinese_name, column),
            Mask::ResidentIdStrict => call(&self.resident_id_strict, column),
            Mask::MobilePrefix => call(&self.mobile_prefix, column),
            Mask::NameHidden => call(&self.name_hidden, column),
            Mask::Partial { keep_first, keep_last } => {
                let udf = ScalarUDF::new_from_impl(udf::PartialMask::new(
                    format!("mask_partial_{keep_first}_{keep_last}"),
                    usize::from(keep_first),
                    usize::from(keep_last),
                ));
                Some(udf.call(vec![column]))
            }
            Mask::KeyedHash => {
                let arg = if udf::is_string(data_type) { column } else { cast(column, DataType::Utf8) };
                call(&self.keyed_hash, arg)
            }
            Mask::YearOnly => call(&self.year_only, column),
            Mask::RangeBucket { width } => {
                Some(ScalarUDF::new_from_impl(udf::RangeBucket::new(width)).call(vec![column]))
            }
        }
    }

    /// The masked expression of `column`. Fails closed: if the mask does not
    /// apply to `data_type` the result is a NULL of the column's type (use
    /// [`MaskUdfs::try_expr`] to detect that case; [`crate::secure_view`]
    /// refuses it).
    pub fn expr(&self, mask: &Mask, column: Expr, data_type: &DataType) -> Expr {
        self.try_expr(mask, column, data_type).unwrap_or_else(|| typed_null(data_type))
    }
}

/// A NULL literal of `data_type` (untyped NULL for types without one).
fn typed_null(data_type: &DataType) -> Expr {
    Expr::Literal(ScalarValue::try_from(data_type).unwrap_or(ScalarValue::Null), None)
}

#[cfg(test)]
mod tests;
