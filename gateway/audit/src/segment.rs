//! Segment files (`audit-<first seq, 20 digits>-<YYYYMMDD>.jsonl`) and line reading.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::AuditError;

/// Prefix of segment file names.
pub const SEGMENT_PREFIX: &str = "audit-";
/// Suffix of segment file names.
pub const SEGMENT_SUFFIX: &str = ".jsonl";

/// A segment file found in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// Full path.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// First sequence number written to it (from the name).
    pub first_seq: u64,
    /// UTC day it was opened for (from the name).
    pub day: NaiveDate,
}

/// The file name of a segment starting at `first_seq` on `day`.
pub(crate) fn segment_name(first_seq: u64, day: NaiveDate) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}-{}{SEGMENT_SUFFIX}", day.format("%Y%m%d"))
}

fn parse_segment_name(name: &str) -> Option<(u64, NaiveDate)> {
    let middle = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, day) = middle.split_once('-')?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((seq.parse().ok()?, NaiveDate::parse_from_str(day, "%Y%m%d").ok()?))
}

/// Segment files in `dir`, oldest (lowest first seq) first. Files named
/// `audit-*.jsonl` that do not follow the naming scheme are returned in
/// `unknown`.
pub(crate) fn list_segments(dir: &Path) -> Result<(Vec<SegmentInfo>, Vec<String>), AuditError> {
    let mut segments = Vec::new();
    let mut unknown = Vec::new();
    for entry in fs::read_dir(dir).map_err(AuditError::io("list", dir))? {
        let entry = entry.map_err(AuditError::io("list", dir))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !name.starts_with(SEGMENT_PREFIX) || !name.ends_with(SEGMENT_SUFFIX) {
            continue;
        }
        match parse_segment_name(&name) {
            Some((first_seq, day)) => segments.push(SegmentInfo { path: entry.path(), name, first_seq, day }),
            None => unknown.push(name),
        }
    }
    segments.sort_by(|a, b| a.first_seq.cmp(&b.first_seq).then_with(|| a.name.cmp(&b.name)));
    unknown.sort();
    Ok((segments, unknown))
}

/// One line of a JSONL file.
#[derive(Debug, Clone)]
pub(crate) struct RawLine {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line start.
    pub offset: u64,
    /// The bytes without the newline.
    pub bytes: Vec<u8>,
    /// Whether a newline ended it.
    pub terminated: bool,
}

/// Splits a file's contents into lines.
pub(crate) fn split_lines(data: &[u8]) -> Vec<RawLine> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut number = 1u64;
    while start < data.len() {
        let (end, terminated) = match data[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, true),
            None => (data.len(), false),
        };
        out.push(RawLine { number, offset: start as u64, bytes: data[start..end].to_vec(), terminated });
        number += 1;
        start = end + 1;
    }
    out
}

/// Reads a whole file and splits it into lines.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<RawLine>, AuditError> {
    let data = fs::read(path).map_err(AuditError::io("read", path))?;
    Ok(split_lines(&data))
}

/// Maps a failed write of the workspace's one atomic write to [`AuditError`].
pub(crate) fn write_error(
    creditgate_files::WriteError { step, path, source }: creditgate_files::WriteError,
) -> AuditError {
    AuditError::io(step, path)(source)
}

/// fsyncs a directory so that created, renamed or removed entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    creditgate_files::sync_dir(dir).map_err(write_error)
}

/// Writes `dir/name` atomically and durably, readable by its owner only.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), AuditError> {
    use creditgate_files::{Access, Existing};
    creditgate_files::write_atomic(&dir.join(name), bytes, Access::Private, Existing::Replace).map_err(write_error)
}
