//! Rules of the metric kinds that are relations (`cohort`, `score`) and of
//! dimensions: every problem is collected and points at its TOML key.

use std::collections::BTreeSet;

use toml::Spanned;

use super::super::raw;
use super::super::*;
use super::{Resolver, default_fill};

impl Resolver {
    pub(super) fn dimension(
        &mut self,
        name: Spanned<String>,
        d: raw::RawDimension,
        relations: &BTreeSet<String>,
    ) -> Option<Dimension> {
        self.check_name("dimension", &name);
        let members = match (d.values, d.members) {
            (Some(values), None) => {
                self.relation_ref(&values, relations, "relation");
                Members::Relation(values.into_inner())
            }
            (None, Some(list)) if !list.get_ref().is_empty() => Members::List(list.into_inner()),
            _ => {
                self.error_at(
                    name.span(),
                    format!(
                        "dimension `{}` needs either `values = \"<relation>\"` or a non-empty `members = [...]`",
                        name.get_ref()
                    ),
                    None,
                );
                return None;
            }
        };
        Some(Dimension {
            name: name.into_inner(),
            members,
        })
    }

    /// The keys every relation metric shares: the rows it reads.
    fn relation_base(
        &mut self,
        name: &Spanned<String>,
        kind: &str,
        m: &raw::RawMetric,
        relations: &BTreeSet<String>,
    ) -> Option<(String, String, String, Grain)> {
        self.forbid(
            name,
            kind,
            &[
                ("expr", m.expr.as_ref().map(Spanned::span)),
                ("numerator", m.numerator.as_ref().map(Spanned::span)),
                ("denominator", m.denominator.as_ref().map(Spanned::span)),
                ("window", m.window.as_ref().map(Spanned::span)),
                ("fill", m.fill.as_ref().map(Spanned::span)),
                ("rollup", m.rollup.as_ref().map(Spanned::span)),
            ],
        );
        let model = self.require(name, kind, "model", &m.model);
        let entity = self.require(name, kind, "entity", &m.entity);
        let time = self.require(name, kind, "time", &m.time);
        if let Some(model) = &m.model {
            self.relation_ref(model, relations, "model or source");
        }
        if let Some(f) = &m.filter {
            self.parse_expression(&format!("metric `{}`: `filter`", name.get_ref()), f);
        }
        let grain = self.grain(&m.grain);
        Some((model?.text, entity?.text, time?.text, grain))
    }

    fn column_name(
        &mut self,
        what: &str,
        value: &Option<Spanned<String>>,
        default: String,
    ) -> String {
        match value {
            Some(v) => {
                self.check_name(what, v);
                v.get_ref().clone()
            }
            None => default,
        }
    }

    pub(super) fn cohort(
        &mut self,
        name: &Spanned<String>,
        m: &raw::RawMetric,
        relations: &BTreeSet<String>,
        dimension_names: &BTreeSet<String>,
    ) -> Option<Cohort> {
        self.forbid(
            name,
            "cohort",
            &[
                ("keep", m.keep.first().map(Spanned::span)),
                ("score_column", m.score_column.as_ref().map(Spanned::span)),
                ("band_column", m.band_column.as_ref().map(Spanned::span)),
                ("bands", m.bands.first().map(|b| b.name.span())),
                ("components", m.components.first().map(|c| c.name.span())),
            ],
        );
        let base = self.relation_base(name, "cohort", m, relations);
        let starts_when = self.require(name, "cohort", "cohort", &m.cohort);
        if let Some(c) = &m.cohort {
            self.parse_expression(&format!("metric `{}`: `cohort`", name.get_ref()), c);
        }
        self.check_dimensions(&m.dimensions, dimension_names);
        if m.measures.is_empty() {
            self.error_at(
                name.span(),
                format!("cohort metric `{}` has no measure", name.get_ref()),
                Some(format!(
                    "add [[metrics.{}.measures]] with `name` and `expr` (an aggregate over the members' rows of each period)",
                    name.get_ref()
                )),
            );
        }
        let mut seen = BTreeSet::new();
        let mut measures = Vec::new();
        for x in &m.measures {
            self.check_name("measure", &x.name);
            if !seen.insert(x.name.get_ref().clone()) {
                self.error_at(
                    x.name.span(),
                    format!("measure `{}` is defined twice", x.name.get_ref()),
                    None,
                );
            }
            self.parse_expression(&format!("measure `{}`", x.name.get_ref()), &x.expr);
            let over_size = self.choice(
                "base",
                &x.base,
                &[("start", false), ("size", true)],
                "`start` (the measure at the cohort start, the default) or `size` (the cohort's size)",
            );
            if let Some(r) = &x.retention {
                self.check_name("retention column", r);
            }
            measures.push(Measure {
                name: x.name.get_ref().clone(),
                expr: self.located(&x.expr),
                fill: default_fill(x.expr.get_ref()),
                retention: x.retention.as_ref().map(|r| r.get_ref().clone()),
                over_size,
            });
        }
        let (model, entity, time, grain) = base?;
        let cohort_column = self.column_name(
            "cohort_column",
            &m.cohort_column,
            format!("cohort_{}", grain.name()),
        );
        let since_column = self.column_name(
            "since_column",
            &m.since_column,
            format!("{}s_since", grain.name()),
        );
        let size_column = self.column_name("size_column", &m.size_column, "cohort_size".into());
        Some(Cohort {
            model,
            entity,
            time,
            grain,
            filter: m.filter.as_ref().map(|f| self.located(f)),
            starts_when: starts_when?,
            dimensions: m.dimensions.iter().map(|d| d.get_ref().clone()).collect(),
            cohort_column,
            since_column,
            size_column,
            measures,
        })
    }

    pub(super) fn score(
        &mut self,
        name: &Spanned<String>,
        m: &raw::RawMetric,
        relations: &BTreeSet<String>,
    ) -> Option<Score> {
        self.forbid(
            name,
            "score",
            &[
                ("cohort", m.cohort.as_ref().map(Spanned::span)),
                ("dimensions", m.dimensions.first().map(Spanned::span)),
                ("cohort_column", m.cohort_column.as_ref().map(Spanned::span)),
                ("since_column", m.since_column.as_ref().map(Spanned::span)),
                ("size_column", m.size_column.as_ref().map(Spanned::span)),
                ("measures", m.measures.first().map(|x| x.name.span())),
            ],
        );
        let base = self.relation_base(name, "score", m, relations);
        if m.components.is_empty() {
            self.error_at(
                name.span(),
                format!("score metric `{}` has no component", name.get_ref()),
                Some(format!(
                    "add [[metrics.{}.components]] with `name`, `from`, `time`, `raw`, `scale` and `weight`",
                    name.get_ref()
                )),
            );
        }
        let mut seen = BTreeSet::new();
        let mut components = Vec::new();
        for c in &m.components {
            self.check_name("component", &c.name);
            if !seen.insert(c.name.get_ref().clone()) {
                self.error_at(
                    c.name.span(),
                    format!("component `{}` is defined twice", c.name.get_ref()),
                    None,
                );
            }
            self.relation_ref(&c.from, relations, "model or source");
            self.parse_expression(&format!("component `{}`: `raw`", c.name.get_ref()), &c.raw);
            if let Some(f) = &c.filter {
                self.parse_expression(&format!("component `{}`: `filter`", c.name.get_ref()), f);
            }
            let [bad, good] = *c.scale.get_ref();
            if bad == good || !bad.is_finite() || !good.is_finite() {
                self.error_at(
                    c.scale.span(),
                    format!(
                        "component `{}`: the scale [bad, good] needs two different numbers",
                        c.name.get_ref()
                    ),
                    Some("e.g. scale = [0, 20] (more is better) or [5, 0] (less is better)".into()),
                );
            }
            let weight = *c.weight.get_ref();
            if weight.is_nan() || weight <= 0.0 || !weight.is_finite() {
                self.error_at(
                    c.weight.span(),
                    format!(
                        "component `{}`: the weight must be a positive number",
                        c.name.get_ref()
                    ),
                    None,
                );
            }
            if let Some(w) = &c.window_days
                && *w.get_ref() == 0
            {
                self.error_at(w.span(), "window_days is at least 1".to_string(), None);
            }
            components.push(Component {
                name: c.name.get_ref().clone(),
                from: c.from.get_ref().clone(),
                time: c.time.get_ref().clone(),
                window_days: c.window_days.as_ref().map(|w| *w.get_ref()),
                raw: self.located(&c.raw),
                filter: c.filter.as_ref().map(|f| self.located(f)),
                bad,
                good,
                weight,
                missing: c.missing.as_ref().map(|x| *x.get_ref()),
                fill: c
                    .fill
                    .as_ref()
                    .map(|x| *x.get_ref())
                    .or_else(|| default_fill(c.raw.get_ref())),
            });
        }
        let bands = self.bands(name, m);
        let (population, entity, time, grain) = base?;
        let score_column = self.column_name("score_column", &m.score_column, "score".into());
        let band_column = self.column_name("band_column", &m.band_column, "band".into());
        Some(Score {
            population,
            entity,
            time,
            grain,
            filter: m.filter.as_ref().map(|f| self.located(f)),
            keep: m.keep.iter().map(|k| k.get_ref().clone()).collect(),
            score_column,
            band_column,
            bands,
            components,
        })
    }

    /// Bands best first, thresholds falling; only the last may lack `min`.
    fn bands(&mut self, name: &Spanned<String>, m: &raw::RawMetric) -> Vec<Band> {
        let mut out: Vec<Band> = Vec::new();
        for (i, b) in m.bands.iter().enumerate() {
            let last = i + 1 == m.bands.len();
            let min = b.min.as_ref().map(|x| *x.get_ref());
            match (min, out.last().and_then(|p| p.min)) {
                (None, _) if !last => self.error_at(
                    b.name.span(),
                    format!(
                        "band `{}` needs `min`: only the last band may have none",
                        b.name.get_ref()
                    ),
                    None,
                ),
                (Some(x), Some(prev)) if x >= prev => self.error_at(
                    b.min.as_ref().map_or(b.name.span(), Spanned::span),
                    format!(
                        "band `{}`: bands go from best to worst, each `min` below the one before",
                        b.name.get_ref()
                    ),
                    None,
                ),
                _ => {}
            }
            out.push(Band {
                name: b.name.get_ref().clone(),
                min,
            });
        }
        if out.is_empty() {
            self.error_at(
                name.span(),
                format!("score metric `{}` has no bands", name.get_ref()),
                Some("add e.g. bands = [{ name = \"green\", min = 70 }, { name = \"yellow\", min = 40 }, { name = \"red\" }]".into()),
            );
        }
        out
    }
}
