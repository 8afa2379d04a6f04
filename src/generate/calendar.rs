//! Day arithmetic for the generator: dates as days since 1970-01-01 (the
//! Arrow `Date32` unit), month boundaries and timestamps in microseconds.

use chrono::{Datelike, Months, NaiveDate};

/// Microseconds in one day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Months before the first generated month in which early customers may
/// already sign up (a few subscriptions start before the range): one per
/// six generated months, between 1 and `FX_LEAD_MONTHS`.
fn lead_months(months: u32) -> u32 {
    (months / 6).clamp(1, FX_LEAD_MONTHS)
}

/// Months before the first generated month that `fx_rates` also covers, so
/// every valid row that starts before the range still finds its rate.
pub(crate) const FX_LEAD_MONTHS: u32 = 12;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
}

/// Days since 1970-01-01.
pub(crate) fn to_days(date: NaiveDate) -> i32 {
    date.signed_duration_since(epoch()).num_days() as i32
}

/// The date of a day number.
pub(crate) fn from_days(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(days as i64)
}

/// The generated months and the helpers to move around in them.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    /// First day of the first generated month.
    pub range_start: i32,
    /// First day after the last generated month (exclusive end).
    pub range_end: i32,
    /// First day of the earliest month in which customers may sign up.
    pub lead_start: i32,
    /// First days of the generated months (`months` entries).
    pub month_starts: Vec<i32>,
    /// First days of the months covered by `fx_rates`.
    pub fx_month_starts: Vec<i32>,
}

impl Calendar {
    /// `last_month` is any day of the last generated month; `months >= 1`.
    pub(crate) fn new(last_month: NaiveDate, months: u32) -> Option<Self> {
        let last = last_month.with_day(1)?;
        let first = last.checked_sub_months(Months::new(months.checked_sub(1)?))?;
        let lead = first.checked_sub_months(Months::new(lead_months(months)))?;
        let fx_first = first.checked_sub_months(Months::new(FX_LEAD_MONTHS))?;
        let end = last.checked_add_months(Months::new(1))?;
        let starts = |from: NaiveDate, n: u32| -> Option<Vec<i32>> {
            (0..n)
                .map(|m| from.checked_add_months(Months::new(m)).map(to_days))
                .collect()
        };
        Some(Calendar {
            range_start: to_days(first),
            range_end: to_days(end),
            lead_start: to_days(lead),
            month_starts: starts(first, months)?,
            fx_month_starts: starts(fx_first, months + FX_LEAD_MONTHS)?,
        })
    }

    /// Number of generated months.
    pub(crate) fn months(&self) -> usize {
        self.month_starts.len()
    }

    /// Index of the generated month containing `day`, if any.
    pub(crate) fn month_index(&self, day: i32) -> Option<usize> {
        if day < self.range_start || day >= self.range_end {
            return None;
        }
        Some(self.month_starts.partition_point(|&s| s <= day) - 1)
    }

    /// The first day of the month after the month of `day`, or `day`
    /// itself when it already is a first of the month.
    pub(crate) fn month_start_on_or_after(day: i32) -> i32 {
        let d = from_days(day);
        if d.day() == 1 {
            return day;
        }
        let first = d.with_day(1).expect("day 1 exists");
        to_days(first + Months::new(1))
    }

    /// `day` moved by whole calendar months (clamped to the month's end).
    pub(crate) fn add_months(day: i32, months: u32) -> i32 {
        to_days(from_days(day) + Months::new(months))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_boundaries() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2025, 12, 15).unwrap(), 36).unwrap();
        assert_eq!(
            from_days(cal.range_start),
            NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()
        );
        assert_eq!(
            from_days(cal.range_end),
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
        assert_eq!(cal.months(), 36);
        assert_eq!(cal.month_index(cal.range_start), Some(0));
        assert_eq!(cal.month_index(cal.range_end - 1), Some(35));
        assert_eq!(cal.month_index(cal.range_end), None);
        let feb3 = to_days(NaiveDate::from_ymd_opt(2024, 2, 3).unwrap());
        assert_eq!(
            from_days(Calendar::month_start_on_or_after(feb3)),
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
        );
        assert_eq!(
            Calendar::month_start_on_or_after(cal.range_start),
            cal.range_start
        );
        assert_eq!(cal.fx_month_starts.len(), 48);
    }
}
