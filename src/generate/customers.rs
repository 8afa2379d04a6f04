//! Customer profiles (the hidden traits that drive every table) and the
//! `customers` table.

use std::fmt::Write as _;

use super::GenerateError;
use super::calendar::Calendar;
use super::rng::{Rng, Stream};
use super::tables::Customers;
use super::writer::TableWriter;

/// Segments of the `customers` table, with the behaviour of each.
pub(crate) const SEGMENTS: [&str; 3] = ["SMB", "Mid-Market", "Enterprise"];
const SEGMENT_WEIGHTS: [f64; 3] = [0.6, 0.3, 0.1];
const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
const REGION_WEIGHTS: [f64; 4] = [0.45, 0.3, 0.15, 0.1];

/// Every `stride`-th customer (shifted by `offset`) gets a special case;
/// returns the running number of the hit so cases can rotate through
/// classes. Index based, so a dataset of a given size always has them.
pub(crate) fn stride_hit(index: u64, stride: u64, offset: u64) -> Option<u64> {
    let k = index + offset;
    k.is_multiple_of(stride).then_some(k / stride)
}

/// The traits of one customer.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub index: u64,
    /// Number part of every id of this customer, e.g. `000123`.
    pub num: String,
    /// `c000123`.
    pub id: String,
    pub signup: i32,
    /// Index into [`SEGMENTS`] that drives behaviour.
    pub tier: usize,
    /// Whether the `customers` row has a segment (a few do not).
    pub segment_known: bool,
    pub region: &'static str,
    /// Currency of all its subscription rows (null = reporting currency).
    pub currency: Option<&'static str>,
    /// 0..1: how much the product is used; drives usage, churn, sentiment.
    pub engagement: f64,
    /// People in the account.
    pub users: u32,
    /// False for the few customers that only appear in other tables.
    pub in_customers_table: bool,
    /// False for sign-ups that never start a subscription.
    pub subscribes: bool,
}

impl Profile {
    pub(crate) fn generate(seed: u64, index: u64, cal: &Calendar) -> Self {
        let mut rng = Rng::derive(seed, Stream::Customer, index);
        let num = format!("{:06}", index + 1);
        let id = format!("c{num}");
        // Sign-ups grow over time: a mix of uniform and linearly rising density.
        let span = (cal.range_end - 1 - cal.lead_start) as f64;
        let u = if rng.chance(0.3) {
            rng.f64()
        } else {
            rng.f64().sqrt()
        };
        let signup = cal.lead_start + (u * span) as i32;
        let tier = rng.weighted(&SEGMENT_WEIGHTS);
        let segment_known = !(rng.chance(0.003) || stride_hit(index, 197, 186).is_some());
        let region = REGIONS[rng.weighted(&REGION_WEIGHTS)];
        let currency = match rng.weighted(&[0.62, 0.33, 0.03, 0.02]) {
            0 => Some("USD"),
            1 => None,
            2 => Some("EUR"),
            _ => Some("GBP"),
        };
        let engagement = rng.f64().powf(1.3);
        let users = match tier {
            0 => rng.range(1, 5),
            1 => rng.range(3, 15),
            _ => rng.range(8, 40),
        } as u32;
        let in_customers_table = stride_hit(index, 193, 164).is_none();
        let subscribes = !rng.chance(0.03);
        Profile {
            index,
            num,
            id,
            signup,
            tier,
            segment_known,
            region,
            currency,
            engagement,
            users,
            in_customers_table,
            subscribes,
        }
    }

    /// The segment written to `customers.segment`.
    pub(crate) fn segment(&self) -> Option<&'static str> {
        self.segment_known.then_some(SEGMENTS[self.tier])
    }
}

/// Writes the customer's row (unless it is one of the customers missing
/// from the table) and, for a few customers, an extra row without id.
pub(crate) fn write(
    w: &mut TableWriter<Customers>,
    p: &Profile,
    seed: u64,
    cal: &Calendar,
) -> Result<(), GenerateError> {
    if p.in_customers_table {
        let b = &mut w.buf;
        b.customer_id.append_value(&p.id);
        b.signup_date.append_value(p.signup);
        b.segment.append_option(p.segment());
        b.region.append_value(p.region);
        w.row()?;
    }
    if stride_hit(p.index, 200, 57).is_some() {
        let mut rng = Rng::derive(seed, Stream::BadRows, p.index);
        let b = &mut w.buf;
        b.customer_id.append_null();
        b.signup_date
            .append_value(rng.range(cal.range_start as i64, cal.range_end as i64 - 1) as i32);
        b.segment
            .append_value(SEGMENTS[rng.weighted(&SEGMENT_WEIGHTS)]);
        b.region.append_value(rng.pick(&REGIONS));
        w.bad_row()?;
    }
    Ok(())
}

/// Appends `<prefix><num>-<suffix>` to `buf` after clearing it.
pub(crate) fn format_id(buf: &mut String, prefix: char, num: &str, suffix: impl std::fmt::Display) {
    buf.clear();
    buf.push(prefix);
    buf.push_str(num);
    buf.push('-');
    let _ = write!(buf, "{suffix}");
}
