//! Publishing a build: every table is written under a folder of its own
//! build (`<target>/<table>/build-<id>/`), where no reader looks, and the
//! build becomes visible at once when `_manifest.json`, which lists exactly
//! its files, is replaced. A failed build leaves the previous manifest, and
//! so the previous build, untouched. One build at a time writes a target
//! (`lock`).

pub(crate) mod lock;
pub mod manifest;
mod read;
mod target;
mod writer;

pub use lock::{LOCK, Lock, LockInfo};
pub use manifest::{Manifest, TableEntry};
pub use read::published_tables;
pub use target::{GcReport, HISTORY, Published, Target};
pub use writer::{write_files, write_table};
