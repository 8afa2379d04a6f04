//! Under a memory limit the user gives, the joins too large to collect on
//! one side become sort-merge joins, which spill; the small ones stay hash
//! joins. A registered physical optimizer rule, run right after
//! DataFusion's `JoinSelection`.
//!
//! A hash join holds its whole build side in memory and cannot spill, so
//! under a tight limit a large one fails the build. DataFusion's own switch
//! (`prefer_hash_join = false`) is per session: it makes *every* equi-join
//! a sort-merge join, including those against a calendar of a few hundred
//! rows, and so sorts every usage row by day. At 1M customers that plan
//! (72 sort operators in the health score) took `--select customer_health
//! --memory-limit 1GB` to 96 s, and under 256 MB a 20k-customer build
//! failed: each sort keeps a merge reservation, and 72 of them did not fit.
//!
//! `JoinSelection` has already sized each hash join from statistics: a side
//! small enough to collect (`CollectLeft`) is a hash table of bounded size;
//! the others (`Partitioned`) hash a side of any size. This rule turns only
//! those into sort-merge joins; `EnsureRequirements`, which runs after it,
//! adds their sorts and repartitions as it would for a planned one.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SpillableJoins;

impl SpillableJoins {
    /// Where the rule goes: right after `JoinSelection`, which decides
    /// which hash joins collect their build side.
    pub const AFTER: &'static str = "join_selection";
}

impl PhysicalOptimizerRule for SpillableJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::replace_nodes(plan, |node| match node.downcast_ref::<HashJoinExec>() {
            Some(join) => as_sort_merge(join),
            None => Ok(None),
        })
    }

    fn name(&self) -> &str {
        "vitals_spillable_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The sort-merge join that computes what `join` does, when it hashes a
/// side of unbounded size and a sort-merge join can do its work.
fn as_sort_merge(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    // A null-aware anti join (`NOT IN` over a nullable subquery) has no
    // sort-merge equivalent; DataFusion's planner keeps those hashed too.
    if join.mode != PartitionMode::Partitioned || join.null_aware || join.fetch().is_some() {
        return Ok(None);
    }
    let Ok(merge) = SortMergeJoinExec::try_new(
        Arc::clone(&join.left),
        Arc::clone(&join.right),
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        vec![SortOptions::default(); join.on.len()],
        join.null_equality,
    ) else {
        // A join type the sort-merge join does not take stays hashed.
        return Ok(None);
    };
    let merge: Arc<dyn ExecutionPlan> = Arc::new(merge);
    let Some(projection) = &join.projection else {
        return Ok(Some(merge));
    };
    // The hash join projected its output in place; the sort-merge join
    // gives every column, so a projection keeps the schema the same.
    let schema = merge.schema();
    let columns: Vec<_> = projection
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            (Arc::new(Column::new(&name, i)) as _, name)
        })
        .collect();
    Ok(Some(Arc::new(ProjectionExec::try_new(columns, merge)?)))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};

    use super::*;
    use crate::execute::{SessionOptions, new_session};

    /// A session with two partitions, under `limit` when there is one, and
    /// three tables of `k, v` rows: `big` (200k), `mid` (100k, every other
    /// `k` of big's), `tiny` (10).
    async fn session(limit: Option<usize>) -> SessionContext {
        let ctx = new_session(&SessionOptions {
            memory_limit: limit,
            target_partitions: Some(2),
            model_cache: None,
            score_slice_rows: None,
        })
        .unwrap();
        for (name, rows, step) in [("big", 200_000, 1), ("mid", 100_000, 2), ("tiny", 10, 1)] {
            let sql = format!(
                "CREATE TABLE {name} AS SELECT value * {step} AS k, value % 7 AS v \
                 FROM generate_series(1, {rows})"
            );
            ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        ctx
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await;
        displayable(plan.unwrap().as_ref()).indent(true).to_string()
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    const LARGE: &str = "SELECT count(*) AS n, count(m.k) AS matched, sum(m.v) AS v, \
                         sum(b.k) AS k FROM big b LEFT JOIN mid m ON b.k = m.k";

    #[tokio::test]
    async fn under_a_limit_large_joins_sort_merge_and_small_ones_hash() {
        let ctx = session(Some(256 << 20)).await;
        let large = plan(&ctx, LARGE).await;
        assert!(large.contains("SortMergeJoin"), "{large}");
        assert!(!large.contains("HashJoinExec"), "{large}");
        let small = plan(&ctx, "SELECT * FROM big b JOIN tiny t ON b.k = t.k").await;
        assert!(small.contains("HashJoinExec: mode=CollectLeft"), "{small}");
        assert!(!small.contains("SortMergeJoin"), "{small}");
    }

    #[tokio::test]
    async fn without_a_limit_every_join_hashes() {
        let ctx = session(None).await;
        let large = plan(&ctx, LARGE).await;
        assert!(large.contains("HashJoinExec: mode=Partitioned"), "{large}");
        assert!(!large.contains("SortMergeJoin"), "{large}");
    }

    #[tokio::test]
    async fn the_sort_merge_join_gives_the_hash_joins_rows_and_columns() {
        let limited = session(Some(256 << 20)).await;
        let free = session(None).await;
        // `big` on the left is the larger side: `JoinSelection` swaps the
        // inputs and projects the columns back into order, which the sort-
        // merge join must keep.
        for sql in [
            LARGE,
            "SELECT * FROM big b JOIN mid m ON b.k = m.k ORDER BY b.k LIMIT 5",
            "SELECT * FROM mid m RIGHT JOIN big b ON b.k = m.k AND b.v > 2 \
             ORDER BY b.k DESC LIMIT 5",
        ] {
            assert_eq!(rows(&limited, sql).await, rows(&free, sql).await, "{sql}");
        }
        let swapped = plan(&limited, "SELECT * FROM big b JOIN mid m ON b.k = m.k").await;
        assert!(swapped.contains("SortMergeJoin"), "{swapped}");
    }

    #[tokio::test]
    async fn a_projecting_hash_join_keeps_its_columns() {
        let ctx = session(None).await;
        let sql = "SELECT * FROM big b JOIN mid m ON b.k = m.k";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await;
        let mut found = None;
        plan.unwrap()
            .apply(|node| {
                if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                    found = Some(HashJoinExec::try_new(
                        Arc::clone(&join.left),
                        Arc::clone(&join.right),
                        join.on.clone(),
                        None,
                        &join.join_type,
                        // m.v, b.k: reordered, and not all of them.
                        Some(vec![3, 0]),
                        PartitionMode::Partitioned,
                        join.null_equality,
                        false,
                    ));
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        let join = found.expect("a hash join").unwrap();
        let merge = as_sort_merge(&join).unwrap().expect("replaced");
        assert_eq!(merge.schema(), join.schema());
        assert!(merge.downcast_ref::<ProjectionExec>().is_some());
        assert!(
            merge.children()[0]
                .downcast_ref::<SortMergeJoinExec>()
                .is_some()
        );
    }
}
