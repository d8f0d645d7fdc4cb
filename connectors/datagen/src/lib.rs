//! Deterministic synthetic credit-information federation for creditgate
//! demos, tests and benchmarks.
//!
//! [`generate`] writes ten sources as Parquet files (`DIR/<source>/<table>.parquet`,
//! Snappy-compressed, plain `Utf8` text, `Date32` dates, microsecond
//! timestamps without time zone) plus `DIR/manifest.json` describing them:
//! market regulation, court, tax, courier regulation, 12315 complaints, the
//! public credit platform, product traceability, a payment institution and
//! two e-commerce platforms. Subjects (enterprises and individual sellers)
//! are shared between sources, so joins across sources find the same
//! subject; every identifier passes the checks of [`creditgate_ident`].
//!
//! The output is a pure function of `(seed, scale, as_of)`: the same options
//! give byte-identical files, whatever the number of threads. All dates are
//! relative to `as_of`, so "expired" (event ended more than five years before
//! `as_of`, 征信业管理条例 Art. 16) means the same thing in every run.
//! [`Featured`] names subjects and records that demos and tests rely on.
//!
//! Scale: at `scale = 1` the large tables (enterprises, penalties, 12315
//! complaints, traceability products and events, platform shops) have
//! 800–1,100 rows each; `scale = N` multiplies them by `N`. The other tables
//! keep their size.

#![forbid(unsafe_code)]

pub mod load;
mod pools;
mod rng;
mod sink;
mod tables;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::sink::{BATCH_ROWS, TableFile};
use crate::tables::{Ctx, Notes, TableDef};
use crate::world::World;

/// Seed used when none is given.
pub const DEFAULT_SEED: u64 = 20261128;

/// Largest accepted `scale` (10,000 → about ten million rows per large table).
pub const MAX_SCALE: u32 = 10_000;

/// Name of the manifest file written next to the sources.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The largest fine that counts as a low fine in the generated penalties
/// (a province's standard under SAMR Order 45 Art. 13; the demo's public
/// window uses it too).
pub const LOW_FINE_MAX: u64 = 10_000;

/// Options of [`generate`].
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Output directory (created if missing; existing files are replaced).
    pub dir: PathBuf,
    /// Size multiplier of the large tables, 1..=[`MAX_SCALE`].
    pub scale: u32,
    /// Random seed ([`DEFAULT_SEED`] by default).
    pub seed: u64,
    /// Reference date: every date in the data set is relative to it.
    pub as_of: NaiveDate,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

impl GenOptions {
    /// Options with scale 1, the default seed and no progress bar.
    pub fn new(dir: impl Into<PathBuf>, as_of: NaiveDate) -> GenOptions {
        GenOptions { dir: dir.into(), scale: 1, seed: DEFAULT_SEED, as_of, progress: false }
    }
}

/// What [`generate`] wrote; also stored as `DIR/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Reference date of the data set.
    pub as_of: NaiveDate,
    /// Scale it was generated at.
    pub scale: u32,
    /// Seed it was generated with.
    pub seed: u64,
    /// Sources, in a fixed order.
    pub sources: Vec<SourceManifest>,
    /// Subjects and records for demos and tests.
    pub featured: Featured,
}

impl Manifest {
    /// The entry of table `table` of source `source`, if any.
    pub fn table(&self, source: &str, table: &str) -> Option<&TableManifest> {
        self.sources.iter().find(|s| s.name == source).and_then(|s| s.tables.iter().find(|t| t.name == table))
    }
}

/// One source (one department's database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceManifest {
    /// Source name, e.g. `market`.
    pub name: String,
    /// Its tables.
    pub tables: Vec<TableManifest>,
}

/// One table file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableManifest {
    /// Table name, e.g. `enterprises`.
    pub name: String,
    /// Path relative to the output directory, e.g. `market/enterprises.parquet`.
    pub file: String,
    /// Number of rows.
    pub rows: u64,
    /// Column names in file order.
    pub columns: Vec<String>,
}

/// Subjects and records the demo and the tests use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Featured {
    /// An enterprise present in every source but courier: market (enterprise,
    /// licence, penalties, abnormal operations), court dishonest list, tax
    /// (ratings and major violations), 12315 complaints, credit platform
    /// black list, traceability producer, payment (fraud report, risk flag)
    /// and a shop on both platforms.
    pub enterprise_credit_code: String,
    /// Registered name of the featured enterprise (unique in the data set).
    pub enterprise_name: String,
    /// An individual seller: platform A shop owner, court dishonest list,
    /// credit platform black list, payment fraud reports and risk flag, 12315
    /// complaint target, platform A violations.
    pub individual_resident_id: String,
    /// Name of the featured individual (unique in the data set).
    pub individual_name: String,
    /// Every platform shop (both platforms) whose owner is on the black list.
    pub blacklisted_shop_ids: Vec<String>,
    /// A courier staff member with violations and complaints.
    pub courier_staff_resident_id: String,
    /// Negative records whose event ended more than five years before
    /// `as_of`: all of those about the featured subjects, plus the first
    /// three of each negative table (a sample, not every such record).
    pub expired_negative_record_ids: Vec<String>,
    /// Disputed negative records: all of those about the featured subjects,
    /// plus the first three of each negative table (a sample).
    pub disputed_record_ids: Vec<String>,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    /// The options cannot be used.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing or reading Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The manifest could not be encoded or decoded.
    #[error("manifest {}: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A generated identifier failed validation (a generator bug).
    #[error("generated identifier is invalid: {0}")]
    Ident(#[from] creditgate_ident::IdentError),
    /// A generator broke an internal rule (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DatagenError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DatagenError {
        DatagenError::Io { path: path.to_path_buf(), source }
    }
}

/// Result of writing one table.
struct TableResult {
    rows: u64,
    notes: Notes,
}

/// Generates the federation into `opts.dir` and writes `manifest.json`.
///
/// Tables are written in parallel (one thread per core), each to a temporary
/// file renamed into place when complete; the manifest is written last, the
/// same way, so a directory with a manifest is complete.
pub fn generate(opts: &GenOptions) -> Result<Manifest, DatagenError> {
    if opts.scale == 0 || opts.scale > MAX_SCALE {
        return Err(DatagenError::InvalidOptions(format!(
            "scale must be between 1 and {MAX_SCALE}, got {}",
            opts.scale
        )));
    }
    let started = Instant::now();
    let world = World::new(opts.seed, opts.scale, opts.as_of)?;
    let defs = tables::all_tables();

    let total_units: u64 = defs.iter().map(|d| (d.units)(&world)).sum();
    let bar = if opts.progress {
        let bar = ProgressBar::with_draw_target(Some(total_units), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };

    // Large tables first so the threads finish together.
    let mut order: Vec<usize> = (0..defs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(if defs[i].large { 1 } else { 0 }));
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<TableResult, DatagenError>>>> =
        Mutex::new((0..defs.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1).min(defs.len());

    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let slot = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&idx) = order.get(slot) else { break };
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let def = &defs[idx];
                        let result = write_table(&world, def, &opts.dir, &bar, &abort);
                        if result.is_err() {
                            abort.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut guard) = results.lock() {
                            guard[idx] = Some(result);
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            if handle.join().is_err() {
                abort.store(true, Ordering::Relaxed);
            }
        }
    });
    bar.finish_and_clear();

    let results = results.into_inner().map_err(|_| DatagenError::Internal("a table writer panicked".into()))?;

    let mut sources: Vec<SourceManifest> =
        tables::SOURCES.iter().map(|s| SourceManifest { name: (*s).to_owned(), tables: Vec::new() }).collect();
    let mut expired = Vec::new();
    let mut disputed = Vec::new();
    let mut blacklisted = Vec::new();
    for (def, result) in defs.iter().zip(results) {
        let result =
            result.ok_or_else(|| DatagenError::Internal(format!("{}.{} was not written", def.source, def.name)))??;
        let source = sources
            .iter_mut()
            .find(|s| s.name == def.source)
            .ok_or_else(|| DatagenError::Internal(format!("unknown source {}", def.source)))?;
        source.tables.push(TableManifest {
            name: def.name.to_owned(),
            file: format!("{}/{}.parquet", def.source, def.name),
            rows: result.rows,
            columns: def.cols.iter().map(|c| c.name.to_owned()).collect(),
        });
        expired.extend(result.notes.expired);
        disputed.extend(result.notes.disputed);
        blacklisted.extend(result.notes.blacklisted_shops);
    }

    let mut code = String::new();
    let mut name = String::new();
    let mut person_id = String::new();
    let mut person_name = String::new();
    let mut staff_id = String::new();
    world.ent_code_into(world::FEATURED_ENT, &mut code)?;
    world.ent_name_into(world::FEATURED_ENT, &mut name);
    world.person_id_into(world::FEATURED_PERSON, &mut person_id)?;
    world.person_name_into(world::FEATURED_PERSON, &mut person_name);
    world.person_id_into(world.staff_person(0), &mut staff_id)?;

    let manifest = Manifest {
        as_of: opts.as_of,
        scale: opts.scale,
        seed: opts.seed,
        sources,
        featured: Featured {
            enterprise_credit_code: code,
            enterprise_name: name,
            individual_resident_id: person_id,
            individual_name: person_name,
            blacklisted_shop_ids: blacklisted,
            courier_staff_resident_id: staff_id,
            expired_negative_record_ids: expired,
            disputed_record_ids: disputed,
        },
    };
    write_manifest(&opts.dir, &manifest)?;
    tracing::info!(
        dir = %opts.dir.display(),
        scale = opts.scale,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "synthetic federation generated"
    );
    Ok(manifest)
}

/// Generates one table into its Parquet file.
fn write_table(
    world: &World,
    def: &TableDef,
    dir: &Path,
    bar: &ProgressBar,
    abort: &AtomicBool,
) -> Result<TableResult, DatagenError> {
    let started = Instant::now();
    let units = (def.units)(world);
    let mut ctx = Ctx::new(world, def);
    let path = dir.join(def.source).join(format!("{}.parquet", def.name));
    let mut file = TableFile::create(&path, ctx.out.schema())?;
    let mut rows = 0u64;
    let mut pending_units = 0u64;
    for unit in 0..units {
        (def.emit)(&mut ctx, unit)?;
        pending_units += 1;
        if ctx.out.rows() >= BATCH_ROWS {
            let batch = ctx.out.finish_batch()?;
            rows += batch.num_rows() as u64;
            file.write(&batch)?;
            bar.inc(pending_units);
            pending_units = 0;
            if abort.load(Ordering::Relaxed) {
                return Err(DatagenError::Internal("stopped after another table failed".into()));
            }
        }
    }
    if ctx.out.rows() > 0 || rows == 0 {
        let batch = ctx.out.finish_batch()?;
        rows += batch.num_rows() as u64;
        file.write(&batch)?;
    }
    file.commit()?;
    bar.inc(pending_units);
    tracing::debug!(
        table = %format!("{}.{}", def.source, def.name),
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "table written"
    );
    Ok(TableResult { rows, notes: ctx.notes })
}

/// Writes `DIR/manifest.json` through a temporary file.
fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), DatagenError> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!(".{MANIFEST_FILE}.tmp-{}", std::process::id()));
    let mut json =
        serde_json::to_vec_pretty(manifest).map_err(|source| DatagenError::Manifest { path: path.clone(), source })?;
    json.push(b'\n');
    std::fs::write(&tmp, json).map_err(|e| DatagenError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| DatagenError::io(&path, e))?;
    Ok(())
}

/// Reads `DIR/manifest.json` written by [`generate`].
pub fn read_manifest(dir: &Path) -> Result<Manifest, DatagenError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| DatagenError::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| DatagenError::Manifest { path, source })
}
