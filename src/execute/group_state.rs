//! What our groups accumulators (`distinct_count`, `text_min_max`,
//! `ordered_first_last`) share: how an aggregate's FILTER reads, and how
//! per-group flags split when the first groups are emitted.

use datafusion::arrow::array::{Array, BooleanArray, BooleanBufferBuilder};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::prep_null_mask_filter;

/// Whether an aggregate's FILTER keeps `row` (a null leaves it out).
pub fn included(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// A FILTER as plain flags: a null leaves its row out, as false does.
pub fn kept_rows(filter: &BooleanArray) -> BooleanArray {
    if filter.null_count() > 0 {
        prep_null_mask_filter(filter)
    } else {
        filter.clone()
    }
}

/// The first `n` of per-group flags, taken out; the others stay, from 0.
pub fn take_first_flags(flags: &mut BooleanBufferBuilder, n: usize) -> BooleanBuffer {
    let all = flags.finish();
    flags.append_buffer(&all.slice(n, all.len() - n));
    all.slice(0, n)
}
