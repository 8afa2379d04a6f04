//! Tables planned by their columns and bound to their rows only when a
//! query runs: a model not computed yet when a build plans what reads it
//! (`pending`), a served table whose build may change between planning a
//! statement and running it (`serve::builds`).

use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// Where a late-bound table finds its rows.
pub trait Binding: Debug + Send + Sync + 'static {
    /// The columns plans are made with.
    fn schema(&self) -> SchemaRef;
    /// The table to read now, or why there is none.
    fn resolve(&self) -> Result<Arc<dyn TableProvider>>;
}

/// A table whose scans (and filter pushdown, statistics) go to the table
/// its binding resolves to when the query runs.
#[derive(Debug)]
pub struct LateBound<B: Binding>(pub B);

impl<B: Binding> Deref for LateBound<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.0
    }
}

#[async_trait]
impl<B: Binding> TableProvider for LateBound<B> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.0.resolve()?.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.resolve().ok()?.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0
            .resolve()?
            .scan(state, projection, filters, limit)
            .await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        self.0.resolve()?.scan_with_args(state, args).await
    }
}
