//! The arithmetic of a score metric's rows (`compile::relations`) as three
//! registered scalar functions, a deliberate exception beside
//! `distinct_count` and `utc_day`.
//!
//! Written in DataFusion's SQL, each row's score was a chain of CASE
//! expressions: a component's score is NULL where its raw value is (a
//! CASE around `greatest`/`least`, which skip NULLs), the weights of the
//! components present are summed by `CASE WHEN s IS NULL THEN 0 ELSE w
//! END`, the weighted sum by `coalesce`, and the band is a CASE of
//! thresholds. DataFusion evaluates a CASE branch by branch: it filters
//! the rows of each branch, evaluates it on them and merges the results,
//! which is most of the cost of these projections: at 100k customers
//! (1.9M scored rows, EXPLAIN ANALYZE) they took 245 ms of CPU, 133 ms
//! with these functions, which compute the same numbers in one pass over
//! each column (a whole 10k-customer build: 9.41G instructions against
//! 9.53G, callgrind):
//!
//! - `vitals_score_scale(raw, bad, good)`: NULL where `raw` is NULL, else
//!   `greatest(0, least(100, 100 * (raw - bad) / (good - bad)))`;
//! - `vitals_weighted_mean(s1, w1, ..., sn, wn)`: the sum of `w * s` over
//!   the non-NULL scores divided by the sum of their weights, NULL where
//!   that sum is 0 (no component present);
//! - `vitals_band(score, min1, name1, ..., [otherwise])`: NULL where the
//!   score is, else the name of the first `min` the score reaches, else
//!   `otherwise` (or NULL without it).
//!
//! Each keeps the SQL it replaces bit for bit: the same operations in the
//! same order, and DataFusion's comparison of floats (NaN above every
//! number). The tests compare both forms over edge values.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the three functions of the module.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Scale::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(WeightedMean::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(Band::new()));
}

/// A DOUBLE argument: one value for every row, or a column.
enum Number {
    Scalar(Option<f64>),
    Column(Float64Array),
}

impl Number {
    fn of(arg: &ColumnarValue, name: &str) -> Result<Number> {
        Ok(match arg {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Number::Scalar(*v),
            ColumnarValue::Array(a) if a.data_type() == &DataType::Float64 => {
                Number::Column(a.as_primitive::<Float64Type>().clone())
            }
            other => return exec_err!("{name} takes DOUBLE arguments, got {}", other.data_type()),
        })
    }

    /// The value at row `i` (None when NULL).
    fn get(&self, i: usize) -> Option<f64> {
        match self {
            Number::Scalar(v) => *v,
            Number::Column(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The rows of a call (its array arguments all have as many), and whether
/// every argument is a scalar (one row, returned as a scalar).
fn rows_of(args: &[ColumnarValue]) -> (usize, bool) {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some((a.len(), false)),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or((1, true))
}

/// `array` as the call's result: a scalar when every argument was one.
fn result(array: ArrayRef, all_scalars: bool) -> Result<ColumnarValue> {
    Ok(if all_scalars {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
    } else {
        ColumnarValue::Array(array)
    })
}

/// `a >= b` in the total order by which DataFusion's `greatest` and
/// `least` compare DOUBLEs: -0.0 below 0.0, NaN above every number and a
/// negative NaN (0/0 is one) below every number.
fn at_least(a: f64, b: f64) -> bool {
    a.total_cmp(&b).is_ge()
}

/// `a >= b` as DataFusion's `>=` compares a DOUBLE with a literal: in the
/// same total order, except that -0.0 reaches 0.0. (The tests check both
/// functions against DataFusion's own.)
fn reaches(a: f64, b: f64) -> bool {
    a.total_cmp(&b).is_ge() || a == b
}

/// `vitals_score_scale(raw, bad, good)`; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Scale {
    signature: Signature,
}

impl Scale {
    const NAME: &'static str = "vitals_score_scale";

    fn new() -> Self {
        Scale {
            signature: Signature::uniform(3, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

/// `greatest(0, least(100, 100 * (raw - bad) / (good - bad)))`, in that
/// order: `least(100, x)` keeps 100 when 100 <= x, `greatest(0, y)` keeps
/// 0 when 0 >= y.
fn scaled(raw: f64, bad: f64, good: f64) -> f64 {
    let x = 100.0 * (raw - bad) / (good - bad);
    let y = if at_least(x, 100.0) { 100.0 } else { x };
    if at_least(0.0, y) { 0.0 } else { y }
}

impl ScalarUDFImpl for Scale {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [raw, bad, good] = args.args.as_slice() else {
            return exec_err!("{} takes (raw, bad, good)", Self::NAME);
        };
        let (rows, all_scalars) = rows_of(&args.args);
        let (raw, bad, good) = (
            Number::of(raw, Self::NAME)?,
            Number::of(bad, Self::NAME)?,
            Number::of(good, Self::NAME)?,
        );
        let out: ArrayRef = match (&raw, &bad, &good) {
            // The form the score writes: a column and two literals, one pass
            // over the values that keeps the column's nulls.
            (Number::Column(r), Number::Scalar(Some(b)), Number::Scalar(Some(g))) => {
                Arc::new(r.unary::<_, Float64Type>(|x| scaled(x, *b, *g)))
            }
            _ => Arc::new(Float64Array::from_iter(
                (0..rows).map(|i| Some(scaled(raw.get(i)?, bad.get(i)?, good.get(i)?))),
            )),
        };
        result(out, all_scalars)
    }
}

/// `vitals_weighted_mean(s1, w1, ..., sn, wn)`; see the module
/// documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WeightedMean {
    signature: Signature,
}

impl WeightedMean {
    const NAME: &'static str = "vitals_weighted_mean";

    fn new() -> Self {
        WeightedMean {
            signature: Signature::variadic(vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for WeightedMean {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() || !arg_types.len().is_multiple_of(2) {
            return plan_err!(
                "{} takes pairs of (score, weight), got {} arguments",
                Self::NAME,
                arg_types.len()
            );
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, all_scalars) = rows_of(&args.args);
        let numbers = args
            .args
            .iter()
            .map(|a| Number::of(a, Self::NAME))
            .collect::<Result<Vec<_>>>()?;
        if numbers.is_empty() || !numbers.len().is_multiple_of(2) {
            return exec_err!("{} takes pairs of (score, weight)", Self::NAME);
        }
        // The SQL this replaces: `(coalesce(w1 * s1, 0.0) + ... ) / (CASE
        // WHEN s1 IS NULL THEN 0.0 ELSE w1 END + ...)`, NULL where the
        // weights sum to 0; each sum starts from its first term.
        let mut sum = vec![0.0f64; rows];
        let mut weights = vec![0.0f64; rows];
        // A NULL weight makes the row NULL, as NULL arithmetic did.
        let mut valid = vec![true; rows];
        for (k, pair) in numbers.chunks(2).enumerate() {
            let (score, weight) = (&pair[0], &pair[1]);
            for i in 0..rows {
                let Some(w) = weight.get(i) else {
                    valid[i] = false;
                    continue;
                };
                let (term, share) = match score.get(i) {
                    Some(s) => (w * s, w),
                    None => (0.0, 0.0),
                };
                if k == 0 {
                    sum[i] = term;
                    weights[i] = share;
                } else {
                    sum[i] += term;
                    weights[i] += share;
                }
            }
        }
        let out = Float64Array::from_iter(
            (0..rows).map(|i| (valid[i] && weights[i] != 0.0).then(|| sum[i] / weights[i])),
        );
        result(Arc::new(out), all_scalars)
    }
}

/// `vitals_band(score, min1, name1, ..., [otherwise])`; see the module
/// documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Band {
    signature: Signature,
}

impl Band {
    const NAME: &'static str = "vitals_band";

    fn new() -> Self {
        Band {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Band {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    // (score, min, name, min, name, ..., [otherwise]): numbers as DOUBLE,
    // names as text.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() < 2 {
            return plan_err!("{} takes (score, min, name, ..., [otherwise])", Self::NAME);
        }
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if i == 0 || (i % 2 == 1 && i + 1 < arg_types.len()) {
                    DataType::Float64
                } else {
                    DataType::Utf8
                }
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((score, rest)) = args.args.split_first() else {
            return exec_err!("{} takes a score first", Self::NAME);
        };
        let (rows, all_scalars) = rows_of(&args.args);
        let score = Number::of(score, Self::NAME)?;
        let text = |v: &ColumnarValue| -> Result<Option<String>> {
            match v {
                ColumnarValue::Scalar(
                    ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s),
                ) => Ok(s.clone()),
                _ => exec_err!("{}: band names are literals", Self::NAME),
            }
        };
        let mut bands: Vec<(Option<f64>, Option<String>)> = Vec::new();
        let mut otherwise = None;
        for pair in rest.chunks(2) {
            match pair {
                [min, name] => match min {
                    ColumnarValue::Scalar(ScalarValue::Float64(m)) => bands.push((*m, text(name)?)),
                    _ => return exec_err!("{}: band minimums are literals", Self::NAME),
                },
                [name] => otherwise = text(name)?,
                _ => unreachable!("chunks of two"),
            }
        }
        // Each row's band as an index into the names (None: NULL), then the
        // texts: CASE WHEN score IS NULL THEN NULL WHEN score >= min1 THEN
        // name1 ... ELSE otherwise END. A NULL minimum never matches, as
        // `score >= NULL` does not.
        let names: Vec<Option<&str>> = bands
            .iter()
            .map(|(_, n)| n.as_deref())
            .chain(std::iter::once(otherwise.as_deref()))
            .collect();
        let out: StringArray = (0..rows)
            .map(|i| {
                let s = score.get(i)?;
                let at = bands
                    .iter()
                    .position(|(min, _)| min.is_some_and(|m| reaches(s, m)))
                    .unwrap_or(bands.len());
                names[at]
            })
            .collect();
        result(Arc::new(out), all_scalars)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    use crate::execute::test_rows::Lcg;

    /// Doubles where the arithmetic has edges: signs of zero, the scale's
    /// ends and beyond, infinities, NaN and NULL.
    const EDGES: [Option<f64>; 17] = [
        None,
        Some(-f64::NAN),
        Some(0.0),
        Some(-0.0),
        Some(5.0),
        Some(20.0),
        Some(25.0),
        Some(-3.0),
        Some(0.9),
        Some(0.95),
        Some(1.1),
        Some(70.0),
        Some(69.999_999),
        Some(1e300),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        Some(f64::NAN),
    ];

    /// A session (with our functions) and a table `t` of DOUBLE columns.
    async fn table(columns: &[(&str, Vec<Option<f64>>)]) -> SessionContext {
        let ctx = crate::execute::new_session(&Default::default()).unwrap();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, _)| Field::new(*n, DataType::Float64, true))
                .collect::<Vec<_>>(),
        ));
        let arrays = columns
            .iter()
            .map(|(_, v)| Arc::new(Float64Array::from(v.clone())) as _)
            .collect();
        let batch = RecordBatch::try_new(schema, arrays).unwrap();
        ctx.register_batch("t", batch).unwrap();
        ctx
    }

    /// The two DOUBLE columns of `sql`'s result, as bits (NULL as None).
    async fn bits(ctx: &SessionContext, sql: &str) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = (Vec::new(), Vec::new());
        for b in &batches {
            let col = |i: usize| -> Vec<Option<u64>> {
                let a = b.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
                a.iter().map(|v| v.map(f64::to_bits)).collect()
            };
            out.0.extend(col(0));
            out.1.extend(col(1));
        }
        out
    }

    #[tokio::test]
    async fn scale_is_the_case_of_greatest_and_least_bit_for_bit() {
        let ctx = table(&[("r", EDGES.to_vec())]).await;
        // Every scale a catalog takes (bad and good differ).
        for (bad, good) in [("0", "20"), ("5", "0"), ("0.9", "1.1"), ("-1", "1e300")] {
            let sql = format!(
                "SELECT CASE WHEN r IS NULL THEN NULL ELSE greatest(0.0, least(100.0, \
                 100.0 * (CAST(r AS DOUBLE) - ({bad})) / (({good}) - ({bad})))) END, \
                 vitals_score_scale(CAST(r AS DOUBLE), {bad}.0, {good}.0) FROM t"
            )
            .replace(".0.0", ".0")
            .replace("0.9.0", "0.9")
            .replace("1.1.0", "1.1")
            .replace("1e300.0", "1e300");
            let (old, new) = bits(&ctx, &sql).await;
            assert_eq!(old.len(), EDGES.len());
            assert_eq!(old, new, "bad {bad}, good {good}");
        }
    }

    #[tokio::test]
    async fn weighted_mean_is_the_sums_of_coalesce_and_case_bit_for_bit() {
        let mut rng = Lcg(7);
        let mut pick = || EDGES[rng.next(EDGES.len() as u64) as usize];
        let columns: Vec<(&str, Vec<Option<f64>>)> = ["a", "b", "c"]
            .into_iter()
            .map(|n| (n, (0..2000).map(|_| pick()).collect()))
            .collect();
        let ctx = table(&columns).await;
        for weights in [
            [0.3, 0.15, 0.1],
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [-0.5, 0.5, 2.0],
        ] {
            let [wa, wb, wc] = weights.map(|w| format!("{w:?}"));
            let num = format!(
                "coalesce({wa} * a, 0.0) + coalesce({wb} * b, 0.0) + coalesce({wc} * c, 0.0)"
            );
            let den = format!(
                "CASE WHEN a IS NULL THEN 0.0 ELSE {wa} END + CASE WHEN b IS NULL THEN 0.0 \
                 ELSE {wb} END + CASE WHEN c IS NULL THEN 0.0 ELSE {wc} END"
            );
            let sql = format!(
                "SELECT CASE WHEN ({den}) = 0 THEN NULL ELSE round(({num}) / ({den}), 6) END, \
                 round(vitals_weighted_mean(a, {wa}, b, {wb}, c, {wc}), 6) FROM t"
            );
            let (old, new) = bits(&ctx, &sql).await;
            assert_eq!(old.len(), 2000);
            assert_eq!(old, new, "weights {weights:?}");
        }
        // Without rows of any score, no weights: NULL, as the CASE gave.
        let (old, new) = bits(
            &ctx,
            "SELECT CAST(NULL AS DOUBLE), vitals_weighted_mean(CAST(NULL AS DOUBLE), 1.0) FROM t LIMIT 1",
        )
        .await;
        assert_eq!((old, new), (vec![None], vec![None]));
    }

    #[tokio::test]
    async fn band_is_the_case_of_thresholds() {
        let ctx = table(&[("s", EDGES.to_vec())]).await;
        for (case, call) in [
            (
                "CASE WHEN s IS NULL THEN NULL WHEN s >= 70.0 THEN 'green' WHEN s >= 40.0 THEN 'yellow' ELSE 'red' END",
                "vitals_band(s, 70.0, 'green', 40.0, 'yellow', 'red')",
            ),
            (
                "CASE WHEN s IS NULL THEN NULL WHEN s >= 70.0 THEN 'green' WHEN s >= 0.0 THEN 'zero' END",
                "vitals_band(s, 70.0, 'green', 0.0, 'zero')",
            ),
            (
                "CASE WHEN s IS NULL THEN NULL ELSE 'all' END",
                "vitals_band(s, 'all')",
            ),
        ] {
            let sql = format!("SELECT {case}, {call} FROM t");
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let mut rows = 0;
            for b in &batches {
                let text = |i: usize| -> Vec<Option<String>> {
                    let a = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
                    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
                    a.iter().map(|v| v.map(str::to_string)).collect()
                };
                assert_eq!(text(0), text(1), "{call}");
                assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
                rows += b.num_rows();
            }
            assert_eq!(rows, EDGES.len());
        }
    }

    #[tokio::test]
    async fn wrong_arguments_are_plan_errors() {
        let ctx = table(&[("s", EDGES.to_vec())]).await;
        for sql in [
            "SELECT vitals_weighted_mean(s) FROM t",
            "SELECT vitals_weighted_mean(s, 1.0, s) FROM t",
            "SELECT vitals_band(s) FROM t",
        ] {
            let err = match ctx.sql(sql).await {
                Ok(df) => df.collect().await.err().map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            assert!(err.is_some_and(|e| e.contains("vitals_")), "{sql}");
        }
    }
}
