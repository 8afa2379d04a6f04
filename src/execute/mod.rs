//! Running on DataFusion: the session, the sources registered as views, the
//! calendar relations, and the queries of models and tables.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;

pub mod calendar;
pub mod distinct_count;
pub mod entity_slices;
mod group_state;
pub mod late_bound;
pub mod ordered_first_last;
pub mod pending;
pub mod period_start;
pub mod pool;
pub mod score_arithmetic;
pub mod session;
pub mod single_phase_aggregates;
pub mod sources;
pub mod spillable_joins;
#[cfg(test)]
mod test_rows;
pub mod text_min_max;
pub mod utc_day;
pub mod workdir;

pub use calendar::Range;
pub use session::{SessionOptions, apply_env_overrides, new_session};
pub use sources::{SourceLocations, SourceReport};
pub use workdir::WorkDir;

/// Registers our deliberate exceptions to "DataFusion's built-ins only" on
/// a session: `count` with a groups accumulator for DISTINCT text and dates
/// ([`distinct_count`]), `min` and `max` of text keeping a string view per
/// group ([`text_min_max`]), `first_value`/`last_value` with ORDER BY
/// keeping rows in Arrow's row format ([`ordered_first_last`]), the day of
/// a UTC timestamp by integer division ([`utc_day`]), and the first day of
/// a DATE's week, month, quarter or year by integer arithmetic
/// ([`period_start`]), and the arithmetic of a score's rows without CASE
/// ([`score_arithmetic`]). Every session that runs catalog SQL (build, serve,
/// query) gets them all, so a query gives the same plan wherever it runs.
pub fn register_exceptions(ctx: &datafusion::prelude::SessionContext) {
    distinct_count::register(ctx);
    text_min_max::register(ctx);
    ordered_first_last::register(ctx);
    // Before utc_day: it would rewrite the cast that period_start matches.
    period_start::register(ctx);
    utc_day::register(ctx);
    score_arithmetic::register(ctx);
}

/// What our physical optimizer rules share: `plan` with each node, from the
/// leaves up, replaced by what `rewrite` returns for it (`None` keeps it).
fn replace_nodes(
    plan: Arc<dyn ExecutionPlan>,
    rewrite: impl Fn(&Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| match rewrite(&node)? {
        Some(replacement) => Ok(Transformed::yes(replacement)),
        None => Ok(Transformed::no(node)),
    })
    .data()
}

/// Our logical optimizer rules: each rewrites expressions, one at a time,
/// wherever they stand in a plan. `rewrite` gets an expression and the
/// schema of its node's inputs, and is applied from the leaves up to every
/// expression of every node, bottom-up through the plan. The rewritten
/// expression keeps its name, so the node's output schema does not change
/// under its parent. A scan is left alone: its pushed-down filters serve
/// pruning, which understands the expressions we rewrite and not their
/// replacements; and a node without inputs has no columns to rewrite.
#[derive(Debug)]
struct ExpressionRule {
    name: &'static str,
    rewrite: fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
}

impl OptimizerRule for ExpressionRule {
    fn name(&self) -> &str {
        self.name
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if matches!(plan, LogicalPlan::TableScan(_)) || plan.inputs().is_empty() {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            if matches!(expr, Expr::GroupingSet(_)) {
                return Ok(Transformed::no(expr));
            }
            let name = names.save(&expr);
            let out = expr.transform_up(|e| (self.rewrite)(e, &schema))?;
            Ok(if out.transformed {
                Transformed::yes(name.restore(out.data))
            } else {
                out
            })
        })
    }
}
