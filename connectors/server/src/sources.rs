//! Opening the configured tables.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use datafusion_table_providers::sql::db_connection_pool::Mode;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPoolFactory;
use datafusion_table_providers::sqlite::SqliteTableFactory;

use crate::config::{TableConfig, TableFormat};
use crate::database::{Pools, open_database_table};
use crate::error::ConnectorError;
use crate::exposed::ExposedTable;

const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one configured table, restricted to its exposed columns.
///
/// A file table that cannot be opened is a start-up error. A database table
/// never is: it is served as [`crate::database::UnavailableTable`] (every
/// query on it fails naming the table) and the connector serves the rest;
/// database tables on the same connection share one pool from `pools`.
pub(crate) async fn open_table(
    ctx: &SessionContext,
    table: &TableConfig,
    pools: &mut Pools,
) -> Result<Arc<dyn TableProvider>, ConnectorError> {
    let fail = |message: String| ConnectorError::Table { table: table.name.clone(), message };
    if !table.format.is_file() {
        return Ok(open_database_table(table, pools).await);
    }
    if !table.path.exists() {
        return Err(fail(format!("{} does not exist", table.path.display())));
    }
    let inner: Arc<dyn TableProvider> = match &table.format {
        TableFormat::Parquet | TableFormat::Csv => {
            let path = table.path.to_str().ok_or_else(|| fail("path is not valid UTF-8".into()))?;
            let url = ListingTableUrl::parse(path).map_err(|e| fail(e.strip_backtrace()))?;
            let options = match table.format {
                TableFormat::Csv => ListingOptions::new(Arc::new(CsvFormat::default().with_has_header(true)))
                    .with_file_extension(".csv"),
                _ => ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet"),
            };
            let schema = options.infer_schema(&ctx.state(), &url).await.map_err(|e| fail(e.strip_backtrace()))?;
            let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
            Arc::new(ListingTable::try_new(config).map_err(|e| fail(e.strip_backtrace()))?)
        }
        TableFormat::Sqlite => {
            let path = table.path.to_str().ok_or_else(|| fail("path is not valid UTF-8".into()))?;
            let pool = SqliteConnectionPoolFactory::new(path, Mode::File, SQLITE_BUSY_TIMEOUT)
                .build()
                .await
                .map_err(|e| fail(format!("cannot open SQLite database: {e}")))?;
            SqliteTableFactory::new(Arc::new(pool))
                .table_provider(TableReference::bare(table.source_table()))
                .await
                .map_err(|e| fail(format!("cannot read table `{}`: {e}", table.source_table())))?
        }
        TableFormat::Postgres(_) | TableFormat::Mysql(_) => return Ok(open_database_table(table, pools).await),
    };
    let exposed = ExposedTable::try_new(inner, &table.columns).map_err(|e| fail(e.strip_backtrace()))?;
    let exposed = if matches!(table.format, TableFormat::Sqlite) { exposed.writing_sql() } else { exposed };
    Ok(Arc::new(exposed))
}
