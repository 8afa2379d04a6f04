use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::{Result, VitalsError};

use super::manifest::{MANIFEST, Manifest};

/// A local output folder and the build being written into it.
#[derive(Debug, Clone)]
pub struct Target {
    pub root: PathBuf,
    pub build_id: String,
}

impl Target {
    pub fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| {
            VitalsError::data(format!("cannot create the target {}", root.display()), e)
        })?;
        // Sortable by time; the process id and a counter keep two builds
        // started in the same millisecond apart.
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Utc::now();
        let build_id = format!(
            "{}-{}-{n}",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        );
        Ok(Self {
            root: root.to_path_buf(),
            build_id,
        })
    }

    /// Folder of a table in this build, relative to the root.
    pub fn table_dir(&self, table: &str) -> String {
        format!("{table}/build-{}", self.build_id)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn read_manifest(root: &Path) -> Result<Option<Manifest>> {
        let path = root.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VitalsError::data(format!("cannot parse {}", path.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VitalsError::data(
                format!("cannot read {}", path.display()),
                e,
            )),
        }
    }

    /// Makes the build visible: the manifest is written beside the old one
    /// and renamed over it, which readers see as one change. Then removes
    /// the build folders that neither this nor the previous manifest lists.
    pub fn publish(&self, manifest: &Manifest) -> Result<()> {
        let previous = Self::read_manifest(&self.root).ok().flatten();
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| VitalsError::data("manifest", e))?;
        let tmp = self.root.join(format!(".{MANIFEST}.{}", self.build_id));
        let fail = |e: std::io::Error| {
            VitalsError::data(
                format!("cannot publish the manifest in {}", self.root.display()),
                e,
            )
        };
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(fail)?;
            f.write_all(&json).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, self.root.join(MANIFEST)).map_err(fail)?;
        // The rename itself must survive a power cut: sync the folder.
        if let Ok(dir) = std::fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        let keep: Vec<String> = std::iter::once(manifest)
            .chain(previous.as_ref())
            .flat_map(|m| m.tables.values().flat_map(|t| t.files.iter()))
            .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        self.remove_unlisted_builds(&keep);
        Ok(())
    }

    /// Removes `build-*` folders not in `keep`, also those of failed or
    /// killed builds, and the temporary files such builds left at the
    /// root. Runs under the target's lock, so no other build is writing.
    /// Best effort: what cannot be removed now is removed next time.
    fn remove_unlisted_builds(&self, keep: &[String]) {
        let Ok(tables) = std::fs::read_dir(&self.root) else {
            return;
        };
        for table in tables.flatten() {
            let name = table.file_name().to_string_lossy().to_string();
            let leftover = name.starts_with(&format!(".{MANIFEST}."))
                || name.starts_with(&format!("{}.", super::LOCK));
            if leftover && table.path().is_file() {
                let _ = std::fs::remove_file(table.path());
                continue;
            }
            let Ok(builds) = std::fs::read_dir(table.path()) else {
                continue;
            };
            for build in builds.flatten() {
                let name = build.file_name().to_string_lossy().to_string();
                let rel = format!("{}/{name}", table.file_name().to_string_lossy());
                if name.starts_with("build-") && !keep.contains(&rel) {
                    let _ = std::fs::remove_dir_all(build.path());
                }
            }
        }
    }
}
