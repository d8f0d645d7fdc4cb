//! The linkability report on the live federation (`creditgate policy
//! linkage`, `GET /v1/audit/linkage`, the console's linkage page).
//!
//! For every principal and every column it sees masked or pseudonymized (a
//! `personal` or `sensitive` column whose mask is not `none` or `null`),
//! the column is read raw from its connector — the principal's row policy
//! applied at the source, as for its own queries — and passed through the
//! gateway's own mask functions in memory ([`MaskUdfs::scoped`] for the
//! principal, evaluated by DataFusion over the batches held in memory;
//! nothing is written). [`creditgate_policy::linkage`] then counts: the
//! share of raw values whose masked value is unique, the smallest group
//! (k), the k of the combination with the dataset's other masked
//! quasi-identifiers the principal sees (keyed hashes left out: a pseudonym
//! is an identifier by design), and every column of another dataset the
//! principal can match it with:
//!
//! - the same mask on the other column (equal masked domains), or
//! - the other column shown raw to the principal and `personal` or
//!   `sensitive` (an identity it reads in clear), passed through this
//!   column's mask (a masked mobile against raw mobiles); keyed hashes are
//!   not matched against raw values (the principal cannot compute them).
//!
//! A match is counted in distinct masked values found in both; a column
//! whose values all mask to one value matches nothing informative and is
//! not matched. The report fails ([`LinkageReport::passed`] false) when a
//! column the principal may not link (`relate_masked_values` off and a mask
//! other than `keyed_hash`) has k below `[masking] min_k`, or when a
//! granted dataset this gateway federates could not be read (a dataset no
//! connector of this gateway serves is listed as not served: nobody reads
//! it here).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use creditgate_engine::federation::{Dataset, Federation};
use creditgate_engine::{Engine, GatewayConfig, GatewayError};
use creditgate_ident::DatasetName;
use creditgate_policy::linkage::{
    ColumnLinkage, ColumnMatch, Combination, GroupStats, LinkageReport, MatchKind, PrincipalLinkage, matching,
};
use creditgate_policy::{ColumnClass, DatasetGrant, Mask, MaskUdfs, Policy};
use creditgate_remote::RemoteTable;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, cast, col};
use datafusion::prelude::SessionContext;

/// The report for the engine's current policy and federation (the officer API).
pub async fn for_engine(engine: &Engine) -> Result<LinkageReport, GatewayError> {
    let policy = engine.policy();
    let session = engine.engine()?;
    compute(&policy, engine.federation(), engine.masks(), &session, creditgate_engine::today()).await
}

/// The report from a gateway config file, without starting a gateway (it
/// may run next to one: the audit log is not opened, nothing is written).
/// The connectors are asked for their tables once.
pub async fn from_config(path: &Path) -> Result<LinkageReport, GatewayError> {
    let config = GatewayConfig::load(path)?;
    config.validate().map_err(GatewayError::Config)?;
    let policy = Policy::load(&config.policy).map_err(|e| GatewayError::Config(e.to_string()))?;
    let masks = creditgate_engine::read_mask_functions(&config)?;
    let metrics = Arc::new(creditgate_engine::metrics::Metrics::default());
    let federation = Federation::new(&config, metrics)?;
    for failure in federation.refresh().await {
        tracing::warn!(source = %failure.source_name, "source not available; its datasets are not measured");
    }
    let runtime = creditgate_flight::engine::locked_down_runtime(config.server.memory_limit_bytes)
        .map_err(|e| GatewayError::Config(format!("server.memory_limit_bytes: {}", e.strip_backtrace())))?;
    let session = creditgate_flight::engine::session(runtime, "linkage", "public", false);
    compute(&policy, &federation, &masks, &session, creditgate_engine::today()).await
}

fn df_error(e: datafusion::error::DataFusionError) -> GatewayError {
    GatewayError::internal(format!("linkage: {}", e.strip_backtrace()))
}

/// A dataset's rows as one principal's row policy lets it read them, in memory.
struct Rows {
    table: Arc<MemTable>,
    schema: SchemaRef,
    rows: usize,
}

/// Reads and masks columns of the federation for the report.
struct Reader<'a> {
    federation: &'a Federation,
    session: &'a SessionContext,
    available: BTreeMap<DatasetName, (Dataset, SchemaRef)>,
    today: chrono::NaiveDate,
    /// By dataset and row predicate: the raw rows.
    rows: HashMap<(DatasetName, String), Arc<Rows>>,
    /// Raw `personal`/`sensitive` columns passed through a mask (no keyed
    /// hash here, so the same for every principal): (dataset, predicate,
    /// column, mask) → distinct masked values.
    raw_masked: HashMap<(DatasetName, String, String, Mask), Arc<HashSet<String>>>,
}

impl Reader<'_> {
    async fn rows(&mut self, grant: &DatasetGrant) -> Result<Option<(String, Arc<Rows>)>, GatewayError> {
        let Some((dataset, schema)) = self.available.get(&grant.dataset) else { return Ok(None) };
        let Some(source) = self.federation.source(&dataset.source) else { return Ok(None) };
        let predicate = grant.row_predicate(self.today).map_err(|e| GatewayError::internal(e.to_string()))?;
        let key = predicate.as_ref().map(ToString::to_string).unwrap_or_default();
        if let Some(rows) = self.rows.get(&(grant.dataset.clone(), key.clone())) {
            return Ok(Some((key, Arc::clone(rows))));
        }
        let remote = RemoteTable::new(Arc::clone(source), dataset.remote_table.clone(), Arc::clone(schema))
            .with_mandatory_filter(predicate)
            .with_raw_columns(Vec::new());
        let batches: Vec<RecordBatch> =
            self.session.read_table(Arc::new(remote)).map_err(df_error)?.collect().await.map_err(|e| {
                GatewayError::internal(format!("linkage: reading {}: {}", grant.dataset, e.strip_backtrace()))
            })?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let schema = batches.first().map_or_else(|| Arc::clone(schema), RecordBatch::schema);
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches]).map_err(df_error)?;
        let rows = Arc::new(Rows { table: Arc::new(table), schema, rows });
        self.rows.insert((grant.dataset.clone(), key.clone()), Arc::clone(&rows));
        Ok(Some((key, rows)))
    }

    /// `exprs` evaluated over `rows`, each as text (NULL stays `None`).
    async fn evaluate(&self, rows: &Rows, exprs: Vec<Expr>) -> Result<Vec<Vec<Option<String>>>, GatewayError> {
        let width = exprs.len();
        if width == 0 {
            return Ok(Vec::new());
        }
        let exprs: Vec<Expr> =
            exprs.into_iter().enumerate().map(|(i, e)| cast(e, DataType::Utf8).alias(format!("c{i}"))).collect();
        let frame = self.session.read_table(Arc::clone(&rows.table) as _).map_err(df_error)?;
        let batches = frame.select(exprs).map_err(df_error)?.collect().await.map_err(df_error)?;
        let mut out = vec![Vec::with_capacity(rows.rows); width];
        for batch in &batches {
            for (i, column) in batch.columns().iter().enumerate() {
                let text = column.as_string_opt::<i32>().ok_or_else(|| GatewayError::internal("linkage: not text"))?;
                out[i].extend((0..text.len()).map(|r| (!text.is_null(r)).then(|| text.value(r).to_owned())));
            }
        }
        Ok(out)
    }
}

/// The masked columns of a grant that the report measures.
fn measured(grant: &DatasetGrant) -> impl Iterator<Item = &creditgate_policy::GrantedColumn> {
    grant.columns.iter().filter(|c| {
        matches!(c.class, ColumnClass::Personal | ColumnClass::Sensitive) && !matches!(c.mask, Mask::None | Mask::Null)
    })
}

/// A column's text per row: raw, and as the principal sees it.
type RawAndMasked = (Vec<Option<String>>, Vec<Option<String>>);

/// One principal's view of one dataset, evaluated.
struct Seen {
    grant: DatasetGrant,
    predicate: String,
    rows: Arc<Rows>,
    /// Column → (raw, masked) text per row, for every granted column masked
    /// with something other than `none`/`null`.
    masked: BTreeMap<String, RawAndMasked>,
}

fn distinct(values: &[Option<String>]) -> HashSet<String> {
    values.iter().flatten().cloned().collect()
}

/// Computes the report: `masks` are the deployment's mask functions (each
/// principal's are [`MaskUdfs::scoped`] from them), `session` evaluates
/// them in memory, `today` decides the retention of negative records.
pub async fn compute(
    policy: &Policy,
    federation: &Federation,
    masks: &MaskUdfs,
    session: &SessionContext,
    today: chrono::NaiveDate,
) -> Result<LinkageReport, GatewayError> {
    let masking = policy.masking();
    let available: BTreeMap<DatasetName, (Dataset, SchemaRef)> =
        federation.available().into_iter().map(|(d, s)| (d.name.clone(), (d, s))).collect();
    let mut reader = Reader { federation, session, available, today, rows: HashMap::new(), raw_masked: HashMap::new() };
    let mut unavailable = BTreeSet::new();
    let mut not_served = BTreeSet::new();
    let mut principals = Vec::new();
    let mut failures = Vec::new();
    for principal in policy.principals() {
        let grants = policy.grants_for(principal);
        if grants.iter().all(|g| measured(g).next().is_none()) {
            continue;
        }
        let scoped = masks.scoped(masking.keyed_hash_scope, principal);
        let mut seen: Vec<Seen> = Vec::new();
        for grant in grants {
            let Some((predicate, rows)) = reader.rows(&grant).await? else {
                // A dataset no connector of this gateway serves is read by
                // nobody here; one whose source did not answer is unmeasured.
                if federation.datasets().iter().any(|d| d.name == grant.dataset) {
                    unavailable.insert(grant.dataset.clone());
                } else {
                    not_served.insert(grant.dataset.clone());
                }
                continue;
            };
            let columns: Vec<(String, Mask, DataType)> = grant
                .columns
                .iter()
                .filter(|c| !matches!(c.mask, Mask::None | Mask::Null))
                .filter_map(|c| {
                    let field = rows.schema.field_with_name(&c.name).ok()?;
                    Some((c.name.clone(), c.mask, field.data_type().clone()))
                })
                .collect();
            let mut exprs = Vec::with_capacity(columns.len() * 2);
            for (name, mask, data_type) in &columns {
                exprs.push(col(name.as_str()));
                exprs.push(scoped.expr(mask, col(name.as_str()), data_type));
            }
            let mut values = reader.evaluate(&rows, exprs).await?.into_iter();
            let mut masked = BTreeMap::new();
            for (name, _, _) in &columns {
                if let (Some(raw), Some(shown)) = (values.next(), values.next()) {
                    masked.insert(name.clone(), (raw, shown));
                }
            }
            seen.push(Seen { grant, predicate, rows, masked });
        }
        let columns = principal_columns(&mut reader, &scoped, &seen, masking).await?;
        for c in columns.iter().filter(|c| c.below_min_k) {
            failures.push(format!("{}:{}.{}", principal.name, c.dataset, c.column));
        }
        if !columns.is_empty() {
            principals.push(PrincipalLinkage {
                principal: principal.name.clone(),
                organization: principal.organization.clone(),
                role: principal.role.as_str().to_string(),
                columns,
            });
        }
    }
    let unavailable: Vec<String> = unavailable.into_iter().map(String::from).collect();
    Ok(LinkageReport {
        min_k: masking.min_k,
        relate_masked_values: masking.relate_masked_values,
        keyed_hash_scope: masking.keyed_hash_scope.as_str().to_string(),
        as_of: today.to_string(),
        passed: failures.is_empty() && unavailable.is_empty(),
        principals,
        unavailable,
        not_served: not_served.into_iter().map(String::from).collect(),
        failures,
    })
}

/// The measured columns of one principal: `masks` are its own functions.
async fn principal_columns(
    reader: &mut Reader<'_>,
    masks: &MaskUdfs,
    seen: &[Seen],
    masking: creditgate_policy::Masking,
) -> Result<Vec<ColumnLinkage>, GatewayError> {
    let mut out = Vec::new();
    for this in seen {
        let measured: Vec<&creditgate_policy::GrantedColumn> = measured(&this.grant).collect();
        for column in &measured {
            let Some((raw, shown)) = this.masked.get(&column.name) else { continue };
            let pairs = raw.iter().zip(shown).filter_map(|(r, m)| Some((r.as_deref()?, m.as_deref()?)));
            let stats = GroupStats::from_pairs(pairs);
            let may_link = masking.may_link(&column.mask);

            // The dataset's other masked quasi-identifiers (keyed hashes are
            // identifiers by design and are left out).
            let others: Vec<&str> = measured
                .iter()
                .filter(|o| o.name != column.name && o.mask != Mask::KeyedHash)
                .filter(|o| this.masked.contains_key(&o.name))
                .map(|o| o.name.as_str())
                .collect();
            let combination = if others.is_empty() || column.mask == Mask::KeyedHash {
                None
            } else {
                let with: Vec<&RawAndMasked> = others.iter().filter_map(|o| this.masked.get(*o)).collect();
                let tuples = (0..raw.len()).filter_map(|row| {
                    let (r, m) = (raw.get(row)?.as_deref()?, shown.get(row)?.as_deref()?);
                    let mut raw_tuple = vec![Some(r)];
                    let mut masked_tuple = vec![Some(m)];
                    for (other_raw, other_masked) in &with {
                        raw_tuple.push(other_raw.get(row).and_then(Option::as_deref));
                        masked_tuple.push(other_masked.get(row).and_then(Option::as_deref));
                    }
                    Some((raw_tuple, masked_tuple))
                });
                let stats = GroupStats::from_pairs(tuples);
                Some(Combination {
                    with: others.iter().map(|o| (*o).to_string()).collect(),
                    unique_share: stats.unique_share(),
                    below_min_k: stats.below(masking.min_k),
                    stats,
                })
            };

            let mut matches = Vec::new();
            if stats.groups > 1 {
                let mine = distinct(shown);
                for other in seen.iter().filter(|o| o.grant.dataset != this.grant.dataset) {
                    for granted in &other.grant.columns {
                        let found = if granted.mask == column.mask {
                            other.masked.get(&granted.name).map(|(_, m)| (MatchKind::SameMask, Arc::new(distinct(m))))
                        } else if granted.mask == Mask::None
                            && column.mask != Mask::KeyedHash
                            && matches!(granted.class, ColumnClass::Personal | ColumnClass::Sensitive)
                        {
                            reader
                                .raw_through(masks, other, &granted.name, column.mask)
                                .await?
                                .map(|set| (MatchKind::MaskedAgainstRaw, set))
                        } else {
                            None
                        };
                        let Some((kind, theirs)) = found else { continue };
                        let n = matching(&mine, &theirs);
                        if n > 0 {
                            matches.push(ColumnMatch {
                                dataset: other.grant.dataset.to_string(),
                                column: granted.name.clone(),
                                mask: granted.mask.to_string(),
                                kind,
                                matching_values: n,
                            });
                        }
                    }
                }
                matches.sort_by(|a, b| {
                    b.matching_values
                        .cmp(&a.matching_values)
                        .then_with(|| (&a.dataset, &a.column).cmp(&(&b.dataset, &b.column)))
                });
            }
            out.push(ColumnLinkage {
                dataset: this.grant.dataset.to_string(),
                column: column.name.clone(),
                class: column.class.as_str().to_string(),
                mask: column.mask.to_string(),
                may_link,
                rows: this.rows.rows,
                unique_share: stats.unique_share(),
                below_min_k: !may_link && stats.below(masking.min_k),
                stats,
                combination,
                matches,
            });
        }
    }
    Ok(out)
}

impl Reader<'_> {
    /// The distinct values of `other`'s raw `column` passed through `mask`
    /// (not a keyed hash: the same for every principal), or `None` when the
    /// mask does not apply to the column's type.
    async fn raw_through(
        &mut self,
        masks: &MaskUdfs,
        other: &Seen,
        column: &str,
        mask: Mask,
    ) -> Result<Option<Arc<HashSet<String>>>, GatewayError> {
        let key = (other.grant.dataset.clone(), other.predicate.clone(), column.to_string(), mask);
        if let Some(set) = self.raw_masked.get(&key) {
            return Ok(Some(Arc::clone(set)));
        }
        let Ok(field) = other.rows.schema.field_with_name(column) else { return Ok(None) };
        // Only the keyed hash depends on the principal's key, and it is never
        // applied here: the cached set serves every principal.
        let Some(expr) = masks.try_expr(&mask, col(column), field.data_type()) else { return Ok(None) };
        let values = self.evaluate(&other.rows, vec![expr]).await?;
        let set = Arc::new(values.first().map(|v| distinct(v)).unwrap_or_default());
        self.raw_masked.insert(key, Arc::clone(&set));
        Ok(Some(set))
    }
}
