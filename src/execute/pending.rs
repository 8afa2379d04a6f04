//! A model's place in plans made before it is computed.
//!
//! A build plans every model and table before it computes anything, so
//! that a catalog error costs no work, and each query is planned once. The
//! plans read each model through a `PendingModel`: its columns for
//! planning, and, once the model's step has run, its rows (in memory or in
//! files), to which every scan is handed on. A query run before its model
//! was computed fails instead of reading no rows.

use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};

use super::late_bound::{Binding, LateBound};

#[derive(Debug)]
pub struct PendingModel {
    name: String,
    schema: SchemaRef,
    rows: RwLock<Option<Arc<dyn TableProvider>>>,
}

impl PendingModel {
    pub fn new(name: &str, schema: SchemaRef) -> Arc<LateBound<PendingModel>> {
        Arc::new(LateBound(PendingModel {
            name: name.to_string(),
            schema,
            rows: RwLock::new(None),
        }))
    }

    /// Where the model's rows are from now on: its computed result.
    pub fn fill(&self, rows: Arc<dyn TableProvider>) {
        *self.rows.write().expect("pending model lock") = Some(rows);
    }
}

impl Binding for PendingModel {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn resolve(&self) -> Result<Arc<dyn TableProvider>> {
        self.rows
            .read()
            .expect("pending model lock")
            .clone()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "model `{}` was read before it was computed",
                    self.name
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn a_plan_made_before_the_model_reads_its_rows_once_filled() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "mrr",
            DataType::Float64,
            true,
        )]));
        let pending = PendingModel::new("m", schema.clone());
        ctx.register_table("m", pending.clone()).unwrap();
        let df = ctx
            .sql("SELECT sum(mrr) AS total FROM m WHERE mrr > 1")
            .await
            .unwrap();
        let e = df.clone().collect().await.unwrap_err().to_string();
        assert!(
            e.contains("model `m` was read before it was computed"),
            "{e}"
        );

        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Float64Array::from(vec![1.0, 2.0, 3.5]))],
        )
        .unwrap();
        pending.fill(Arc::new(
            MemTable::try_new(schema, vec![vec![batch]]).unwrap(),
        ));
        let out = df.collect().await.unwrap();
        let total = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(total.value(0), 5.5);
    }
}
