//! Per-value masking kernels, written against [`std::fmt::Write`] so the
//! same code fills an Arrow string builder in the hot path (no per-row
//! allocation) and a `String` in tests.

use std::fmt::{self, Write};

use ring::hmac;

/// Length in hex characters of a keyed-hash pseudonym (128 bits).
pub const KEYED_HASH_HEX_LEN: usize = 32;

const STARS: &str = "********************************************************************************";

/// Writes `count` mask characters (`*`).
pub fn write_stars<W: Write>(out: &mut W, mut count: usize) -> fmt::Result {
    while count > 0 {
        let n = count.min(STARS.len());
        out.write_str(&STARS[..n])?;
        count -= n;
    }
    Ok(())
}

/// Keeps the first `keep_first` and the last `keep_last` characters
/// (Unicode scalar values, not bytes) of `value` and replaces every other
/// character by one `*`.
///
/// When the value is too short to hide anything (`chars <= keep_first +
/// keep_last`), every character is replaced: a short value is not shown in
/// clear just because the mask cannot hide its middle.
pub fn write_partial<W: Write>(out: &mut W, value: &str, keep_first: usize, keep_last: usize) -> fmt::Result {
    if value.is_ascii() {
        // Identifiers and phone numbers: byte offsets are character offsets.
        let len = value.len();
        if len <= keep_first.saturating_add(keep_last) {
            return write_stars(out, len);
        }
        out.write_str(&value[..keep_first])?;
        write_stars(out, len - keep_first - keep_last)?;
        return out.write_str(&value[len - keep_last..]);
    }
    let len = value.chars().count();
    if len <= keep_first.saturating_add(keep_last) {
        return write_stars(out, len);
    }
    let head_end = value.char_indices().nth(keep_first).map_or(value.len(), |(i, _)| i);
    let tail_start = if keep_last == 0 {
        value.len()
    } else {
        value.char_indices().nth(len - keep_last).map_or(value.len(), |(i, _)| i)
    };
    out.write_str(&value[..head_end])?;
    write_stars(out, len - keep_first - keep_last)?;
    out.write_str(&value[tail_start..])
}

/// HMAC-SHA-256 of the UTF-8 bytes of `value` under `key`, as lowercase hex
/// truncated to [`KEYED_HASH_HEX_LEN`] characters, written into a stack
/// buffer.
pub fn keyed_hash_hex(key: &hmac::Key, value: &[u8]) -> [u8; KEYED_HASH_HEX_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let tag = hmac::sign(key, value);
    let mut buf = [0u8; KEYED_HASH_HEX_LEN];
    for (i, byte) in tag.as_ref().iter().take(KEYED_HASH_HEX_LEN / 2).enumerate() {
        buf[2 * i] = HEX[usize::from(byte >> 4)];
        buf[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    buf
}

/// Writes the keyed-hash pseudonym of `value`.
pub fn write_keyed_hash<W: Write>(out: &mut W, key: &hmac::Key, value: &str) -> fmt::Result {
    let buf = keyed_hash_hex(key, value.as_bytes());
    // Hex digits are ASCII: this cannot fail.
    out.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
}

/// Writes the bucket `[lo, hi)` of width `width` containing integer `value`.
pub fn write_int_bucket<W: Write>(out: &mut W, value: i128, width: u64) -> fmt::Result {
    let w = i128::from(width);
    let lo = value.div_euclid(w) * w;
    write!(out, "[{lo}, {})", lo + w)
}

/// Writes the bucket `[lo, hi)` of width `width` containing `value`.
/// Returns `Ok(false)` (nothing written) for NaN and infinities.
pub fn write_float_bucket<W: Write>(out: &mut W, value: f64, width: u64) -> Result<bool, fmt::Error> {
    if !value.is_finite() {
        return Ok(false);
    }
    // Widths are integers; amounts beyond 2^53 lose precision, which only
    // makes the bucket coarser, never narrower.
    #[allow(clippy::cast_precision_loss)]
    let w = width as f64;
    let lo = (value / w).floor() * w;
    write!(out, "[{lo:.0}, {:.0})", lo + w)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(s: &str, m: usize, n: usize) -> String {
        let mut out = String::new();
        write_partial(&mut out, s, m, n).expect("write to String");
        out
    }

    #[test]
    fn partial_examples() {
        assert_eq!(partial("370202199001011234", 6, 4), "370202********1234");
        assert_eq!(partial("13812345678", 3, 4), "138****5678");
        assert_eq!(partial("张三", 1, 0), "张*");
        assert_eq!(partial("欧阳娜娜", 1, 0), "欧***");
        assert_eq!(partial("张", 1, 0), "*");
        assert_eq!(partial("1234567", 3, 4), "*******");
        assert_eq!(partial("", 3, 4), "");
        assert_eq!(partial("青岛市市南区香港中路", 3, 2), "青岛市*****中路");
        assert_eq!(partial("abc", 0, 0), "***");
        assert_eq!(partial(&"x".repeat(200), 0, 0), "*".repeat(200));
        // Mixed ASCII and CJK goes by characters, not bytes.
        assert_eq!(partial("A栋1203室", 1, 1), "A*****室");
        assert_eq!(partial("ab", 1, 1), "**");
    }

    #[test]
    fn buckets() {
        let mut s = String::new();
        write_int_bucket(&mut s, 150_000, 100_000).expect("write");
        assert_eq!(s, "[100000, 200000)");
        s.clear();
        write_int_bucket(&mut s, -5, 10).expect("write");
        assert_eq!(s, "[-10, 0)");
        s.clear();
        assert!(write_float_bucket(&mut s, 199_999.99, 100_000).expect("write"));
        assert_eq!(s, "[100000, 200000)");
        s.clear();
        assert!(!write_float_bucket(&mut s, f64::NAN, 10).expect("write"));
        assert!(s.is_empty());
    }
}
