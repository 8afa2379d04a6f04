use std::collections::BTreeSet;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::{Result, VitalsError};
use crate::storage::Location;

use super::manifest::{MANIFEST, Manifest};

/// Folder of the manifests of past builds, one `<build id>.json` each.
pub const HISTORY: &str = "_builds";

/// An output location and the build being written into it.
#[derive(Debug, Clone)]
pub struct Target {
    pub location: Location,
    pub build_id: String,
}

/// The published manifest as a build found it, with the store's version of
/// it: the build replaces exactly that version or nothing.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub manifest: Option<Manifest>,
    version: Option<UpdateVersion>,
}

impl Target {
    pub fn new(location: Location) -> Result<Self> {
        if let Some(root) = location.local_path() {
            std::fs::create_dir_all(root).map_err(|e| {
                VitalsError::data(format!("cannot create the target {}", root.display()), e)
            })?;
        }
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
        Ok(Self { location, build_id })
    }

    /// Folder of a table in this build, relative to the root.
    pub fn table_dir(&self, table: &str) -> String {
        format!("{table}/build-{}", self.build_id)
    }

    pub async fn read_manifest(location: &Location) -> Result<Option<Manifest>> {
        Ok(Self::published(location).await?.manifest)
    }

    /// The published manifest and its version (None when nothing is
    /// published yet).
    pub async fn published(location: &Location) -> Result<Published> {
        let found = match location.store().get(&location.key(MANIFEST)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(Published::default()),
            Err(e) => return Err(location.error("cannot read", MANIFEST, &e)),
        };
        let version = UpdateVersion {
            e_tag: found.meta.e_tag.clone(),
            version: found.meta.version.clone(),
        };
        let bytes = found
            .bytes()
            .await
            .map_err(|e| location.error("cannot read", MANIFEST, &e))?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| {
            VitalsError::data(format!("cannot parse {}", location.describe(MANIFEST)), e)
        })?;
        Ok(Published {
            manifest: Some(manifest),
            version: Some(version),
        })
    }

    /// Makes the build visible: the manifest is recorded in the build
    /// history (`_builds/<id>.json`), then put in place of `previous`, the
    /// version this build found when it took the lock: a conditional write
    /// where the store has one (it fails if anyone else published since),
    /// an atomic replace (write aside, rename) on a local disk. Readers see
    /// the old manifest or the new one, never a mix. Then keeps the `keep`
    /// newest builds of the history (and the one just replaced, which a
    /// reader may still be reading) and removes the rest.
    pub async fn publish(
        &self,
        manifest: &Manifest,
        keep: usize,
        previous: &Published,
    ) -> Result<GcReport> {
        let loc = &self.location;
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| VitalsError::data("manifest", e))?;
        let history = format!("{HISTORY}/{}.json", manifest.build_id);
        loc.store()
            .put(&loc.key(&history), PutPayload::from(json.clone()))
            .await
            .map_err(|e| loc.error("cannot record the build in", &history, &e))?;
        let mode = match &previous.version {
            Some(v) => PutMode::Update(v.clone()),
            None => PutMode::Create,
        };
        let key = loc.key(MANIFEST);
        let conditional = loc
            .store()
            .put_opts(&key, PutPayload::from(json.clone()), PutOptions::from(mode))
            .await;
        match conditional {
            Ok(_) => {}
            // A local disk has no conditional replace; the lock already
            // keeps other builds out, and the replace itself is atomic.
            Err(object_store::Error::NotImplemented { .. }) => {
                loc.store()
                    .put(&key, PutPayload::from(json))
                    .await
                    .map_err(|e| loc.error("cannot publish", MANIFEST, &e))?;
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                return Err(VitalsError::Busy(format!(
                    "build {}: {} changed while it ran (another build published there); nothing was published",
                    self.build_id,
                    loc.describe(MANIFEST)
                )));
            }
            Err(e) => return Err(loc.error("cannot publish", MANIFEST, &e)),
        }
        if let Some(root) = loc.local_path() {
            // The rename itself must survive a power cut: sync the folder.
            let _ = super::writer::sync_file(&root.join(MANIFEST));
            let _ = super::writer::sync_file(root);
        }
        Ok(Self::gc(loc, keep, previous.manifest.as_ref()).await)
    }

    /// Keeps the published build and the `keep - 1` builds before it in
    /// the history (plus `also`), and removes every other build folder,
    /// history entry and leftover of killed builds. Run under the lock.
    /// Best effort: what cannot be removed now is removed next time.
    pub async fn gc(loc: &Location, keep: usize, also: Option<&Manifest>) -> GcReport {
        let current = Self::read_manifest(loc).await.ok().flatten();
        let mut history: Vec<(String, object_store::path::Path)> = list(loc, HISTORY)
            .await
            .into_iter()
            .filter_map(|key| {
                let id = key.filename()?.strip_suffix(".json")?.to_string();
                Some((id, key))
            })
            .collect();
        history.sort_by(|a, b| b.0.cmp(&a.0));
        let published = current.as_ref().map(|m| m.build_id.clone());
        let mut kept: Vec<Manifest> = current.into_iter().chain(also.cloned()).collect();
        let mut report = GcReport::default();
        let mut n = 0;
        for (id, key) in history {
            // Newer than the published build: a build killed before it
            // published. Older than the kept ones: expired.
            let orphan = published.as_ref().is_some_and(|p| &id > p);
            let manifest = if !orphan && n < keep.max(1) {
                read_json::<Manifest>(loc, &key).await
            } else {
                None
            };
            match manifest {
                Some(m) => {
                    n += 1;
                    kept.push(m);
                }
                None => {
                    if loc.store().delete(&key).await.is_ok() {
                        report.history_removed += 1;
                    }
                }
            }
        }
        let keep_dirs: BTreeSet<String> = kept
            .iter()
            .flat_map(|m| m.tables.values().flat_map(|t| t.files.iter()))
            .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        report.builds_kept = kept
            .iter()
            .map(|m| m.build_id.clone())
            .collect::<BTreeSet<_>>()
            .len();
        let mut removed = BTreeSet::new();
        for key in list(loc, "").await {
            let Some(relative) = loc.relative(&key) else {
                continue;
            };
            let parts: Vec<&str> = relative.split('/').collect();
            let leftover = parts.len() == 1
                && (parts[0].starts_with(&format!(".{MANIFEST}."))
                    || parts[0].starts_with(&format!("{}.", super::LOCK)));
            if leftover {
                let _ = loc.store().delete(&key).await;
                continue;
            }
            if parts.len() < 3 || !parts[1].starts_with("build-") {
                continue;
            }
            let dir = format!("{}/{}", parts[0], parts[1]);
            if !keep_dirs.contains(&dir) && loc.store().delete(&key).await.is_ok() {
                removed.insert(dir);
            }
        }
        if let Some(root) = loc.local_path() {
            // Folders a listing does not show: emptied ones, or holding
            // only the half-written file of a killed build.
            removed.extend(remove_unlisted_local_builds(root, &keep_dirs));
            remove_stale_staging_files(root);
            remove_stale_staging_files(&root.join(HISTORY));
        }
        report.folders_removed = removed.len();
        report
    }
}

/// Every key below `relative` (all of the location when empty).
async fn list(loc: &Location, relative: &str) -> Vec<object_store::path::Path> {
    let prefix = loc.key(relative);
    loc.store()
        .list(Some(&prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap_or_default()
}

async fn read_json<T: serde::de::DeserializeOwned>(
    loc: &Location,
    key: &object_store::path::Path,
) -> Option<T> {
    let bytes = loc.store().get(key).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a garbage collection did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcReport {
    pub builds_kept: usize,
    pub folders_removed: usize,
    pub history_removed: usize,
}

/// Removes what a killed write left in `dir`: the local store writes each
/// file aside as `<name>#<n>` and renames it into place. Only old ones: a
/// waiting build may be writing its lock this instant.
fn remove_stale_staging_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let staging = name
            .rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        if staging && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes local `build-*` folders not in `keep` that the store's listing
/// cannot see; returns them.
fn remove_unlisted_local_builds(root: &std::path::Path, keep: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(tables) = std::fs::read_dir(root) else {
        return removed;
    };
    for table in tables.flatten() {
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
                removed.push(rel);
            }
        }
    }
    removed
}
