//! One build, end to end: load the catalog, register the sources, compute
//! the range, run the models in order, write every selected table, publish.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayData, Date32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Sort, cast};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::{StreamExt, TryStreamExt};

use crate::catalog::{self, Catalog, Diagnostic, Diagnostics, ParamValue, TableKind, sql_text};
use crate::compile::{self, ident};
use crate::error::{Result, VitalsError};
use crate::execute::entity_slices;
use crate::execute::late_bound::LateBound;
use crate::execute::pending::PendingModel;
use crate::execute::{
    self, Range, SessionOptions, SourceLocations, SourceReport, WorkDir, calendar,
};
use crate::plan::{BuildPlan, Skips};
use crate::progress::{Progress, ProgressMode};
use crate::publish::manifest::{ColumnEntry, RangeEntry, SkippedEntry, StepEntry};
use crate::publish::{Lock, Manifest, TableEntry, Target, write_files, write_table};
use crate::storage::Location;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub catalog: PathBuf,
    pub locations: SourceLocations,
    /// A path or a URL (`s3://bucket/prefix`, `gs://`, `az://`, `file://`).
    pub target: String,
    pub as_of: Option<NaiveDate>,
    pub select: Vec<String>,
    pub session: SessionOptions,
    /// How steps are reported on stderr.
    pub progress: ProgressMode,
    /// When another build holds the target: wait for it (else fail at once).
    pub wait: bool,
    /// Builds kept on the target: the published one and those before it.
    pub keep_builds: usize,
}

/// A catalog with its sources and models registered on a session: ready to
/// plan and run the queries of tables.
pub struct Prepared {
    pub catalog: Catalog,
    pub ctx: SessionContext,
    pub range: Range,
    pub params: Vec<(String, ParamValue)>,
    pub sources: Vec<SourceReport>,
    /// What the absent optional tables leave out.
    pub skips: Skips,
    /// How models are kept for the queries that read them.
    pub models: ModelStore,
    /// The plans of cached models, for the build's steps to run.
    pub planned: BTreeMap<String, PlannedModel>,
    /// Population rows per slice of a score (`execute::entity_slices`).
    pub score_slice_rows: u64,
}

/// A cached model's plan, and its place in the plans that read it.
pub struct PlannedModel {
    df: DataFrame,
    pending: Arc<LateBound<PendingModel>>,
}

/// Where a model's result lives between its query and those that read it.
#[derive(Debug)]
pub enum ModelStore {
    /// Not kept: each reader runs the model's query (validate, explain).
    Views,
    /// Computed once: kept in memory while all the models kept there fit in
    /// `budget` bytes (memory outside DataFusion's pool), else written to
    /// local Parquet files, so that a large build stays bounded.
    Cached(ModelCache),
}

#[derive(Debug)]
pub struct ModelCache {
    work: WorkDir,
    budget: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl ModelCache {
    pub fn new(budget: usize) -> Result<ModelCache> {
        Ok(ModelCache {
            work: WorkDir::new()?,
            budget,
            used: Default::default(),
        })
    }

    /// Keeps the model `name` computed by `stream`: in memory if it fits
    /// the budget left, else as local Parquet files. Returns its rows and
    /// the table that reads them; errors start with `what`.
    async fn store(
        &self,
        ctx: &SessionContext,
        name: &str,
        what: &str,
        schema: SchemaRef,
        mut stream: SendableRecordBatchStream,
    ) -> Result<(u64, Arc<dyn TableProvider>)> {
        let fail = |e: &dyn std::fmt::Display| VitalsError::data(what, e);
        // Batches are kept while the cache has room; past it, they and the
        // rest of the stream go to files.
        let mut kept = Kept::new(self.room());
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| fail(&e))?;
            if !kept.add(&batch) {
                let batches = std::mem::take(&mut kept.batches);
                let stream = Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&schema),
                    futures::stream::iter(batches.into_iter().chain([batch]).map(Ok)).chain(stream),
                ));
                let root = crate::storage::Location::local(self.work.path())?;
                let (_, rows) = write_files(&root, name, &format!("model {name}"), stream).await?;
                let files = parquet_files(ctx, &self.work.path().join(name), schema)
                    .map_err(|e| fail(&e))?;
                return Ok((rows, files));
            }
        }
        let rows = kept.rows();
        Ok((
            rows,
            self.in_memory(ctx, schema, kept).map_err(|e| fail(&e))?,
        ))
    }

    /// Bytes of the budget not taken yet.
    fn room(&self) -> usize {
        self.budget
            .saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// A table of the batches `kept`, counted against the budget.
    fn in_memory(
        &self,
        ctx: &SessionContext,
        schema: SchemaRef,
        kept: Kept,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        self.used.fetch_add(kept.bytes, Ordering::Relaxed);
        // Spread over the session's partitions: readers scan in parallel.
        let partitions = ctx.state().config().target_partitions().max(1);
        let mut spread = vec![Vec::new(); partitions];
        for (i, batch) in kept.batches.into_iter().enumerate() {
            spread[i % partitions].push(batch);
        }
        Ok(Arc::new(MemTable::try_new(schema, spread)?))
    }
}

/// The batches of a model kept in memory while they fit in `room` bytes.
struct Kept {
    batches: Vec<RecordBatch>,
    bytes: usize,
    buffers: HashSet<usize>,
    room: usize,
    fits: bool,
}

impl Kept {
    fn new(room: usize) -> Kept {
        Kept {
            batches: Vec::new(),
            bytes: 0,
            buffers: HashSet::new(),
            room,
            fits: true,
        }
    }

    /// Keeps `batch` if it still fits; false (and nothing kept) once the
    /// batches outgrow the room.
    fn add(&mut self, batch: &RecordBatch) -> bool {
        if self.fits {
            self.bytes += new_buffer_bytes(batch, &mut self.buffers);
            self.fits = self.bytes <= self.room;
            if self.fits {
                self.batches.push(batch.clone());
            } else {
                self.buffers.clear();
            }
        }
        self.fits
    }

    fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// A table of the Parquet files in the local folder `dir`, read as `schema`.
fn parquet_files(
    ctx: &SessionContext,
    dir: &std::path::Path,
    schema: SchemaRef,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(dir.display().to_string())?;
    let options = ParquetReadOptions::default()
        .to_listing_options(&ctx.copied_config(), ctx.copied_table_options());
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

impl Prepared {
    /// Replaces `${name}` placeholders by their values as SQL literals.
    pub fn expand(&self, sql: &str) -> String {
        expand_with(&self.params, sql)
    }

    /// The SQL that produces an output table.
    pub fn table_sql(&self, table: &str) -> String {
        let t = self.catalog.table(table).expect("planned table");
        match &t.kind {
            TableKind::Model { model, order_by } => {
                let order = if order_by.is_empty() {
                    String::new()
                } else {
                    format!(" ORDER BY {}", order_by.join(", "))
                };
                format!("SELECT * FROM {}{order}", ident(model))
            }
            TableKind::Metrics { .. } => compile::metrics::table_sql(
                &self.catalog,
                table,
                &self.skips.metric_names(),
                &|s| self.expand(s),
            )
            .expect("a metric table"),
        }
    }

    /// Plans an output table; a planning error is a catalog error, pointed
    /// at the metric text that names the unknown column when there is one.
    pub async fn plan_table(&self, table: &str) -> Result<DataFrame> {
        let sql = self.table_sql(table);
        self.ctx.sql(&sql).await.map_err(|e| {
            let message = strip_context(&e.to_string());
            let t = self.catalog.table(table).expect("planned table");
            let headline = format!("table `{table}` cannot be planned: {message}");
            let located = unknown_name(&message).and_then(|name| {
                table_texts(&self.catalog, t).into_iter().find_map(|l| {
                    sql_text::find_word(&l.text, &name).map(|at| {
                        let start = l.offset_of(at);
                        Diagnostic::new(headline.clone()).at(&l.source, start..start + name.len())
                    })
                })
            });
            let d = located.unwrap_or_else(|| Diagnostic::new(headline.clone()).at(&self.catalog.source, t.span.clone()));
            VitalsError::Catalog(Diagnostics(vec![d.help(format!(
                "check the metrics of [tables.{table}] against the columns of their models; `vitals explain {table}` shows the SQL"
            ))]))
        })
    }
}

impl Prepared {
    /// Plans several tables, reporting the catalog errors of all of them.
    pub async fn plan_tables<'a>(
        &self,
        tables: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<(String, DataFrame)>> {
        let mut frames = Vec::new();
        let mut errors = Diagnostics::default();
        for name in tables {
            match self.plan_table(name).await {
                Ok(df) => frames.push((name.to_string(), df)),
                Err(VitalsError::Catalog(d)) => errors.0.extend(d.0),
                Err(e) => return Err(e),
            }
        }
        errors.into_result()?;
        Ok(frames)
    }
}

/// The catalog texts that end up in a table's SQL.
fn table_texts<'c>(catalog: &'c Catalog, table: &'c catalog::Table) -> Vec<&'c catalog::Located> {
    let TableKind::Metrics { metrics, .. } = &table.kind else {
        return Vec::new();
    };
    crate::plan::metric_closure(catalog, metrics)
        .into_iter()
        .filter_map(|m| catalog.metric(m))
        .flat_map(|m| m.texts())
        .collect()
}

/// The column DataFusion could not find, from "No field named x".
fn unknown_name(message: &str) -> Option<String> {
    let rest = &message[message.find("No field named ")? + "No field named ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"'))
        .collect();
    let token = token.trim_end_matches('.').replace('"', "");
    token
        .rsplit('.')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn expand_with(params: &[(String, ParamValue)], sql: &str) -> String {
    sql_text::substitute(sql, |name| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_sql())
    })
}

fn strip_context(message: &str) -> String {
    message
        .replace("Error during planning: ", "")
        .replace("Schema error: ", "")
}

/// Loads the catalog and registers sources, calendar and models.
/// `with_data = false` registers every source empty (for `validate`).
pub async fn prepare(
    catalog_path: &std::path::Path,
    locations: &SourceLocations,
    as_of: Option<NaiveDate>,
    select: &[String],
    session: &SessionOptions,
    cache_models: bool,
) -> Result<(Prepared, Vec<String>)> {
    let catalog = catalog::load(catalog_path)?;
    let as_of = as_of
        .or(catalog.project.as_of)
        .unwrap_or_else(|| Utc::now().date_naive());
    let plan = BuildPlan::new(&catalog, select).map_err(|e| VitalsError::Usage(e.to_string()))?;
    let plan_models = plan.models;
    let ctx = execute::new_session(session)?;
    // Sources may use parameters, not yet the range (it comes from them).
    let provisional = Range::new(as_of, None, catalog.project.start_month);
    let params = provisional.placeholders(&catalog.project);
    let sources =
        execute::sources::register_all(&ctx, &catalog, locations, &|s| expand_with(&params, s))
            .await?;
    let earliest = match &catalog.project.range_start {
        Some(sql) => first_date(&ctx, &expand_with(&params, &sql.text), sql).await?,
        None => None,
    };
    let range = Range::new(as_of, earliest, catalog.project.start_month);
    calendar::register(&ctx, &range, &compile::relations::windows(&catalog))?;
    let params = range.placeholders(&catalog.project);
    let absent: Vec<String> = if locations.empty {
        Vec::new()
    } else {
        sources
            .iter()
            .filter(|s| s.location.is_none())
            .map(|s| s.name.clone())
            .collect()
    };
    let skips = Skips::new(&catalog, &absent);
    let mut prepared = Prepared {
        catalog,
        ctx,
        range,
        params,
        sources,
        skips,
        models: if cache_models {
            ModelStore::Cached(ModelCache::new(session.model_cache_size())?)
        } else {
            ModelStore::Views
        },
        planned: BTreeMap::new(),
        score_slice_rows: session.score_slice_rows(),
    };
    // Plan every model, collecting every catalog error; a model that reads
    // a failed one is skipped rather than reported again.
    let mut failed: Vec<&str> = Vec::new();
    let mut errors = Diagnostics::default();
    for name in &plan_models {
        let reads = &prepared.catalog.model(name).expect("planned model").reads;
        if reads.iter().any(|r| failed.contains(&r.as_str())) {
            failed.push(name);
            continue;
        }
        match register_model(&prepared, name).await {
            Ok(Some(planned)) => {
                prepared.planned.insert(name.clone(), planned);
            }
            Ok(None) => {}
            Err(VitalsError::Catalog(d)) => {
                errors.0.extend(d.0);
                failed.push(name);
            }
            Err(e) => return Err(e),
        }
    }
    errors.into_result()?;
    Ok((prepared, plan_models))
}

async fn first_date(
    ctx: &SessionContext,
    sql: &str,
    at: &catalog::Located,
) -> Result<Option<NaiveDate>> {
    let plan_error = |e: &dyn std::fmt::Display| {
        VitalsError::Catalog(Diagnostics(vec![at.error(format!("`range_start` cannot be computed: {e}")).help(
            "range_start is a query returning one DATE, e.g. \"SELECT min(start_date) FROM subscriptions\"",
        )]))
    };
    let df = ctx.sql(sql).await.map_err(|e| plan_error(&e))?;
    let first = ident(df.schema().field(0).name());
    let df = df
        .select_exprs(&[&format!("CAST({first} AS DATE)")])
        .map_err(|e| plan_error(&e))?;
    let batches = df
        .collect()
        .await
        .map_err(|e| VitalsError::data("computing the range start", e))?;
    let value = batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        let col = b.column(0).as_any().downcast_ref::<Date32Array>()?;
        (!col.is_null(0)).then(|| col.value_as_date(0)).flatten()
    });
    Ok(value)
}

/// Plans a model and registers it under its name: as a view (computed by
/// each query that reads it), or, when models are cached, as pending until
/// its step computes it (the plan is returned for that step).
async fn register_model(prepared: &Prepared, name: &str) -> Result<Option<PlannedModel>> {
    let model = prepared.catalog.model(name).expect("planned model");
    let sql = prepared.expand(&model.sql.text);
    let df = prepared.ctx.sql(&sql).await.map_err(|e| {
        let message = strip_context(&e.to_string());
        let d = Diagnostic::new(format!("model `{name}` cannot be planned: {message}"));
        let unknown = unknown_name(&message);
        // A cohort or score metric's SQL is generated: point at its TOML.
        if let Some(metric) = model.metric.as_deref().and_then(|m| prepared.catalog.metric(m)) {
            let texts = metric.texts();
            let at = unknown.as_ref().and_then(|n| {
                texts.iter().find_map(|l| {
                    sql_text::find_word(&l.text, n).map(|at| (l, l.offset_of(at)..l.offset_of(at) + n.len()))
                })
            });
            let d = match at {
                Some((l, span)) => d.at(&l.source, span),
                None => d.at(&prepared.catalog.source, metric.span.clone()),
            };
            return VitalsError::Catalog(Diagnostics(vec![d.help(format!(
                "check the expressions of [metrics.{name}] against the columns they read; `vitals explain {name}` shows the SQL"
            ))]));
        }
        let at = unknown
            .and_then(|n| sql_text::find_word(&model.sql.text, &n).map(|at| at..at + n.len()));
        let d = match at {
            Some(span) => d.at(&model.sql, span),
            None => d.in_file(&model.sql_path),
        };
        VitalsError::Catalog(Diagnostics(vec![
            d.help("check the column and relation names of the query"),
        ]))
    })?;
    let what = model_context(prepared, name);
    let fail = |e: &dyn std::fmt::Display| VitalsError::data(&what, e);
    prepared.ctx.deregister_table(name).ok();
    let planned = match &prepared.models {
        ModelStore::Views => {
            prepared
                .ctx
                .register_table(name, df.into_view())
                .map_err(|e| fail(&e))?;
            None
        }
        ModelStore::Cached(_) => {
            let pending = PendingModel::new(name, Arc::new(df.schema().as_arrow().clone()));
            prepared
                .ctx
                .register_table(name, pending.clone())
                .map_err(|e| fail(&e))?;
            Some(PlannedModel { df, pending })
        }
    };
    Ok(planned)
}

fn model_context(prepared: &Prepared, name: &str) -> String {
    let model = prepared.catalog.model(name).expect("planned model");
    format!("model `{name}` ({})", model.sql_path.display())
}

/// Computes a model planned by `prepare` (the models it reads are
/// computed by now) and keeps its rows for the queries that read it.
async fn compute_model(
    prepared: &Prepared,
    cache: &ModelCache,
    name: &str,
    progress: &Progress,
) -> Result<StepEntry> {
    let planned = &prepared.planned[name];
    let what = model_context(prepared, name);
    let fail = |e: &dyn std::fmt::Display| VitalsError::data(&what, e);
    let step = progress.start("model", name);
    let schema = Arc::new(planned.df.schema().as_arrow().clone());
    let slices = score_slices(prepared, name, &[]).await?;
    let slice_count = slices.len();
    let stream = entity_slices::sliced_stream(planned.df.clone(), slices)
        .await
        .map_err(|e| fail(&e))?;
    let (rows, table) = cache
        .store(&prepared.ctx, name, &what, schema, stream)
        .await?;
    planned.pending.fill(table);
    let seconds = progress.finish(step, rows);
    Ok(StepEntry::new(rows, seconds).in_slices(slice_count))
}

/// The slices of entities a score model is computed in, one query after
/// the other (see `execute::entity_slices`): none unless `model` is a
/// score whose population outgrows one slice and whose sources are laid
/// out by its entity. Slices come one after the other, so a table that
/// publishes the model stays sorted only if its order starts with the
/// entity (`order_by`, empty for a model no table publishes as is).
async fn score_slices(prepared: &Prepared, model: &str, order_by: &[String]) -> Result<Vec<Expr>> {
    let catalog = &prepared.catalog;
    let Some(catalog::MetricKind::Score(score)) = catalog
        .model(model)
        .and_then(|m| m.metric.as_deref())
        .and_then(|m| catalog.metric(m))
        .map(|m| &m.kind)
    else {
        return Ok(Vec::new());
    };
    if order_by.first().is_some_and(|first| *first != score.entity) {
        return Ok(Vec::new());
    }
    // Models are computed by now (in memory or local files). Each slice
    // reads the sources again: a large one must let it skip the other
    // entities' row groups.
    let laid_out = std::iter::once(&score.population)
        .chain(score.components.iter().map(|c| &c.from))
        .all(|relation| {
            let report = prepared.sources.iter().find(|r| &r.name == relation);
            match (catalog.source(relation), report) {
                (Some(source), Some(report)) => {
                    report.rows() <= entity_slices::SMALL_SOURCE_ROWS
                        || report.clustered_on(source.file_column(&score.entity))
                }
                _ => true,
            }
        });
    if !laid_out {
        return Ok(Vec::new());
    }
    let rows = prepared.score_slice_rows;
    entity_slices::slice_filters(&prepared.ctx, &score.population, &score.entity, rows)
        .await
        .map_err(|e| VitalsError::data(format!("model {model}: slices of {}", score.entity), e))
}

/// The bytes of the buffers of `batch` not already in `seen`. Batches of
/// text views share their data buffers (a Parquet page's strings serve
/// many batches), and sliced batches share whole allocations: summing each
/// batch's size would count them many times.
fn new_buffer_bytes(batch: &RecordBatch, seen: &mut HashSet<usize>) -> usize {
    fn walk(data: &ArrayData, seen: &mut HashSet<usize>) -> usize {
        let own: usize = data
            .buffers()
            .iter()
            .chain(data.nulls().map(|n| n.buffer()))
            .filter(|b| seen.insert(b.data_ptr().as_ptr() as usize))
            .map(|b| b.capacity())
            .sum();
        own + data
            .child_data()
            .iter()
            .map(|c| walk(c, seen))
            .sum::<usize>()
    }
    batch
        .columns()
        .iter()
        .map(|c| walk(&c.to_data(), seen))
        .sum()
}

/// Runs a build and publishes it; returns the manifest.
pub async fn run(options: &BuildOptions) -> Result<Manifest> {
    let started = Utc::now();
    // The catalog says how to reach the target's store ([storage]); a
    // catalog error stops the build before it touches the target.
    let storage = catalog::load(&options.catalog)?.storage;
    let location = Location::parse(&options.target, std::path::Path::new("."), &storage)?;
    let target = Target::new(location)?;
    // One build at a time per target, taken first so that a second build
    // fails before doing any work.
    let lock = Lock::acquire(&target.location, &target.build_id, options.wait).await?;
    let result = build_and_publish(options, &target, &lock, started).await;
    lock.release().await;
    result.map_err(|e| with_memory_hint(e, &options.session))
}

/// DataFusion's "Resources exhausted" names its own settings; say what to
/// do here: the memory a step could not get is the `--memory-limit`'s.
fn with_memory_hint(err: VitalsError, session: &execute::SessionOptions) -> VitalsError {
    match err {
        VitalsError::Data(message) if message.contains("Resources exhausted") => {
            let hint = match session.memory_limit {
                Some(limit) => format!(
                    "this step needs more memory than `--memory-limit` ({} MB) lets it hold even \
                     while spilling; raise the limit, or leave it out to use an eighth of the \
                     machine's memory",
                    limit >> 20
                ),
                None => format!(
                    "this step needs more than the {} MB (an eighth of the machine's memory) \
                     it may hold; give more with `--memory-limit`",
                    session.pool_size() >> 20
                ),
            };
            VitalsError::Data(format!("{message}\nhint: {hint}"))
        }
        other => other,
    }
}

/// The build itself, under the target's lock.
async fn build_and_publish(
    options: &BuildOptions,
    target: &Target,
    lock: &Lock,
    started: chrono::DateTime<Utc>,
) -> Result<Manifest> {
    // What is published now: this build replaces exactly that.
    let previous = Target::published(&target.location).await?;
    let progress = Progress::new(options.progress);
    let (prepared, models) = prepare(
        &options.catalog,
        &options.locations,
        options.as_of,
        &options.select,
        &options.session,
        true,
    )
    .await?;
    let ModelStore::Cached(cache) = &prepared.models else {
        unreachable!("a build caches its models");
    };
    let catalog = &prepared.catalog;
    let plan =
        BuildPlan::new(catalog, &options.select).map_err(|e| VitalsError::Usage(e.to_string()))?;
    for line in prepared.skips.report(catalog) {
        progress.note(&line);
    }
    // Plan every table before computing anything (every model is planned
    // by now): a catalog error must not cost a half-finished build.
    let mut frames: BTreeMap<String, DataFrame> = prepared
        .plan_tables(
            plan.tables
                .iter()
                .map(|t| t.name.as_str())
                .filter(|t| !prepared.skips.tables.contains_key(*t)),
        )
        .await?
        .into_iter()
        .collect();
    let published_by = models_published_as_is(catalog, &frames, target);
    progress.add_steps(models.len() + frames.len() - published_by.len());
    // A table that publishes a model as it is is planned again in the
    // model's step, with the model inlined.
    for table in published_by.values() {
        frames.remove(table);
    }

    // Tables that read no model (`rejected_rows` reads the sources) run
    // beside the models; the others once every model is computed. Each
    // step's query already uses both cores, but not all the time: its
    // last operators (a sort's merge, the Parquet writer) run on one, and
    // a second step fills the other.
    let (early, late): (BTreeMap<_, _>, BTreeMap<_, _>) = frames.into_iter().partition(|(t, _)| {
        catalog.table(t).is_none_or(|t| {
            crate::plan::relations_of(catalog, t)
                .iter()
                .all(|r| catalog.model(r).is_none())
        })
    });
    let models_in_order = async {
        let mut model_steps = BTreeMap::new();
        let mut tables = BTreeMap::new();
        for model in &models {
            match published_by.get(model) {
                Some(table) => {
                    let (step, entry) =
                        publish_model(&prepared, cache, model, table, target, &progress).await?;
                    model_steps.insert(model.clone(), step);
                    tables.insert(table.clone(), entry);
                }
                None => {
                    let step = compute_model(&prepared, cache, model, &progress).await?;
                    model_steps.insert(model.clone(), step);
                }
            }
        }
        Ok::<_, VitalsError>((model_steps, tables))
    };
    let ((model_steps, mut tables), early) =
        futures::try_join!(models_in_order, publish_tables(early, target, &progress))?;
    tables.extend(early);
    tables.extend(publish_tables(late, target, &progress).await?);
    if !options.select.is_empty() {
        // A selective build replaces the tables it built; the others stay
        // published as the previous build left them.
        if let Some(previous) = &previous.manifest {
            for (name, entry) in previous.tables.clone() {
                if catalog.table(&name).is_some() && !prepared.skips.tables.contains_key(&name) {
                    tables.entry(name).or_insert(entry);
                }
            }
        }
    }
    let manifest = Manifest {
        format_version: 1,
        build_id: target.build_id.clone(),
        project: catalog.project.name.clone(),
        as_of: prepared.range.as_of.to_string(),
        catalog_hash: catalog.hash.clone(),
        started_at: started.to_rfc3339(),
        finished_at: Utc::now().to_rfc3339(),
        range: RangeEntry {
            start: prepared.range.start.to_string(),
            end: prepared.range.end.to_string(),
        },
        tables,
        models: model_steps,
        absent_sources: prepared
            .sources
            .iter()
            .filter(|s| s.location.is_none())
            .map(|s| s.name.clone())
            .collect(),
        skipped: skipped_entries(catalog, &prepared.skips),
    };
    lock.check().await?;
    target
        .publish(&manifest, options.keep_builds, &previous)
        .await?;
    Ok(manifest)
}

/// The models that a table of this build publishes as they are (`model =`
/// in the table), by that table: their step writes the table, and the
/// model's readers read its files (or its rows kept in memory), so the
/// rows are encoded once. At 1M customers the health score's model files
/// took 7.6 s to write, and the table's step read them back only to sort
/// and write them again. A target on an object store keeps the two steps:
/// its files are not local to read back.
fn models_published_as_is(
    catalog: &Catalog,
    frames: &BTreeMap<String, DataFrame>,
    target: &Target,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if target.location.local_path().is_none() {
        return out;
    }
    for table in frames.keys() {
        // `rejected_rows` publishes a relation of the sources, not a model.
        if let Some(TableKind::Model { model, .. }) = catalog.table(table).map(|t| &t.kind)
            && catalog.model(model).is_some()
        {
            out.entry(model.clone()).or_insert_with(|| table.clone());
        }
    }
    out
}

/// How many ready tables are written at the same time (see
/// `build_and_publish`).
const TABLES_AT_ONCE: usize = 2;

/// Runs the queries of `frames` and writes their tables, up to
/// [`TABLES_AT_ONCE`] at a time; returns their entries.
async fn publish_tables(
    frames: BTreeMap<String, DataFrame>,
    target: &Target,
    progress: &Progress,
) -> Result<BTreeMap<String, TableEntry>> {
    futures::stream::iter(frames)
        .map(|(name, df)| async move {
            let step = progress.start("table", &name);
            let df =
                plain_strings(df).map_err(|e| VitalsError::data(format!("table {name}"), e))?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let stream = df
                .execute_stream()
                .await
                .map_err(|e| VitalsError::data(format!("table {name}"), e))?;
            let (files, rows) = write_table(target, &name, stream).await?;
            let seconds = progress.finish(step, rows);
            let entry = TableEntry {
                rows,
                schema: ColumnEntry::of(&schema),
                files,
                seconds: StepEntry::round(seconds),
            };
            Ok::<_, VitalsError>((name, entry))
        })
        .buffer_unordered(TABLES_AT_ONCE)
        .try_collect()
        .await
}

/// Computes a model inside the query of the table that publishes it,
/// writes the table, and keeps the model's rows for its readers: in memory
/// while they fit the cache, else the table's files.
async fn publish_model(
    prepared: &Prepared,
    cache: &ModelCache,
    model: &str,
    table: &str,
    target: &Target,
    progress: &Progress,
) -> Result<(StepEntry, TableEntry)> {
    let planned = &prepared.planned[model];
    let fail = |e: &dyn std::fmt::Display| VitalsError::data(format!("table {table}"), e);
    let step = progress.start("table", table);
    // The table's query computes the model: planned again with the model
    // as a view, which DataFusion inlines into it. Scanned through the
    // pending model instead, the view was optimized on its own and then
    // again inside the table's plan, and DataFusion refused to swap a join
    // it had already given a dynamic filter (`join_selection`).
    let ctx = &prepared.ctx;
    ctx.deregister_table(model).map_err(|e| fail(&e))?;
    ctx.register_table(model, planned.df.clone().into_view())
        .map_err(|e| fail(&e))?;
    let df = prepared.plan_table(table).await;
    ctx.deregister_table(model).map_err(|e| fail(&e))?;
    ctx.register_table(model, planned.pending.clone())
        .map_err(|e| fail(&e))?;
    let df = df?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let order_by = match prepared.catalog.table(table).map(|t| &t.kind) {
        Some(TableKind::Model { order_by, .. }) => order_by.as_slice(),
        _ => &[],
    };
    let slices = score_slices(prepared, model, order_by).await?;
    let slice_count = slices.len();
    let stream = entity_slices::sliced_stream(df, slices)
        .await
        .map_err(|e| fail(&e))?;
    // The model's readers get its batches with string views, as it was
    // planned; the files get plain strings (`plain_strings`). The casts
    // follow the stream's order: the table stays sorted.
    let plain = plain_schema(&schema);
    let kept = Arc::new(std::sync::Mutex::new(Kept::new(cache.room())));
    let keep = Arc::clone(&kept);
    let cast_to = Arc::clone(&plain);
    let written = stream.map(move |batch| {
        let batch = batch?;
        keep.lock().expect("kept batches").add(&batch);
        cast_views(&batch, &cast_to)
    });
    let stream = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&plain), written));
    let (files, rows) = write_table(target, table, stream).await?;
    // Every batch written went through `keep` first. The task that polled
    // the stream may not have dropped its handle yet: take the batches out.
    let kept = std::mem::replace(&mut *kept.lock().expect("kept batches"), Kept::new(0));
    let rows_of_model: Arc<dyn TableProvider> = if kept.fits {
        cache.in_memory(&prepared.ctx, schema, kept)
    } else {
        let root = target.location.local_path().expect("a local target");
        parquet_files(&prepared.ctx, &root.join(target.table_dir(table)), schema)
    }
    .map_err(|e| fail(&e))?;
    planned.pending.fill(rows_of_model);
    let seconds = progress.finish(step, rows);
    let entry = TableEntry {
        rows,
        schema: ColumnEntry::of(&plain),
        files,
        seconds: StepEntry::round(seconds),
    };
    Ok((StepEntry::new(rows, seconds).in_slices(slice_count), entry))
}

/// `schema` with its string views as plain strings.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn cast_views(batch: &RecordBatch, plain: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(plain.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(Arc::clone(c)),
            false => datafusion::arrow::compute::cast(c, f.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(plain), columns)?)
}

/// The frame with its string views cast to Utf8: published files carry the
/// string type every Parquet reader (and BI tool) knows.
///
/// The casts go below the query's ORDER BY. Above it, DataFusion spread the
/// sorted stream round-robin over the partitions to cast in parallel, and
/// the two halves came back interleaved: at 20k customers
/// `customer_mrr_monthly` had months out of order every few 8192-row
/// batches.
pub fn plain_strings(df: DataFrame) -> datafusion::error::Result<DataFrame> {
    if !df
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Utf8View)
    {
        return Ok(df);
    }
    let (state, plan) = df.into_parts();
    Ok(DataFrame::new(state, cast_views_below_sort(plan)?))
}

fn cast_views_below_sort(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    if let LogicalPlan::Sort(sort) = plan {
        let input = cast_views_below_sort(Arc::unwrap_or_clone(sort.input))?;
        return Ok(LogicalPlan::Sort(Sort {
            input: Arc::new(input),
            ..sort
        }));
    }
    // Each column keeps its qualifier, so the sort above still finds it.
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            if field.data_type() == &DataType::Utf8View {
                cast(column, DataType::Utf8).alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// The manifest's record of what absent tables left out.
fn skipped_entries(catalog: &Catalog, skips: &Skips) -> Vec<SkippedEntry> {
    let mut out: Vec<SkippedEntry> = skips
        .tables
        .iter()
        .map(|(t, needs)| SkippedEntry {
            table: t.clone(),
            columns: Vec::new(),
            needs: needs.iter().cloned().collect(),
        })
        .collect();
    for t in &catalog.tables {
        let TableKind::Metrics { metrics, .. } = &t.kind else {
            continue;
        };
        if skips.tables.contains_key(&t.name) {
            continue;
        }
        let columns: Vec<String> = metrics
            .iter()
            .filter(|m| skips.metrics.contains_key(*m))
            .cloned()
            .collect();
        if !columns.is_empty() {
            let needs: std::collections::BTreeSet<String> = columns
                .iter()
                .flat_map(|c| skips.metrics[c].iter().cloned())
                .collect();
            out.push(SkippedEntry {
                table: t.name.clone(),
                columns,
                needs: needs.into_iter().collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unknown_name;

    #[test]
    fn finds_the_unknown_column_of_a_planning_error() {
        let m = "No field named prev_mr. Did you mean 'customer_mrr_monthly.prev_mrr'?";
        assert_eq!(unknown_name(m).as_deref(), Some("prev_mr"));
        let q = "No field named f.prevmrr. Did you mean 'f.prev_mrr'?";
        assert_eq!(unknown_name(q).as_deref(), Some("prevmrr"));
    }
}
