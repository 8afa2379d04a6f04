//! Property tests of the MRR roll-forward (metrics.md, "MRR movements"):
//! random subscription histories are built with the shipped catalog, and
//! `mrr_movements_monthly` and `customer_mrr_monthly` are checked against
//! the invariants of the spec and against an independent model of
//! `mrr(c, M)` written here in plain Rust.
//!
//! The generated rows cover month-aligned and mid-month starts, open rows,
//! `end == start` (never active), rows that end inside their start month,
//! trials (mrr 0), concurrent rows of one customer, plan changes
//! (a row starting the day the previous one ends) and gaps (churn, then
//! reactivation). Segments are random: some customers have none, some a
//! null one, and `customers` may hold customers without subscriptions.
//!
//! Money is generated in cents so that the model is exact; the engine's
//! doubles are compared with a tolerance. A failure prints the minimal
//! history as Rust code that can be pasted into a regression test.
//! `PROPTEST_CASES=200 cargo test --test tests invariants` runs a deeper
//! search than the default 24 cases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{Datelike, Duration, Months, NaiveDate};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

use super::common::{Data, build_selected, shipped_catalog};

// ------------------------------------------------------------ histories

/// A customer's segment in the generated `customers` table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// No row in `customers`.
    Missing,
    /// A row whose segment is null.
    Null,
    Named(&'static str),
}

/// One subscription row; money in cents.
#[derive(Clone)]
struct Row {
    id: String,
    customer: String,
    start: NaiveDate,
    end: Option<NaiveDate>,
    cents: i64,
}

/// A generated input: the rows, the `customers` table and the build date.
#[derive(Clone)]
struct History {
    rows: Vec<Row>,
    /// `customers` rows: (customer_id, segment); customers with `Seg::Missing`
    /// are not in it.
    customers: Vec<(String, Option<&'static str>)>,
    as_of: NaiveDate,
}

/// Printed as Rust code in the helpers of `common.rs`, so that a shrunk
/// failure can be pasted into a regression test as it is.
impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "History (as_of {}):", self.as_of)?;
        writeln!(f, "data.subscriptions(&[")?;
        for r in &self.rows {
            let end = r
                .end
                .map_or("None".to_string(), |e| format!("Some(\"{e}\")"));
            writeln!(
                f,
                "    sub({:?}, {:?}, \"{}\", {end}, {:?}),",
                r.id,
                r.customer,
                r.start,
                cents_to_f64(r.cents)
            )?;
        }
        writeln!(f, "]);")?;
        if self.customers.is_empty() {
            writeln!(f, "// no customers table")
        } else {
            writeln!(f, "data.customers(&[")?;
            for (id, segment) in &self.customers {
                writeln!(f, "    ({id:?}, {segment:?}),")?;
            }
            writeln!(f, "]);")
        }
    }
}

fn cents_to_f64(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// The first day of the generated time window; starts fall in its two years.
fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()
}

fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap()
}

fn month_end(month: NaiveDate) -> NaiveDate {
    month + Months::new(1) - Duration::days(1)
}

#[derive(Debug, Clone)]
enum StartSpec {
    /// The first day of the n-th month of the window.
    Aligned(u32),
    /// Any day of the window.
    Day(i64),
    /// `gap` days after the previous row of the customer ends: 0 is a plan
    /// change, more is a churn followed by a reactivation. The first row,
    /// or a row after an open one, starts on `fallback` instead.
    AfterPrevious { gap: i64, fallback: i64 },
}

#[derive(Debug, Clone)]
enum EndSpec {
    Open,
    /// `end == start`: valid, and never active.
    SameDay,
    /// Ends later in the month it starts in (or the same day when it starts
    /// on the last day of a month).
    InStartMonth(i64),
    /// Ends the first day of a month `n` months after the start month.
    AlignedMonths(u32),
    Days(i64),
}

#[derive(Debug, Clone)]
struct RowSpec {
    start: StartSpec,
    end: EndSpec,
    cents: i64,
}

#[derive(Debug, Clone)]
struct CustomerSpec {
    segment: Seg,
    rows: Vec<RowSpec>,
}

impl fmt::Debug for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Missing => write!(f, "Missing"),
            Seg::Null => write!(f, "Null"),
            Seg::Named(s) => write!(f, "{s}"),
        }
    }
}

fn segment_strategy() -> impl Strategy<Value = Seg> {
    prop_oneof![
        1 => Just(Seg::Missing),
        1 => Just(Seg::Null),
        4 => prop::sample::select(vec!["SMB", "Mid-Market", "Enterprise"]).prop_map(Seg::Named),
    ]
}

fn cents_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        // trials and free plans
        1 => Just(0i64),
        // a few list prices, so that plan changes at the same price occur
        2 => prop::sample::select(vec![1_000i64, 2_500, 5_000, 9_999]),
        3 => 1i64..100_000,
    ]
}

fn start_strategy() -> impl Strategy<Value = StartSpec> {
    prop_oneof![
        (0u32..24).prop_map(StartSpec::Aligned),
        (0i64..730).prop_map(StartSpec::Day),
        (prop_oneof![Just(0i64), 1i64..120], 0i64..730)
            .prop_map(|(gap, fallback)| StartSpec::AfterPrevious { gap, fallback }),
    ]
}

fn end_strategy() -> impl Strategy<Value = EndSpec> {
    prop_oneof![
        2 => Just(EndSpec::Open),
        1 => Just(EndSpec::SameDay),
        1 => (1i64..28).prop_map(EndSpec::InStartMonth),
        3 => (1u32..14).prop_map(EndSpec::AlignedMonths),
        3 => (1i64..500).prop_map(EndSpec::Days),
    ]
}

fn customer_strategy() -> impl Strategy<Value = CustomerSpec> {
    (
        segment_strategy(),
        vec(
            (start_strategy(), end_strategy(), cents_strategy())
                .prop_map(|(start, end, cents)| RowSpec { start, end, cents }),
            1..=4,
        ),
    )
        .prop_map(|(segment, rows)| CustomerSpec { segment, rows })
}

fn history_strategy() -> impl Strategy<Value = History> {
    (
        vec(customer_strategy(), 1..=30),
        // customers without subscriptions: their segment is still a member
        vec(
            prop::option::of(prop::sample::select(vec!["SMB", "Partner"])),
            0..=2,
        ),
        // the build date: any day up to three months after the window
        0i64..820,
    )
        .prop_map(|(customers, extra, as_of)| materialize(&customers, &extra, as_of))
}

/// Turns the specs into dates and ids.
fn materialize(specs: &[CustomerSpec], extra: &[Option<&'static str>], as_of_day: i64) -> History {
    let mut rows = Vec::new();
    let mut customers = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let customer = format!("c{i:02}");
        let mut previous_end: Option<NaiveDate> = None;
        for (k, r) in spec.rows.iter().enumerate() {
            let start = match r.start {
                StartSpec::Aligned(n) => base() + Months::new(n),
                StartSpec::Day(d) => base() + Duration::days(d),
                StartSpec::AfterPrevious { gap, fallback } => match previous_end {
                    Some(e) => e + Duration::days(gap),
                    None => base() + Duration::days(fallback),
                },
            };
            let end = match r.end {
                EndSpec::Open => None,
                EndSpec::SameDay => Some(start),
                EndSpec::InStartMonth(d) => {
                    Some((start + Duration::days(d)).min(month_end(month_of(start))))
                }
                EndSpec::AlignedMonths(n) => Some(month_of(start) + Months::new(n)),
                EndSpec::Days(d) => Some(start + Duration::days(d)),
            };
            previous_end = end;
            rows.push(Row {
                id: format!("{customer}-{k}"),
                customer: customer.clone(),
                start,
                end,
                cents: r.cents,
            });
        }
        match spec.segment {
            Seg::Missing => {}
            Seg::Null => customers.push((customer, None)),
            Seg::Named(s) => customers.push((customer, Some(s))),
        }
    }
    for (i, segment) in extra.iter().enumerate() {
        customers.push((format!("x{i}"), *segment));
    }
    let earliest = rows
        .iter()
        .map(|r| r.start)
        .min()
        .expect("one row at least");
    let as_of = (base() + Duration::days(as_of_day)).max(earliest);
    History {
        rows,
        customers,
        as_of,
    }
}

// ---------------------------------------------------------------- model

/// The columns of `mrr_movements_monthly` that are sums (money) and counts.
const SUMS: [&str; 8] = [
    "mrr_start",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "net_new_mrr",
    "mrr_end",
];
const COUNTS: [&str; 7] = [
    "customers_start",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
    "expanded_customers",
    "contracted_customers",
    "customers_end",
];

/// The key of the total row.
const TOTAL: &str = "<total>";

/// One row of `mrr_movements_monthly`: sums in the order of `SUMS`, counts
/// in the order of `COUNTS`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Movements {
    sums: [f64; 8],
    counts: [i64; 7],
}

/// One row of `customer_mrr_monthly` in the model.
#[derive(Debug, Clone, PartialEq)]
struct CustomerMonth {
    segment: String,
    mrr: f64,
    prev_mrr: f64,
    movement: Option<&'static str>,
    movement_mrr: f64,
}

struct Model {
    months: Vec<NaiveDate>,
    segments: BTreeSet<String>,
    /// (month, segment or TOTAL) -> expected row
    movements: BTreeMap<(NaiveDate, String), Movements>,
    /// (customer, month) -> expected row
    customer_months: BTreeMap<(String, NaiveDate), CustomerMonth>,
}

/// mrr(c, M) in cents: the rows of `c` active on the last day of `M`.
fn mrr_cents(rows: &[&Row], month: NaiveDate) -> i64 {
    let last = month_end(month);
    rows.iter()
        .filter(|r| r.start <= last && r.end.is_none_or(|e| e > last))
        .map(|r| r.cents)
        .sum()
}

fn model(h: &History) -> Model {
    let first = month_of(h.rows.iter().map(|r| r.start).min().unwrap());
    let last = month_of(h.as_of);
    let mut months = Vec::new();
    let mut m = first;
    while m <= last {
        months.push(m);
        m = m + Months::new(1);
    }

    let segment_of: BTreeMap<&str, &str> = h
        .customers
        .iter()
        .map(|(id, s)| (id.as_str(), s.unwrap_or("unknown")))
        .collect();
    let mut by_customer: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &h.rows {
        by_customer.entry(r.customer.as_str()).or_default().push(r);
    }
    let mut segments: BTreeSet<String> = segment_of.values().map(|s| s.to_string()).collect();
    for c in by_customer.keys() {
        segments.insert(segment_of.get(c).copied().unwrap_or("unknown").to_string());
    }

    let mut movements: BTreeMap<(NaiveDate, String), Movements> = BTreeMap::new();
    for m in &months {
        for s in segments.iter().map(String::as_str).chain([TOTAL]) {
            movements.insert((*m, s.to_string()), Movements::default());
        }
    }
    let mut customer_months = BTreeMap::new();
    for (c, rows) in &by_customer {
        let segment = segment_of.get(c).copied().unwrap_or("unknown");
        let mut paid_before = false;
        let mut prev = 0i64;
        for m in &months {
            let cur = mrr_cents(rows, *m);
            // (movement, amount >= 0, index in SUMS, index in COUNTS)
            let movement = if prev == cur {
                None
            } else if prev == 0 && !paid_before {
                Some(("new", cur, 1, 1))
            } else if prev == 0 {
                Some(("reactivation", cur, 3, 2))
            } else if cur > prev {
                Some(("expansion", cur - prev, 2, 4))
            } else if cur > 0 {
                Some(("contraction", prev - cur, 4, 5))
            } else {
                Some(("churn", prev, 5, 3))
            };
            for key in [segment, TOTAL] {
                let row = movements.get_mut(&(*m, key.to_string())).unwrap();
                row.sums[0] += cents_to_f64(prev);
                row.sums[6] += cents_to_f64(cur - prev);
                row.sums[7] += cents_to_f64(cur);
                row.counts[0] += i64::from(prev > 0);
                row.counts[6] += i64::from(cur > 0);
                if let Some((_, amount, sum, count)) = movement {
                    row.sums[sum] += cents_to_f64(amount);
                    row.counts[count] += 1;
                }
            }
            if prev > 0 || cur > 0 {
                customer_months.insert(
                    (c.to_string(), *m),
                    CustomerMonth {
                        segment: segment.to_string(),
                        mrr: cents_to_f64(cur),
                        prev_mrr: cents_to_f64(prev),
                        movement: movement.map(|mv| mv.0),
                        movement_mrr: cents_to_f64(cur - prev),
                    },
                );
            }
            paid_before |= cur > 0;
            prev = cur;
        }
    }
    Model {
        months,
        segments,
        movements,
        customer_months,
    }
}

// --------------------------------------------------------------- checks

impl Movements {
    fn add(&mut self, other: &Movements) {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// A problem, described by `describe(column, got, want)`, for every column
/// in which `got` and `want` differ.
fn compare(
    got: &Movements,
    want: &Movements,
    problems: &mut Vec<String>,
    describe: impl Fn(&str, String, String) -> String,
) {
    for ((name, g), w) in SUMS.iter().zip(&got.sums).zip(&want.sums) {
        if !near(*g, *w) {
            problems.push(describe(name, g.to_string(), w.to_string()));
        }
    }
    for ((name, g), w) in COUNTS.iter().zip(&got.counts).zip(&want.counts) {
        if g != w {
            problems.push(describe(name, g.to_string(), w.to_string()));
        }
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn write_subscriptions(data: &Data, rows: &[Row]) {
    let batch = super::common::subscription_rows_batch(rows.iter().map(|r| {
        (
            r.id.as_str(),
            r.customer.as_str(),
            r.start,
            r.end,
            cents_to_f64(r.cents),
        )
    }));
    data.write("subscriptions", &batch);
}

/// The published `mrr_movements_monthly`, keyed by (month, segment or TOTAL).
/// Null or duplicate cells are reported as problems.
async fn published_movements(
    built: &super::common::Built,
    problems: &mut Vec<String>,
) -> BTreeMap<(NaiveDate, String), Movements> {
    let columns: Vec<&str> = SUMS.iter().chain(COUNTS.iter()).copied().collect();
    let sql = format!(
        "SELECT CAST(month AS VARCHAR), coalesce(segment, '{TOTAL}'), {} FROM mrr_movements_monthly",
        columns.join(", ")
    );
    let mut out = BTreeMap::new();
    for row in built.rows(&sql).await {
        let month = NaiveDate::parse_from_str(&row[0], "%Y-%m-%d").unwrap();
        let key = (month, row[1].clone());
        let mut m = Movements::default();
        for (i, cell) in row[2..].iter().enumerate() {
            let name = columns[i];
            if cell.is_empty() {
                problems.push(format!("{key:?}: {name} is null"));
                continue;
            }
            if i < SUMS.len() {
                m.sums[i] = cell.parse().unwrap();
            } else {
                m.counts[i - SUMS.len()] = cell.parse().unwrap();
            }
        }
        if out.insert(key.clone(), m).is_some() {
            problems.push(format!("{key:?}: more than one row"));
        }
    }
    out
}

/// The invariants of metrics.md that hold whatever the data, checked on the
/// published rows alone.
fn check_invariants(
    got: &BTreeMap<(NaiveDate, String), Movements>,
    model: &Model,
    problems: &mut Vec<String>,
) {
    let keys: Vec<String> = model
        .segments
        .iter()
        .cloned()
        .chain([TOTAL.to_string()])
        .collect();
    // The grid is full: every month of the range, every member and the total.
    let expected: BTreeSet<(NaiveDate, String)> = model
        .months
        .iter()
        .flat_map(|m| keys.iter().map(move |s| (*m, s.clone())))
        .collect();
    let present: BTreeSet<(NaiveDate, String)> = got.keys().cloned().collect();
    for k in expected.difference(&present) {
        problems.push(format!("{k:?}: row missing from the grid"));
    }
    for k in present.difference(&expected) {
        problems.push(format!("{k:?}: row outside the grid"));
    }

    for ((month, segment), r) in got {
        let at = format!("{month} {segment}");
        let [
            start,
            new,
            expansion,
            reactivation,
            contraction,
            churned,
            net,
            end,
        ] = r.sums;
        let [c_start, c_new, c_react, c_churned, c_exp, c_contr, c_end] = r.counts;
        if !near(end, start + net) {
            problems.push(format!(
                "{at}: mrr_end {end} != mrr_start {start} + net_new_mrr {net}"
            ));
        }
        let parts = new + expansion + reactivation - contraction - churned;
        if !near(net, parts) {
            problems.push(format!(
                "{at}: net_new_mrr {net} != new {new} + expansion {expansion} + reactivation \
                 {reactivation} - contraction {contraction} - churned {churned} = {parts}"
            ));
        }
        if c_end != c_start + c_new + c_react - c_churned {
            problems.push(format!(
                "{at}: customers_end {c_end} != customers_start {c_start} + new {c_new} + \
                 reactivated {c_react} - churned {c_churned}"
            ));
        }
        for (i, v) in r.sums.iter().enumerate() {
            // net_new_mrr may be negative; every other sum is >= 0
            if i != 6 && *v < -1e-9 {
                problems.push(format!("{at}: {} is negative: {v}", SUMS[i]));
            }
        }
        for (i, v) in r.counts.iter().enumerate() {
            if *v < 0 {
                problems.push(format!("{at}: {} is negative: {v}", COUNTS[i]));
            }
        }
        for (i, v) in [c_exp, c_contr].iter().enumerate() {
            if *v > c_start {
                let name = ["expanded_customers", "contracted_customers"][i];
                problems.push(format!("{at}: {name} {v} > customers_start {c_start}"));
            }
        }
        // The roll-forward: this month starts where the previous one ended.
        let previous = month.checked_sub_months(Months::new(1)).unwrap();
        match got.get(&(previous, segment.clone())) {
            Some(p) => {
                if !near(start, p.sums[7]) {
                    problems.push(format!(
                        "{at}: mrr_start {start} != mrr_end {} of {previous}",
                        p.sums[7]
                    ));
                }
                if c_start != p.counts[6] {
                    problems.push(format!(
                        "{at}: customers_start {c_start} != customers_end {} of {previous}",
                        p.counts[6]
                    ));
                }
            }
            // The first month: nothing was paying before the first start.
            None if model.months.first() == Some(month) && (start != 0.0 || c_start != 0) => {
                problems.push(format!(
                    "{at}: first month starts at mrr {start}, {c_start} customers"
                ));
            }
            None => {}
        }
    }

    // The total row is the sum of the segment rows, column by column.
    for m in &model.months {
        let Some(total) = got.get(&(*m, TOTAL.to_string())) else {
            continue;
        };
        let mut sum = Movements::default();
        for s in &model.segments {
            if let Some(r) = got.get(&(*m, s.clone())) {
                sum.add(r);
            }
        }
        compare(total, &sum, problems, |name, total, sum| {
            format!("{m}: total {name} {total} != {sum} summed over the segments")
        });
    }
}

/// Every cell against the model computed from the generated rows.
fn check_against_model(
    got: &BTreeMap<(NaiveDate, String), Movements>,
    model: &Model,
    problems: &mut Vec<String>,
) {
    for (key, want) in &model.movements {
        let Some(r) = got.get(key) else { continue };
        compare(r, want, problems, |name, built, rows| {
            format!(
                "{} {}: {name} is {built} in the build, {rows} from the rows",
                key.0, key.1
            )
        });
    }
}

/// `customer_mrr_monthly` against the model: one row per customer and month
/// in which it paid then or the month before, with its movement.
async fn check_customer_months(
    built: &super::common::Built,
    model: &Model,
    problems: &mut Vec<String>,
) {
    let rows = built
        .rows(
            "SELECT customer_id, CAST(month AS VARCHAR), segment, mrr, prev_mrr, movement, \
             movement_mrr FROM customer_mrr_monthly",
        )
        .await;
    let mut got = BTreeMap::new();
    for r in rows {
        let key = (
            r[0].clone(),
            NaiveDate::parse_from_str(&r[1], "%Y-%m-%d").unwrap(),
        );
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        let row = (
            r[2].clone(),
            num(&r[3]),
            num(&r[4]),
            r[5].clone(),
            num(&r[6]),
        );
        if got.insert(key.clone(), row).is_some() {
            problems.push(format!("customer_mrr_monthly {key:?}: more than one row"));
        }
    }
    for (key, want) in &model.customer_months {
        let at = format!("customer_mrr_monthly {} {}", key.0, key.1);
        let Some((segment, mrr, prev_mrr, movement, movement_mrr)) = got.get(key) else {
            problems.push(format!("{at}: missing, expected {want:?}"));
            continue;
        };
        let same = *segment == want.segment
            && near(*mrr, want.mrr)
            && near(*prev_mrr, want.prev_mrr)
            && *movement == want.movement.unwrap_or("")
            && near(*movement_mrr, want.movement_mrr);
        if !same {
            problems.push(format!(
                "{at}: got segment {segment}, mrr {mrr}, prev_mrr {prev_mrr}, movement \
                 {movement:?}, movement_mrr {movement_mrr}; expected {want:?}"
            ));
        }
    }
    for key in got
        .keys()
        .filter(|k| !model.customer_months.contains_key(*k))
    {
        problems.push(format!(
            "customer_mrr_monthly {} {}: unexpected row (no MRR then nor the month before)",
            key.0, key.1
        ));
    }
}

async fn check(h: &History) -> Result<(), String> {
    let data = Data::new();
    write_subscriptions(&data, &h.rows);
    if !h.customers.is_empty() {
        let customers: Vec<(&str, Option<&str>)> = h
            .customers
            .iter()
            .map(|(id, s)| (id.as_str(), *s))
            .collect();
        data.customers(&customers);
    }
    // Only the tables checked here: the other nine are tested elsewhere.
    let built = build_selected(
        &shipped_catalog(),
        &data,
        &h.as_of.to_string(),
        &["mrr_movements_monthly", "customer_mrr_monthly"],
    )
    .await;
    let model = model(h);
    let mut problems = Vec::new();
    let got = published_movements(&built, &mut problems).await;
    check_invariants(&got, &model, &mut problems);
    check_against_model(&got, &model, &mut problems);
    check_customer_months(&built, &model, &mut problems).await;
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(25);
    if n > 25 {
        problems.push(format!("... and {} more", n - 25));
    }
    Err(problems.join("\n"))
}

fn config() -> Config {
    // Explicit PROPTEST_* variables win over these defaults.
    let set = |name: &str| std::env::var_os(name).is_some();
    let mut config = Config::default();
    if !set("PROPTEST_CASES") {
        // A build takes about a second in a debug build.
        config.cases = 24;
    }
    if !set("PROPTEST_MAX_SHRINK_ITERS") {
        config.max_shrink_iters = 300;
    }
    if !set("PROPTEST_MAX_SHRINK_TIME") {
        config.max_shrink_time = 300_000;
    }
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(
        "tests/fixtures/proptest-regressions/invariants.txt",
    )));
    config
}

/// The roll-forward, the movement identities, the full grid, totals equal
/// to the sum of segments, and every cell equal to a model computed from the
/// generated rows.
#[test]
fn mrr_movements_roll_forward_on_random_histories() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&history_strategy(), |h| {
        runtime.block_on(check(&h)).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, minimal)) => {
            panic!("minimal failing history:\n{minimal:?}\nproblems:\n{reason}")
        }
        Err(e) => panic!("{e}"),
    }
}

/// A customer with a trial, a plan change, a mid-month churn and a
/// reactivation; a second one that starts and ends inside one month.
fn hand_checked_history() -> History {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let row = |id: &str, start: &str, end: Option<&str>, cents: i64| Row {
        id: id.to_string(),
        customer: id[..1].to_string(),
        start: d(start),
        end: end.map(d),
        cents,
    };
    History {
        rows: vec![
            row("a0", "2024-01-10", Some("2024-02-10"), 0),
            row("a1", "2024-02-10", Some("2024-03-01"), 10_000),
            row("a2", "2024-03-01", Some("2024-04-15"), 15_000),
            row("a3", "2024-06-01", None, 5_000),
            row("b0", "2024-02-03", Some("2024-02-20"), 99_900),
        ],
        customers: vec![("a".to_string(), Some("SMB"))],
        as_of: d("2024-06-15"),
    }
}

/// The model itself, on a history a person can check by hand, so that a
/// wrong model cannot pass the property test by agreeing with a wrong
/// engine.
#[test]
fn the_model_matches_a_hand_checked_history() {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let h = hand_checked_history();
    let m = model(&h);
    assert_eq!(m.months.len(), 6);
    assert_eq!(
        m.segments.iter().cloned().collect::<Vec<_>>(),
        ["SMB", "unknown"]
    );
    let total = |month: &str| m.movements[&(d(month), TOTAL.to_string())].clone();
    // January: the trial pays nothing. February: new 100. March: expansion
    // 50. April: churn 150 (ends on the 15th, so not active on the 30th).
    // May: nothing. June: reactivation 50.
    assert_eq!(total("2024-01-01"), Movements::default());
    assert_eq!(
        total("2024-02-01").sums,
        [0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 100.0, 100.0]
    );
    assert_eq!(total("2024-02-01").counts, [0, 1, 0, 0, 0, 0, 1]);
    assert_eq!(
        total("2024-03-01").sums,
        [100.0, 0.0, 50.0, 0.0, 0.0, 0.0, 50.0, 150.0]
    );
    assert_eq!(total("2024-03-01").counts, [1, 0, 0, 0, 1, 0, 1]);
    assert_eq!(
        total("2024-04-01").sums,
        [150.0, 0.0, 0.0, 0.0, 0.0, 150.0, -150.0, 0.0]
    );
    assert_eq!(total("2024-04-01").counts, [1, 0, 0, 1, 0, 0, 0]);
    assert_eq!(total("2024-05-01"), Movements::default());
    assert_eq!(
        total("2024-06-01").sums,
        [0.0, 0.0, 0.0, 50.0, 0.0, 0.0, 50.0, 50.0]
    );
    assert_eq!(total("2024-06-01").counts, [0, 0, 1, 0, 0, 0, 1]);
    // b is never paying on a month's last day; its segment is still a member.
    assert_eq!(
        m.movements[&(d("2024-02-01"), "unknown".to_string())],
        Movements::default()
    );
    assert_eq!(
        m.customer_months
            .keys()
            .map(|(c, m)| format!("{c} {m}"))
            .collect::<Vec<_>>(),
        [
            "a 2024-02-01",
            "a 2024-03-01",
            "a 2024-04-01",
            "a 2024-06-01"
        ]
    );
    assert_eq!(
        m.customer_months[&("a".to_string(), d("2024-06-01"))].movement,
        Some("reactivation")
    );
}

/// The checks on the published rows find what they are meant to find: the
/// model's own table passes them, and each corruption is reported.
#[test]
fn the_checks_catch_broken_tables() {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let m = model(&hand_checked_history());
    let problems_of = |got: &BTreeMap<(NaiveDate, String), Movements>| {
        let mut problems = Vec::new();
        check_invariants(got, &m, &mut problems);
        check_against_model(got, &m, &mut problems);
        problems
    };
    assert_eq!(problems_of(&m.movements), Vec::<String>::new());

    let march_smb = (d("2024-03-01"), "SMB".to_string());
    let mut wrong_end = m.movements.clone();
    wrong_end.get_mut(&march_smb).unwrap().sums[7] += 1.0;
    let problems = problems_of(&wrong_end);
    for expected in [
        "2024-03-01 SMB: mrr_end 151 != mrr_start 100 + net_new_mrr 50",
        "2024-04-01 SMB: mrr_start 150 != mrr_end 151 of 2024-03-01",
        "2024-03-01: total mrr_end 150 != 151 summed over the segments",
        "2024-03-01 SMB: mrr_end is 151 in the build, 150 from the rows",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "{expected} in {problems:#?}"
        );
    }

    let mut reactivation_as_new = m.movements.clone();
    for key in [
        (d("2024-06-01"), "SMB".to_string()),
        (d("2024-06-01"), TOTAL.to_string()),
    ] {
        let row = reactivation_as_new.get_mut(&key).unwrap();
        row.sums.swap(1, 3);
        row.counts.swap(1, 2);
    }
    let problems = problems_of(&reactivation_as_new);
    assert!(
        problems.contains(
            &"2024-06-01 SMB: new_customers is 1 in the build, 0 from the rows".to_string()
        ),
        "{problems:#?}"
    );

    let mut gap = m.movements.clone();
    gap.remove(&(d("2024-05-01"), "unknown".to_string()));
    assert!(
        problems_of(&gap)
            .contains(&"(2024-05-01, \"unknown\"): row missing from the grid".to_string())
    );
}
