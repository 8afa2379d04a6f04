//! Running on DataFusion: the session, the sources registered as views, the
//! calendar relations, and the queries of models and tables.

pub mod calendar;
pub mod distinct_count;
pub mod session;
pub mod sources;
pub mod workdir;

pub use calendar::Range;
pub use session::{SessionOptions, apply_env_overrides, new_session};
pub use sources::{SourceLocations, SourceReport};
pub use workdir::WorkDir;
