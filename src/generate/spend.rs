//! Monthly tables that do not belong to one customer: sales and marketing
//! spend (`acquisition_spend`) and exchange rates (`fx_rates`).

use super::GenerateError;
use super::calendar::Calendar;
use super::customers::SEGMENTS;
use super::rng::{Rng, Stream};
use super::tables::{AcquisitionSpend, FxRates};
use super::writer::TableWriter;

/// Target acquisition cost per new customer, by segment.
const CAC: [f64; 3] = [900.0, 4_500.0, 25_000.0];
/// A segment no customer has: its spend only shows in the totals.
const ORPHAN_SEGMENT: &str = "Public Sector";

/// New paying customers per generated month and segment, counted while the
/// customers are generated; spend follows them.
#[derive(Debug)]
pub(crate) struct NewCustomers {
    counts: Vec<[u64; 3]>,
}

impl NewCustomers {
    pub(crate) fn new(cal: &Calendar) -> Self {
        NewCustomers {
            counts: vec![[0; 3]; cal.months()],
        }
    }

    /// Counts a customer whose first paid row starts on `first_paid`.
    pub(crate) fn record(&mut self, cal: &Calendar, first_paid: Option<i32>, tier: usize) {
        if let Some(m) = first_paid.and_then(|d| cal.month_index(d)) {
            self.counts[m][tier] += 1;
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes one spend row per month and segment, a shared (null segment)
/// row per month, occasional refunds, one row of a segment without
/// customers, and a few rows breaking the contract.
pub(crate) fn write_spend(
    w: &mut TableWriter<AcquisitionSpend>,
    cal: &Calendar,
    seed: u64,
    new: &NewCustomers,
) -> Result<(), GenerateError> {
    let mut rng = Rng::derive(seed, Stream::Spend, 0);
    let months = cal.months();
    let bad_each = 1 + months / 60;
    let orphan_month = months / 2;
    for m in 0..months {
        let start = cal.month_starts[m];
        let next = cal
            .month_starts
            .get(m + 1)
            .copied()
            .unwrap_or(cal.range_end);
        // "any day of the month"
        let day = |rng: &mut Rng| match rng.below(6) {
            0 => start + 14,
            1 => next - 1,
            _ => start,
        };
        let mut total = 0.0;
        for (s, segment) in SEGMENTS.iter().enumerate() {
            let amount =
                round2((new.counts[m][s] as f64 + 0.5) * CAC[s] * rng.lognormal(1.0, 0.25));
            total += amount;
            let b = &mut w.buf;
            b.month.append_value(day(&mut rng));
            b.segment.append_value(segment);
            b.amount.append_value(amount);
            w.row()?;
        }
        let b = &mut w.buf;
        b.month.append_value(day(&mut rng));
        b.segment.append_null();
        b.amount
            .append_value(round2(total * 0.25 * rng.lognormal(1.0, 0.2)));
        w.row()?;
        if rng.chance(0.12) {
            // A refund from a vendor.
            let b = &mut w.buf;
            b.month.append_value(day(&mut rng));
            b.segment.append_value(SEGMENTS[rng.below(3) as usize]);
            b.amount.append_value(-(rng.range(200, 3_000) as f64));
            w.row()?;
        }
        if m == orphan_month {
            let b = &mut w.buf;
            b.month.append_value(day(&mut rng));
            b.segment.append_value(ORPHAN_SEGMENT);
            b.amount.append_value(12_000.0);
            w.row()?;
        }
        // Bad rows spread over the range: null_month, then null_amount.
        for k in 0..bad_each {
            let at = (2 * k + 1) * months / (2 * bad_each);
            if m == at {
                let b = &mut w.buf;
                b.month.append_null();
                b.segment.append_value(SEGMENTS[0]);
                b.amount.append_value(1_500.0);
                w.bad_row()?;
                let b = &mut w.buf;
                b.month.append_value(start);
                b.segment.append_value(SEGMENTS[1]);
                b.amount.append_null();
                w.bad_row()?;
            }
        }
    }
    Ok(())
}

/// Writes EUR and GBP rates (USD per unit) for every generated month and
/// the months before it, drifting a little from month to month. CHF has
/// no rate on purpose.
pub(crate) fn write_fx(
    w: &mut TableWriter<FxRates>,
    cal: &Calendar,
    seed: u64,
) -> Result<(), GenerateError> {
    const CURRENCIES: [(&str, f64); 2] = [("EUR", 1.08), ("GBP", 1.27)];
    let mut rng = Rng::derive(seed, Stream::Fx, 0);
    let mut rates = CURRENCIES.map(|(_, base)| base);
    for &month in &cal.fx_month_starts {
        for (i, (currency, base)) in CURRENCIES.iter().enumerate() {
            let r = rates[i] * (0.015 * rng.normal()).exp();
            rates[i] = r + 0.1 * (base - r);
            let b = &mut w.buf;
            b.currency.append_value(currency);
            b.month.append_value(month);
            b.rate
                .append_value((rates[i] * 10_000.0).round() / 10_000.0);
            w.row()?;
        }
    }
    Ok(())
}
