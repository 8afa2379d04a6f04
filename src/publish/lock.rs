//! One build at a time per target: `_lock.json`, created with a
//! conditional write (only if absent: `If-None-Match` on object stores, a
//! hard link on a local disk), names the build that holds it and when the
//! hold expires. The holder renews it while it runs; a lock whose holder is
//! gone (expired, or a dead process on this host, e.g. after `kill -9`) is
//! taken over, by a write conditional on the stale version where the store
//! has one, so no manual cleanup is ever needed. Before publishing, the
//! holder checks the lock is still its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VitalsError};
use crate::storage::Location;

pub const LOCK: &str = "_lock.json";

/// How long a hold lasts without renewal.
const EXPIRY: Duration = Duration::from_secs(120);
/// How often the holder renews it.
const RENEW: Duration = Duration::from_secs(30);
/// How often a waiting build looks again.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub build_id: String,
    pub pid: u32,
    pub host: String,
    /// RFC 3339, for people.
    pub started_at: String,
    /// Milliseconds since the epoch.
    pub expires_at_ms: i64,
}

fn expiry_from_now() -> i64 {
    Utc::now().timestamp_millis() + EXPIRY.as_millis() as i64
}

impl LockInfo {
    /// Nobody holds a lock that expired, or whose process on this host is
    /// gone.
    fn is_stale(&self) -> bool {
        Utc::now().timestamp_millis() > self.expires_at_ms
            || (self.host == host() && !process_alive(self.pid))
    }

    fn payload(&self) -> PutPayload {
        PutPayload::from(serde_json::to_vec_pretty(self).expect("lock info serializes"))
    }
}

/// A held lock. `release` removes it; dropped unreleased (a failed build),
/// a local lock is removed too, a remote one expires.
#[derive(Debug)]
pub struct Lock {
    location: Location,
    info: LockInfo,
    stop: Arc<AtomicBool>,
    released: bool,
}

/// What is at the lock's key.
enum Found {
    Absent,
    Held(LockInfo, UpdateVersion),
    /// Not a lock: written by something else, or half written by an old
    /// version; its age tells whether to wait or clear it.
    Unreadable(Duration),
}

impl Lock {
    /// Takes the lock of `location` for `build_id`. Fails at once, naming
    /// the running build, when another build holds it, unless `wait`.
    pub async fn acquire(location: &Location, build_id: &str, wait: bool) -> Result<Lock> {
        let key = location.key(LOCK);
        let store = location.store();
        let started_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        loop {
            let info = LockInfo {
                build_id: build_id.to_string(),
                pid: std::process::id(),
                host: host(),
                started_at: started_at.clone(),
                expires_at_ms: expiry_from_now(),
            };
            let created = store
                .put_opts(&key, info.payload(), PutOptions::from(PutMode::Create))
                .await;
            match created {
                Ok(r) => return Ok(Self::held(location, info, version_of(r))),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => {}
                Err(e) => return Err(location.error("cannot create the lock", LOCK, &e)),
            }
            match read(location).await? {
                Found::Held(held, version) if held.is_stale() => {
                    if let Some(v) = take_over(location, &held, version, &info).await? {
                        return Ok(Self::held(location, info, v));
                    }
                }
                Found::Held(held, _) if !wait => {
                    return Err(VitalsError::Busy(format!(
                        "the target {} is being built by build {} (pid {} on {}, started {}); \
                         try again when it ends, or pass --wait",
                        location.describe(""),
                        held.build_id,
                        held.pid,
                        held.host,
                        held.started_at,
                    )));
                }
                Found::Held(..) => tokio::time::sleep(POLL).await,
                Found::Absent => {}
                Found::Unreadable(age) if age > Duration::from_secs(5) => {
                    let _ = store.delete(&key).await;
                }
                Found::Unreadable(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    fn held(location: &Location, info: LockInfo, version: UpdateVersion) -> Lock {
        let stop = Arc::new(AtomicBool::new(false));
        renew_in_background(location.clone(), info.clone(), version, Arc::clone(&stop));
        Lock {
            location: location.clone(),
            info,
            stop,
            released: false,
        }
    }

    /// Fails if another build took the lock over (this one stalled past
    /// the expiry): then it must not publish.
    pub async fn check(&self) -> Result<()> {
        match read(&self.location).await? {
            Found::Held(held, _) if held.build_id == self.info.build_id => Ok(()),
            Found::Held(held, _) => Err(VitalsError::Busy(format!(
                "build {} lost the lock of {} to build {} (it stalled for more than {} s); nothing was published",
                self.info.build_id,
                self.location.describe(""),
                held.build_id,
                EXPIRY.as_secs()
            ))),
            _ => Err(VitalsError::Busy(format!(
                "build {} lost the lock {} (removed by someone else); nothing was published",
                self.info.build_id,
                self.location.describe(LOCK)
            ))),
        }
    }

    /// Removes the lock if it is still ours.
    pub async fn release(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.released = true;
        if let Ok(Found::Held(held, _)) = read(&self.location).await
            && held.build_id == self.info.build_id
        {
            let _ = self.location.store().delete(&self.location.key(LOCK)).await;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.released {
            return;
        }
        // No await in drop: a local lock is removed here; a remote one
        // expires (or its dead process is seen from this host).
        if let Some(root) = self.location.local_path() {
            let path = root.join(LOCK);
            let ours = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
                .is_some_and(|held| held.build_id == self.info.build_id);
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn version_of(r: object_store::PutResult) -> UpdateVersion {
    UpdateVersion {
        e_tag: r.e_tag,
        version: r.version,
    }
}

/// Replaces the stale hold `held` by ours; None if someone else was faster.
async fn take_over(
    location: &Location,
    held: &LockInfo,
    version: UpdateVersion,
    ours: &LockInfo,
) -> Result<Option<UpdateVersion>> {
    let key = location.key(LOCK);
    let replaced = location
        .store()
        .put_opts(
            &key,
            ours.payload(),
            PutOptions::from(PutMode::Update(version)),
        )
        .await;
    match replaced {
        Ok(r) => Ok(Some(version_of(r))),
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            Ok(None)
        }
        // A local disk has no conditional replace: remove the stale hold if
        // it is still the one we judged stale, and race to create anew.
        Err(object_store::Error::NotImplemented { .. }) => {
            if let Found::Held(now, _) = read(location).await?
                && &now == held
            {
                let _ = location.store().delete(&key).await;
            }
            Ok(None)
        }
        Err(e) => Err(location.error("cannot take over the stale lock", LOCK, &e)),
    }
}

/// The lock's content and version.
async fn read(location: &Location) -> Result<Found> {
    let key = location.key(LOCK);
    let found = match location.store().get(&key).await {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(Found::Absent),
        Err(e) => return Err(location.error("cannot read the lock", LOCK, &e)),
    };
    let meta = found.meta.clone();
    let bytes = match found.bytes().await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(Found::Absent),
        Err(e) => return Err(location.error("cannot read the lock", LOCK, &e)),
    };
    Ok(match serde_json::from_slice::<LockInfo>(&bytes) {
        Ok(info) => Found::Held(
            info,
            UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        ),
        Err(_) => {
            let age = (Utc::now() - meta.last_modified)
                .to_std()
                .unwrap_or(Duration::ZERO);
            Found::Unreadable(age)
        }
    })
}

/// Pushes the expiry forward while the build runs, by a write conditional
/// on our last version (a plain atomic replace on a local disk).
fn renew_in_background(
    location: Location,
    mut info: LockInfo,
    version: UpdateVersion,
    stop: Arc<AtomicBool>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        let key = location.key(LOCK);
        // Our lock object's last version: each renewal replaces exactly it.
        let mut version = version;
        loop {
            tokio::time::sleep(RENEW).await;
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match read(&location).await {
                Ok(Found::Held(held, _)) if held.build_id == info.build_id => {}
                // Lost (taken over after a stall): `check` will tell.
                Ok(_) => return,
                // The store did not answer: try again next time.
                Err(_) => continue,
            }
            info.expires_at_ms = expiry_from_now();
            let mode = PutMode::Update(version.clone());
            let put = location
                .store()
                .put_opts(&key, info.payload(), PutOptions::from(mode))
                .await;
            let put = match put {
                Err(object_store::Error::NotImplemented { .. }) => {
                    location.store().put(&key, info.payload()).await
                }
                other => other,
            };
            match put {
                Ok(r) => version = version_of(r),
                Err(object_store::Error::Precondition { .. }) => return,
                Err(_) => continue,
            }
        }
    });
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process of this host runs; where that cannot be told, it is
/// assumed to run (the expiry still frees the lock).
pub(crate) fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
