//! What customers do while subscribed: product usage (daily aggregates),
//! support tickets and survey responses. All three are drawn from the
//! customer's active spans and fade before a churn.

use super::GenerateError;
use super::calendar::{Calendar, MICROS_PER_DAY};
use super::customers::{Profile, format_id, stride_hit};
use super::rng::{Rng, Stream};
use super::subscriptions::{History, Span};
use super::tables::{Surveys, Tickets, Usage};
use super::writer::TableWriter;

const FEATURES: [&str; 8] = [
    "dashboard",
    "reports",
    "api",
    "export",
    "alerts",
    "integrations",
    "search",
    "admin",
];

/// Days before a churn over which activity fades.
const DECLINE_DAYS: f64 = 90.0;

/// Activity factor on `day` of a span: 1, fading to 0.1 before a churn.
fn decline(span: &Span, day: f64) -> f64 {
    if !span.churned {
        return 1.0;
    }
    ((span.end as f64 - day) / DECLINE_DAYS).clamp(0.1, 1.0)
}

/// The part of a span inside the generated range, if any.
fn clip(span: &Span, cal: &Calendar) -> Option<(i32, i32)> {
    let from = span.start.max(cal.range_start);
    let to = span.end.min(cal.range_end);
    (from < to).then_some((from, to))
}

/// A timestamp (whole seconds) at fractional day `day`.
fn micros(day: f64) -> i64 {
    (day * 86_400.0).floor() as i64 * 1_000_000
}

/// A random moment in the customer's life inside the range, for bad rows.
fn some_moment(p: &Profile, cal: &Calendar, rng: &mut Rng) -> i64 {
    let from = p.signup.max(cal.range_start) as f64;
    micros(from + rng.f64() * (cal.range_end as f64 - from))
}

/// Usage scale: tuned so that a customer has ~100 usage rows over 36 months.
const USAGE_DAY_RATE: f64 = 0.095;

/// Writes the customer's daily usage rows and, for every third customer,
/// one row breaking the contract.
pub(crate) fn write_usage(
    w: &mut TableWriter<Usage>,
    p: &Profile,
    h: &History,
    seed: u64,
    cal: &Calendar,
    scratch: &mut Vec<String>,
) -> Result<(), GenerateError> {
    let mut rng = Rng::derive(seed, Stream::Usage, p.index);
    let e = p.engagement;
    // User ids of the account, built once per customer.
    scratch.clear();
    for u in 0..p.users {
        let mut s = String::with_capacity(12);
        format_id(&mut s, 'u', &p.num, u + 1);
        scratch.push(s);
    }
    let users = p.users as u64;
    let breadth = 2 + (e * 6.0).round() as u64; // features this account uses
    let feature_offset = rng.below(FEATURES.len() as u64);
    let p_day = (USAGE_DAY_RATE * (0.3 + 3.0 * e * e)).min(0.9);
    let user_cap = (users.min(8) as f64) * (0.3 + 0.7 * e);

    for span in &h.spans {
        let Some((from, to)) = clip(span, cal) else {
            continue;
        };
        let mut day = from as i64 + rng.geometric(p_day) as i64;
        while day < to as i64 {
            let f = decline(span, day as f64);
            if f >= 1.0 || rng.chance(f) {
                let r = rng.f64();
                let active = (1 + (r * r * user_cap * f) as u64).min(users);
                let first_user = rng.below(users);
                let ts = day * MICROS_PER_DAY;
                for j in 0..active {
                    let user = ((first_user + j) % users) as usize;
                    let two = breadth > 1 && rng.chance(0.2 + 0.3 * e);
                    let f1 = rng.below(breadth);
                    let f2 = (f1 + 1 + rng.below(breadth - 1)) % breadth;
                    for fi in [Some(f1), two.then_some(f2)].into_iter().flatten() {
                        let b = &mut w.buf;
                        b.customer_id.append_value(&p.id);
                        b.occurred_at.append_value(ts);
                        if rng.chance(0.004) {
                            b.user_id.append_null();
                        } else {
                            b.user_id.append_value(&scratch[user]);
                        }
                        if rng.chance(0.003) {
                            b.feature.append_null();
                        } else {
                            let k = ((feature_offset + fi) % FEATURES.len() as u64) as usize;
                            b.feature.append_value(FEATURES[k]);
                        }
                        if rng.chance(0.005) {
                            b.quantity.append_null();
                        } else {
                            let q = 1.0 + rng.lognormal(4.0, 1.0) * (0.5 + e);
                            b.quantity.append_value(q.min(5000.0) as i64);
                        }
                        w.row()?;
                    }
                }
            }
            day += 1 + rng.geometric(p_day) as i64;
        }
    }

    if let Some(k) = stride_hit(p.index, 3, 1) {
        let b = &mut w.buf;
        if k % 2 == 0 {
            // null_key
            b.customer_id.append_null();
            b.occurred_at.append_value(some_moment(p, cal, &mut rng));
        } else {
            // null_occurred_at
            b.customer_id.append_value(&p.id);
            b.occurred_at.append_null();
        }
        b.user_id.append_value(&scratch[0]);
        b.feature.append_value(FEATURES[0]);
        b.quantity.append_value(1);
        w.bad_row()?;
    }
    Ok(())
}

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const PRIORITY_WEIGHTS: [f64; 4] = [0.3, 0.45, 0.18, 0.07];
/// Median hours to resolve, by priority.
const RESOLUTION_HOURS: [f64; 4] = [40.0, 20.0, 8.0, 3.0];
const CATEGORIES: [&str; 6] = [
    "billing",
    "bug",
    "feature_request",
    "how_to",
    "account",
    "integration",
];
const CATEGORY_WEIGHTS: [f64; 6] = [0.2, 0.3, 0.15, 0.2, 0.1, 0.05];
/// Tickets per active month, by segment.
const TICKETS_PER_MONTH: [f64; 3] = [0.25, 0.6, 1.5];

/// Writes the customer's tickets (a Poisson process over its active days,
/// busier before a churn) and, for a few customers, a bad row.
pub(crate) fn write_tickets(
    w: &mut TableWriter<Tickets>,
    p: &Profile,
    h: &History,
    seed: u64,
    cal: &Calendar,
    id: &mut String,
) -> Result<(), GenerateError> {
    let mut rng = Rng::derive(seed, Stream::Tickets, p.index);
    let rate = TICKETS_PER_MONTH[p.tier] * (1.3 - 0.6 * p.engagement) / 30.44;
    let end_us = cal.range_end as i64 * MICROS_PER_DAY;
    let mut n = 0u32;
    for span in &h.spans {
        let Some((from, to)) = clip(span, cal) else {
            continue;
        };
        // Thinning: up to twice the rate just before a churn.
        let max_rate = if span.churned { 2.0 * rate } else { rate };
        let mut t = from as f64;
        loop {
            t += rng.exp(1.0 / max_rate);
            if t >= to as f64 {
                break;
            }
            let r = rate * (2.0 - decline(span, t));
            if r < max_rate && !rng.chance(r / max_rate) {
                continue;
            }
            n += 1;
            let priority = rng.weighted(&PRIORITY_WEIGHTS);
            let created = micros(t);
            let hours = rng
                .lognormal(RESOLUTION_HOURS[priority], 1.0)
                .min(60.0 * 24.0);
            let resolved = created + (hours * 3_600_000_000.0) as i64;
            let open = resolved >= end_us || rng.chance(0.04);
            format_id(id, 't', &p.num, n);
            let b = &mut w.buf;
            b.ticket_id.append_value(id.as_str());
            b.customer_id.append_value(&p.id);
            b.created_at.append_value(created);
            b.resolved_at.append_option((!open).then_some(resolved));
            if rng.chance(0.005) {
                b.priority.append_null();
            } else {
                b.priority.append_value(PRIORITIES[priority]);
            }
            if rng.chance(0.01) {
                b.category.append_null();
            } else {
                b.category
                    .append_value(CATEGORIES[rng.weighted(&CATEGORY_WEIGHTS)]);
            }
            w.row()?;
        }
    }

    if let Some(k) = stride_hit(p.index, 20, 3) {
        let created = some_moment(p, cal, &mut rng);
        let resolved = created + rng.range(3_600, 72 * 3_600) * 1_000_000;
        format_id(id, 't', &p.num, "x1");
        let b = &mut w.buf;
        match k % 3 {
            // null_key: no ticket id, or no customer id
            0 => {
                if (k / 3) % 2 == 0 {
                    b.ticket_id.append_null();
                    b.customer_id.append_value(&p.id);
                } else {
                    b.ticket_id.append_value(id.as_str());
                    b.customer_id.append_null();
                }
                b.created_at.append_value(created);
                b.resolved_at.append_value(resolved);
            }
            // null_created_at
            1 => {
                b.ticket_id.append_value(id.as_str());
                b.customer_id.append_value(&p.id);
                b.created_at.append_null();
                b.resolved_at.append_value(resolved);
            }
            // resolved_before_created
            _ => {
                b.ticket_id.append_value(id.as_str());
                b.customer_id.append_value(&p.id);
                b.created_at.append_value(created);
                b.resolved_at
                    .append_value(created - rng.range(60, 48 * 3_600) * 1_000_000);
            }
        }
        b.priority.append_value(PRIORITIES[1]);
        b.category.append_value(CATEGORIES[1]);
        w.bad_row()?;
    }
    Ok(())
}

/// Survey responses per active year.
const SURVEYS_PER_YEAR: f64 = 3.0;

/// A score of `kind` (0 nps, 1 csat, 2 ces) for a sentiment in 0..1.
fn score(kind: usize, sentiment: f64, rng: &mut Rng) -> f64 {
    let (lo, hi, noise) = match kind {
        0 => (0.0, 10.0, 1.5),
        1 => (1.0, 5.0, 0.7),
        _ => (1.0, 7.0, 1.0),
    };
    // CES: lower is better.
    let s = if kind == 2 {
        1.0 - sentiment
    } else {
        sentiment
    };
    // `+ 0.0` turns a rounded -0.0 into 0.0.
    (lo + s * (hi - lo) + noise * rng.normal())
        .round()
        .clamp(lo, hi)
        + 0.0
}

/// Writes the customer's survey responses and, for a few customers, a bad
/// response.
pub(crate) fn write_surveys(
    w: &mut TableWriter<Surveys>,
    p: &Profile,
    h: &History,
    seed: u64,
    cal: &Calendar,
    id: &mut String,
) -> Result<(), GenerateError> {
    const KINDS: [&str; 3] = ["nps", "csat", "ces"];
    let mut rng = Rng::derive(seed, Stream::Surveys, p.index);
    let mean_gap = 365.0 / SURVEYS_PER_YEAR;
    let mut n = 0u32;
    for span in &h.spans {
        let Some((from, to)) = clip(span, cal) else {
            continue;
        };
        let mut t = from as f64;
        loop {
            t += rng.exp(mean_gap);
            if t >= to as f64 {
                break;
            }
            n += 1;
            let kind = rng.weighted(&[0.5, 0.3, 0.2]);
            let sentiment =
                (0.3 + 0.65 * p.engagement * decline(span, t) + 0.1 * rng.normal()).clamp(0.0, 1.0);
            format_id(id, 'r', &p.num, n);
            let b = &mut w.buf;
            b.response_id.append_value(id.as_str());
            b.customer_id.append_value(&p.id);
            b.responded_at.append_value(micros(t));
            b.survey.append_value(KINDS[kind]);
            b.score.append_value(score(kind, sentiment, &mut rng));
            w.row()?;
        }
    }

    if let Some(k) = stride_hit(p.index, 40, 9) {
        let at = some_moment(p, cal, &mut rng);
        format_id(id, 'r', &p.num, "x1");
        let variant = k / 5;
        let (mut rid, mut cid, mut when) = (true, true, true);
        let (mut kind, mut value) = ("nps", Some(8.0));
        match k % 5 {
            // null_key
            0 => {
                if variant % 2 == 0 {
                    rid = false;
                } else {
                    cid = false;
                }
            }
            1 => when = false, // null_responded_at
            2 => kind = "pmf", // unknown_survey_kind
            3 => value = None, // null_score
            _ => {
                // score_out_of_range
                (kind, value) = match variant % 3 {
                    0 => ("nps", Some(11.0)),
                    1 => ("csat", Some(0.0)),
                    _ => ("ces", Some(8.0)),
                };
            }
        }
        let b = &mut w.buf;
        if rid {
            b.response_id.append_value(id.as_str());
        } else {
            b.response_id.append_null();
        }
        if cid {
            b.customer_id.append_value(&p.id);
        } else {
            b.customer_id.append_null();
        }
        b.responded_at.append_option(when.then_some(at));
        b.survey.append_value(kind);
        b.score.append_option(value);
        w.bad_row()?;
    }
    Ok(())
}
