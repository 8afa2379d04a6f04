//! A build's private local folder for the results of its models, which are
//! written once as Parquet and read back by the queries that need them:
//! unlike an in-memory cache, that keeps a large build within the memory
//! limit. Removed when the build ends; what a killed build left is removed
//! by the next one.

use std::path::{Path, PathBuf};

use crate::error::{Result, VitalsError};

const PREFIX: &str = "vitals-work-";

#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// A new folder under the system's temporary folder (`TMPDIR`).
    pub fn new() -> Result<WorkDir> {
        let base = std::env::temp_dir();
        remove_orphans(&base);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = base.join(format!("{PREFIX}{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| {
            VitalsError::data(
                format!("cannot create the work folder {}", path.display()),
                e,
            )
        })?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the work folders of builds whose process is gone (where that
/// cannot be told, they stay until the system cleans its temporary folder).
fn remove_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::publish::lock::process_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
