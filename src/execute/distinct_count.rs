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
//! Each group's distinct values are a chain of small entries (a short
//! value inside its entry, a long one's bytes in an arena), searched in
//! place while the group is small; a large group moves to a hash table
//! (see [`SMALL`], [`Key`]). A first version kept every
//! (group, value) pair in one hash table: a cache miss per row, slower than
//! the three GROUP BYs at 1M customers. Its partial state is the built-in's
//! (a list of the group's distinct values), so partial and final phases,
//! skipped partial aggregation and spilling all work as for integers.

use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Date32Array, Date64Array,
    GenericStringArray, Int64Array, LargeStringBuilder, ListArray, StringBuilder, StringViewArray,
    StringViewBuilder,
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

    /// An array of this type holding the values `taken`, in order.
    fn array(&self, taken: &Taken) -> Result<ArrayRef> {
        fn text(bytes: &[u8]) -> Result<&str> {
            std::str::from_utf8(bytes).or_else(|e| exec_err!("count(DISTINCT): {e}"))
        }
        fn number<const N: usize>(bytes: &[u8]) -> Result<[u8; N]> {
            bytes
                .try_into()
                .or_else(|_| exec_err!("count(DISTINCT): a date of {} bytes", bytes.len()))
        }
        let n = taken.keys.len();
        Ok(match self {
            Kind::Text(DataType::Utf8) => {
                let mut b = StringBuilder::with_capacity(n, 0);
                taken.for_each_value(|v| text(v).map(|t| b.append_value(t)))?;
                Arc::new(b.finish())
            }
            Kind::Text(DataType::LargeUtf8) => {
                let mut b = LargeStringBuilder::with_capacity(n, 0);
                taken.for_each_value(|v| text(v).map(|t| b.append_value(t)))?;
                Arc::new(b.finish())
            }
            Kind::Text(_) => {
                let mut b = StringViewBuilder::with_capacity(n);
                taken.for_each_value(|v| text(v).map(|t| b.append_value(t)))?;
                Arc::new(b.finish())
            }
            Kind::Date32 => {
                let mut days = Vec::with_capacity(n);
                taken
                    .for_each_value(|v| number::<4>(v).map(|d| days.push(i32::from_le_bytes(d))))?;
                Arc::new(Date32Array::from(days))
            }
            Kind::Date64 => {
                let mut ms = Vec::with_capacity(n);
                taken.for_each_value(|v| number::<8>(v).map(|d| ms.push(i64::from_le_bytes(d))))?;
                Arc::new(Date64Array::from(ms))
            }
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

/// One distinct (group, value) pair. 24 bytes: at 1M customers the
/// health score keeps ~60M of them (in slices since `entity_slices`).
#[derive(Clone, Copy)]
struct Entry {
    key: Key,
    /// The group's previous entry, or `NONE`.
    next: u32,
    group: u32,
}

const NONE: u32 = u32::MAX;

/// A value as kept in its entry. One of up to [`SHORT`] bytes (a date, an
/// id, a feature name: every value of the health score) is its bytes, then
/// its length in the last byte: equal keys are equal values, so a set is
/// searched by comparing two words, without hashing the value or reading
/// it elsewhere. A longer value's bytes are in the arena; its key holds
/// where, its length and its hash, and [`LONG`] in the last byte.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Key {
    /// Bytes 0..8.
    lo: u64,
    /// Bytes 8..16; the last is the length (or `LONG`).
    hi: u64,
}

const SHORT: usize = 15;
const LONG: u64 = 0xFF;

impl Key {
    /// The key of a short value, read with whole-word loads (a copy of a
    /// variable length was a call to memcpy per row).
    #[inline]
    fn short(value: &[u8]) -> Option<Key> {
        let n = value.len();
        let word = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| {
            u64::from(u32::from_le_bytes(
                value[at..at + 4].try_into().expect("4 bytes"),
            ))
        };
        // Overlapping loads put the same bytes in the same places.
        let (lo, hi) = match n {
            0..4 => (
                value
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| acc << 8 | u64::from(b)),
                0,
            ),
            4..8 => (half(0) | half(n - 4) << (8 * (n - 4)), 0),
            8 => (word(0), 0),
            9..=SHORT => (word(0), word(n - 8) >> (8 * (16 - n))),
            _ => return None,
        };
        Some(Key {
            lo,
            hi: hi | (n as u64) << 56,
        })
    }

    fn long(start: u32, len: u32, hash: u32) -> Key {
        Key {
            lo: u64::from(start) | u64::from(len) << 32,
            hi: u64::from(hash) | LONG << 56,
        }
    }

    fn is_long(&self) -> bool {
        self.hi >> 56 == LONG
    }

    /// For a long value: where its bytes are in the arena.
    fn span(&self) -> Option<std::ops::Range<usize>> {
        self.is_long().then(|| {
            let start = (self.lo & 0xFFFF_FFFF) as usize;
            start..start + (self.lo >> 32) as usize
        })
    }

    /// The value's hash (without the group): a short value's from its
    /// key, a long one's as kept.
    #[inline]
    fn hash(&self) -> u32 {
        if self.is_long() {
            return self.hi as u32;
        }
        let x = (self.lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.hi)
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (x >> 32) as u32
    }

    /// The value's bytes: from the key into `buf`, or in `arena`.
    fn bytes<'a>(&self, arena: &'a [u8], buf: &'a mut [u8; 16]) -> &'a [u8] {
        match self.span() {
            Some(span) => &arena[span],
            None => {
                buf[..8].copy_from_slice(&self.lo.to_le_bytes());
                buf[8..].copy_from_slice(&self.hi.to_le_bytes());
                &buf[..(self.hi >> 56) as usize]
            }
        }
    }
}

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
    /// The bytes of the values longer than [`SHORT`].
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

    /// Adds `value` to `group`'s set; counts it when it is new.
    #[inline]
    fn insert(&mut self, group: usize, value: &[u8]) -> Result<()> {
        if let Some(key) = Key::short(value) {
            if !self.contains(group, |e| e.key == key, || key.hash()) {
                self.push(group, key)?;
            }
            return Ok(());
        }
        let hash = self.hasher.hash_one(value) as u32;
        let arena = &self.arena;
        let same = |e: &Entry| {
            e.key
                .span()
                .is_some_and(|span| e.key.hash() == hash && &arena[span] == value)
        };
        if !self.contains(group, same, || hash) {
            self.push_long(group, value, hash)?;
        }
        Ok(())
    }

    /// Whether `group`'s set has an entry that is the `same` value, whose
    /// hash is `hash()` (computed only for a large group).
    #[inline]
    fn contains(
        &self,
        group: usize,
        same: impl Fn(&Entry) -> bool,
        hash: impl FnOnce() -> u32,
    ) -> bool {
        if self.counts[group] <= SMALL {
            let mut i = self.heads[group];
            while i != NONE {
                let e = &self.entries[i as usize];
                if same(e) {
                    return true;
                }
                i = e.next;
            }
            return false;
        }
        let group32 = group as u32;
        self.large
            .find(pair_hash(hash(), group32), |&j| {
                let e = &self.entries[j as usize];
                e.group == group32 && same(e)
            })
            .is_some()
    }

    /// Adds a long value known to be new to `group`'s set: its bytes go to
    /// the arena.
    fn push_long(&mut self, group: usize, value: &[u8], hash: u32) -> Result<()> {
        let (Ok(start), Ok(len), Ok(_)) = (
            u32::try_from(self.arena.len()),
            u32::try_from(value.len()),
            u32::try_from(self.arena.len() + value.len()),
        ) else {
            return too_many();
        };
        self.arena.extend_from_slice(value);
        self.push(group, Key::long(start, len, hash))
    }

    /// Adds a value known to be new to `group`'s set.
    fn push(&mut self, group: usize, key: Key) -> Result<()> {
        let (Ok(group32), Ok(index)) = (u32::try_from(group), u32::try_from(self.entries.len()))
        else {
            return too_many();
        };
        self.entries.push(Entry {
            key,
            next: self.heads[group],
            group: group32,
        });
        self.heads[group] = index;
        self.counts[group] += 1;
        let Self { entries, large, .. } = self;
        let rehash = |&j: &u32| {
            let e = &entries[j as usize];
            pair_hash(e.key.hash(), e.group)
        };
        if self.counts[group] == SMALL + 1 {
            // The group becomes large: all its entries go to the table.
            let mut i = index;
            while i != NONE {
                let e = &entries[i as usize];
                large.insert_unique(pair_hash(e.key.hash(), group32), i, rehash);
                i = e.next;
            }
        } else if self.counts[group] > SMALL + 1 {
            large.insert_unique(pair_hash(key.hash(), group32), index, rehash);
        }
        Ok(())
    }

    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.counts.len(),
            EmitTo::First(n) => n,
        }
    }

    /// Takes the first `n` groups out: their counts, and their values in
    /// group order. The other groups are renumbered from 0.
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
        let mut keys = vec![Key::default(); total];
        for e in &old.entries {
            let group = e.group as usize;
            if group < n {
                keys[cursor[group]] = e.key;
                cursor[group] += 1;
            } else if let Some(span) = e.key.span() {
                self.push_long(group - n, &old.arena[span], e.key.hash())?;
            } else {
                self.push(group - n, e.key)?;
            }
        }
        let mut counts = old.counts;
        counts.truncate(n);
        Ok(Taken {
            counts,
            arena: old.arena,
            keys,
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

fn too_many<T>() -> Result<T> {
    exec_err!(
        "count(DISTINCT): over 2^32 groups, values or bytes of values in one partition; \
         more partitions (DATAFUSION_EXECUTION_TARGET_PARTITIONS) split them"
    )
}

/// Groups taken out of a [`DistinctSets`]: their counts, and their values
/// in group order (long ones in `arena`).
struct Taken {
    counts: Vec<i64>,
    arena: Vec<u8>,
    keys: Vec<Key>,
}

impl Taken {
    /// Calls `each` with every value, in order.
    fn for_each_value(&self, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut buf = [0u8; 16];
        for k in &self.keys {
            each(k.bytes(&self.arena, &mut buf))?;
        }
        Ok(())
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
        let values = self.kind.array(&taken)?;
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

    use datafusion::arrow::array::StringArray;

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

    /// Values kept in their key and values kept in the arena, the empty
    /// text, and values that differ only in length or by a trailing zero
    /// byte are told apart, in small and large groups, directly and
    /// through state, emit-first and merge.
    #[test]
    fn short_and_long_values_are_told_apart() {
        let fixed = [
            "",
            "a",
            "a\0",
            "abcdefghijklmn",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnop\0",
        ];
        let mut r = Lcg(23);
        let rows: Vec<(usize, Option<String>, bool)> = (0..6000)
            .map(|_| {
                let group = r.next(6) as usize;
                let value = if group == 5 {
                    // Hundreds of values, short and long: a large group.
                    format!("{}{}", "x".repeat(r.next(30) as usize), r.next(20))
                } else {
                    fixed[r.next(fixed.len() as u64) as usize].to_string()
                };
                (group, Some(value), true)
            })
            .collect();
        let want = expected(&rows, 6);
        assert!(want[5] > SMALL, "{want:?}");
        for kind in [DataType::Utf8, DataType::Utf8View] {
            let mut acc = DistinctCounts::new(Kind::of(&kind).expect("text"));
            for chunk in rows.chunks(1000) {
                let (values, groups, _) = batch(chunk, &kind);
                acc.update_batch(&[values], &groups, None, 6)
                    .expect("update");
            }
            let mut merged = DistinctCounts::new(Kind::of(&kind).expect("text"));
            let first = acc.state(EmitTo::First(2)).expect("state");
            merged.merge_batch(&first, &[0, 1], 6).expect("merge");
            let rest = acc.state(EmitTo::All).expect("state");
            merged.merge_batch(&rest, &[2, 3, 4, 5], 6).expect("merge");
            assert_eq!(
                counts(merged.evaluate(EmitTo::All).expect("evaluate")),
                want,
                "{kind}"
            );
        }
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
