//! Subscription histories: trials, plan changes, churn, reactivation and
//! add-ons, written to the `subscriptions` table; plus the active spans the
//! activity tables are drawn from.

use super::GenerateError;
use super::calendar::Calendar;
use super::customers::{Profile, format_id, stride_hit};
use super::rng::{Rng, Stream};
use super::tables::Subscriptions;
use super::writer::TableWriter;

const PLANS: [&str; 5] = ["Starter", "Growth", "Pro", "Business", "Enterprise"];
/// List MRR of the plans for customers billed a flat monthly price.
const FLAT_MRR: [f64; 5] = [49.0, 149.0, 399.0, 999.0, 2500.0];
/// Monthly price per seat for customers billed per seat.
const SEAT_PRICE: [f64; 5] = [12.0, 25.0, 45.0, 70.0, 110.0];
const ADD_ON: &str = "Analytics Add-on";
const TRIAL: &str = "Trial";
/// Average days per month, for monthly hazards.
const DAYS_PER_MONTH: f64 = 30.44;

/// Monthly churn hazard by segment (before engagement).
const CHURN: [f64; 3] = [0.035, 0.018, 0.009];
/// Share of sign-ups that start with a free trial, by segment.
const TRIAL_SHARE: [f64; 3] = [0.55, 0.45, 0.2];

/// How a customer's price is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Billing {
    /// `mrr` given directly.
    Flat,
    /// `amount` per seat and billing period, `quantity` seats, `mrr` null.
    Seats(Period),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Month,
    Quarter,
    Year,
    Week,
}

impl Period {
    /// Spellings found in the wild: the engine matches them ignoring case.
    fn label(self, rng: &mut Rng) -> &'static str {
        let spellings = match self {
            Period::Month => ["month", "Month", "MONTH"],
            Period::Quarter => ["quarter", "Quarter", "QUARTER"],
            Period::Year => ["year", "Year", "YEAR"],
            Period::Week => ["week", "Week", "WEEK"],
        };
        spellings[rng.weighted(&[0.8, 0.15, 0.05])]
    }

    /// Calendar months a plan change snaps to (renewal dates), if any.
    fn renewal_months(self) -> Option<u32> {
        match self {
            Period::Month | Period::Week => None,
            Period::Quarter => Some(3),
            Period::Year => Some(12),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One row of the `subscriptions` table (without ids).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubRow {
    pub start: i32,
    pub end: Option<i32>,
    pub plan: &'static str,
    pub mrr: Option<f64>,
    pub amount: Option<f64>,
    pub billing_period: Option<&'static str>,
    pub quantity: Option<i64>,
}

/// A stretch of days in which the customer had an active subscription
/// (trial or paid) without a gap; `end` is exclusive and at most the end of
/// the generated range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: i32,
    pub end: i32,
    /// The customer left at `end` (usage declines before it).
    pub churned: bool,
}

/// The generated history of one customer; reused between customers.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub rows: Vec<SubRow>,
    pub spans: Vec<Span>,
    /// Paid stretches `(start, end)`, for add-ons.
    paid: Vec<(i32, Option<i32>)>,
    /// Start of the first paid row.
    pub first_paid: Option<i32>,
}

impl History {
    fn clear(&mut self) {
        self.rows.clear();
        self.spans.clear();
        self.paid.clear();
        self.first_paid = None;
    }
}

/// The current price of a paid subscription.
#[derive(Debug, Clone, Copy)]
struct Price {
    billing: Billing,
    level: usize,
    seats: i64,
    /// Negotiated factor on the list price (flat billing).
    factor: f64,
}

impl Price {
    fn row(&self, start: i32, rng: &mut Rng) -> SubRow {
        let plan = PLANS[self.level];
        match self.billing {
            Billing::Flat => {
                let mrr = round2(FLAT_MRR[self.level] * self.factor);
                // A few sources give both; `mrr` wins.
                let (amount, billing_period) = if rng.chance(0.04) {
                    (Some(round2(mrr * 12.0)), Some(Period::Year.label(rng)))
                } else {
                    (None, None)
                };
                SubRow {
                    start,
                    end: None,
                    plan,
                    mrr: Some(mrr),
                    amount,
                    billing_period,
                    quantity: None,
                }
            }
            Billing::Seats(period) => {
                let monthly = SEAT_PRICE[self.level];
                let amount = match period {
                    Period::Month => monthly,
                    Period::Quarter => monthly * 3.0 * 0.95,
                    Period::Year => monthly * 12.0 * 0.85,
                    Period::Week => monthly * 12.0 / 52.0,
                };
                let quantity = if self.seats == 1 && rng.chance(0.5) {
                    None // defaults to 1
                } else {
                    Some(self.seats)
                };
                SubRow {
                    start,
                    end: None,
                    plan,
                    mrr: None,
                    amount: Some(round2(amount)),
                    billing_period: Some(period.label(rng)),
                    quantity,
                }
            }
        }
    }

    /// An upgrade (`up`) or downgrade; false when nothing changes.
    fn change(&mut self, up: bool, rng: &mut Rng) -> bool {
        let seats = matches!(self.billing, Billing::Seats(_)) && rng.chance(0.6);
        if seats {
            let step = (self.seats as f64 * rng.range(10, 50) as f64 / 100.0).ceil() as i64;
            let step = step.max(1);
            if up {
                self.seats += step;
            } else if self.seats > 1 {
                self.seats = (self.seats - step).max(1);
            } else {
                return false;
            }
        } else if up {
            if self.level + 1 < PLANS.len() {
                self.level += 1;
                self.factor = 1.0;
            } else {
                // Top plan: a bigger contract at the same plan.
                self.factor = round2(self.factor * 1.2);
            }
        } else if self.level > 0 {
            self.level -= 1;
            self.factor = 1.0;
        } else {
            return false;
        }
        true
    }
}

fn initial_price(p: &Profile, rng: &mut Rng) -> Price {
    let billing = if rng.chance(0.7) {
        Billing::Flat
    } else {
        Billing::Seats(match rng.weighted(&[0.5, 0.15, 0.3, 0.05]) {
            0 => Period::Month,
            1 => Period::Quarter,
            2 => Period::Year,
            _ => Period::Week,
        })
    };
    let level = match p.tier {
        0 => rng.range(0, 1),
        1 => rng.range(1, 2),
        _ => rng.range(3, 4),
    } as usize;
    let seats = match p.tier {
        0 => rng.range(1, 8),
        1 => rng.range(8, 60),
        _ => rng.range(40, 400),
    };
    let factor = if level == 4 {
        (rng.range(10, 60) as f64) / 10.0
    } else if rng.chance(0.2) {
        rng.range(80, 99) as f64 / 100.0
    } else {
        1.0
    };
    Price {
        billing,
        level,
        seats,
        factor,
    }
}

/// The day of the next event after `t`, snapped to a renewal date for
/// quarterly and annual rows and often to the first of a month otherwise.
fn next_event(t: i32, row_start: i32, monthly_hazard: f64, price: &Price, rng: &mut Rng) -> i32 {
    let gap = rng.exp(DAYS_PER_MONTH / monthly_hazard).ceil().max(1.0);
    let ev = t.saturating_add(gap.min(1.0e6) as i32);
    match price.billing {
        Billing::Seats(period) if period.renewal_months().is_some() => {
            let step = period.renewal_months().unwrap_or(12);
            let mut k = 1;
            loop {
                let d = Calendar::add_months(row_start, step * k);
                if d >= ev || k > 100 {
                    return d;
                }
                k += 1;
            }
        }
        _ if rng.chance(0.4) => Calendar::month_start_on_or_after(ev),
        _ => ev,
    }
}

/// Simulates the customer's subscriptions up to the end of the range.
pub(crate) fn simulate(p: &Profile, seed: u64, cal: &Calendar, h: &mut History) {
    h.clear();
    if !p.subscribes {
        return;
    }
    let mut rng = Rng::derive(seed, Stream::Subscriptions, p.index);
    let end_of_range = cal.range_end;
    let e = p.engagement;
    let mut t = p.signup;
    let mut spell_start = t;

    if rng.chance(TRIAL_SHARE[p.tier]) {
        let len = rng.pick(&[7, 14, 14, 14, 30]);
        let trial_end = t + len;
        let converts = rng.chance(0.6 + 0.35 * e);
        let end = (trial_end < end_of_range).then_some(trial_end);
        h.rows.push(SubRow {
            start: t,
            end,
            plan: TRIAL,
            mrr: Some(0.0),
            amount: None,
            billing_period: None,
            quantity: None,
        });
        match end {
            None => {
                h.spans.push(Span {
                    start: t,
                    end: end_of_range,
                    churned: false,
                });
                return;
            }
            Some(end) if !converts => {
                h.spans.push(Span {
                    start: t,
                    end,
                    churned: true,
                });
                return;
            }
            Some(end) => t = end,
        }
    } else if rng.chance(0.3) {
        // Paid from the first of the next month.
        t = Calendar::month_start_on_or_after(t);
        spell_start = t;
        if t >= end_of_range {
            return;
        }
    }

    let mut price = initial_price(p, &mut rng);
    let churn = CHURN[p.tier] * (1.7 - 1.4 * e);
    let up = 0.03 * (0.5 + e);
    let down = 0.015 * (1.3 - e);
    let mut paid_start = t;
    h.first_paid = Some(t);
    let mut row = price.row(t, &mut rng);
    loop {
        let ev = next_event(t, row.start, churn + up + down, &price, &mut rng);
        if ev >= end_of_range {
            h.rows.push(row);
            h.spans.push(Span {
                start: spell_start,
                end: end_of_range,
                churned: false,
            });
            h.paid.push((paid_start, None));
            break;
        }
        t = ev;
        match rng.weighted(&[churn, up, down]) {
            0 => {
                row.end = Some(ev);
                h.rows.push(row);
                h.spans.push(Span {
                    start: spell_start,
                    end: ev,
                    churned: true,
                });
                h.paid.push((paid_start, Some(ev)));
                if !rng.chance(0.2 + 0.3 * e) {
                    break;
                }
                // Reactivation after a pause, with a new row.
                t = ev + 30 + rng.exp(120.0) as i32;
                if rng.chance(0.3) {
                    t = Calendar::month_start_on_or_after(t);
                }
                if t >= end_of_range {
                    break;
                }
                if rng.chance(0.5) {
                    price.change(rng.chance(0.5), &mut rng);
                }
                spell_start = t;
                paid_start = t;
                row = price.row(t, &mut rng);
            }
            kind => {
                if price.change(kind == 1, &mut rng) {
                    // A plan change ends the old row the day the new one starts.
                    row.end = Some(ev);
                    h.rows.push(row);
                    row = price.row(ev, &mut rng);
                }
            }
        }
    }

    add_extras(p, cal, h, &mut rng);
}

/// Add-ons running next to the main plan and subscriptions cancelled the
/// day they were created (`end_date == start_date`).
fn add_extras(p: &Profile, cal: &Calendar, h: &mut History, rng: &mut Rng) {
    let end_of_range = cal.range_end;
    if let Some(&(start, end)) = h.paid.first()
        && (rng.chance(0.07) || stride_hit(p.index, 61, 7).is_some())
    {
        let stop = end.unwrap_or(end_of_range);
        let from = start + (rng.f64() * ((stop - start).min(365) as f64)) as i32;
        if from < stop {
            let own_end = from + 1 + rng.exp(240.0) as i32;
            let add_on_end = if own_end < stop { Some(own_end) } else { end };
            h.rows.push(SubRow {
                start: from,
                end: add_on_end,
                plan: ADD_ON,
                mrr: Some(rng.pick(&[99.0, 199.0, 299.0])),
                amount: None,
                billing_period: None,
                quantity: None,
            });
        }
    }
    if let Some(first) = h.first_paid
        && stride_hit(p.index, 97, 13).is_some()
    {
        let day = (first + rng.range(0, 20) as i32).min(end_of_range - 1);
        h.rows.push(SubRow {
            start: day,
            end: Some(day),
            plan: PLANS[1],
            mrr: Some(FLAT_MRR[1]),
            amount: None,
            billing_period: None,
            quantity: None,
        });
    }
}

/// The bad-row classes of `subscriptions`, in the contract's order.
const BAD_CLASSES: usize = 7;

/// Writes the customer's rows and, for a few customers, one extra row that
/// breaks the contract.
pub(crate) fn write(
    w: &mut TableWriter<Subscriptions>,
    p: &Profile,
    h: &History,
    seed: u64,
    cal: &Calendar,
    id: &mut String,
) -> Result<(), GenerateError> {
    let mut rng = Rng::derive(seed, Stream::Subscriptions, p.index ^ (1 << 63));
    for (k, row) in h.rows.iter().enumerate() {
        format_id(id, 's', &p.num, k + 1);
        let b = &mut w.buf;
        b.subscription_id.append_value(id.as_str());
        b.customer_id.append_value(&p.id);
        b.plan.append_value(row.plan);
        b.start_date.append_value(row.start);
        b.end_date.append_option(row.end);
        b.mrr.append_option(row.mrr);
        b.amount.append_option(row.amount);
        b.billing_period.append_option(row.billing_period);
        b.quantity.append_option(row.quantity);
        b.currency.append_option(p.currency);
        w.row()?;
    }

    let Some(k) = stride_hit(p.index, 50, 21) else {
        return Ok(());
    };
    let class = (k % BAD_CLASSES as u64) as usize;
    let variant = (k / BAD_CLASSES as u64).is_multiple_of(2);
    let first = p.signup.max(cal.range_start);
    let start = rng.range(first as i64, cal.range_end as i64 - 1) as i32;
    let mut row = SubRow {
        start,
        end: None,
        plan: PLANS[rng.below(3) as usize],
        mrr: Some(rng.pick(&[49.0, 99.0, 149.0])),
        amount: None,
        billing_period: None,
        quantity: None,
    };
    let mut sub_id = true;
    let mut cust_id = true;
    let mut start_date = true;
    let mut currency = p.currency;
    match class {
        // null_key
        0 => {
            if variant {
                sub_id = false;
            } else {
                cust_id = false;
            }
        }
        // null_start_date
        1 => start_date = false,
        // end_before_start
        2 => row.end = Some(start - rng.range(1, 60) as i32),
        // missing_mrr
        3 => {
            row.mrr = None;
            if variant {
                row.amount = Some(300.0);
            } else {
                row.billing_period = Some("month");
            }
        }
        // unknown_billing_period
        4 => {
            row.mrr = None;
            row.amount = Some(120.0);
            row.billing_period = Some(rng.pick(&["fortnight", "biweekly", "Daily"]));
            row.quantity = Some(2);
        }
        // negative_mrr
        5 => {
            if variant {
                row.mrr = Some(-49.0);
            } else {
                row.mrr = None;
                row.amount = Some(-600.0);
                row.billing_period = Some("year");
            }
        }
        // currency_without_rate
        _ => currency = Some("CHF"),
    }
    format_id(id, 's', &p.num, "x1");
    let b = &mut w.buf;
    if sub_id {
        b.subscription_id.append_value(id.as_str());
    } else {
        b.subscription_id.append_null();
    }
    if cust_id {
        b.customer_id.append_value(&p.id);
    } else {
        b.customer_id.append_null();
    }
    b.plan.append_value(row.plan);
    if start_date {
        b.start_date.append_value(row.start);
    } else {
        b.start_date.append_null();
    }
    b.end_date.append_option(row.end);
    b.mrr.append_option(row.mrr);
    b.amount.append_option(row.amount);
    b.billing_period.append_option(row.billing_period);
    b.quantity.append_option(row.quantity);
    b.currency.append_option(currency);
    w.bad_row()
}
