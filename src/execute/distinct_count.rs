//! `count(DISTINCT x)` per group for text and dates: a registered
//! exception to "built-in functions only", because the built-in leaves the
//! health score without a fast plan.
//!
//! DataFusion's `count` has a groups accumulator for DISTINCT over integers
//! only. Over text or dates it makes one `Accumulator` (one hash set) per
//! group, which takes minutes for the millions of (customer, month) groups
//! of the health score. A single DISTINCT is rewritten into a GROUP BY on
//! the value, but three of them then cost three scans and three GROUP BYs
//! of every usage row. With this accumulator the three share one pass.
//!
//! [`Count`] is the built-in `count` with one change: `count(DISTINCT x)`
//! over text (Utf8, LargeUtf8, Utf8View) or dates has a groups accumulator.
//! Each group's distinct values are a chain of small entries (their bytes
//! in one arena), searched in place while the group is small; a large
//! group moves to a hash table (see [`SMALL`]). A first version kept every
//! (group, value) pair in one hash table: a cache miss per row, slower than
//! the three GROUP BYs at 1M customers. Its partial state is the built-in's
//! (a list of the group's distinct values), so partial and final phases,
//! skipped partial aggregation and spilling all work as for integers.

use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Date32Array, Date64Array,
    GenericStringArray, Int64Array, LargeStringArray, ListArray, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::filter;
use datafusion::arrow::datatypes::{DataType, Date32Type, Date64Type, Field, FieldRef};
use datafusion::common::hash_utils::RandomState;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};
use datafusion::prelude::SessionContext;
use hashbrown::HashTable;

use super::group_state::included;

/// Replaces the session's `count` with [`Count`].
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(Count::default()));
}

/// The built-in `count`, plus groups accumulators for DISTINCT over text
/// and dates. Everything else is the built-in's.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Count {
    builtin: datafusion::functions_aggregate::count::Count,
}

/// The kind of values our groups accumulator counts for these arguments,
/// if it counts them: one DISTINCT argument of a kind it keeps.
fn ours(args: &AccumulatorArgs) -> Option<Kind> {
    if !args.is_distinct || args.exprs.len() != 1 {
        return None;
    }
    Kind::of(args.expr_fields[0].data_type())
}

impl AggregateUDFImpl for Count {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn signature(&self) -> &Signature {
        self.builtin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn is_nullable(&self) -> bool {
        self.builtin.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        ours(&args).is_some() || self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match ours(&args) {
            Some(kind) => Ok(Box::new(DistinctCounts::new(kind))),
            None => self.builtin.create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.builtin.order_sensitivity()
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

/// The value types our groups accumulator counts, and how each is kept:
/// as its bytes (text) or its little-endian number (dates).
#[derive(Debug, Clone)]
enum Kind {
    Text(DataType),
    Date32,
    Date64,
}

impl Kind {
    fn of(data_type: &DataType) -> Option<Kind> {
        match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Some(Kind::Text(data_type.clone()))
            }
            DataType::Date32 => Some(Kind::Date32),
            DataType::Date64 => Some(Kind::Date64),
            _ => None,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Kind::Text(t) => t.clone(),
            Kind::Date32 => DataType::Date32,
            Kind::Date64 => DataType::Date64,
        }
    }

    /// An array of this type holding `values` (as kept) in order.
    fn array<'v>(&self, values: impl Iterator<Item = &'v [u8]>) -> Result<ArrayRef> {
        fn text(bytes: &[u8]) -> Result<&str> {
            std::str::from_utf8(bytes).or_else(|e| exec_err!("count(DISTINCT): {e}"))
        }
        fn number<const N: usize>(bytes: &[u8]) -> Result<[u8; N]> {
            bytes
                .try_into()
                .or_else(|_| exec_err!("count(DISTINCT): a date of {} bytes", bytes.len()))
        }
        Ok(match self {
            Kind::Text(data_type) => {
                let texts = values.map(text).collect::<Result<Vec<_>>>()?;
                match data_type {
                    DataType::Utf8 => Arc::new(StringArray::from_iter_values(texts)),
                    DataType::LargeUtf8 => Arc::new(LargeStringArray::from_iter_values(texts)),
                    _ => Arc::new(StringViewArray::from_iter_values(texts)),
                }
            }
            Kind::Date32 => Arc::new(Date32Array::from(
                values
                    .map(|v| number::<4>(v).map(i32::from_le_bytes))
                    .collect::<Result<Vec<_>>>()?,
            )),
            Kind::Date64 => Arc::new(Date64Array::from(
                values
                    .map(|v| number::<8>(v).map(i64::from_le_bytes))
                    .collect::<Result<Vec<_>>>()?,
            )),
        })
    }
}

/// A column of one of the kinds, read by index as the bytes we keep.
enum Column<'a> {
    Utf8(&'a GenericStringArray<i32>),
    Large(&'a GenericStringArray<i64>),
    View(&'a StringViewArray),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
}

impl<'a> Column<'a> {
    fn of(array: &'a ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Column::Large(array.as_string::<i64>()),
            DataType::Utf8View => Column::View(array.as_string_view()),
            DataType::Date32 => Column::Date32(array.as_primitive::<Date32Type>()),
            DataType::Date64 => Column::Date64(array.as_primitive::<Date64Type>()),
            other => return exec_err!("count(DISTINCT) cannot count {other} here"),
        })
    }

    /// The value at `i` (None when null); dates are written into `buf`.
    fn get<'b>(&'b self, i: usize, buf: &'b mut [u8; 8]) -> Option<&'b [u8]> {
        match self {
            Column::Utf8(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            Column::Large(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            Column::View(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            Column::Date32(a) => a.is_valid(i).then(|| {
                buf[..4].copy_from_slice(&a.value(i).to_le_bytes());
                &buf[..4]
            }),
            Column::Date64(a) => a.is_valid(i).then(|| {
                *buf = a.value(i).to_le_bytes();
                &buf[..]
            }),
        }
    }
}

/// One distinct (group, value) pair; the value's bytes are in the arena.
/// 20 bytes: at 1M customers the health score keeps ~60M of them.
struct Entry {
    /// The value's hash (without the group), its low 32 bits.
    hash: u32,
    start: u32,
    len: u32,
    /// The group's previous entry, or `NONE`.
    next: u32,
    group: u32,
}

const NONE: u32 = u32::MAX;

/// Up to this many values a group's set is searched by walking its chain
/// of entries, which were appended together when rows arrive grouped (as
/// usage sorted by customer does) and so sit in the same cache lines. A
/// larger group moves to the hash table, so no set is searched linearly
/// beyond this length.
const SMALL: i64 = 16;

/// The distinct values of each group.
#[derive(Default)]
struct DistinctSets {
    entries: Vec<Entry>,
    arena: Vec<u8>,
    /// Per group: its latest entry, or `NONE`.
    heads: Vec<u32>,
    /// Per group: how many distinct values it has.
    counts: Vec<i64>,
    /// The entries of the groups with more than `SMALL` values.
    large: HashTable<u32>,
    hasher: RandomState,
}

/// The hash of a (group, value) pair in the table of large groups.
fn pair_hash(hash: u32, group: u32) -> u64 {
    let x = (u64::from(group) << 32 | u64::from(hash)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

impl DistinctSets {
    fn resize(&mut self, groups: usize) {
        self.heads.resize(groups, NONE);
        self.counts.resize(groups, 0);
    }

    fn bytes(&self, e: &Entry) -> &[u8] {
        &self.arena[e.start as usize..(e.start + e.len) as usize]
    }

    /// Adds `value` to `group`'s set; counts it when it is new.
    fn insert(&mut self, group: usize, value: &[u8]) -> Result<()> {
        let hash = self.hasher.hash_one(value) as u32;
        if self.counts[group] <= SMALL {
            let mut i = self.heads[group];
            while i != NONE {
                let e = &self.entries[i as usize];
                if e.hash == hash && self.bytes(e) == value {
                    return Ok(());
                }
                i = e.next;
            }
        } else {
            let group32 = group as u32;
            let Self {
                entries,
                arena,
                large,
                ..
            } = self;
            let found = large.find(pair_hash(hash, group32), |&j| {
                let e = &entries[j as usize];
                e.group == group32
                    && e.hash == hash
                    && &arena[e.start as usize..(e.start + e.len) as usize] == value
            });
            if found.is_some() {
                return Ok(());
            }
        }
        self.append(group, value, hash)
    }

    /// Adds a value known to be new to `group`'s set.
    fn append(&mut self, group: usize, value: &[u8], hash: u32) -> Result<()> {
        let (Ok(group32), Ok(len), Ok(index), Ok(start)) = (
            u32::try_from(group),
            u32::try_from(value.len()),
            u32::try_from(self.entries.len()),
            u32::try_from(self.arena.len() + value.len()),
        ) else {
            return exec_err!(
                "count(DISTINCT): over 2^32 groups, values or bytes of values in one partition; \
                 more partitions (DATAFUSION_EXECUTION_TARGET_PARTITIONS) split them"
            );
        };
        let start = start - len;
        self.arena.extend_from_slice(value);
        self.entries.push(Entry {
            hash,
            start,
            len,
            next: self.heads[group],
            group: group32,
        });
        self.heads[group] = index;
        self.counts[group] += 1;
        let Self { entries, large, .. } = self;
        let rehash = |&j: &u32| {
            let e = &entries[j as usize];
            pair_hash(e.hash, e.group)
        };
        if self.counts[group] == SMALL + 1 {
            // The group becomes large: all its entries go to the table.
            let mut i = index;
            while i != NONE {
                let e = &entries[i as usize];
                large.insert_unique(pair_hash(e.hash, group32), i, rehash);
                i = e.next;
            }
        } else if self.counts[group] > SMALL + 1 {
            large.insert_unique(pair_hash(hash, group32), index, rehash);
        }
        Ok(())
    }

    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.counts.len(),
            EmitTo::First(n) => n,
        }
    }

    /// Takes the first `n` groups out: their counts, and where their values
    /// are in group order. The other groups are renumbered from 0.
    fn take_first(&mut self, n: usize) -> Result<Taken> {
        let old = std::mem::take(self);
        self.hasher = old.hasher.clone();
        self.resize(old.counts.len() - n);
        let mut cursor = Vec::with_capacity(n);
        let mut total = 0usize;
        for &c in &old.counts[..n] {
            cursor.push(total);
            total += c as usize;
        }
        let mut slots = vec![(0u32, 0u32); total];
        for e in &old.entries {
            let group = e.group as usize;
            if group < n {
                slots[cursor[group]] = (e.start, e.len);
                cursor[group] += 1;
            } else {
                self.append(group - n, old.bytes(e), e.hash)?;
            }
        }
        let mut counts = old.counts;
        counts.truncate(n);
        Ok(Taken {
            counts,
            arena: old.arena,
            slots,
        })
    }

    fn size(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>()
            + self.arena.capacity()
            + self.heads.capacity() * size_of::<u32>()
            + self.counts.capacity() * size_of::<i64>()
            + self.large.capacity() * (size_of::<u32>() + 1)
    }
}

/// Groups taken out of a [`DistinctSets`]: their counts, and their values
/// in group order as (start, len) in `arena`.
struct Taken {
    counts: Vec<i64>,
    arena: Vec<u8>,
    slots: Vec<(u32, u32)>,
}

impl Taken {
    fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.slots
            .iter()
            .map(|&(start, len)| &self.arena[start as usize..(start + len) as usize])
    }
}

/// `count(DISTINCT x)` per group for one value kind.
struct DistinctCounts {
    kind: Kind,
    sets: DistinctSets,
}

impl DistinctCounts {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            sets: DistinctSets::default(),
        }
    }

    fn list_field(&self) -> FieldRef {
        Arc::new(Field::new_list_field(self.kind.data_type(), true))
    }
}

impl GroupsAccumulator for DistinctCounts {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sets.resize(total_num_groups);
        let column = Column::of(&values[0])?;
        let mut buf = [0u8; 8];
        for (row, &group) in group_indices.iter().enumerate() {
            if !included(opt_filter, row) {
                continue;
            }
            if let Some(value) = column.get(row, &mut buf) {
                self.sets.insert(group, value)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let counts = if matches!(emit_to, EmitTo::All) {
            std::mem::take(&mut self.sets).counts
        } else {
            self.sets.take_first(self.sets.emitted(emit_to))?.counts
        };
        Ok(Arc::new(Int64Array::from(counts)))
    }

    /// Each group's distinct values as a list, as the built-in's state.
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.sets.take_first(self.sets.emitted(emit_to))?;
        let mut offsets = Vec::with_capacity(taken.counts.len() + 1);
        offsets.push(0i32);
        for &c in &taken.counts {
            let Ok(next) = i32::try_from(i64::from(offsets[offsets.len() - 1]) + c) else {
                return exec_err!("count(DISTINCT): over 2^31 values in one state batch");
            };
            offsets.push(next);
        }
        let values = self.kind.array(taken.values())?;
        let list = ListArray::try_new(
            self.list_field(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            values,
            None,
        )?;
        Ok(vec![Arc::new(list)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sets.resize(total_num_groups);
        let lists = values[0].as_list::<i32>();
        let column = Column::of(lists.values())?;
        let offsets = lists.offsets();
        let mut buf = [0u8; 8];
        for (row, &group) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if let Some(value) = column.get(i, &mut buf) {
                    self.sets.insert(group, value)?;
                }
            }
        }
        Ok(())
    }

    /// Each row as its own group: a list of its value, or an empty list.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values[0].len();
        let mut keep = BooleanBufferBuilder::new(rows);
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let mut kept = 0i32;
        for row in 0..rows {
            let yes = values[0].is_valid(row) && included(opt_filter, row);
            keep.append(yes);
            kept += i32::from(yes);
            offsets.push(kept);
        }
        let kept_values = filter(&values[0], &BooleanArray::new(keep.finish(), None))?;
        let list = ListArray::try_new(
            self.list_field(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            kept_values,
            None,
        )?;
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.sets.size()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    use super::super::test_rows::{Lcg, printed};
    use super::*;

    /// Rows of (group, value or null, passes the filter); group 3 has far
    /// more than `SMALL` distinct values, so it moves to the hash table.
    fn rows(seed: u64, n: usize) -> Vec<(usize, Option<String>, bool)> {
        let mut r = Lcg(seed);
        (0..n)
            .map(|_| {
                let group = r.next(20) as usize;
                let spread = if group == 3 { 500 } else { 6 };
                let value = (r.next(10) > 0).then(|| format!("v{}", r.next(spread)));
                (group, value, r.next(8) > 0)
            })
            .collect()
    }

    fn expected(rows: &[(usize, Option<String>, bool)], groups: usize) -> Vec<i64> {
        let mut sets: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for (g, v, keep) in rows {
            if let (Some(v), true) = (v, keep) {
                sets.entry(*g).or_default().insert(v);
            }
        }
        (0..groups)
            .map(|g| sets.get(&g).map_or(0, |s| s.len() as i64))
            .collect()
    }

    fn batch(
        rows: &[(usize, Option<String>, bool)],
        kind: &DataType,
    ) -> (ArrayRef, Vec<usize>, BooleanArray) {
        let text: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
        let values = datafusion::arrow::compute::cast(&text, kind).expect("cast");
        let groups = rows.iter().map(|r| r.0).collect();
        let keep = rows.iter().map(|r| Some(r.2)).collect();
        (values, groups, keep)
    }

    fn counts(array: ArrayRef) -> Vec<i64> {
        array
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn counts_match_sets_for_every_text_layout() {
        for kind in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            let rows = rows(7, 3000);
            let mut acc = DistinctCounts::new(Kind::of(&kind).expect("text"));
            // In three batches, the last one bringing new groups.
            for chunk in rows.chunks(1000) {
                let (values, groups, keep) = batch(chunk, &kind);
                acc.update_batch(&[values], &groups, Some(&keep), 20)
                    .expect("update");
            }
            assert_eq!(
                counts(acc.evaluate(EmitTo::All).expect("evaluate")),
                expected(&rows, 20),
                "{kind}"
            );
        }
    }

    #[test]
    fn state_and_merge_equal_direct_counts_and_emit_first_renumbers() {
        let kind = DataType::Utf8View;
        let rows = rows(11, 4000);
        let (a, b) = rows.split_at(2000);
        // Two partial accumulators, their states merged into a final one.
        let mut merged = DistinctCounts::new(Kind::of(&kind).expect("text"));
        for part in [a, b] {
            let mut partial = DistinctCounts::new(Kind::of(&kind).expect("text"));
            let (values, groups, keep) = batch(part, &kind);
            partial
                .update_batch(&[values], &groups, Some(&keep), 20)
                .expect("update");
            // First the first 5 groups, then the rest (renumbered from 0).
            let first = partial.state(EmitTo::First(5)).expect("state");
            merged
                .merge_batch(&first, &(0..5).collect::<Vec<_>>(), 20)
                .expect("merge");
            let rest = partial.state(EmitTo::All).expect("state");
            merged
                .merge_batch(&rest, &(5..20).collect::<Vec<_>>(), 20)
                .expect("merge");
        }
        let want = expected(&rows, 20);
        let first = counts(merged.evaluate(EmitTo::First(4)).expect("evaluate"));
        let rest = counts(merged.evaluate(EmitTo::All).expect("evaluate"));
        assert_eq!([first, rest].concat(), want);
    }

    #[test]
    fn rows_converted_to_state_merge_to_the_same_counts() {
        let kind = DataType::Utf8;
        let rows = rows(13, 2000);
        let (values, groups, keep) = batch(&rows, &kind);
        let acc = DistinctCounts::new(Kind::of(&kind).expect("text"));
        let state = acc
            .convert_to_state(&[values], Some(&keep))
            .expect("convert");
        let mut merged = DistinctCounts::new(Kind::of(&kind).expect("text"));
        merged.merge_batch(&state, &groups, 20).expect("merge");
        assert_eq!(
            counts(merged.evaluate(EmitTo::All).expect("evaluate")),
            expected(&rows, 20)
        );
    }

    #[test]
    fn dates_are_counted_and_kept_as_dates() {
        let days = Date32Array::from(vec![Some(1), Some(1), None, Some(20000), Some(-3), Some(1)]);
        let mut acc = DistinctCounts::new(Kind::Date32);
        acc.update_batch(&[Arc::new(days)], &[0, 0, 0, 1, 1, 1], None, 2)
            .expect("update");
        let state = acc.state(EmitTo::All).expect("state");
        let list = state[0].as_list::<i32>();
        assert_eq!(list.values().data_type(), &DataType::Date32);
        let mut merged = DistinctCounts::new(Kind::Date32);
        merged.merge_batch(&state, &[0, 1], 2).expect("merge");
        assert_eq!(
            counts(merged.evaluate(EmitTo::All).expect("evaluate")),
            vec![1, 3]
        );
    }

    /// Through SQL: several DISTINCT counts in one aggregate (our
    /// accumulator) equal each counted alone (DataFusion's GROUP BY
    /// rewrite), and COUNT keeps the built-in's other behaviour.
    #[tokio::test]
    async fn sql_counts_equal_the_builtin_rewrite() {
        let rows = rows(17, 5000);
        let groups: Vec<i64> = rows.iter().map(|r| r.0 as i64).collect();
        let text: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
        let days: Date32Array = rows
            .iter()
            .map(|r| r.1.as_ref().map(|v| v.len() as i32 * 7))
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(groups)),
                Arc::new(text),
                Arc::new(days),
            ],
        )
        .expect("batch");
        let ctx = SessionContext::new();
        register(&ctx);
        let table =
            MemTable::try_new(schema, vec![vec![batch.clone()], vec![batch]]).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("register");
        let together = printed(
            &ctx,
            "SELECT g, count(DISTINCT v) AS v, count(DISTINCT d) AS d, count(*) AS n, count(v) AS nv \
             FROM t GROUP BY g ORDER BY g",
        )
        .await;
        let alone = printed(
            &ctx,
            "SELECT a.g, a.v, b.d, a.n, a.nv FROM \
             (SELECT g, count(DISTINCT v) AS v, count(*) AS n, count(v) AS nv FROM t GROUP BY g) a JOIN \
             (SELECT g, count(DISTINCT d) AS d FROM t GROUP BY g) b ON a.g = b.g ORDER BY a.g",
        )
        .await;
        assert_eq!(together, alone);
        // Group 3 has hundreds of distinct values: the large-group path ran.
        assert!(
            together.lines().any(|l| l.starts_with("| 3 ")
                && l.split('|')
                    .nth(2)
                    .is_some_and(|v| v.trim().parse::<i64>().is_ok_and(|v| v > SMALL))),
            "{together}"
        );
        // No rows: 0, as the built-in.
        assert!(
            printed(&ctx, "SELECT count(DISTINCT v) AS c FROM t WHERE g < 0")
                .await
                .contains("| 0 |")
        );
    }
}
