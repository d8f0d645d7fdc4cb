//! Linkability of masked values: the pure statistics behind `creditgate
//! policy linkage` and the privacy officer's linkage page.
//!
//! A deterministic mask that keeps part of a value is a pseudonym when few
//! people share each masked value. For one column a principal sees masked,
//! [`GroupStats::from_pairs`] takes every (raw value, masked value) pair and
//! counts, over *distinct raw values* (people, not rows: a person listed
//! twice is one person):
//!
//! - `values`: distinct raw values; `groups`: distinct masked values;
//! - `unique`: raw values whose masked value no other raw value has (the
//!   masked value identifies them), and [`GroupStats::unique_share`];
//! - `k`: the smallest number of raw values sharing one masked value
//!   (k-anonymity of the column under its mask).
//!
//! The same function over tuples gives the k of a combination of masked
//! columns; [`matching`] counts the masked values two columns have in common
//! (a masked column against another dataset's column under the same mask, or
//! against the principal's raw values of another dataset passed through the
//! mask). The live computation (streaming the columns from the federation
//! through the gateway's mask functions) is in the ops crate; this module
//! only counts, and holds the report's shape and its table.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::Hash;

use serde::Serialize;

/// Group sizes of one masked column (or combination of columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GroupStats {
    /// Distinct raw values with a masked value (people).
    pub values: usize,
    /// Distinct masked values (groups).
    pub groups: usize,
    /// Raw values alone in their group: their masked value identifies them.
    pub unique: usize,
    /// The smallest group: how many raw values share the rarest masked
    /// value (0 when there are no values).
    pub k: usize,
}

impl GroupStats {
    /// Counts `(raw, masked)` pairs (one per row; repeated pairs count once).
    /// The mask must be a function of the raw value, as every mask is.
    pub fn from_pairs<R: Hash + Eq, M: Hash + Eq>(pairs: impl IntoIterator<Item = (R, M)>) -> GroupStats {
        let mut members: HashMap<M, HashSet<R>> = HashMap::new();
        for (raw, masked) in pairs {
            members.entry(masked).or_default().insert(raw);
        }
        let mut stats = GroupStats { groups: members.len(), ..GroupStats::default() };
        for set in members.values() {
            stats.values += set.len();
            if set.len() == 1 {
                stats.unique += 1;
            }
            stats.k = if stats.k == 0 { set.len() } else { stats.k.min(set.len()) };
        }
        stats
    }

    /// Share of the raw values whose masked value is unique (0 to 1; 0 when
    /// there are no values).
    pub fn unique_share(&self) -> f64 {
        if self.values == 0 {
            return 0.0;
        }
        // Counts of a demo or production table fit f64 exactly.
        #[allow(clippy::cast_precision_loss)]
        let share = self.unique as f64 / self.values as f64;
        share
    }

    /// Is `k` below `min_k` (a column with no values never is)?
    pub fn below(&self, min_k: u32) -> bool {
        self.values > 0 && self.k < usize::try_from(min_k).unwrap_or(usize::MAX)
    }
}

/// How many distinct values of `masked` also occur in `other`.
pub fn matching<M: Hash + Eq>(masked: &HashSet<M>, other: &HashSet<M>) -> usize {
    let (small, large) = if masked.len() <= other.len() { (masked, other) } else { (other, masked) };
    small.iter().filter(|v| large.contains(*v)).count()
}

// ---------------------------------------------------------------------------
// The report.

/// How a principal can match a masked column with a column of another dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The other column is shown under the same mask: equal masked domains.
    SameMask,
    /// The other column is shown raw to the principal: its values passed
    /// through this column's mask match this column's masked values.
    MaskedAgainstRaw,
}

/// One column of another dataset a masked column can be matched with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMatch {
    /// `source.table` of the other dataset.
    pub dataset: String,
    /// The other column.
    pub column: String,
    /// Its mask for this principal.
    pub mask: String,
    /// Same mask, or raw values passed through this column's mask.
    pub kind: MatchKind,
    /// Distinct masked values of this column found in the other one.
    pub matching_values: usize,
}

/// The k of a column combined with the other masked quasi-identifiers of
/// its dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Combination {
    /// The other columns (masked, not keyed-hash, of the same dataset).
    pub with: Vec<String>,
    /// Group sizes of the combined masked values.
    #[serde(flatten)]
    pub stats: GroupStats,
    /// Share of combined raw values that are unique.
    pub unique_share: f64,
    /// k below the policy's `min_k` (a warning: the report fails on the
    /// column's own k).
    pub below_min_k: bool,
}

/// One column a principal sees masked or pseudonymized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnLinkage {
    /// `source.table`.
    pub dataset: String,
    /// The column.
    pub column: String,
    /// Its class (`personal`, `sensitive`).
    pub class: String,
    /// Its mask for this principal.
    pub mask: String,
    /// May the principal use it to relate records (keyed hash, or
    /// `relate_masked_values`)?
    pub may_link: bool,
    /// Rows of the dataset the principal sees (its row policy applied).
    pub rows: usize,
    /// Group sizes of the masked values.
    #[serde(flatten)]
    pub stats: GroupStats,
    /// Share of raw values whose masked value is unique.
    pub unique_share: f64,
    /// The combination with the other masked quasi-identifiers of the
    /// dataset the principal sees; `None` when it sees no other.
    pub combination: Option<Combination>,
    /// Columns of other datasets it can be matched with (with at least one
    /// matching value), most matches first.
    pub matches: Vec<ColumnMatch>,
    /// k below `min_k` on a column the principal may not link: the report fails.
    pub below_min_k: bool,
}

/// The linkability of everything one principal sees masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrincipalLinkage {
    /// Principal name.
    pub principal: String,
    /// Its organisation.
    pub organization: String,
    /// Its role.
    pub role: String,
    /// Its masked or pseudonymized columns, by dataset and column.
    pub columns: Vec<ColumnLinkage>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkageReport {
    /// The policy's `[masking] min_k`.
    pub min_k: u32,
    /// The policy's `[masking] relate_masked_values`.
    pub relate_masked_values: bool,
    /// The policy's `[masking] keyed_hash_scope`.
    pub keyed_hash_scope: String,
    /// The day the row policies were applied for.
    pub as_of: String,
    /// Every principal with at least one masked column.
    pub principals: Vec<PrincipalLinkage>,
    /// Datasets granted to someone whose source did not answer (not
    /// measured; the report fails).
    pub unavailable: Vec<String>,
    /// Datasets granted to someone that no connector of this gateway serves
    /// (nobody reads them here: not measured, not a failure).
    #[serde(default)]
    pub not_served: Vec<String>,
    /// Columns below `min_k` that may not be linked, as `principal:dataset.column`.
    pub failures: Vec<String>,
    /// No failures (and nothing unavailable).
    pub passed: bool,
}

fn share(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Display width of `text` on a terminal: CJK and full-width characters take two cells.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let c = u32::from(c);
            let wide = (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFE30..=0xFE4F).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c);
            if wide { 2 } else { 1 }
        })
        .sum()
}

fn pad(out: &mut String, text: &str, cells: usize) {
    out.push_str(text);
    for _ in width(text)..cells {
        out.push(' ');
    }
}

impl LinkageReport {
    /// The report as a table per principal, headings in Chinese and English,
    /// names as they are in the policy. Lines below `min_k` start with `!`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "可链接性报告 Linkability report — min_k = {}, relate_masked_values = {}, keyed_hash_scope = {}, as of {}",
            self.min_k, self.relate_masked_values, self.keyed_hash_scope, self.as_of
        );
        let headings = [
            "数据集.字段 dataset.column",
            "掩码 mask",
            "可关联 may link",
            "人数 values",
            "唯一 unique",
            "k",
            "组合 k combined",
            "可匹配 matches",
        ];
        for principal in &self.principals {
            let _ = writeln!(
                out,
                "\n主体 principal: {} ({}, {})",
                principal.principal, principal.organization, principal.role
            );
            let rows: Vec<[String; 8]> = principal
                .columns
                .iter()
                .map(|c| {
                    let combined = match &c.combination {
                        Some(comb) => format!(
                            "{}{} (+{})",
                            if comb.below_min_k { "!" } else { "" },
                            comb.stats.k,
                            comb.with.join("+")
                        ),
                        None => "-".to_string(),
                    };
                    let matches = if c.matches.is_empty() {
                        "-".to_string()
                    } else {
                        c.matches
                            .iter()
                            .map(|m| {
                                let how = match m.kind {
                                    MatchKind::SameMask => "=",
                                    MatchKind::MaskedAgainstRaw => "~raw",
                                };
                                format!("{}.{}{how}:{}", m.dataset, m.column, m.matching_values)
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    [
                        format!("{}{}.{}", if c.below_min_k { "! " } else { "  " }, c.dataset, c.column),
                        c.mask.clone(),
                        if c.may_link { "是 yes".to_string() } else { "否 no".to_string() },
                        c.stats.values.to_string(),
                        share(c.unique_share),
                        c.stats.k.to_string(),
                        combined,
                        matches,
                    ]
                })
                .collect();
            let mut cells = headings.map(width);
            cells[0] += 2;
            for row in &rows {
                for (i, cell) in row.iter().enumerate().take(7) {
                    cells[i] = cells[i].max(width(cell));
                }
            }
            let mut line = String::from("  ");
            for (i, heading) in headings.iter().enumerate() {
                if i == 7 {
                    line.push_str(heading);
                } else {
                    pad(&mut line, heading, cells[i] + 2);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            for row in rows {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i == 7 {
                        line.push_str(cell);
                    } else {
                        pad(&mut line, cell, cells[i] + 2);
                    }
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        if !self.unavailable.is_empty() {
            let _ = writeln!(
                out,
                "\n未测量（数据源不可用）not measured (source unavailable): {}",
                self.unavailable.join(", ")
            );
        }
        if !self.not_served.is_empty() {
            let _ = writeln!(
                out,
                "\n未接入（本网关无连接器提供，无人可读）not served by any connector of this gateway: {}",
                self.not_served.join(", ")
            );
        }
        if self.failures.is_empty() {
            let _ = writeln!(out, "\n通过 passed: every column a principal may not link has k ≥ {}", self.min_k);
        } else {
            let _ = writeln!(
                out,
                "\n未通过 FAILED: {} column(s) a principal may not link have k < {}: {}",
                self.failures.len(),
                self.min_k,
                self.failures.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        let stats = GroupStats::from_pairs([("a", "x"), ("b", "x"), ("c", "y"), ("c", "y")]);
        assert_eq!(stats, GroupStats { values: 3, groups: 2, unique: 1, k: 1 });
        assert!((stats.unique_share() - 1.0 / 3.0).abs() < 1e-9);
        assert!(stats.below(2));
        assert!(!stats.below(1));
        let empty = GroupStats::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(empty, GroupStats::default());
        assert!(!empty.below(5));
        let a: HashSet<_> = ["x", "y", "z"].into_iter().collect();
        let b: HashSet<_> = ["y", "z", "w", "v"].into_iter().collect();
        assert_eq!(matching(&a, &b), 2);
    }

    #[test]
    fn widths_count_cjk_as_two_cells() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("张三"), 4);
        assert_eq!(width("主体 principal"), 14);
    }
}
