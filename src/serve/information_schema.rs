//! `information_schema` as PostgreSQL clients read it. DataFusion's own
//! names column types the Arrow way (`Float64`, `Utf8View`, `Date32`);
//! BI tools (Grafana's query builder, among others) read
//! `information_schema.columns.data_type` and expect `double precision`,
//! `text`, `date`. This schema is DataFusion's, with that column renamed
//! into PostgreSQL's type names; the rest is unchanged.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit, when};
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;

#[derive(Debug)]
pub struct PgInformationSchema {
    inner: InformationSchemaProvider,
}

impl PgInformationSchema {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> PgInformationSchema {
        PgInformationSchema {
            inner: InformationSchemaProvider::new(catalogs),
        }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        // This schema is also a schema of the catalog, so DataFusion's
        // listing shows its tables twice: once is enough.
        let mut plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)?;
        if name == "columns" {
            let schema = plan.schema().clone();
            let columns: Vec<Expr> = schema
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    "data_type" => pg_type_name(col("data_type")).alias("data_type"),
                    other => col(other),
                })
                .collect();
            plan = plan.project(columns)?;
        }
        let plan = plan.distinct()?.build()?;
        Ok(Some(Arc::new(ViewTable::new(plan, None))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// The Arrow types a published table can hold, each with the name
/// PostgreSQL's information_schema gives the type it is sent as.
fn known_types() -> Vec<DataType> {
    let mut types = vec![
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float16,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Date32,
        DataType::Date64,
        DataType::Binary,
        DataType::LargeBinary,
        DataType::BinaryView,
    ];
    for unit in [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ] {
        types.push(DataType::Timestamp(unit, None));
        types.push(DataType::Timestamp(unit, Some("UTC".into())));
        types.push(DataType::Timestamp(unit, Some("+00:00".into())));
    }
    types
}

fn sql_name(pg: &Type) -> Option<&'static str> {
    Some(match *pg {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::NUMERIC => "numeric",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::TEXT | Type::VARCHAR => "text",
        Type::DATE => "date",
        Type::BYTEA => "bytea",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        _ => return None,
    })
}

/// `CASE data_type WHEN 'Float64' THEN 'double precision' ... END`, from
/// the same Arrow-to-PostgreSQL mapping the wire protocol uses; a type not
/// in the list keeps its Arrow name.
fn pg_type_name(arrow_name: Expr) -> Expr {
    let mut pairs = known_types().into_iter().filter_map(|t| {
        let pg = into_pg_type(&t).ok()?;
        Some((t.to_string(), sql_name(&pg)?))
    });
    let Some((first_arrow, first_pg)) = pairs.next() else {
        return arrow_name;
    };
    let mut case = when(arrow_name.clone().eq(lit(first_arrow)), lit(first_pg));
    for (arrow, pg) in pairs {
        case = case.when(arrow_name.clone().eq(lit(arrow)), lit(pg));
    }
    case.otherwise(arrow_name.clone()).unwrap_or(arrow_name)
}
