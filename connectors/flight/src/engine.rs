//! DataFusion settings shared by every creditgate query engine.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

/// A runtime that never writes to disk (spilling disabled, so an oversized
/// operator fails instead of writing personal data to a temp file) and caps
/// memory at `memory_limit_bytes`.
///
/// File metadata (Parquet footers and page indexes) and file statistics
/// are kept between queries, in DataFusion's bounded caches, each entry
/// checked against the file's size and modification time. A table's files
/// are listed again at every query (DataFusion's listing cache, which never
/// expires by default, is off): a file rewritten in place, added or removed
/// is seen at the next query, and what was kept of an old file is never
/// applied to the new one.
pub fn locked_down_runtime(memory_limit_bytes: usize) -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_memory_limit(memory_limit_bytes, 1.0)
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .build_arc()
}

/// Only read-only queries: no DDL, no DML, no `SET`/other statements.
pub fn read_only_sql_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// A session with the given default catalog/schema on `runtime`.
pub fn session(runtime: Arc<RuntimeEnv>, catalog: &str, schema: &str, information_schema: bool) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(catalog, schema)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(information_schema);
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    let state =
        SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
    SessionContext::new_with_state(state)
}
