//! Sources: find each table's Parquet files, check them against the input
//! contract (naming the table, file and column of any problem), and register
//! the stages of `compile::source` as views.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::catalog::contract::TableContract;
use crate::catalog::{Catalog, Source};
use crate::compile::ident;
use crate::compile::source::{self as stages, TypedColumn};
use crate::error::{Result, VitalsError};
use crate::storage::{Location, clean};

/// Where to find sources besides the catalog's own `location`s.
#[derive(Debug, Clone, Default)]
pub struct SourceLocations {
    /// `--data DIR` (a path or a URL such as `s3://bucket/prefix`): table T
    /// is `DIR/T/` or `DIR/T.parquet`.
    pub data_dir: Option<String>,
    /// `--source T=PATH`.
    pub overrides: BTreeMap<String, String>,
    /// Register every source empty, with its contract's columns: lets
    /// `validate` plan the whole catalog without data.
    pub empty: bool,
}

/// What was found for a source.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub name: String,
    /// None: the optional table is absent and was registered empty.
    pub location: Option<String>,
    pub files: usize,
    /// The files' footers (row groups and their statistics).
    pub footers: Vec<Arc<ParquetMetaData>>,
}

impl SourceReport {
    /// Rows in the files, as their footers say.
    pub fn rows(&self) -> u64 {
        self.footers
            .iter()
            .map(|f| f.file_metadata().num_rows().max(0) as u64)
            .sum()
    }

    /// Whether the files are laid out by `file_column`
    /// (see [`super::entity_slices::clustered`]).
    pub fn clustered_on(&self, file_column: &str) -> bool {
        super::entity_slices::clustered(&self.footers, file_column)
    }
}

/// A source's files: one Parquet file, or a folder of them.
struct Found {
    location: Location,
    folder: bool,
}

/// One Parquet file of a source, with its own schema (read from its
/// footer once: on an object store each read is a request).
struct SourceFile {
    /// For messages: the file's path or URL.
    name: String,
    /// Below the source's location, `/`-separated (Hive partitions show).
    relative: String,
    schema: Schema,
    footer: Arc<ParquetMetaData>,
}

impl SourceLocations {
    async fn locate(&self, catalog: &Catalog, source: &Source) -> Result<Option<Found>> {
        if self.empty {
            return Ok(None);
        }
        let cwd = std::path::Path::new(".");
        let storage = &catalog.storage;
        if let Some(o) = self.overrides.get(&source.name) {
            return find(&Location::parse(o, cwd, storage)?).await;
        }
        if let Some(dir) = &self.data_dir {
            let dir = Location::parse(dir, cwd, storage)?;
            if let Some(found) = find(&dir.join(&source.name)).await?
                && found.folder
            {
                return Ok(Some(found));
            }
            let file = dir.join(&format!("{}.parquet", source.name));
            return Ok(find(&file).await?.filter(|f| !f.folder));
        }
        match &source.location {
            Some(l) => find(&Location::parse(&l.text, &catalog.dir, storage)?).await,
            None => Ok(None),
        }
    }
}

/// Whether `location` is a file, a folder with files, or nothing.
async fn find(location: &Location) -> Result<Option<Found>> {
    let store = location.store();
    let key = location.key("");
    match store.head(&key).await {
        Ok(_) => {
            return Ok(Some(Found {
                location: location.clone(),
                folder: false,
            }));
        }
        Err(object_store::Error::NotFound { .. }) => {}
        // A local folder is not an object: heading it says so.
        Err(_) if location.local_path().is_some_and(|p| p.is_dir()) => {}
        Err(e) => return Err(location.error("cannot read", "", &e)),
    }
    match store.list(Some(&key)).next().await {
        Some(Ok(_)) => Ok(Some(Found {
            location: location.clone(),
            folder: true,
        })),
        None => Ok(None),
        Some(Err(object_store::Error::NotFound { .. })) => Ok(None),
        Some(Err(e)) => Err(location.error("cannot list", "", &e)),
    }
}

/// Registers every source of the catalog and the `rejected_rows` relation.
pub async fn register_all(
    ctx: &SessionContext,
    catalog: &Catalog,
    locations: &SourceLocations,
    expand: &dyn Fn(&str) -> String,
) -> Result<Vec<SourceReport>> {
    for name in locations.overrides.keys() {
        if catalog.source(name).is_none() {
            return Err(VitalsError::Usage(format!(
                "--source names `{name}`, which is not a source of the catalog; {}",
                crate::catalog::diagnostic::suggestion(
                    name,
                    "source",
                    catalog.sources.iter().map(|s| s.name.as_str())
                )
            )));
        }
    }
    let mut reports = Vec::new();
    let mut typed_columns_of = BTreeMap::new();
    for source in &catalog.sources {
        let (columns, report) = match locations.locate(catalog, source).await? {
            Some(found) => {
                found.location.register(ctx);
                // Every footer is read first: an unreadable file is named.
                let files = parquet_files(source, &found).await?;
                if files.is_empty() {
                    return Err(VitalsError::Data(format!(
                        "table {}: no Parquet file under {}",
                        source.name,
                        found.location.describe("")
                    )));
                }
                let schema = register_raw(ctx, source, &found).await?;
                let columns = typed_columns(catalog, source, &schema, &files)?;
                let report = SourceReport {
                    name: source.name.clone(),
                    location: Some(found.location.describe("")),
                    files: files.len(),
                    footers: files.iter().map(|f| Arc::clone(&f.footer)).collect(),
                };
                (columns, report)
            }
            None => {
                if source.contract.is_some_and(|c| c.required) && !locations.empty {
                    let hint = match &locations.data_dir {
                        Some(d) => format!(
                            "expected {0}/{1}/ or {0}/{1}.parquet",
                            d.trim_end_matches('/'),
                            source.name
                        ),
                        None => {
                            "pass --data DIR, --source NAME=PATH, or set `location` in the catalog"
                                .into()
                        }
                    };
                    return Err(VitalsError::Data(format!(
                        "table {} is required but was not found: {hint}",
                        source.name
                    )));
                }
                let columns = absent_columns(source.contract, &catalog.project.timezone);
                register_empty(ctx, &stages::raw_name(&source.name), &columns)?;
                let report = SourceReport {
                    name: source.name.clone(),
                    location: None,
                    files: 0,
                    footers: Vec::new(),
                };
                (columns, report)
            }
        };
        typed_columns_of.insert(source.name.clone(), columns);
        reports.push(report);
    }
    // A source's derive and reject expressions may read other sources
    // (subscriptions look up fx_rates): register those first.
    let mut rejected = Vec::new();
    for source in in_dependency_order(catalog) {
        let columns = &typed_columns_of[&source.name];
        let typed = stages::typed_sql(source, columns);
        register_view(
            ctx,
            &stages::checked_name(&source.name),
            &stages::checked_sql(source, &typed, columns, expand),
        )
        .await?;
        register_view(
            ctx,
            &source.name,
            &stages::valid_sql(source, columns, expand),
        )
        .await?;
        if !source.reject.is_empty() {
            let name = stages::rejected_name(&source.name);
            register_view(ctx, &name, &stages::rejected_sql(source, columns, expand)).await?;
            rejected.push(name);
        }
    }
    register_rejected_rows(ctx, &rejected).await?;
    Ok(reports)
}

fn in_dependency_order(catalog: &Catalog) -> Vec<&Source> {
    let mentions = |s: &Source, other: &str| {
        s.texts()
            .any(|t| crate::catalog::sql_text::mentions_word(&t.text, other))
    };
    let edges: BTreeMap<&str, Vec<&str>> = catalog
        .sources
        .iter()
        .map(|s| {
            let deps = catalog
                .sources
                .iter()
                .filter(|o| o.name != s.name && mentions(s, &o.name))
                .map(|o| o.name.as_str())
                .collect();
            (s.name.as_str(), deps)
        })
        .collect();
    crate::plan::dag::topological(&edges, catalog.sources.iter().map(|s| s.name.as_str()))
        .into_iter()
        .filter_map(|n| catalog.source(n))
        .collect()
}

async fn register_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| VitalsError::data(format!("cannot plan the source stage `{name}`"), e))?;
    ctx.deregister_table(name).ok();
    ctx.register_table(name, df.into_view())
        .map_err(|e| VitalsError::data(format!("cannot register `{name}`"), e))?;
    Ok(())
}

async fn register_rejected_rows(ctx: &SessionContext, rejected: &[String]) -> Result<()> {
    if rejected.is_empty() {
        let columns: Vec<TypedColumn> = ["source_table", "reason", "row_key", "row_json"]
            .iter()
            .map(|n| TypedColumn {
                name: n.to_string(),
                expr: String::new(),
                data_type: stages::TEXT,
            })
            .collect();
        return register_empty(ctx, "rejected_rows", &columns);
    }
    let union: Vec<String> = rejected
        .iter()
        .map(|r| format!("SELECT * FROM {}", ident(r)))
        .collect();
    register_view(ctx, "rejected_rows", &union.join(" UNION ALL ")).await
}

fn register_empty(ctx: &SessionContext, name: &str, columns: &[TypedColumn]) -> Result<()> {
    let fields: Vec<_> = columns
        .iter()
        .map(|c| datafusion::arrow::datatypes::Field::new(&c.name, c.data_type.clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let table = MemTable::try_new(schema, vec![vec![]]).map_err(|e| VitalsError::data(name, e))?;
    ctx.deregister_table(name).ok();
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| VitalsError::data(name, e))?;
    Ok(())
}

/// The Parquet files of a table, each with its schema: one file, or every
/// `.parquet` file below a folder (Hive partition folders included; names
/// starting with `.` or `_` are not data), in a stable order.
async fn parquet_files(source: &Source, found: &Found) -> Result<Vec<SourceFile>> {
    let location = &found.location;
    let store = Arc::clone(location.store());
    let metas: Vec<object_store::ObjectMeta> = if found.folder {
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&location.key("")))
            .try_collect()
            .await
            .map_err(|e| {
                VitalsError::Data(format!(
                    "table {}: {}",
                    source.name,
                    location.error("cannot list", "", &e)
                ))
            })?;
        listed
            .into_iter()
            .filter(|m| {
                location.relative(&m.location).is_some_and(|r| {
                    r.ends_with(".parquet")
                        && !r
                            .split('/')
                            .any(|p| p.starts_with('.') || p.starts_with('_'))
                })
            })
            .collect()
    } else {
        let meta = store.head(&location.key("")).await.map_err(|e| {
            VitalsError::Data(format!(
                "table {}: {}",
                source.name,
                location.error("cannot read", "", &e)
            ))
        })?;
        vec![meta]
    };
    let mut files: Vec<SourceFile> = futures::stream::iter(metas)
        .map(|meta| {
            let store = Arc::clone(&store);
            async move {
                let relative = location.relative(&meta.location).unwrap_or_default();
                let name = location.describe(&relative);
                // Reads the footer with ranged requests.
                let reader = object_store::buffered::BufReader::new(store, &meta);
                let builder = ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(|e| {
                        VitalsError::Data(format!(
                            "table {}, file {name}: not a readable Parquet file: {}",
                            source.name,
                            clean(&e.to_string())
                        ))
                    })?;
                Ok::<_, VitalsError>(SourceFile {
                    name,
                    relative,
                    schema: builder.schema().as_ref().clone(),
                    footer: Arc::clone(builder.metadata()),
                })
            }
        })
        // Footers are small: read several at once (an object store's
        // latency, not bandwidth, is what a footer costs).
        .buffer_unordered(8)
        .try_collect()
        .await?;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// Registers the files as `__raw_<source>`; returns the merged schema.
async fn register_raw(ctx: &SessionContext, source: &Source, found: &Found) -> Result<SchemaRef> {
    let context = || format!("table {}: {}", source.name, found.location.describe(""));
    let fail = |e: &dyn std::fmt::Display| {
        VitalsError::Data(format!("{}: {}", context(), clean(&e.to_string())))
    };
    let url = ListingTableUrl::parse(found.location.url("", found.folder)).map_err(|e| fail(&e))?;
    let state = ctx.state();
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let partitions = options
        .infer_partitions(&state, &url)
        .await
        .map_err(|e| fail(&e))?;
    let options = options.with_table_partition_cols(
        partitions
            .into_iter()
            .map(|p| (p, DataType::Utf8))
            .collect(),
    );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .infer_schema(&state)
        .await
        .map_err(|e| {
            VitalsError::Data(format!(
                "{}: cannot read the Parquet files: {}",
                context(),
                clean(&e.to_string())
            ))
        })?;
    let table = ListingTable::try_new(config).map_err(|e| fail(&e))?;
    let schema = datafusion::datasource::TableProvider::schema(&table);
    let name = stages::raw_name(&source.name);
    ctx.deregister_table(&name).ok();
    ctx.register_table(&name, Arc::new(table))
        .map_err(|e| fail(&e))?;
    Ok(schema)
}

/// The typed columns of a source, checked against its contract file by file.
fn typed_columns(
    catalog: &Catalog,
    source: &Source,
    merged: &Schema,
    files: &[SourceFile],
) -> Result<Vec<TypedColumn>> {
    let tz = &catalog.project.timezone;
    let Some(contract) = source.contract else {
        return Ok(merged
            .fields()
            .iter()
            .map(|f| TypedColumn {
                name: f.name().clone(),
                expr: ident(f.name()),
                data_type: f.data_type().clone(),
            })
            .collect());
    };
    let has = |canonical: &str| {
        merged
            .field_with_name(source.file_column(canonical))
            .is_ok()
    };
    for c in contract.columns.iter().filter(|c| c.required) {
        if !has(c.name) {
            return Err(missing_column(source, c.name, files));
        }
    }
    if !contract.one_of.is_empty()
        && !contract
            .one_of
            .iter()
            .any(|group| group.iter().all(|c| has(c)))
    {
        let groups: Vec<String> = contract.one_of.iter().map(|g| g.join(" + ")).collect();
        return Err(VitalsError::Data(format!(
            "table {}: files under {} have none of the column groups {}; map yours in [sources.{}.columns]",
            source.name,
            files.first().map_or_else(String::new, |f| f
                .name
                .rsplit_once('/')
                .map_or(f.name.clone(), |(dir, _)| dir.to_string())),
            groups.join(" or "),
            source.name
        )));
    }
    // A required column must be in every file, not only in the merged schema.
    for file in files {
        let schema = &file.schema;
        for c in contract.columns.iter().filter(|c| c.required) {
            let theirs = source.file_column(c.name);
            let partition =
                merged.field_with_name(theirs).is_ok() && is_partition_path(file, theirs);
            if schema.field_with_name(theirs).is_err() && !partition {
                return Err(missing_in_file(source, c.name, file));
            }
        }
    }
    let mut columns = Vec::new();
    for c in contract.columns {
        let theirs = source.file_column(c.name);
        let (expr, data_type) = match merged.field_with_name(theirs) {
            Ok(field) => stages::coerce(theirs, field.data_type(), c.class, tz).map_err(|m| {
                let file = files
                    .iter()
                    .find(|f| {
                        f.schema
                            .field_with_name(theirs)
                            .is_ok_and(|f| f.data_type() == &m.found)
                    })
                    .unwrap_or(&files[0]);
                VitalsError::Data(format!(
                    "table {}, file {}, column `{theirs}`: type {} cannot be read as {}",
                    source.name,
                    file.name,
                    m.found,
                    m.class.describe()
                ))
            })?,
            Err(_) => stages::missing(c.class, tz),
        };
        columns.push(TypedColumn {
            name: c.name.to_string(),
            expr,
            data_type,
        });
    }
    if contract.keeps_extra_columns {
        let mapped: Vec<&str> = contract
            .columns
            .iter()
            .map(|c| source.file_column(c.name))
            .collect();
        for f in merged.fields() {
            if mapped.contains(&f.name().as_str()) {
                continue;
            }
            let canonical = source
                .columns
                .iter()
                .find(|(_, theirs)| theirs == f.name())
                .map_or(f.name().as_str(), |(c, _)| c.as_str());
            let is_text = matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            );
            columns.push(TypedColumn {
                name: canonical.to_string(),
                expr: if is_text {
                    format!("CAST({} AS VARCHAR)", ident(f.name()))
                } else {
                    ident(f.name())
                },
                data_type: if is_text {
                    stages::TEXT
                } else {
                    f.data_type().clone()
                },
            });
        }
    }
    Ok(columns)
}

fn is_partition_path(file: &SourceFile, column: &str) -> bool {
    file.relative
        .split('/')
        .any(|part| part.starts_with(&format!("{column}=")))
}

fn missing_column(source: &Source, canonical: &str, files: &[SourceFile]) -> VitalsError {
    let file = files
        .iter()
        .find(|f| {
            f.schema
                .field_with_name(source.file_column(canonical))
                .is_err()
        })
        .unwrap_or(&files[0]);
    missing_in_file(source, canonical, file)
}

fn missing_in_file(source: &Source, canonical: &str, file: &SourceFile) -> VitalsError {
    let theirs = source.file_column(canonical);
    let names: Vec<String> = file
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let hint = match crate::catalog::diagnostic::did_you_mean(
        theirs,
        names.iter().map(String::as_str),
    ) {
        Some(near) => format!(
            "the file has `{near}`: map it with [sources.{}.columns] {canonical} = \"{near}\"",
            source.name
        ),
        None => format!(
            "the file's columns are: {}; map yours with [sources.{}.columns] {canonical} = \"<column>\"",
            names.join(", "),
            source.name
        ),
    };
    VitalsError::Data(format!(
        "table {}, file {}: required column `{theirs}` is missing; {hint}",
        source.name, file.name
    ))
}

/// Columns of an absent optional table: its contract, all empty.
fn absent_columns(contract: Option<&'static TableContract>, timezone: &str) -> Vec<TypedColumn> {
    contract
        .map(|c| {
            c.columns
                .iter()
                .map(|col| {
                    let (_, data_type) = stages::missing(col.class, timezone);
                    TypedColumn {
                        name: col.name.to_string(),
                        expr: ident(col.name),
                        data_type,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
