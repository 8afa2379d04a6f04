//! `RawCatalog` -> `Catalog`: one rule after another, every problem
//! collected with its location, so an analyst sees all of them at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use toml::Spanned;

use super::contract;
use super::diagnostic::{Diagnostic, Diagnostics, SourceText, suggestion};
use super::raw::{self, RawCatalog};
use super::sql_text::{self, find_word};
use super::*;
use super::{content_start, model_edges};
use crate::storage::StorageOptions;

mod relation;

/// Names usable as `${name}` in any SQL of the catalog, besides `params`.
pub const BUILTIN_PLACEHOLDERS: &[&str] = &[
    "as_of",
    "range_start",
    "range_end",
    "range_end_day",
    "gross_margin",
    "reporting_currency",
    "timezone",
];

const AGGREGATES: &[&str] = &["avg", "sum", "min", "max", "count"];

/// Reads and validates a catalog file and the SQL files it names.
pub fn load(path: &Path) -> Result<Catalog, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![
            Diagnostic::new(format!("cannot read the catalog {}: {e}", path.display()))
                .help("pass the catalog with --catalog PATH (default: metrics.toml)"),
        ])
    })?;
    let source = SourceText::new(path, text);
    let raw: RawCatalog =
        toml::from_str(&source.text).map_err(|e| Diagnostics(vec![toml_error(&source, &e)]))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Resolver {
        source,
        dir,
        errors: Diagnostics::default(),
    }
    .resolve(path, raw)
}

fn toml_error(source: &SourceText, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().to_string();
    let mut d = Diagnostic::new(message.clone());
    if let Some(span) = e.span() {
        d = d.at(source, span);
    } else {
        d = d.in_file(&source.path);
    }
    // serde: "unknown field `x`, expected one of `a`, `b`"
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, expected ")
    {
        d.message = format!("unknown key `{field}`");
        let names: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        d = d.help(suggestion(field, "key", names));
    }
    d
}

struct Resolver {
    source: SourceText,
    dir: PathBuf,
    errors: Diagnostics,
}

impl Resolver {
    fn located(&self, s: &Spanned<String>) -> Located {
        Located {
            text: s.get_ref().clone(),
            source: self.source.clone(),
            span: s.span(),
        }
    }

    fn error_at(
        &mut self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(message).at(&self.source, span);
        if let Some(h) = help {
            d = d.help(h);
        }
        self.errors.push(d);
    }

    fn check_name(&mut self, what: &str, name: &Spanned<String>) {
        let n = name.get_ref();
        let ok = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            self.error_at(
                name.span(),
                format!("{what} name `{n}` is not a plain identifier"),
                Some("use lower-case letters, digits and `_`, starting with a letter".into()),
            );
        }
    }

    fn resolve(mut self, path: &Path, raw: RawCatalog) -> Result<Catalog, Diagnostics> {
        let project = self.project(raw.project);
        let storage = raw.storage.map(|s| self.storage(s)).unwrap_or_default();
        let placeholders: BTreeSet<String> = BUILTIN_PLACEHOLDERS
            .iter()
            .map(|s| s.to_string())
            .chain(project.params.iter().map(|(n, _)| n.clone()))
            .collect();

        let sources = in_file_order(raw.sources)
            .into_iter()
            .map(|(name, s)| self.source_def(name, s))
            .collect::<Vec<_>>();
        let raw_models = in_file_order(raw.models);
        // A model whose SQL is broken is still declared: references to it
        // are not reported again as unknown.
        let declared_models: Vec<String> = raw_models
            .iter()
            .map(|(n, _)| n.get_ref().clone())
            .collect();
        let models = raw_models
            .into_iter()
            .filter_map(|(name, m)| self.model(name, m))
            .collect::<Vec<_>>();

        // One namespace of relations: sources, models and built-ins.
        let mut relations: BTreeSet<String> =
            BUILTIN_RELATIONS.iter().map(|s| s.to_string()).collect();
        for s in &sources {
            relations.insert(s.name.clone());
        }
        for name in declared_models
            .iter()
            .filter(|n| !models.iter().any(|m| &m.name == *n))
        {
            relations.insert(name.clone());
        }
        // Cohort and score metrics are relations too.
        let relation_metrics: Vec<String> = raw
            .metrics
            .iter()
            .filter(|(_, m)| matches!(m.kind.get_ref().as_str(), "cohort" | "score"))
            .map(|(n, _)| n.get_ref().clone())
            .collect();
        for name in &relation_metrics {
            relations.insert(name.clone());
        }
        for m in &models {
            if !relations.insert(m.name.clone()) {
                self.errors.push(
                    Diagnostic::new(format!(
                        "model `{}` has the name of a source or built-in relation",
                        m.name
                    ))
                    .in_file(&m.sql_path)
                    .help("rename the model"),
                );
            }
        }
        self.model_references(&models, &relations);
        let file_models_cycle = self.model_cycles(&models);
        self.check_placeholders_in_models(&models, &placeholders);

        let dimensions = in_file_order(raw.dimensions)
            .into_iter()
            .filter_map(|(name, d)| self.dimension(name, d, &relations))
            .collect::<Vec<_>>();
        let dimension_names: BTreeSet<String> = dimensions.iter().map(|d| d.name.clone()).collect();

        let raw_metrics = in_file_order(raw.metrics);
        let metric_names: BTreeSet<String> = raw_metrics
            .iter()
            .map(|(n, _)| n.get_ref().clone())
            .collect();
        let metrics = raw_metrics
            .into_iter()
            .filter_map(|(name, m)| {
                self.metric(name, m, &relations, &metric_names, &dimension_names)
            })
            .collect::<Vec<_>>();
        self.metric_cycles(&metrics);
        // The relation of each cohort and score metric is a model whose
        // SQL the engine writes.
        let mut models = models;
        for m in &metrics {
            if let Some(model) = crate::compile::relations::model_of(m, &self.source, &dimensions) {
                models.push(model);
            }
        }
        if !file_models_cycle {
            self.model_cycles(&models);
        }
        for m in &metrics {
            for located in m.texts() {
                self.check_placeholders(located, &placeholders);
            }
        }
        for s in &sources {
            for located in s.texts() {
                self.check_placeholders(located, &placeholders);
            }
        }
        if let Some(r) = &project.range_start {
            self.check_placeholders(r, &placeholders);
        }

        let tables = in_file_order(raw.tables)
            .into_iter()
            .filter_map(|(name, t)| {
                self.table(
                    name,
                    t,
                    &relations,
                    &metric_names,
                    &metrics,
                    &dimension_names,
                )
            })
            .collect::<Vec<_>>();
        let has_grids = tables
            .iter()
            .any(|t| matches!(t.kind, TableKind::Metrics { .. }));
        if has_grids && project.range_start.is_none() {
            self.errors.push(
                Diagnostic::new("[project] has no `range_start`: the metric tables would have no months before as_of")
                    .in_file(path)
                    .help("add e.g. range_start = \"SELECT min(start_date) FROM subscriptions\" to [project]"),
            );
        }
        if tables.is_empty() && self.errors.is_empty() {
            self.errors.push(
                Diagnostic::new("the catalog defines no output table")
                    .in_file(path)
                    .help(
                        "add a [tables.<name>] section with `metrics = [...]` or `model = \"...\"`",
                    ),
            );
        }

        let hash = catalog_hash(&self.source.text, &models);
        self.errors.into_result()?;
        Ok(Catalog {
            path: path.to_path_buf(),
            dir: self.dir,
            hash,
            source: self.source.clone(),
            project,
            storage,
            sources,
            dimensions,
            models,
            metrics,
            tables,
        })
    }

    fn storage(&mut self, s: raw::RawStorage) -> StorageOptions {
        let endpoint = s.endpoint.and_then(|e| {
            let text = e.get_ref().trim().to_string();
            let ok = url::Url::parse(&text)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                self.error_at(
                    e.span(),
                    format!("`endpoint = \"{text}\"` is not an http(s) URL"),
                    Some("write e.g. \"http://127.0.0.1:8333\" for an S3-compatible store".into()),
                );
            }
            ok.then_some(text)
        });
        let retries = s.retries.and_then(|r| match usize::try_from(*r.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error_at(
                    r.span(),
                    format!("retries = {} is negative", r.get_ref()),
                    Some("write how many times to retry a failed request, e.g. 3".into()),
                );
                None
            }
        });
        let mut seconds = |v: Option<toml::Spanned<f64>>, key: &str| {
            v.and_then(|v| {
                let n = *v.get_ref();
                if n.is_finite() && n > 0.0 && n < 1e9 {
                    Some(std::time::Duration::from_secs_f64(n))
                } else {
                    self.error_at(
                        v.span(),
                        format!("{key} = {n} is not a positive number of seconds"),
                        Some(format!("write e.g. {key} = 30")),
                    );
                    None
                }
            })
        };
        StorageOptions {
            endpoint,
            region: s.region.map(|r| r.into_inner()),
            allow_http: s.allow_http.map(|a| a.into_inner()),
            retries,
            retry_timeout: seconds(s.retry_timeout_seconds, "retry_timeout_seconds"),
            connect_timeout: seconds(s.connect_timeout_seconds, "connect_timeout_seconds"),
            request_timeout: seconds(s.request_timeout_seconds, "request_timeout_seconds"),
        }
    }

    fn project(&mut self, p: raw::RawProject) -> Project {
        let as_of = p.as_of.and_then(|s| {
            let text = s.get_ref().trim();
            if text.is_empty() || text.eq_ignore_ascii_case("today") {
                return None;
            }
            match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.error_at(
                        s.span(),
                        format!("`as_of = \"{text}\"` is not a date"),
                        Some("write YYYY-MM-DD, or \"today\"".into()),
                    );
                    None
                }
            }
        });
        let start_month = p.start_month.and_then(|s| {
            let text = s.get_ref().trim().to_string();
            match NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.error_at(
                        s.span(),
                        format!("`start_month = \"{text}\"` is not a month"),
                        Some("write YYYY-MM".into()),
                    );
                    None
                }
            }
        });
        let gross_margin = match p.gross_margin {
            Some(g) if !(0.0..=1.0).contains(g.get_ref()) => {
                self.error_at(
                    g.span(),
                    format!("gross_margin {} is outside 0..1", g.get_ref()),
                    Some("a margin of 80 % is written 0.8".into()),
                );
                1.0
            }
            Some(g) => *g.get_ref(),
            None => 1.0,
        };
        let timezone = p
            .timezone
            .map(|t| t.into_inner())
            .unwrap_or_else(|| "UTC".into());
        let reporting_currency = p
            .reporting_currency
            .map(|c| c.into_inner().to_uppercase())
            .unwrap_or_else(|| "USD".into());
        let range_start = p.range_start.map(|r| self.located(&r));
        let mut params = Vec::new();
        for (name, value) in in_file_order(p.params) {
            self.check_name("parameter", &name);
            if BUILTIN_PLACEHOLDERS.contains(&name.get_ref().as_str()) {
                self.error_at(
                    name.span(),
                    format!("parameter `{}` is built in", name.get_ref()),
                    Some("choose another name".into()),
                );
            }
            let v = match value.get_ref() {
                toml::Value::String(s) => ParamValue::Text(s.clone()),
                toml::Value::Integer(i) => ParamValue::Integer(*i),
                toml::Value::Float(f) => ParamValue::Number(*f),
                toml::Value::Boolean(b) => ParamValue::Bool(*b),
                toml::Value::Datetime(d) => {
                    match NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d") {
                        Ok(d) => ParamValue::Date(d),
                        Err(_) => {
                            self.error_at(
                                value.span(),
                                "a date parameter must be a plain date",
                                Some("write YYYY-MM-DD".into()),
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.error_at(
                        value.span(),
                        "a parameter must be a string, number, boolean or date",
                        None,
                    );
                    continue;
                }
            };
            params.push((name.into_inner(), v));
        }
        Project {
            name: p.name.into_inner(),
            as_of,
            timezone,
            reporting_currency,
            gross_margin,
            start_month,
            range_start,
            params,
        }
    }

    fn source_def(&mut self, name: Spanned<String>, s: raw::RawSource) -> Source {
        self.check_name("source", &name);
        let contract = contract::contract(name.get_ref());
        let mut columns = Vec::new();
        for (canonical, theirs) in in_file_order(s.columns) {
            if let Some(c) = contract
                && c.column(canonical.get_ref()).is_none()
                && !c.keeps_extra_columns
            {
                let names: Vec<&str> = c.columns.iter().map(|c| c.name).collect();
                self.error_at(
                    canonical.span(),
                    format!(
                        "`{}` is not a column of the {} table",
                        canonical.get_ref(),
                        c.name
                    ),
                    Some(suggestion(canonical.get_ref(), "column", names)),
                );
            }
            columns.push((canonical.into_inner(), theirs.into_inner()));
        }
        let lookups = s
            .lookup
            .into_iter()
            .map(|l| {
                self.check_name("lookup alias", &l.alias);
                let stand_in = sql_text::substitute(l.query.get_ref(), |_| Some("0".into()));
                if let Err(e) = sql_text::parse_query(&stand_in) {
                    self.error_at(
                        l.query.span(),
                        format!("the lookup query does not parse: {}", e.message),
                        None,
                    );
                }
                self.parse_expression(&format!("lookup `{}`: `on`", l.alias.get_ref()), &l.on);
                let columns = in_file_order(l.columns)
                    .into_iter()
                    .map(|(c, e)| {
                        self.parse_expression(&format!("lookup column `{}`", c.get_ref()), &e);
                        (c.into_inner(), self.located(&e))
                    })
                    .collect();
                Lookup {
                    alias: l.alias.into_inner(),
                    query: self.located(&l.query),
                    on: self.located(&l.on),
                    columns,
                }
            })
            .collect();
        let derive = s
            .derive
            .into_iter()
            .map(|d| {
                self.parse_expression(&format!("derived column `{}`", d.column.get_ref()), &d.expr);
                Derive {
                    column: d.column.into_inner(),
                    expr: self.located(&d.expr),
                }
            })
            .collect();
        let reject = s
            .reject
            .into_iter()
            .map(|r| {
                self.parse_expression(&format!("reject rule `{}`", r.reason.get_ref()), &r.when);
                RejectRule {
                    reason: r.reason.into_inner(),
                    when: self.located(&r.when),
                }
            })
            .collect();
        let empty_when_absent = self.choice(
            "when_absent",
            &s.when_absent,
            &[("skip", false), ("empty", true)],
            "`skip` (what needs the table is skipped) or `empty` (read as no rows)",
        );
        Source {
            empty_when_absent,
            name: name.into_inner(),
            location: s.location.map(|l| self.located(&l)),
            columns,
            key: s.key.into_iter().map(Spanned::into_inner).collect(),
            lookups,
            derive,
            reject,
            contract,
        }
    }

    fn parse_expression(
        &mut self,
        what: &str,
        e: &Spanned<String>,
    ) -> Option<datafusion::sql::sqlparser::ast::Expr> {
        // Placeholders are values: parse with a stand-in literal.
        let text = sql_text::substitute(e.get_ref(), |_| Some("0".into()));
        match sql_text::parse_expr(&text) {
            Ok(expr) => Some(expr),
            Err(err) => {
                let start = content_start(&self.source.text, &e.span())
                    + err.offset.unwrap_or(0).min(e.get_ref().len());
                self.error_at(
                    start..start + 1,
                    format!("{what}: the SQL expression does not parse: {}", err.message),
                    None,
                );
                None
            }
        }
    }

    fn model(&mut self, name: Spanned<String>, m: raw::RawModel) -> Option<Model> {
        self.check_name("model", &name);
        let rel = m
            .sql
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| format!("sql/{}.sql", name.get_ref()));
        let sql_path = self.dir.join(&rel);
        let text = match std::fs::read_to_string(&sql_path) {
            Ok(t) => t,
            Err(e) => {
                let span = m.sql.as_ref().map_or(name.span(), |s| s.span());
                self.error_at(
                    span,
                    format!(
                        "model `{}`: cannot read {}: {e}",
                        name.get_ref(),
                        sql_path.display()
                    ),
                    Some(format!(
                        "create {rel}, or set `sql = \"path\"` in [models.{}]",
                        name.get_ref()
                    )),
                );
                return None;
            }
        };
        let sql = SourceText::new(&sql_path, text);
        let stand_in = sql_text::substitute(&sql.text, |_| Some("0".into()));
        let reads =
            match sql_text::parse_query(&stand_in).and_then(|q| sql_text::table_references(&q)) {
                Ok(reads) => reads,
                Err(e) => {
                    let at = e.offset.unwrap_or(0).min(sql.text.len());
                    self.errors.push(
                        Diagnostic::new(format!(
                            "model `{}`: the SQL does not parse: {}",
                            name.get_ref(),
                            e.message
                        ))
                        .at(&sql, at..(at + 1).min(sql.text.len())),
                    );
                    return None;
                }
            };
        Some(Model {
            name: name.into_inner(),
            sql_path,
            sql,
            reads,
            metric: None,
        })
    }

    fn model_references(&mut self, models: &[Model], relations: &BTreeSet<String>) {
        for m in models {
            for r in &m.reads {
                if !relations.contains(r) {
                    let offset = find_word(&m.sql.text, r).unwrap_or(0);
                    self.errors.push(
                        Diagnostic::new(format!("model `{}` reads `{r}`, which is not a source, model or built-in relation", m.name))
                            .at(&m.sql, offset..offset + r.len())
                            .help(suggestion(r, "relation", relations.iter().map(String::as_str))),
                    );
                }
            }
        }
    }

    /// Reports a cycle among models; true if there is one.
    fn model_cycles(&mut self, models: &[Model]) -> bool {
        let edges = model_edges(models);
        if let Some(cycle) = crate::plan::dag::find_cycle(&edges) {
            let first = models
                .iter()
                .find(|m| m.name == cycle[0])
                .expect("cycle names a model");
            let offset = find_word(&first.sql.text, cycle[1]).unwrap_or(0);
            // A generated relation has no file of its own: point at the TOML.
            if first.metric.is_some() {
                self.errors.push(
                    Diagnostic::new(format!("models form a cycle: {}", cycle.join(" -> ")))
                        .in_file(&self.source.path)
                        .help("a model cannot read itself, directly or through other models; break the cycle"),
                );
                return true;
            }
            self.errors.push(
                Diagnostic::new(format!("models form a cycle: {}", cycle.join(" -> ")))
                    .at(&first.sql, offset..offset + cycle[1].len())
                    .help("a model cannot read itself, directly or through other models; break the cycle"),
            );
            return true;
        }
        false
    }

    fn check_placeholders_in_models(&mut self, models: &[Model], known: &BTreeSet<String>) {
        for m in models {
            for p in sql_text::placeholders(&m.sql.text) {
                if !known.contains(&p.name) {
                    self.errors.push(
                        Diagnostic::new(format!("unknown parameter `${{{}}}`", p.name))
                            .at(&m.sql, p.span.clone())
                            .help(suggestion(
                                &p.name,
                                "parameter",
                                known.iter().map(String::as_str),
                            )),
                    );
                }
            }
        }
    }

    fn check_placeholders(&mut self, located: &Located, known: &BTreeSet<String>) {
        for p in sql_text::placeholders(&located.text) {
            if !known.contains(&p.name) {
                let start = located.offset_of(p.span.start);
                self.error_at(
                    start..start + p.span.len(),
                    format!("unknown parameter `${{{}}}`", p.name),
                    Some(suggestion(
                        &p.name,
                        "parameter",
                        known.iter().map(String::as_str),
                    )),
                );
            }
        }
    }

    fn relation_ref(
        &mut self,
        r: &Spanned<String>,
        relations: &BTreeSet<String>,
        what: &str,
    ) -> bool {
        if relations.contains(r.get_ref()) {
            return true;
        }
        self.error_at(
            r.span(),
            format!("unknown {what} `{}`", r.get_ref()),
            Some(suggestion(
                r.get_ref(),
                "relation",
                relations.iter().map(String::as_str),
            )),
        );
        false
    }

    fn require(
        &mut self,
        metric: &Spanned<String>,
        kind: &str,
        field: &str,
        value: &Option<Spanned<String>>,
    ) -> Option<Located> {
        match value {
            Some(v) => Some(self.located(v)),
            None => {
                self.error_at(
                    metric.span(),
                    format!(
                        "metric `{}` of kind `{kind}` needs `{field}`",
                        metric.get_ref()
                    ),
                    Some(format!(
                        "add `{field} = \"...\"` to [metrics.{}]",
                        metric.get_ref()
                    )),
                );
                None
            }
        }
    }

    fn forbid(
        &mut self,
        metric: &Spanned<String>,
        kind: &str,
        fields: &[(&str, Option<std::ops::Range<usize>>)],
    ) {
        for (field, span) in fields {
            if let Some(span) = span {
                self.error_at(
                    span.clone(),
                    format!(
                        "`{field}` does not apply to metric `{}` of kind `{kind}`",
                        metric.get_ref()
                    ),
                    Some("remove it".into()),
                );
            }
        }
    }

    fn metric(
        &mut self,
        name: Spanned<String>,
        m: raw::RawMetric,
        relations: &BTreeSet<String>,
        metric_names: &BTreeSet<String>,
        dimension_names: &BTreeSet<String>,
    ) -> Option<Metric> {
        self.check_name("metric", &name);
        let kind_name = m.kind.get_ref().as_str();
        let span = name.span();
        if matches!(kind_name, "simple" | "ratio" | "derived") {
            self.forbid(&name, kind_name, &relation_keys(&m));
        }
        let rollup = self.choice(
            "rollup",
            &m.rollup,
            &[("sum", Rollup::Recompute), ("last", Rollup::Last)],
            "`sum` (recomputed over the longer period, the default) or `last` (the value of its last period)",
        );
        let (kind, depends_on) = match kind_name {
            "simple" => {
                self.forbid(
                    &name,
                    "simple",
                    &[
                        ("numerator", m.numerator.as_ref().map(Spanned::span)),
                        ("denominator", m.denominator.as_ref().map(Spanned::span)),
                        ("window", m.window.as_ref().map(Spanned::span)),
                    ],
                );
                let model = self.require(&name, "simple", "model", &m.model);
                let expr = self.require(&name, "simple", "expr", &m.expr);
                let time = self.require(&name, "simple", "time", &m.time);
                if let Some(model) = &m.model {
                    self.relation_ref(model, relations, "model or source");
                }
                if let Some(e) = &m.expr {
                    self.parse_expression(&format!("metric `{}`: `expr`", name.get_ref()), e);
                }
                if let Some(f) = &m.filter {
                    self.parse_expression(&format!("metric `{}`: `filter`", name.get_ref()), f);
                }
                let expr = expr?;
                let fill = m
                    .fill
                    .map(|f| *f.get_ref())
                    .or_else(|| default_fill(&expr.text));
                (
                    MetricKind::Simple {
                        model: model?.text,
                        expr,
                        time: time?.text,
                        filter: m.filter.as_ref().map(|f| self.located(f)),
                        fill,
                    },
                    Vec::new(),
                )
            }
            "ratio" => {
                self.forbid(
                    &name,
                    "ratio",
                    &[
                        ("model", m.model.as_ref().map(Spanned::span)),
                        ("expr", m.expr.as_ref().map(Spanned::span)),
                        ("time", m.time.as_ref().map(Spanned::span)),
                        ("filter", m.filter.as_ref().map(Spanned::span)),
                        ("window", m.window.as_ref().map(Spanned::span)),
                    ],
                );
                let numerator = self.require(&name, "ratio", "numerator", &m.numerator);
                let denominator = self.require(&name, "ratio", "denominator", &m.denominator);
                let mut deps = BTreeSet::new();
                for part in [&m.numerator, &m.denominator].into_iter().flatten() {
                    deps.extend(self.metric_refs(&name, part, metric_names));
                }
                (
                    MetricKind::Ratio {
                        numerator: numerator?,
                        denominator: denominator?,
                    },
                    deps.into_iter().collect(),
                )
            }
            "derived" => {
                self.forbid(
                    &name,
                    "derived",
                    &[
                        ("model", m.model.as_ref().map(Spanned::span)),
                        ("time", m.time.as_ref().map(Spanned::span)),
                        ("filter", m.filter.as_ref().map(Spanned::span)),
                        ("numerator", m.numerator.as_ref().map(Spanned::span)),
                        ("denominator", m.denominator.as_ref().map(Spanned::span)),
                    ],
                );
                let expr = self.require(&name, "derived", "expr", &m.expr);
                let deps = m
                    .expr
                    .as_ref()
                    .map(|e| self.metric_refs(&name, e, metric_names))
                    .unwrap_or_default();
                let window = m.window.as_ref().and_then(|w| {
                    let raw = w.get_ref();
                    if !AGGREGATES.contains(&raw.agg.as_str()) || raw.periods == 0 {
                        self.error_at(
                            w.span(),
                            format!(
                                "window `{{ periods = {}, agg = \"{}\" }}` is not valid",
                                raw.periods, raw.agg
                            ),
                            Some(format!(
                                "periods is at least 1 and agg one of: {}",
                                AGGREGATES.join(", ")
                            )),
                        );
                        None
                    } else {
                        Some(Window {
                            periods: raw.periods,
                            agg: raw.agg.clone(),
                        })
                    }
                });
                (
                    MetricKind::Derived {
                        expr: expr?,
                        window,
                    },
                    deps.into_iter().collect(),
                )
            }
            "cohort" => (
                MetricKind::Cohort(self.cohort(&name, &m, relations, dimension_names)?),
                Vec::new(),
            ),
            "score" => (
                MetricKind::Score(self.score(&name, &m, relations)?),
                Vec::new(),
            ),
            other => {
                self.error_at(
                    m.kind.span(),
                    format!("unknown metric kind `{other}`"),
                    Some(suggestion(
                        other,
                        "kind",
                        ["simple", "ratio", "derived", "cohort", "score"],
                    )),
                );
                return None;
            }
        };
        Some(Metric {
            name: name.into_inner(),
            description: m.description,
            kind,
            depends_on,
            rollup,
            span,
        })
    }

    /// The metrics an expression over metrics names; unknown names are errors.
    fn metric_refs(
        &mut self,
        metric: &Spanned<String>,
        e: &Spanned<String>,
        metric_names: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let Some(expr) = self.parse_expression(&format!("metric `{}`", metric.get_ref()), e) else {
            return BTreeSet::new();
        };
        let mut deps = BTreeSet::new();
        for id in sql_text::identifiers(&expr) {
            if metric_names.contains(&id) {
                deps.insert(id);
            } else {
                let offset = find_word(e.get_ref(), &id).unwrap_or(0);
                let start = content_start(&self.source.text, &e.span()) + offset;
                self.error_at(
                    start..start + id.len(),
                    format!(
                        "metric `{}` refers to `{id}`, which is not a metric",
                        metric.get_ref()
                    ),
                    Some(suggestion(
                        &id,
                        "metric",
                        metric_names.iter().map(String::as_str),
                    )),
                );
            }
        }
        if deps.contains(metric.get_ref()) {
            self.error_at(
                e.span(),
                format!("metric `{}` refers to itself", metric.get_ref()),
                None,
            );
        }
        deps
    }

    fn metric_cycles(&mut self, metrics: &[Metric]) {
        let edges: BTreeMap<&str, Vec<&str>> = metrics
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.depends_on
                        .iter()
                        .map(String::as_str)
                        .filter(|d| *d != m.name)
                        .collect(),
                )
            })
            .collect();
        if let Some(cycle) = crate::plan::dag::find_cycle(&edges) {
            let first = metrics
                .iter()
                .find(|m| m.name == cycle[0])
                .expect("cycle names a metric");
            self.error_at(
                first.span.clone(),
                format!("metrics form a cycle: {}", cycle.join(" -> ")),
                Some(
                    "a metric cannot be computed from itself, directly or through other metrics"
                        .into(),
                ),
            );
        }
    }

    fn table(
        &mut self,
        name: Spanned<String>,
        t: raw::RawTable,
        relations: &BTreeSet<String>,
        metric_names: &BTreeSet<String>,
        metrics: &[Metric],
        dimension_names: &BTreeSet<String>,
    ) -> Option<Table> {
        self.check_name("table", &name);
        let kind = match (&t.model, t.metrics.is_empty()) {
            (Some(model), true) => {
                self.relation_ref(model, relations, "model");
                TableKind::Model {
                    model: model.get_ref().clone(),
                    order_by: t.order_by.into_iter().map(Spanned::into_inner).collect(),
                }
            }
            (None, false) => {
                for m in &t.metrics {
                    if let Some(relation) = metrics
                        .iter()
                        .find(|x| &x.name == m.get_ref() && x.is_relation())
                    {
                        self.error_at(
                            m.span(),
                            format!(
                                "`{}` is a {} metric: a relation of its own, not a column of a grid",
                                m.get_ref(),
                                relation.kind_name()
                            ),
                            Some(format!("publish it as a table of its own: [tables.<name>] model = \"{}\"", m.get_ref())),
                        );
                    } else if !metric_names.contains(m.get_ref()) {
                        self.error_at(
                            m.span(),
                            format!(
                                "table `{}` lists `{}`, which is not a metric",
                                name.get_ref(),
                                m.get_ref()
                            ),
                            Some(suggestion(
                                m.get_ref(),
                                "metric",
                                metric_names.iter().map(String::as_str),
                            )),
                        );
                    }
                }
                let grain = self.grain(&t.grain);
                self.check_dimensions(&t.dimensions, dimension_names);
                let time_column = t
                    .time_column
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| grain.name().to_string());
                let totals = match t.totals {
                    None => t.dimensions.iter().map(|d| d.get_ref().clone()).collect(),
                    Some(totals) => {
                        for d in &totals {
                            if !t.dimensions.iter().any(|x| x.get_ref() == d.get_ref()) {
                                self.error_at(
                                    d.span(),
                                    format!("`totals` names `{}`, which is not a dimension of the table", d.get_ref()),
                                    None,
                                );
                            }
                        }
                        totals.into_iter().map(Spanned::into_inner).collect()
                    }
                };
                let period_types = self.period_types(&t.period_types, grain);
                TableKind::Metrics {
                    metrics: t.metrics.into_iter().map(Spanned::into_inner).collect(),
                    grain,
                    dimensions: t.dimensions.into_iter().map(Spanned::into_inner).collect(),
                    totals,
                    time_column,
                    period_types,
                    period_type_column: t
                        .period_type_column
                        .map(Spanned::into_inner)
                        .unwrap_or_else(|| "period_type".into()),
                }
            }
            _ => {
                self.error_at(
                    name.span(),
                    format!("table `{}` needs either `model = \"...\"` or `metrics = [...]`, not both or neither", name.get_ref()),
                    None,
                );
                return None;
            }
        };
        Some(Table {
            span: name.span(),
            name: name.into_inner(),
            description: t.description,
            kind,
        })
    }
}

impl Resolver {
    /// A key that takes one of a few words; absent, the first. An unknown
    /// word is an error (and reads as the first).
    fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        options: &[(&str, T)],
        help: &str,
    ) -> T {
        let Some(v) = value else {
            return options[0].1;
        };
        match options.iter().find(|(word, _)| word == v.get_ref()) {
            Some((_, t)) => *t,
            None => {
                self.error_at(
                    v.span(),
                    format!("unknown `{key} = \"{}\"`", v.get_ref()),
                    Some(help.into()),
                );
                options[0].1
            }
        }
    }

    /// A `grain` key (default month); an unknown one is an error.
    fn grain(&mut self, grain: &Option<Spanned<String>>) -> Grain {
        let Some(g) = grain else {
            return Grain::Month;
        };
        Grain::parse(g.get_ref()).unwrap_or_else(|| {
            self.error_at(
                g.span(),
                format!("unknown grain `{}`", g.get_ref()),
                Some(suggestion(
                    g.get_ref(),
                    "grain",
                    Grain::ALL.iter().map(|(n, _)| *n),
                )),
            );
            Grain::Month
        })
    }

    fn check_dimensions(&mut self, dims: &[Spanned<String>], known: &BTreeSet<String>) {
        for d in dims {
            if !known.contains(d.get_ref()) {
                self.error_at(
                    d.span(),
                    format!("unknown dimension `{}`", d.get_ref()),
                    Some(suggestion(
                        d.get_ref(),
                        "dimension",
                        known.iter().map(String::as_str),
                    )),
                );
            }
        }
    }

    /// `period_types = ["month", "quarter", "trailing_12m"]`: the grain
    /// first, then coarser grains or trailing windows of the grain.
    fn period_types(&mut self, written: &[Spanned<String>], grain: Grain) -> Vec<PeriodType> {
        let mut out = Vec::new();
        for (i, p) in written.iter().enumerate() {
            match PeriodType::parse(p.get_ref()) {
                Some(PeriodType::Grain(g)) if i == 0 && g != grain => self.error_at(
                    p.span(),
                    format!("the first period type is the table's grain, `{}`", grain.name()),
                    None,
                ),
                Some(PeriodType::Grain(g)) if g < grain || (i > 0 && g == grain) => self.error_at(
                    p.span(),
                    format!("period type `{}` is not coarser than the grain `{}`", g.name(), grain.name()),
                    None,
                ),
                Some(t) => out.push(t),
                None => self.error_at(
                    p.span(),
                    format!("unknown period type `{}`", p.get_ref()),
                    Some("a grain (month, quarter, year, ...) or `trailing_<N>` base periods, e.g. trailing_12m".into()),
                ),
            }
        }
        if !out.is_empty() && out[0] != PeriodType::Grain(grain) {
            out.insert(0, PeriodType::Grain(grain));
        }
        out
    }
}

/// The keys of cohort and score metrics that are present, for kinds that
/// take none of them.
fn relation_keys(m: &raw::RawMetric) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
    let span = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
    let first = |v: &[Spanned<String>]| v.first().map(Spanned::span);
    vec![
        ("entity", span(&m.entity)),
        ("grain", span(&m.grain)),
        ("cohort", span(&m.cohort)),
        ("dimensions", first(&m.dimensions)),
        ("cohort_column", span(&m.cohort_column)),
        ("since_column", span(&m.since_column)),
        ("size_column", span(&m.size_column)),
        ("measures", m.measures.first().map(|x| x.name.span())),
        ("keep", first(&m.keep)),
        ("score_column", span(&m.score_column)),
        ("band_column", span(&m.band_column)),
        ("bands", m.bands.first().map(|x| x.name.span())),
        ("components", m.components.first().map(|x| x.name.span())),
    ]
}

/// Sums and counts of nothing are 0 on the grid; other aggregates stay null.
pub(super) fn default_fill(expr: &str) -> Option<f64> {
    let e = expr.trim_start().to_ascii_lowercase();
    (e.starts_with("count(") || e.starts_with("sum(")).then_some(0.0)
}

fn in_file_order<V>(map: BTreeMap<Spanned<String>, V>) -> Vec<(Spanned<String>, V)> {
    let mut items: Vec<_> = map.into_iter().collect();
    items.sort_by_key(|(k, _)| k.span().start);
    items
}

/// FNV-1a over the catalog and its SQL: a stable fingerprint for the manifest.
fn catalog_hash(toml: &str, models: &[Model]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(toml.as_bytes());
    for m in models {
        feed(m.name.as_bytes());
        feed(m.sql.text.as_bytes());
    }
    format!("{h:016x}")
}
