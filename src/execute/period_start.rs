//! The first day of the week, month, quarter or year of a DATE by integer
//! arithmetic: registered functions and the optimizer rule that uses them,
//! a deliberate exception beside `utc_day`.
//!
//! A period of a DATE column is written `CAST(date_trunc('month',
//! CAST(d AS TIMESTAMP)) AS DATE)` (see `compile::metrics::period_of`; SQL
//! models write `date_trunc('month', d)` and DataFusion adds the casts).
//! DataFusion truncates a timestamp through chrono, value by value, and
//! then `utc_day` turns the nanoseconds back into days: at 100k customers
//! that was 3.5-4 % of a whole build's CPU (perf: `general_date_trunc`,
//! `NaiveDate::add_days`, `diff_months`), about 11 ns a value over
//! millions of (customer, month) rows.
//!
//! Days since 1970 to a civil date and back is a few integer operations
//! (Howard Hinnant's `civil_from_days`), so this rule rewrites that
//! expression, for a DATE `d` and a literal grain, into
//! `vitals_<grain>_start(d)`. The functions are ordinary registered
//! scalar functions: EXPLAIN shows them, and a session without them could
//! not read the plan, which is why every session registers them (see
//! `execute::register_exceptions`). A timestamp with a time of day, or in
//! a zone, keeps `date_trunc`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the functions and adds the rule. The rule must run before
/// `utc_day`'s, which would turn the outer cast into its function first.
pub fn register(ctx: &SessionContext) {
    for grain in Grain::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(PeriodStart::new(grain)));
    }
    ctx.add_optimizer_rule(Arc::new(super::ExpressionRule {
        name: "vitals_date_period_start",
        rewrite,
    }));
}

/// The grains whose start is computed here. A day is the date itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Grain {
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    const ALL: [Grain; 4] = [Grain::Week, Grain::Month, Grain::Quarter, Grain::Year];

    /// `date_trunc`'s name of the grain (it accepts lower case only).
    fn name(self) -> &'static str {
        match self {
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    /// The first day of the period after the one starting on `start`
    /// (saturating at the last Date32).
    fn start_after(self, start: i32) -> i32 {
        let next = |y: i64, m: u32| {
            let (y, m) = if m > 12 { (y + 1, m - 12) } else { (y, m) };
            days_from_civil(y, m, 1)
        };
        match self {
            Grain::Week => saturate(i64::from(start) + 7),
            Grain::Month => {
                let (y, m, _) = civil_from_days(start);
                next(y, m + 1)
            }
            Grain::Quarter => {
                let (y, m, _) = civil_from_days(start);
                next(y, m + 3)
            }
            Grain::Year => {
                let (y, _, _) = civil_from_days(start);
                next(y + 1, 1)
            }
        }
    }

    /// The first day of the period holding `day` (days since 1970-01-01).
    /// In i64: the week or month of the first Date32 starts before it,
    /// and saturates there (date_trunc cannot reach such days at all:
    /// their timestamps overflow).
    fn start(self, day: i32) -> i32 {
        match self {
            // date_trunc's weeks start on Monday; 1970-01-01 was a
            // Thursday, three days after one.
            Grain::Week => saturate(i64::from(day) - (i64::from(day) + 3).rem_euclid(7)),
            Grain::Month => {
                let (_, _, d) = civil_from_days(day);
                saturate(i64::from(day) - i64::from(d - 1))
            }
            Grain::Quarter => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, (m - 1) / 3 * 3 + 1, 1)
            }
            Grain::Year => {
                let (y, _, _) = civil_from_days(day);
                days_from_civil(y, 1, 1)
            }
        }
    }
}

/// The period of the last value seen: rows come in runs of nearby dates
/// (a month's rows, a customer's history), so most values fall in the
/// period before them and need two comparisons instead of the calendar
/// arithmetic (perf at 100k customers: `Grain::start` was 2 % of a build's
/// CPU without this).
struct LastPeriod {
    grain: Grain,
    /// First day of the period and first day of the next one; empty at
    /// first, so the first value computes its period.
    start: i32,
    end: i32,
}

impl LastPeriod {
    fn new(grain: Grain) -> Self {
        LastPeriod {
            grain,
            start: 0,
            end: 0,
        }
    }

    fn start_of(&mut self, day: i32) -> i32 {
        if !(self.start..self.end).contains(&day) {
            self.start = self.grain.start(day);
            // A start held at the first Date32 is not the period's own,
            // so nothing is kept for it; the end saturates at the last
            // Date32, which only leaves that one day to compute again.
            self.end = if self.start == i32::MIN {
                i32::MIN
            } else {
                self.grain.start_after(self.start)
            };
        }
        self.start
    }
}

/// (year, month 1-12, day 1-31) of a day number, in the proleptic
/// Gregorian calendar. Hinnant's algorithm, in i64 so no Date32 overflows.
fn civil_from_days(day: i32) -> (i64, u32, u32) {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number of (year, month 1-12, day 1-31); inverse of the above,
/// saturating at the ends of Date32.
fn days_from_civil(y: i64, m: u32, d: u32) -> i32 {
    saturate(day_number(y, m, d))
}

/// A day number held to Date32's range.
fn saturate(day: i64) -> i32 {
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX })
}

/// The day number of (year, month 1-12, day 1-31), which may lie beyond
/// Date32 (the period after the last one).
fn day_number(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `vitals_<grain>_start(date) -> date`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PeriodStart {
    grain: Grain,
    name: String,
    signature: Signature,
}

impl PeriodStart {
    fn new(grain: Grain) -> Self {
        PeriodStart {
            grain,
            name: function_name(grain),
            signature: Signature::exact(vec![DataType::Date32], Volatility::Immutable),
        }
    }
}

fn function_name(grain: Grain) -> String {
    format!("vitals_{}_start", grain.name())
}

impl ScalarUDFImpl for PeriodStart {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    // Null exactly when the date is: a plan's schema keeps the rewritten
    // expression's nullability, and a physical plan must agree with it.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Date32,
            nullable,
        )))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let grain = self.grain;
        match args.args.as_slice() {
            [ColumnarValue::Array(a)] => {
                let Some(days) = a.as_any().downcast_ref::<Date32Array>() else {
                    return exec_err!("{} expects a DATE, got {}", self.name, a.data_type());
                };
                let mut last = LastPeriod::new(grain);
                // Null slots hold some value too; computing its period is
                // harmless, and the nulls are carried over as they are.
                let starts: Vec<i32> = days.values().iter().map(|&d| last.start_of(d)).collect();
                let starts = Date32Array::new(starts.into(), days.nulls().cloned());
                Ok(ColumnarValue::Array(Arc::new(starts)))
            }
            [ColumnarValue::Scalar(ScalarValue::Date32(d))] => Ok(ColumnarValue::Scalar(
                ScalarValue::Date32(d.map(|d| grain.start(d))),
            )),
            other => exec_err!("{} expects one DATE, got {other:?}", self.name),
        }
    }

    // A period start never decreases as its date grows, so a sort on the
    // date is a sort on the start (as DataFusion says of date_trunc).
    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        Ok(input[0].sort_properties)
    }
}

/// `CAST(date_trunc(grain, CAST(d AS TIMESTAMP)) AS DATE)` of a DATE `d`
/// → `vitals_<grain>_start(d)`, or `d` itself for a day.
fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Some((grain, date)) = truncated_date(&expr, schema) else {
        return Ok(Transformed::no(expr));
    };
    let date = date.clone();
    Ok(Transformed::yes(match grain {
        None => date,
        Some(grain) => Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(PeriodStart::new(grain))),
            vec![date],
        )),
    }))
}

/// The grain (None for a day) and the DATE of `CAST(date_trunc(grain,
/// CAST(d AS TIMESTAMP)) AS DATE)`.
fn truncated_date<'e>(expr: &'e Expr, schema: &DFSchema) -> Option<(Option<Grain>, &'e Expr)> {
    let Expr::Cast(Cast { expr: trunc, field }) = expr else {
        return None;
    };
    if *field.data_type() != DataType::Date32 || !field.metadata().is_empty() {
        return None;
    }
    let Expr::ScalarFunction(ScalarFunction { func, args }) = trunc.as_ref() else {
        return None;
    };
    let [
        Expr::Literal(grain, _),
        Expr::Cast(Cast { expr: date, field }),
    ] = args.as_slice()
    else {
        return None;
    };
    if func.name() != "date_trunc"
        || !matches!(field.data_type(), DataType::Timestamp(_, None))
        || date.get_type(schema).ok()? != DataType::Date32
    {
        return None;
    }
    let grain = match grain.try_as_str()?? {
        "day" => None,
        g => Some(*Grain::ALL.iter().find(|x| x.name() == g)?),
    };
    Some((grain, date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    /// Days around the edges that trip calendar arithmetic: 1970 and the
    /// days before it, leap days, and century years (1900 and 2100 are
    /// not leap years, 2000 is).
    fn days() -> Vec<i32> {
        let mut out: Vec<i32> = (-800..800).collect();
        for anchor in [
            "1700-03-01",
            "1899-12-31",
            "1900-02-28",
            "2000-02-29",
            "2024-02-29",
            "2025-12-31",
            "2100-03-01",
        ] {
            let d = chrono::NaiveDate::parse_from_str(anchor, "%Y-%m-%d").unwrap();
            let n = (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
            out.extend(n - 400..n + 400);
        }
        out
    }

    async fn run(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    fn session(with_rule: bool) -> SessionContext {
        let ctx = SessionContext::new();
        if with_rule {
            register(&ctx);
        }
        let days: Date32Array = days().into_iter().map(Some).chain([None]).collect();
        let batch = datafusion::arrow::array::RecordBatch::try_from_iter([(
            "d",
            Arc::new(days) as datafusion::arrow::array::ArrayRef,
        )])
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        ctx
    }

    /// Every grain gives date_trunc's own answer, for thousands of days
    /// around the calendar's edge cases and a null.
    #[tokio::test]
    async fn starts_equal_date_trunc() {
        for grain in ["day", "week", "month", "quarter", "year"] {
            let sql = format!(
                "SELECT d, CAST(date_trunc('{grain}', CAST(d AS TIMESTAMP)) AS DATE) AS s, \
                 date_trunc('{grain}', d) AS implicit FROM t ORDER BY d"
            );
            let plain = run(&session(false), &sql).await;
            let ours = run(&session(true), &sql).await;
            assert_eq!(plain, ours, "grain {grain}");
        }
    }

    /// The rule fires on a DATE and leaves a timestamp with a time alone.
    #[tokio::test]
    async fn rewrites_dates_only() {
        let ctx = session(true);
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { run(&ctx, &format!("EXPLAIN {sql}")).await }
        };
        let date =
            plan("SELECT CAST(date_trunc('month', CAST(d AS TIMESTAMP)) AS DATE) AS x FROM t")
                .await;
        assert!(date.contains("vitals_month_start(t.d) AS x"), "{date}");
        assert!(!date.contains("date_trunc"), "{date}");
        let day =
            plan("SELECT CAST(date_trunc('day', CAST(d AS TIMESTAMP)) AS DATE) AS x FROM t").await;
        assert!(day.contains("Projection: t.d AS x"), "{day}");
        let timestamp = plan(
            "SELECT CAST(date_trunc('month', CAST(d AS TIMESTAMP) + INTERVAL '5 hours') AS DATE) AS x FROM t",
        )
        .await;
        assert!(timestamp.contains("date_trunc"), "{timestamp}");
        assert!(!timestamp.contains("vitals_month_start"), "{timestamp}");
    }

    /// The period kept from the value before gives every value its own
    /// start: in order, out of order, and at both ends of Date32.
    #[test]
    fn last_period_agrees_with_start() {
        let mut values = days();
        values.extend([i32::MAX, i32::MAX - 1, 0, i32::MAX]);
        values.extend((0..40).map(|k| i32::MIN + k));
        for grain in Grain::ALL {
            let mut last = LastPeriod::new(grain);
            for &d in &values {
                assert_eq!(last.start_of(d), grain.start(d), "{grain:?} {d}");
            }
        }
    }

    #[test]
    fn civil_round_trips() {
        for d in days() {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(i32::MAX).0, 5_881_580);
        assert_eq!(civil_from_days(i32::MIN).0, -5_877_641);
    }
}
