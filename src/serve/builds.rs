//! Which build a query sees. The server has one DataFusion session whose
//! `public` schema is the published build: each table resolves, when a
//! query is planned and again when it is executed, to the files of one
//! build. A query is pinned to the build that was current when it arrived
//! (a task-local value around its handling), so it never reads two builds,
//! and a statement prepared before a new build was published reads the new
//! one at its next execution.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::SessionContext;

use crate::error::{Result, VitalsError};
use crate::execute::late_bound::{Binding, LateBound};
use crate::publish::{Manifest, Target, published_tables};
use crate::storage::{Location, clean};

/// The tables of one published build.
#[derive(Debug)]
pub struct Build {
    pub id: String,
    pub tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

impl Build {
    /// Opens the tables of the build `manifest` describes.
    async fn open(ctx: &SessionContext, target: &Location, manifest: &Manifest) -> Result<Build> {
        Ok(Build {
            id: manifest.build_id.clone(),
            tables: published_tables(ctx, target, manifest).await?,
        })
    }
}

tokio::task_local! {
    /// The build that the query being handled on this task reads.
    static PINNED: Arc<Build>;
}

/// The published build, as the server knows it.
#[derive(Debug)]
pub struct Builds {
    current: RwLock<Arc<Build>>,
    target: Location,
}

impl Builds {
    /// Opens the build published in `target`; an error when there is none.
    pub async fn open(ctx: &SessionContext, target: Location) -> Result<Arc<Builds>> {
        let manifest = Target::read_manifest(&target).await?.ok_or_else(|| {
            VitalsError::Usage(format!(
                "no published build in {0} (no _manifest.json); run `vitals build --target {0}` first",
                target.describe(""),
            ))
        })?;
        let build = Build::open(ctx, &target, &manifest).await?;
        Ok(Arc::new(Builds {
            current: RwLock::new(Arc::new(build)),
            target,
        }))
    }

    pub fn current(&self) -> Arc<Build> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The build of the query on this task, else the current one.
    fn seen(&self) -> Arc<Build> {
        PINNED
            .try_with(Arc::clone)
            .unwrap_or_else(|_| self.current())
    }

    /// Runs `work` with every table read from `build`.
    pub async fn pinned<F: Future>(build: Arc<Build>, work: F) -> F::Output {
        PINNED.scope(build, work).await
    }

    /// Reads the manifest; when it names another build, opens that one and
    /// makes it current. Returns the new build's id when it changed.
    pub async fn refresh(&self, ctx: &SessionContext) -> Result<Option<String>> {
        let Some(manifest) = Target::read_manifest(&self.target).await? else {
            return Ok(None);
        };
        if manifest.build_id == self.current().id {
            return Ok(None);
        }
        let build = Arc::new(Build::open(ctx, &self.target, &manifest).await?);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = build;
        Ok(Some(manifest.build_id))
    }

    /// Polls the manifest every `every` until the process ends; a failed
    /// read keeps the build being served and is logged.
    pub fn watch(self: &Arc<Self>, ctx: SessionContext, every: Duration) {
        let builds = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match builds.refresh(&ctx).await {
                    Ok(Some(id)) => super::log(format_args!("serving build {id}")),
                    Ok(None) => {}
                    Err(e) => super::log(format_args!(
                        "cannot read the published build (still serving build {}): {}",
                        builds.current().id,
                        clean(&e.to_string())
                    )),
                }
            }
        });
    }
}

/// The `public` schema: the tables of the build a query sees. Read-only.
#[derive(Debug)]
pub struct PublishedSchema {
    pub builds: Arc<Builds>,
}

#[async_trait]
impl SchemaProvider for PublishedSchema {
    fn table_names(&self) -> Vec<String> {
        self.builds.seen().tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let build = self.builds.seen();
        Ok(build.tables.get(name).map(|table| {
            Arc::new(LateBound(PublishedTable {
                name: name.to_string(),
                schema: table.schema(),
                builds: Arc::clone(&self.builds),
            })) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.builds.seen().tables.contains_key(name)
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(read_only(&name))
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(read_only(name))
    }
}

fn read_only(name: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "table {name}: the published tables are read-only (`vitals build` publishes them)"
    ))
}

/// A published table by name: it reads the files of the build pinned to
/// the query at execution, which may be newer than the one it was planned
/// on (a prepared statement), as long as the columns are the same.
#[derive(Debug)]
struct PublishedTable {
    name: String,
    schema: SchemaRef,
    builds: Arc<Builds>,
}

impl Binding for PublishedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn resolve(&self) -> DfResult<Arc<dyn TableProvider>> {
        let build = self.builds.seen();
        let table = build.tables.get(&self.name).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "table {} is not in build {} any more",
                self.name, build.id
            ))
        })?;
        if table.schema() != self.schema {
            return Err(DataFusionError::Plan(format!(
                "table {} has other columns in build {}: prepare the statement again",
                self.name, build.id
            )));
        }
        Ok(Arc::clone(table))
    }
}
