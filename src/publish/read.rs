//! Reading a published build: a table per manifest entry, over exactly the
//! files the manifest lists (footers only: no data is read until a query
//! needs it). `vitals query` and `vitals serve` read builds this way.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use super::Manifest;
use crate::error::{Result, VitalsError};
use crate::storage::{Location, clean};

/// The tables of the build `manifest` describes, by name. The target's
/// store must be registered in `ctx`.
pub async fn published_tables(
    ctx: &SessionContext,
    target: &Location,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Arc<dyn TableProvider>>> {
    let state = ctx.state();
    let mut tables = BTreeMap::new();
    for (name, entry) in &manifest.tables {
        let context = || format!("build {} table {name}", manifest.build_id);
        let mut urls = Vec::new();
        for file in &entry.files {
            let url = ListingTableUrl::parse(target.url(file, false))
                .map_err(|e| VitalsError::data(context(), e))?;
            urls.push(url);
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&state)
            .await
            .map_err(|e| VitalsError::data(context(), clean(&e.to_string())))?;
        let table = ListingTable::try_new(config).map_err(|e| VitalsError::data(context(), e))?;
        tables.insert(name.clone(), Arc::new(table) as Arc<dyn TableProvider>);
    }
    Ok(tables)
}
