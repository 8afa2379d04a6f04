//! What a build does: the selected output tables, and the models and
//! metrics they need, in dependency order.

mod build_plan;
pub mod dag;
mod skips;

pub use build_plan::{BuildPlan, SelectionError, metric_closure, metric_closure_cut, relations_of};
pub use skips::Skips;
