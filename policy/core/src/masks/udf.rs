//! The mask functions as DataFusion scalar UDFs.
//!
//! Every UDF here is `Volatility::Immutable` and deliberately implements
//! neither `simplify`, nor `preimage`, nor a non-default placement: any of
//! those would let the optimizer rewrite `mask(c) = 'x'` into a predicate on
//! the raw column (see PITFALLS.md, "Privacy in the plan").

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::kernels::cast::cast;
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::common::{ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use ring::hmac;

use super::kernels;

/// Prefix of the names of all mask functions.
pub const MASK_FUNCTION_PREFIX: &str = "mask_";

const STRING_TYPES: [DataType; 3] = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];

/// Is `data_type` a string type the string masks accept?
pub(crate) fn is_string(data_type: &DataType) -> bool {
    STRING_TYPES.contains(data_type)
}

/// Is `data_type` a date or timestamp (`year_only`)?
pub(crate) fn is_temporal(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _))
}

/// Is `data_type` a number `range_bucket` accepts?
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
    )
}

/// Runs an array kernel on the single argument, scalar or array.
fn apply_unary(
    args: ScalarFunctionArgs,
    name: &str,
    kernel: impl Fn(&ArrayRef) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let [arg] = <[ColumnarValue; 1]>::try_from(args.args)
        .map_err(|a| exec_datafusion_err!("{name} takes one argument, got {}", a.len()))?;
    match arg {
        ColumnarValue::Array(array) => Ok(ColumnarValue::Array(kernel(&array)?)),
        ColumnarValue::Scalar(scalar) => {
            let array = scalar.to_array_of_size(1)?;
            let out = kernel(&array)?;
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        }
    }
}

fn write_failed(_: fmt::Error) -> datafusion::error::DataFusionError {
    exec_datafusion_err!("mask function could not write its output")
}

/// Maps every non-null string of `array` through `f`, which writes the masked
/// value into the (single, per-batch) builder; NULL stays NULL.
fn map_strings(array: &ArrayRef, mut f: impl FnMut(&mut StringBuilder, &str) -> fmt::Result) -> Result<ArrayRef> {
    fn run<'a>(
        values: impl Iterator<Item = Option<&'a str>>,
        len: usize,
        data_capacity: usize,
        f: &mut impl FnMut(&mut StringBuilder, &str) -> fmt::Result,
    ) -> Result<ArrayRef> {
        let mut builder = StringBuilder::with_capacity(len, data_capacity);
        for value in values {
            match value {
                Some(s) => {
                    f(&mut builder, s).map_err(write_failed)?;
                    builder.append_value("");
                }
                None => builder.append_null(),
            }
        }
        Ok(Arc::new(builder.finish()))
    }
    let len = array.len();
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            run(a.iter(), len, a.value_data().len(), &mut f)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            run(a.iter(), len, a.value_data().len(), &mut f)
        }
        DataType::Utf8View => run(array.as_string_view().iter(), len, len * 16, &mut f),
        other => exec_err!("string mask applied to a column of type {other}"),
    }
}

/// `partial(m,n)`, `resident_id`, `mobile` and `chinese_name`: keep the first
/// `keep_first` and last `keep_last` characters, `*` for each other one.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PartialMask {
    name: String,
    keep_first: usize,
    keep_last: usize,
    signature: Signature,
}

impl PartialMask {
    /// A partial mask with the given function name.
    pub(crate) fn new(name: String, keep_first: usize, keep_last: usize) -> Self {
        Self {
            name,
            keep_first,
            keep_last,
            signature: Signature::uniform(1, STRING_TYPES.to_vec(), Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PartialMask {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_string(t) => Ok(DataType::Utf8),
            _ => plan_err!("{} takes one string argument, got {arg_types:?}", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        apply_unary(args, &self.name, |array| {
            map_strings(array, |out, s| kernels::write_partial(out, s, self.keep_first, self.keep_last))
        })
    }
}

/// `name_hidden`: a single `*` for every non-null value (its length hidden too).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Hidden {
    signature: Signature,
}

impl Hidden {
    pub(crate) fn new() -> Self {
        Self { signature: Signature::uniform(1, STRING_TYPES.to_vec(), Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Hidden {
    fn name(&self) -> &str {
        "mask_name_hidden"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_string(t) => Ok(DataType::Utf8),
            _ => plan_err!("mask_name_hidden takes one string argument, got {arg_types:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        apply_unary(args, "mask_name_hidden", |array| map_strings(array, |out, _| kernels::write_stars(out, 1)))
    }
}

/// `keyed_hash`: HMAC-SHA-256 under the caller's scoped key (see
/// [`super::MaskUdfs::scoped`]), 32 hex characters.
pub(crate) struct KeyedHash {
    key: hmac::Key,
    /// SHA-256 of a domain tag and the secret: identifies the key for
    /// equality/hashing of the UDF without exposing it.
    key_id: [u8; 32],
    signature: Signature,
}

impl KeyedHash {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"creditgate mask key id\0");
        ctx.update(secret);
        let mut key_id = [0u8; 32];
        key_id.copy_from_slice(ctx.finish().as_ref());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            key_id,
            signature: Signature::uniform(1, STRING_TYPES.to_vec(), Volatility::Immutable),
        }
    }

    pub(crate) fn key(&self) -> &hmac::Key {
        &self.key
    }
}

impl fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHash").finish_non_exhaustive()
    }
}

impl PartialEq for KeyedHash {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}

impl Eq for KeyedHash {}

impl Hash for KeyedHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_id.hash(state);
    }
}

impl ScalarUDFImpl for KeyedHash {
    fn name(&self) -> &str {
        "mask_keyed_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_string(t) => Ok(DataType::Utf8),
            _ => plan_err!("mask_keyed_hash takes one string argument, got {arg_types:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        apply_unary(args, "mask_keyed_hash", |array| {
            map_strings(array, |out, s| kernels::write_keyed_hash(out, &self.key, s))
        })
    }
}

/// `year_only`: the calendar year (Int32) of a date or timestamp.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct YearOnly {
    signature: Signature,
}

impl YearOnly {
    pub(crate) fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for YearOnly {
    fn name(&self) -> &str {
        "mask_year_only"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_temporal(t) => Ok(DataType::Int32),
            _ => plan_err!("mask_year_only takes one date or timestamp, got {arg_types:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        apply_unary(args, "mask_year_only", |array| {
            if !is_temporal(array.data_type()) {
                return exec_err!("mask_year_only applied to {}", array.data_type());
            }
            Ok(date_part(array.as_ref(), DatePart::Year)?)
        })
    }
}

/// `range_bucket(width)`: `[lo, hi)` as Utf8, `lo` a multiple of `width`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RangeBucket {
    name: String,
    width: u64,
    signature: Signature,
}

impl RangeBucket {
    pub(crate) fn new(width: u64) -> Self {
        Self { name: format!("mask_range_bucket_{width}"), width, signature: Signature::any(1, Volatility::Immutable) }
    }

    fn bucket(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let len = array.len();
        let mut builder = StringBuilder::with_capacity(len, len * 20);
        match array.data_type() {
            DataType::UInt64 => {
                for v in array.as_primitive::<UInt64Type>() {
                    match v {
                        Some(v) => {
                            kernels::write_int_bucket(&mut builder, i128::from(v), self.width).map_err(write_failed)?;
                            builder.append_value("");
                        }
                        None => builder.append_null(),
                    }
                }
            }
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                let ints = cast(array, &DataType::Int64)?;
                for v in ints.as_primitive::<Int64Type>() {
                    match v {
                        Some(v) => {
                            kernels::write_int_bucket(&mut builder, i128::from(v), self.width).map_err(write_failed)?;
                            builder.append_value("");
                        }
                        None => builder.append_null(),
                    }
                }
            }
            t if is_numeric(t) => {
                let floats = cast(array, &DataType::Float64)?;
                for v in floats.as_primitive::<Float64Type>() {
                    match v {
                        Some(v) => {
                            if kernels::write_float_bucket(&mut builder, v, self.width).map_err(write_failed)? {
                                builder.append_value("");
                            } else {
                                builder.append_null();
                            }
                        }
                        None => builder.append_null(),
                    }
                }
            }
            other => return exec_err!("{} applied to {other}", self.name),
        }
        Ok(Arc::new(builder.finish()))
    }
}

impl ScalarUDFImpl for RangeBucket {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_numeric(t) => Ok(DataType::Utf8),
            _ => plan_err!("{} takes one number, got {arg_types:?}", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        apply_unary(args, &self.name, |array| self.bucket(array))
    }
}

/// Writes `value`'s pseudonym into a fresh `String` (for audit records and
/// tests; the UDF itself never allocates per row).
pub(crate) fn pseudonym(udf: &KeyedHash, value: &str) -> String {
    let mut out = String::with_capacity(kernels::KEYED_HASH_HEX_LEN);
    // Writing to a String cannot fail.
    let _ = kernels::write_keyed_hash(&mut out, udf.key(), value);
    out
}
