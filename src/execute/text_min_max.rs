//! `min` and `max` of text per group: a registered exception to "built-in
//! functions only", because the built-in's groups accumulator keeps each
//! group's value as a heap allocation of its own.
//!
//! DataFusion's `max` over text keeps a `Vec<Option<Vec<u8>>>`: 24 bytes
//! and one allocation (32 bytes or more) per group. The health score's
//! pivot keeps its population's `segment` that way for every (customer,
//! month): 18.8M groups at 1M customers, where memory decides how often
//! that aggregate spills. Built without the text column, the score took
//! 30.6 and 30.9 s against 33.4 and 36.5 s with it.
//!
//! [`TextExtreme`] is the built-in `min` or `max` with one change: over
//! Utf8View (the build's text, `compile::source::TEXT`) its groups
//! accumulator keeps one string view per group (16 bytes; values up to 12
//! bytes inline, longer ones in one arena). Its state is the built-in's
//! (the value itself), so partial and final phases, skipped partial
//! aggregation and spilling work as before.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, StringViewArray,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{not, nullif};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::functions_aggregate::min_max::{Max, Min};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};
use datafusion::prelude::SessionContext;

use super::group_state::{included, kept_rows, take_first_flags};

/// Replaces the session's `min` and `max` with [`TextExtreme`]s.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(TextExtreme {
        builtin: Min::new(),
        keep: Keep::Least,
    }));
    ctx.register_udaf(AggregateUDF::new_from_impl(TextExtreme {
        builtin: Max::new(),
        keep: Keep::Greatest,
    }));
}

/// Which value of a group an accumulator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Keep {
    Least,
    Greatest,
}

impl Keep {
    /// Whether `new` replaces `current`.
    fn replaces(self, new: &[u8], current: &[u8]) -> bool {
        match self {
            Keep::Least => new < current,
            Keep::Greatest => new > current,
        }
    }
}

/// The built-in `min` (`Min`) or `max` (`Max`), plus a groups accumulator
/// of its own for Utf8View. Everything else is the built-in's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextExtreme<B> {
    builtin: B,
    keep: Keep,
}

/// Whether our groups accumulator takes these arguments: one Utf8View.
fn ours(args: &AccumulatorArgs) -> bool {
    args.expr_fields.len() == 1 && args.expr_fields[0].data_type() == &DataType::Utf8View
}

impl<B> AggregateUDFImpl for TextExtreme<B>
where
    B: AggregateUDFImpl + PartialEq + Eq + std::hash::Hash,
{
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn signature(&self) -> &Signature {
        self.builtin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        ours(&args) || self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if ours(&args) {
            Ok(Box::new(ViewExtremes::new(self.keep)))
        } else {
            self.builtin.create_groups_accumulator(args)
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.create_sliding_accumulator(args)
    }

    fn is_descending(&self) -> Option<bool> {
        self.builtin.is_descending()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.builtin.order_sensitivity()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.builtin.coerce_types(arg_types)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.builtin.reverse_expr()
    }

    fn value_from_stats(&self, args: &StatisticsArgs) -> Option<ScalarValue> {
        self.builtin.value_from_stats(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.builtin.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.builtin.set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin.documentation()
    }
}

/// Strings up to this many bytes live inside their view.
const INLINE: usize = 12;

/// Each group's least or greatest string so far, as a view: inline, or
/// (buffer 0, offset) into `arena`.
struct ViewExtremes {
    keep: Keep,
    views: Vec<u128>,
    /// Which groups have a value (the others are null).
    seen: BooleanBufferBuilder,
    /// The bytes of values longer than [`INLINE`]. A replaced value's
    /// bytes stay until the arena is compacted, once they outweigh the
    /// values still kept.
    arena: Vec<u8>,
    /// Bytes of `arena` that kept values use.
    live: usize,
}

impl ViewExtremes {
    fn new(keep: Keep) -> Self {
        Self {
            keep,
            views: Vec::new(),
            seen: BooleanBufferBuilder::new(0),
            arena: Vec::new(),
            live: 0,
        }
    }

    fn resize(&mut self, groups: usize) {
        if groups > self.views.len() {
            self.views.resize(groups, 0);
            self.seen.append_n(groups - self.seen.len(), false);
        }
    }

    /// `f` of the bytes a view stands for, inline or in `arena`.
    fn with_bytes<R>(view: u128, arena: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        let len = view as u32 as usize;
        if len <= INLINE {
            // Little-endian: the length, then the string from byte 4.
            f(&view.to_le_bytes()[4..4 + len])
        } else {
            let offset = (view >> 96) as u32 as usize;
            f(&arena[offset..offset + len])
        }
    }

    /// Makes `value` group `group`'s value.
    fn set(&mut self, group: usize, value: &[u8]) -> Result<()> {
        if value.len() > INLINE && self.arena.len() > 2 * self.live + (1 << 20) {
            self.compact();
        }
        let old = self.views[group] as u32 as usize;
        if self.seen.get_bit(group) && old > INLINE {
            self.live -= old;
        }
        self.views[group] = if value.len() <= INLINE {
            make_view(value, 0, 0)
        } else {
            let (Ok(offset), Ok(_)) = (
                u32::try_from(self.arena.len()),
                u32::try_from(self.arena.len() + value.len()),
            ) else {
                return exec_err!(
                    "min/max of text: over 4 GB of kept values in one partition; \
                     more partitions (DATAFUSION_EXECUTION_TARGET_PARTITIONS) split them"
                );
            };
            self.arena.extend_from_slice(value);
            self.live += value.len();
            make_view(value, 0, offset)
        };
        self.seen.set_bit(group, true);
        Ok(())
    }

    /// Rewrites `arena` with the bytes of kept values only.
    fn compact(&mut self) {
        let (views, arena) = copy_out(&self.views, &self.arena);
        self.views = views;
        self.arena = arena;
        self.live = self.arena.len();
    }

    /// Folds a column of values (or of states: they are values) into the
    /// groups.
    fn fold(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let Some(values) = values.as_string_view_opt() else {
            return exec_err!("min/max of text: got {}", values.data_type());
        };
        for (row, &group) in group_indices.iter().enumerate() {
            if values.is_null(row) || !included(opt_filter, row) {
                continue;
            }
            let value = values.value(row).as_bytes();
            let keep = self.keep;
            let replaces = !self.seen.get_bit(group)
                || Self::with_bytes(self.views[group], &self.arena, |current| {
                    keep.replaces(value, current)
                });
            if replaces {
                self.set(group, value)?;
            }
        }
        Ok(())
    }

    /// Takes the first groups out as an array; the others are renumbered
    /// from 0, their values compacted into a new arena.
    fn take(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = match emit_to {
            EmitTo::All => self.views.len(),
            EmitTo::First(n) => n,
        };
        let seen = take_first_flags(&mut self.seen, n);
        let (out_views, out_arena) = copy_out(&self.views[..n], &self.arena);
        let (rest_views, rest_arena) = copy_out(&self.views[n..], &self.arena);
        self.views = rest_views;
        self.arena = rest_arena;
        self.live = self.arena.len();
        let nulls = NullBuffer::new(seen);
        let buffers = if out_arena.is_empty() {
            vec![]
        } else {
            vec![Buffer::from_vec(out_arena)]
        };
        let array = StringViewArray::try_new(
            ScalarBuffer::from(out_views),
            buffers,
            Some(nulls).filter(|n| n.null_count() > 0),
        )?;
        Ok(Arc::new(array))
    }
}

/// `views` with their long values copied into a new arena of their own.
fn copy_out(views: &[u128], arena: &[u8]) -> (Vec<u128>, Vec<u8>) {
    let mut out = Vec::with_capacity(views.len());
    let mut bytes = Vec::new();
    for view in views {
        let len = *view as u32 as usize;
        if len <= INLINE {
            out.push(*view);
        } else {
            let offset = (*view >> 96) as u32 as usize;
            let value = &arena[offset..offset + len];
            // Fits: the values came from an arena of under 4 GB.
            out.push(make_view(value, 0, bytes.len() as u32));
            bytes.extend_from_slice(value);
        }
    }
    (out, bytes)
}

impl GroupsAccumulator for ViewExtremes {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.fold(&values[0], group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.take(emit_to)
    }

    /// The built-in's state: each group's value.
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.take(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.fold(&values[0], group_indices, None, total_num_groups)
    }

    /// Each row as its own group: its value, null where it is filtered out.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(vec![match opt_filter {
            None => Arc::clone(&values[0]),
            Some(filter) => nullif(&values[0], &not(&kept_rows(filter))?)?,
        }])
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.views.capacity() * size_of::<u128>()
            + self.seen.capacity() / 8
            + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    use super::super::test_rows::{Lcg, printed};
    use super::*;

    /// Rows of (group, value or null, passes the filter): short values that
    /// live in their views and long ones that go to the arena, sharing
    /// prefixes so that comparisons look past the first bytes.
    fn rows(seed: u64, n: usize) -> Vec<(usize, Option<String>, bool)> {
        let mut r = Lcg(seed);
        (0..n)
            .map(|_| {
                let group = r.next(30) as usize;
                let value = (r.next(10) > 0).then(|| {
                    let tail = "x".repeat(r.next(20) as usize);
                    format!("seg{}{tail}{}", r.next(7), r.next(100))
                });
                (group, value, r.next(8) > 0)
            })
            .collect()
    }

    fn expected(rows: &[(usize, Option<String>, bool)], keep: Keep) -> Vec<Option<String>> {
        let mut best: BTreeMap<usize, String> = BTreeMap::new();
        for (g, v, pass) in rows {
            if let (Some(v), true) = (v, pass) {
                let e = best.entry(*g).or_insert_with(|| v.clone());
                if keep.replaces(v.as_bytes(), e.as_bytes()) {
                    *e = v.clone();
                }
            }
        }
        (0..30).map(|g| best.get(&g).cloned()).collect()
    }

    fn batch(rows: &[(usize, Option<String>, bool)]) -> (ArrayRef, Vec<usize>, BooleanArray) {
        let values: StringViewArray = rows.iter().map(|r| r.1.as_deref()).collect();
        let groups = rows.iter().map(|r| r.0).collect();
        let pass = rows.iter().map(|r| Some(r.2)).collect();
        (Arc::new(values), groups, pass)
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string_view()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn least_and_greatest_match_a_sorted_map() {
        let rows = rows(7, 4000);
        for keep in [Keep::Least, Keep::Greatest] {
            let mut acc = ViewExtremes::new(keep);
            for chunk in rows.chunks(700) {
                let (values, groups, pass) = batch(chunk);
                acc.update_batch(&[values], &groups, Some(&pass), 30)
                    .expect("update");
            }
            let got = strings(&acc.evaluate(EmitTo::All).expect("evaluate"));
            assert_eq!(got, expected(&rows, keep), "{keep:?}");
        }
        // The greatest values are long: the arena's path ran.
        let greatest = expected(&rows, Keep::Greatest);
        assert!(greatest.iter().flatten().any(|v| v.len() > INLINE));
    }

    #[test]
    fn states_merge_and_emit_first_renumbers() {
        let rows = rows(11, 3000);
        let (left, right) = rows.split_at(1500);
        let mut merged = ViewExtremes::new(Keep::Greatest);
        for part in [left, right] {
            let mut acc = ViewExtremes::new(Keep::Greatest);
            let (values, groups, pass) = batch(part);
            acc.update_batch(&[values], &groups, Some(&pass), 30)
                .expect("update");
            let state = acc.state(EmitTo::All).expect("state");
            let all: Vec<usize> = (0..30).collect();
            merged.merge_batch(&state, &all, 30).expect("merge");
        }
        let want = expected(&rows, Keep::Greatest);
        let first = strings(&merged.evaluate(EmitTo::First(12)).expect("first"));
        assert_eq!(first, want[..12]);
        // The rest are groups 0.. now; new rows still reach them.
        let rest = strings(&merged.evaluate(EmitTo::All).expect("rest"));
        assert_eq!(rest, want[12..]);
    }

    #[test]
    fn rows_converted_to_state_merge_to_the_same_values() {
        let rows = rows(5, 2000);
        let (values, groups, pass) = batch(&rows);
        let acc = ViewExtremes::new(Keep::Least);
        let state = acc
            .convert_to_state(&[values], Some(&pass))
            .expect("convert");
        let mut merged = ViewExtremes::new(Keep::Least);
        merged.merge_batch(&state, &groups, 30).expect("merge");
        let got = strings(&merged.evaluate(EmitTo::All).expect("evaluate"));
        assert_eq!(got, expected(&rows, Keep::Least));
    }

    /// A group whose greatest value keeps growing leaves replaced values
    /// behind: the arena is compacted instead of keeping them all.
    #[test]
    fn replaced_values_do_not_pile_up() {
        let mut acc = ViewExtremes::new(Keep::Greatest);
        let long = "v".repeat(1000);
        for i in 0..5000 {
            let values: StringViewArray = [Some(format!("{long}{i:05}"))].into_iter().collect();
            acc.update_batch(&[Arc::new(values)], &[0], None, 1)
                .expect("update");
        }
        assert!(acc.arena.len() < 3 << 20, "{} bytes kept", acc.arena.len());
        let got = strings(&acc.evaluate(EmitTo::All).expect("evaluate"));
        assert_eq!(got, vec![Some(format!("{long}04999"))]);
    }

    /// Through SQL, ours and the built-in give the same values; other
    /// types keep the built-in's accumulator.
    #[tokio::test]
    async fn sql_matches_the_builtin() {
        let rows = rows(23, 5000);
        let groups: Vec<i64> = rows.iter().map(|r| r.0 as i64).collect();
        let text: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
        let view = datafusion::arrow::compute::cast(&text, &DataType::Utf8View).expect("cast");
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Utf8View, true),
            Field::new("u", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(datafusion::arrow::array::PrimitiveArray::<Int64Type>::from(
                    groups,
                )),
                view,
                Arc::new(text),
            ],
        )
        .expect("batch");
        let sql = "SELECT g, max(v) AS hi, min(v) AS lo, max(u) AS uhi, max(g) AS ghi, \
                   max(v) FILTER (WHERE g % 2 = 0) AS even FROM t GROUP BY g ORDER BY g";
        let mut outputs = Vec::new();
        for ours in [true, false] {
            let ctx = SessionContext::new();
            if ours {
                register(&ctx);
            }
            let table = MemTable::try_new(
                Arc::clone(&schema),
                vec![vec![batch.clone()], vec![batch.clone()]],
            )
            .expect("table");
            ctx.register_table("t", Arc::new(table)).expect("register");
            outputs.push(printed(&ctx, sql).await);
        }
        assert_eq!(outputs[0], outputs[1]);
        assert_eq!(outputs[0].lines().count(), 30 + 4, "{}", outputs[0]);
    }
}
