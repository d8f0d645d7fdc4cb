//! The federation: connectors, their datasets, and the catalog DataFusion plans over.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use creditgate_certs::tls;
use creditgate_ident::{DatasetName, SourceName};
use creditgate_remote::{Deadlines, Reachability, RemoteSource, SourceError};

use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::metrics::Metrics;

/// The catalog name callers' SQL resolves against.
pub const CATALOG: &str = "creditgate";

/// One logical dataset and where it lives.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `schema.table`: the schema and table callers' SQL names it by.
    pub name: DatasetName,
    /// The serving source.
    pub source: SourceName,
    /// Table name at the connector.
    pub remote_table: String,
}

/// Connectors and datasets, with the schemas learnt from the connectors.
/// Which caller sees what is decided per request from the policy.
pub struct Federation {
    sources: BTreeMap<SourceName, Arc<RemoteSource>>,
    datasets: Vec<Dataset>,
    /// Dataset name → schema, for datasets whose connector has answered.
    schemas: RwLock<BTreeMap<DatasetName, SchemaRef>>,
    /// Bumped whenever the set of available datasets changes.
    generation: std::sync::atomic::AtomicU64,
}

impl Federation {
    /// Builds channels to every connector (lazily connected).
    pub fn new(config: &GatewayConfig, metrics: Arc<Metrics>) -> Result<Self, GatewayError> {
        let mut sources = BTreeMap::new();
        for c in &config.connectors {
            let client_config =
                tls::client_config(&c.ca, Some((&config.upstream.client_cert, &config.upstream.client_key)), &[b"h2"])?;
            let deadlines = Deadlines {
                connect: Duration::from_millis(c.connect_timeout_ms),
                first_batch: Duration::from_millis(c.first_batch_timeout_ms),
                total: Duration::from_millis(c.total_timeout_ms),
            };
            let channel =
                tls::channel_to(&c.endpoint, &c.server_name, c.identity.as_deref(), client_config, deadlines.connect)?;
            let observer_metrics = Arc::clone(&metrics);
            let source = RemoteSource::new(c.name.clone(), channel, deadlines).with_observer(Arc::new(
                move |source: &str, status: &'static str, took: Duration| {
                    observer_metrics.source_query(source, status, took);
                },
            ));
            sources.insert(c.name.clone(), Arc::new(source));
        }
        let datasets = config
            .datasets
            .iter()
            .map(|d| Dataset {
                name: d.name.clone(),
                source: d.connector.clone(),
                remote_table: d.remote_table().to_string(),
            })
            .collect();
        Ok(Self {
            sources,
            datasets,
            schemas: RwLock::new(BTreeMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// All configured datasets.
    pub fn datasets(&self) -> &[Dataset] {
        &self.datasets
    }

    /// Changes whenever datasets become available.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The source named `name`.
    pub fn source(&self, name: &SourceName) -> Option<&Arc<RemoteSource>> {
        self.sources.get(name)
    }

    /// The configured sources.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<RemoteSource>> {
        self.sources.values()
    }

    /// Datasets whose schema is known (their connector answered).
    pub fn available(&self) -> Vec<(Dataset, SchemaRef)> {
        let schemas = self.schemas.read().unwrap_or_else(|p| p.into_inner());
        self.datasets.iter().filter_map(|d| schemas.get(&d.name).map(|s| (d.clone(), Arc::clone(s)))).collect()
    }

    /// Asks every connector whose datasets lack a schema for its table list, in
    /// parallel; returns the sources that failed. Rebuilds the catalog.
    pub async fn refresh(&self) -> Vec<SourceError> {
        let missing: Vec<&Arc<RemoteSource>> = {
            let schemas = self.schemas.read().unwrap_or_else(|p| p.into_inner());
            self.sources
                .values()
                .filter(|s| {
                    s.reachability() == Reachability::Unreachable
                        || self.datasets.iter().any(|d| &d.source == s.name() && !schemas.contains_key(&d.name))
                })
                .collect()
        };
        let results = futures::future::join_all(missing.iter().map(|s| async move { (s, s.tables().await) })).await;
        let mut failures = Vec::new();
        {
            let mut schemas = self.schemas.write().unwrap_or_else(|p| p.into_inner());
            for (source, result) in results {
                match result {
                    Ok(tables) => {
                        for d in self.datasets.iter().filter(|d| &d.source == source.name()) {
                            match tables.iter().find(|t| t.table == d.remote_table) {
                                Some(t) => {
                                    schemas.insert(d.name.clone(), Arc::clone(&t.schema));
                                }
                                None => tracing::warn!(
                                    dataset = %d.name, source = %d.source,
                                    "connector does not serve the configured table"
                                ),
                            }
                        }
                    }
                    // The source logged the change itself (once, not per retry).
                    Err(e) => failures.push(e),
                }
            }
        }
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        failures
    }

    /// Keeps retrying sources that have not answered yet or were last seen
    /// unreachable, every `every` (so that their return is noticed even
    /// without a query).
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let federation = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let unreachable = federation.sources.values().any(|s| s.reachability() == Reachability::Unreachable);
                if unreachable || federation.available().len() < federation.datasets.len() {
                    federation.refresh().await;
                }
            }
        })
    }

    /// Whether `name` (`schema.table`) is a configured dataset whose source has not answered.
    pub fn unavailable_source_of(&self, name: &str) -> Option<SourceName> {
        let schemas = self.schemas.read().unwrap_or_else(|p| p.into_inner());
        self.datasets.iter().find(|d| d.name == name && !schemas.contains_key(&d.name)).map(|d| d.source.clone())
    }
}
