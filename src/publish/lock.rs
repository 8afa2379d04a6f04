//! One build at a time per target: `_lock.json`, created only if absent
//! (create-new, the local form of a conditional write), names the build
//! that holds it and when the hold expires. The holder renews it while it
//! runs; a lock whose holder is gone (expired, or a dead process on this
//! host, e.g. after `kill -9`) is taken over, so no manual cleanup is ever
//! needed. Before publishing, the holder checks the lock is still its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VitalsError};

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
}

/// A held lock; released (removed) when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    info: LockInfo,
    stop: Arc<AtomicBool>,
}

impl Lock {
    /// Takes the lock of `root` for `build_id`. Fails at once, naming the
    /// running build, when another build holds it, unless `wait`.
    pub async fn acquire(root: &Path, build_id: &str, wait: bool) -> Result<Lock> {
        let path = root.join(LOCK);
        let started_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        loop {
            let info = LockInfo {
                build_id: build_id.to_string(),
                pid: std::process::id(),
                host: host(),
                started_at: started_at.clone(),
                expires_at_ms: expiry_from_now(),
            };
            match create_new(&path, &info) {
                Ok(()) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    renew_in_background(path.clone(), info.clone(), Arc::clone(&stop));
                    return Ok(Lock { path, info, stop });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(VitalsError::data(
                        format!("cannot create the lock {}", path.display()),
                        e,
                    ));
                }
            }
            match read(&path) {
                Some(held) if held.is_stale() => {
                    // Take over only the hold we judged stale, not one a
                    // third build created meanwhile.
                    if read(&path).as_ref() == Some(&held) {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Some(held) if !wait => {
                    return Err(VitalsError::Busy(format!(
                        "the target {} is being built by build {} (pid {} on {}, started {}); \
                         try again when it ends, or pass --wait",
                        root.display(),
                        held.build_id,
                        held.pid,
                        held.host,
                        held.started_at,
                    )));
                }
                Some(_) => tokio::time::sleep(POLL).await,
                // Unreadable: being written this instant, or left half
                // written by a build killed while creating it.
                None => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > Duration::from_secs(5)) {
                        let _ = std::fs::remove_file(&path);
                    } else {
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        }
    }

    /// Fails if another build took the lock over (this one stalled past
    /// the expiry): then it must not publish.
    pub fn check(&self) -> Result<()> {
        match read(&self.path) {
            Some(held) if held.build_id == self.info.build_id => Ok(()),
            Some(held) => Err(VitalsError::Busy(format!(
                "build {} lost the lock of {} to build {} (it stalled for more than {} s); nothing was published",
                self.info.build_id,
                self.path.display(),
                held.build_id,
                EXPIRY.as_secs()
            ))),
            None => Err(VitalsError::Busy(format!(
                "build {} lost the lock {} (removed by someone else); nothing was published",
                self.info.build_id,
                self.path.display()
            ))),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if read(&self.path).is_some_and(|held| held.build_id == self.info.build_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the lock only if absent, whole: written beside it, then
/// hard-linked to its name (which fails if the name exists), so nobody
/// ever reads a half-written lock.
fn create_new(path: &Path, info: &LockInfo) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("json.{}", info.build_id));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(info).expect("lock info serializes"))?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// The lock's content; None when absent or not (yet) readable.
pub fn read(path: &Path) -> Option<LockInfo> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Pushes the expiry forward while the build runs (written beside and
/// renamed over, so readers never see half a lock).
fn renew_in_background(path: PathBuf, mut info: LockInfo, stop: Arc<AtomicBool>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            tokio::time::sleep(RENEW).await;
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if read(&path).is_none_or(|held| held.build_id != info.build_id) {
                return;
            }
            info.expires_at_ms = expiry_from_now();
            let tmp = path.with_extension(format!("json.{}", info.build_id));
            if std::fs::write(&tmp, serde_json::to_vec_pretty(&info).expect("serializes")).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
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
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
