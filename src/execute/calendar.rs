//! The months of a build and the calendar relations the engine gives every
//! model: `calendar_months` (month, month_end) over the whole history, and a
//! `__periods_<grain>` relation over the reporting range per grain.

use std::sync::Arc;

use chrono::{Datelike, Duration, Months, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Date32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::catalog::{Grain, ParamValue, Project};
use crate::compile::metrics::periods_relation;
use crate::compile::relations::window_relation;
use crate::error::{Result, VitalsError};

/// The dates a build reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub as_of: NaiveDate,
    /// First day of the first month with data (the snapshot history).
    pub history_start: NaiveDate,
    /// First day of the first reported month (`start_month` may cut it).
    pub start: NaiveDate,
    /// First day of the month of `as_of`.
    pub end: NaiveDate,
}

pub fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

pub fn month_end(month: NaiveDate) -> NaiveDate {
    month + Months::new(1) - Duration::days(1)
}

impl Range {
    /// `earliest`: the earliest date of the data (None when there is none).
    pub fn new(
        as_of: NaiveDate,
        earliest: Option<NaiveDate>,
        start_month: Option<NaiveDate>,
    ) -> Self {
        let end = month_of(as_of);
        let history_start = earliest.map(month_of).unwrap_or(end);
        let start = start_month.map_or(history_start, |s| s.max(history_start));
        Range {
            as_of,
            history_start,
            start,
            end,
        }
    }

    /// The values behind the built-in `${...}` placeholders.
    pub fn placeholders(&self, project: &Project) -> Vec<(String, ParamValue)> {
        let mut v = vec![
            ("as_of".to_string(), ParamValue::Date(self.as_of)),
            (
                "history_start".to_string(),
                ParamValue::Date(self.history_start),
            ),
            ("range_start".to_string(), ParamValue::Date(self.start)),
            ("range_end".to_string(), ParamValue::Date(self.end)),
            (
                "range_end_day".to_string(),
                ParamValue::Date(month_end(self.end)),
            ),
            (
                "gross_margin".to_string(),
                ParamValue::Number(project.gross_margin),
            ),
            (
                "reporting_currency".to_string(),
                ParamValue::Text(project.reporting_currency.clone()),
            ),
            (
                "timezone".to_string(),
                ParamValue::Text(project.timezone.clone()),
            ),
        ];
        v.extend(project.params.iter().cloned());
        v
    }
}

/// Registers `calendar_months`, the period relations of every grain, and
/// for each trailing window of `windows` (grain, days) the relation of
/// (day, period) pairs whose window holds the day: joining rows to it by
/// day is an equi-join, where a range condition would be a nested loop
/// over every row and period.
pub fn register(ctx: &SessionContext, range: &Range, windows: &[(Grain, u32)]) -> Result<()> {
    let months = months_between(range.history_start, range.end);
    let ends: Vec<NaiveDate> = months.iter().map(|m| month_end(*m)).collect();
    register_dates(
        ctx,
        "calendar_months",
        &[("month", &months), ("month_end", &ends)],
    )?;
    for (_, grain) in Grain::ALL {
        let periods = periods(grain, range.start, month_end(range.end));
        register_dates(ctx, &periods_relation(grain), &[("period", &periods)])?;
    }
    for (grain, days) in windows {
        let mut day_col = Vec::new();
        let mut period_col = Vec::new();
        for period in periods(*grain, range.start, month_end(range.end)) {
            let last = period_end(*grain, period);
            for back in 0..i64::from(*days) {
                day_col.push(last - Duration::days(back));
                period_col.push(period);
            }
        }
        register_dates(
            ctx,
            &window_relation(*grain, *days),
            &[("day", &day_col), ("period", &period_col)],
        )?;
    }
    Ok(())
}

/// The last day of the period of `grain` that starts on `period`.
fn period_end(grain: Grain, period: NaiveDate) -> NaiveDate {
    next_period(grain, period) - Duration::days(1)
}

/// The first day of the period after the one starting on `period`.
fn next_period(grain: Grain, period: NaiveDate) -> NaiveDate {
    match grain {
        Grain::Day => period + Duration::days(1),
        Grain::Week => period + Duration::days(7),
        Grain::Month => period + Months::new(1),
        Grain::Quarter => period + Months::new(3),
        Grain::Year => period + Months::new(12),
    }
}

fn months_between(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut m = first;
    while m <= last {
        out.push(m);
        m = m + Months::new(1);
    }
    out
}

/// First days of the periods of `grain` that overlap `[first, last]`.
pub fn periods(grain: Grain, first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let start = match grain {
        Grain::Day => first,
        Grain::Week => first - Duration::days(i64::from(first.weekday().num_days_from_monday())),
        Grain::Month => month_of(first),
        Grain::Quarter => {
            NaiveDate::from_ymd_opt(first.year(), (first.month0() / 3) * 3 + 1, 1).expect("valid")
        }
        Grain::Year => NaiveDate::from_ymd_opt(first.year(), 1, 1).expect("valid"),
    };
    let mut out = Vec::new();
    let mut p = start;
    while p <= last {
        out.push(p);
        p = next_period(grain, p);
    }
    out
}

fn register_dates(
    ctx: &SessionContext,
    name: &str,
    columns: &[(&str, &[NaiveDate])],
) -> Result<()> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Date32, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, dates)| {
            Arc::new(Date32Array::from(
                dates
                    .iter()
                    .map(|d| (*d - epoch).num_days() as i32)
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
        .map_err(|e| VitalsError::data("calendar", e))?;
    let table = MemTable::try_new(schema, vec![vec![batch]])
        .map_err(|e| VitalsError::data("calendar", e))?;
    ctx.deregister_table(name).ok();
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| VitalsError::data("calendar", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn range_runs_from_first_data_month_to_as_of_month() {
        let r = Range::new(d("2020-03-15"), Some(d("2019-11-20")), None);
        assert_eq!(
            (r.history_start, r.start, r.end),
            (d("2019-11-01"), d("2019-11-01"), d("2020-03-01"))
        );
        let cut = Range::new(
            d("2020-03-15"),
            Some(d("2019-11-20")),
            Some(d("2020-01-01")),
        );
        assert_eq!(
            (cut.history_start, cut.start),
            (d("2019-11-01"), d("2020-01-01"))
        );
    }

    #[test]
    fn periods_cover_partial_edges() {
        let q = periods(Grain::Quarter, d("2020-02-01"), d("2020-07-31"));
        assert_eq!(q, [d("2020-01-01"), d("2020-04-01"), d("2020-07-01")]);
        let w = periods(Grain::Week, d("2024-01-03"), d("2024-01-10"));
        assert_eq!(w, [d("2024-01-01"), d("2024-01-08")]);
        assert_eq!(month_end(d("2024-02-01")), d("2024-02-29"));
    }
}
