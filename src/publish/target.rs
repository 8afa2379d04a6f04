use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::{Result, VitalsError};

use super::manifest::{MANIFEST, Manifest};

/// Folder of the manifests of past builds, one `<build id>.json` each.
pub const HISTORY: &str = "_builds";

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

    /// Makes the build visible: the manifest is recorded in the build
    /// history (`_builds/<id>.json`), then written beside the old one and
    /// renamed over it, which readers see as one change. Then keeps the
    /// `keep` newest builds of the history (and the one just replaced,
    /// which a reader may still be reading) and removes the rest.
    pub fn publish(&self, manifest: &Manifest, keep: usize) -> Result<GcReport> {
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
        let write_synced = |path: &Path| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(path)?;
            f.write_all(&json)?;
            f.sync_all()
        };
        std::fs::create_dir_all(self.root.join(HISTORY)).map_err(fail)?;
        write_synced(&self.history_path(&manifest.build_id)).map_err(fail)?;
        write_synced(&tmp).map_err(fail)?;
        std::fs::rename(&tmp, self.root.join(MANIFEST)).map_err(fail)?;
        // The rename itself must survive a power cut: sync the folder.
        if let Ok(dir) = std::fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        Ok(Self::gc(&self.root, keep, previous.as_ref()))
    }

    fn history_path(&self, build_id: &str) -> PathBuf {
        self.root.join(HISTORY).join(format!("{build_id}.json"))
    }

    /// Keeps the published build and the `keep - 1` builds before it in
    /// the history (plus `also`), and removes every other build folder,
    /// history entry and leftover of killed builds. Run under the lock.
    pub fn gc(root: &Path, keep: usize, also: Option<&Manifest>) -> GcReport {
        let current = Self::read_manifest(root).ok().flatten();
        let mut history: Vec<(String, PathBuf)> = std::fs::read_dir(root.join(HISTORY))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_suffix(".json")
                    .map(|id| (id.to_string(), e.path()))
            })
            .collect();
        history.sort_by(|a, b| b.0.cmp(&a.0));
        let published = current.as_ref().map(|m| m.build_id.clone());
        let mut kept: Vec<Manifest> = current.into_iter().chain(also.cloned()).collect();
        let mut report = GcReport::default();
        let mut n = 0;
        for (id, path) in history {
            // Newer than the published build: a build killed before it
            // published. Older than the kept ones: expired.
            let orphan = published.as_ref().is_some_and(|p| &id > p);
            let wanted = !orphan && n < keep.max(1);
            let manifest = wanted
                .then(|| std::fs::read(&path).ok())
                .flatten()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
            match manifest {
                Some(m) => {
                    n += 1;
                    kept.push(m);
                }
                None => {
                    if std::fs::remove_file(&path).is_ok() {
                        report.history_removed += 1;
                    }
                }
            }
        }
        let keep_dirs: Vec<String> = kept
            .iter()
            .flat_map(|m| m.tables.values().flat_map(|t| t.files.iter()))
            .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        report.builds_kept = kept
            .iter()
            .map(|m| m.build_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        report.folders_removed = remove_unlisted_builds(root, &keep_dirs);
        report
    }
}

/// What a garbage collection did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcReport {
    pub builds_kept: usize,
    pub folders_removed: usize,
    pub history_removed: usize,
}

/// Removes `build-*` folders not in `keep`, also those of failed or killed
/// builds, and the temporary files such builds left at the root; returns
/// how many folders went. Runs under the target's lock, so no other build
/// is writing. Best effort: what cannot be removed now is removed next time.
fn remove_unlisted_builds(root: &Path, keep: &[String]) -> usize {
    let mut removed = 0;
    {
        let Ok(tables) = std::fs::read_dir(root) else {
            return 0;
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
                if name.starts_with("build-")
                    && !keep.contains(&rel)
                    && std::fs::remove_dir_all(build.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    removed
}
