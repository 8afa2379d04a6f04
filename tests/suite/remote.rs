//! What the tests of object-store targets share (S3 in `s3.rs`, Azure and
//! GCS in `azure_gcs.rs`): generated data, real `vitals` processes with a
//! store's environment, and reading a published build back from the store
//! to compare it with a build on disk.
//!
//! A store is a [`Remote`]: a real server started by the tests (SeaweedFS,
//! Azurite, fake-gcs-server), never a mock.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::ChunkReader;
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use vitals::publish::{LockInfo, Manifest};

pub use super::common::Sample;
use super::common::close;
use super::seaweed::{Seaweed, block_on};

/// How long any one `vitals` process may take before the test gives up.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(180);

/// A bucket (or container) of a running server, and how to reach it.
pub trait Remote {
    /// `scheme://bucket/key`
    fn url(&self, key: &str) -> String;

    /// A client of the bucket.
    fn client(&self) -> Arc<dyn ObjectStore>;

    /// What a `vitals` process needs in its environment to reach it.
    fn vars(&self) -> Vec<(String, String)>;

    /// Puts every file under `local` at `prefix/<relative path>`.
    fn upload_dir(&self, local: &Path, prefix: &str);

    /// The object at `key`, if there is one.
    fn try_download(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.client();
        let key = Key::from(key);
        block_on(async move {
            match store.get(&key).await {
                Ok(got) => Some(
                    got.bytes()
                        .await
                        .unwrap_or_else(|e| panic!("reading {key}: {e}"))
                        .to_vec(),
                ),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("getting {key}: {e}"),
            }
        })
    }

    /// The object at `key`; panics if there is none.
    fn download(&self, key: &str) -> Vec<u8> {
        self.try_download(key)
            .unwrap_or_else(|| panic!("no object {}", self.url(key)))
    }

    /// The keys under `prefix`, sorted.
    fn try_list(&self, prefix: &str) -> Result<Vec<String>, object_store::Error> {
        let store = self.client();
        let prefix = Key::from(prefix);
        block_on(async move {
            let mut keys: Vec<String> = store
                .list(Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await?;
            keys.sort();
            Ok(keys)
        })
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        self.try_list(prefix)
            .unwrap_or_else(|e| panic!("listing {}: {e}", self.url(prefix)))
    }
}

impl Remote for Seaweed {
    fn url(&self, key: &str) -> String {
        Seaweed::url(self, key)
    }

    fn client(&self) -> Arc<dyn ObjectStore> {
        self.store()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.env()
    }

    fn upload_dir(&self, local: &Path, prefix: &str) {
        Seaweed::upload_dir(self, local, prefix)
    }
}

impl Sample {
    /// Uploads the data under `prefix/` and returns its URL.
    pub fn upload(&self, remote: &impl Remote, prefix: &str) -> String {
        remote.upload_dir(&self.data(), prefix);
        remote.url(prefix)
    }
}

/// Variables through which a store client finds credentials or endpoints:
/// none of the environment the tests run in reaches `vitals`.
const STORE_VARIABLES: &[&str] = &[
    "AWS_",
    "AZURE_",
    "AZURITE_",
    "GOOGLE_",
    "SERVICE_ACCOUNT",
    "IDENTITY_ENDPOINT",
];

/// `vitals` with the store's environment (and no store variable of the
/// environment the tests run in).
pub fn vitals(remote: &impl Remote) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vitals"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if STORE_VARIABLES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(remote.vars());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `build --catalog C --data DATA --target TARGET --as-of 2025-12-31 -q`
pub fn build_args(catalog: &Path, data: &str, target: &str, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--catalog".into(),
        catalog.display().to_string(),
        "--data".into(),
        data.into(),
        "--target".into(),
        target.into(),
        "--as-of".into(),
        "2025-12-31".into(),
        "-q".into(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// A finished process.
pub struct Done {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Done {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// For assertion messages.
    pub fn show(&self) -> String {
        format!(
            "exit {:?} after {:.1?}\n--- stderr:\n{}\n--- stdout:\n{}",
            self.code, self.elapsed, self.stderr, self.stdout
        )
    }

    /// None of `secrets` was printed.
    pub fn assert_hides(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.stderr.contains(secret) && !self.stdout.contains(secret),
                "a secret was printed:\n{}",
                self.show()
            );
        }
    }
}

pub fn run(cmd: Command) -> Done {
    finish(spawn(cmd), PROCESS_LIMIT)
}

/// A running process and when it started.
pub struct Proc {
    pub child: Child,
    pub started: Instant,
}

pub fn spawn(mut cmd: Command) -> Proc {
    Proc {
        started: Instant::now(),
        child: cmd.spawn().expect("start vitals"),
    }
}

impl Proc {
    /// Fails (with its stderr) if the process ended: it was meant to be
    /// still running.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = self.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("{what} ({status}):\n{stderr}");
        }
    }
}

/// Waits for a process at most `limit` (then kills it and fails), reading
/// its output meanwhile.
pub fn finish(proc: Proc, limit: Duration) -> Done {
    let Proc { mut child, started } = proc;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).to_string()
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let done = Done {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed: started.elapsed(),
    };
    assert!(
        status.is_some(),
        "vitals still ran after {limit:?}: killed\n{}",
        done.show()
    );
    done
}

/// The published manifest under `out`, as stored and parsed.
pub fn manifest(remote: &impl Remote, out: &str) -> Option<(Vec<u8>, Manifest)> {
    let bytes = remote.try_download(&format!("{out}/_manifest.json"))?;
    let m = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{}/_manifest.json is not a whole manifest: {e}\n{}",
            remote.url(out),
            String::from_utf8_lossy(&bytes)
        )
    });
    Some((bytes, m))
}

/// The build ids of the history `out/_builds/<id>.json`.
pub fn history(remote: &impl Remote, out: &str) -> BTreeSet<String> {
    let prefix = format!("{out}/_builds/");
    remote
        .list(&prefix)
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json"))
        .map(str::to_string)
        .collect()
}

/// The lock object under `out`, when one is there and whole.
pub fn lock(remote: &impl Remote, out: &str) -> Option<LockInfo> {
    let bytes = remote.try_download(&format!("{out}/_lock.json"))?;
    serde_json::from_slice(&bytes).ok()
}

pub fn parquet<R: ChunkReader + 'static>(reader: R, what: &str) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(reader)
        .unwrap_or_else(|e| panic!("{what} is not whole Parquet: {e}"))
        .build()
        .unwrap()
        .map(|b| b.unwrap_or_else(|e| panic!("{what}: {e}")))
        .collect()
}

/// The batches of a published Parquet file on the server.
pub fn remote_parquet(remote: &impl Remote, key: &str) -> Vec<RecordBatch> {
    let store = remote.client();
    let path = Key::from(key);
    let bytes = block_on(async move {
        let got = store.get(&path).await?;
        got.bytes().await
    })
    .unwrap_or_else(|e| panic!("{} listed but unreadable: {e}", remote.url(key)));
    parquet(bytes, &remote.url(key))
}

pub fn local_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{} listed but unreadable: {e}", path.display()));
    parquet(file, &path.display().to_string())
}

/// Every file the manifest lists is on the server, of this build, whole
/// Parquet, and the tables hold the rows it says.
pub fn assert_consistent(remote: &impl Remote, out: &str, m: &Manifest) {
    assert!(!m.tables.is_empty(), "a manifest without tables");
    for (name, t) in &m.tables {
        let mut rows = 0u64;
        for f in &t.files {
            assert!(
                f.contains(&format!("build-{}/", m.build_id)),
                "{name}: {f} is not of build {}",
                m.build_id
            );
            for b in remote_parquet(remote, &format!("{out}/{f}")) {
                rows += b.num_rows() as u64;
            }
        }
        assert_eq!(rows, t.rows, "{name}: rows in the files vs the manifest");
    }
}

/// The build published at `out` on the store holds the same tables, with
/// the same schemas and rows, as the build published in the local folder
/// `local_out`.
pub fn assert_matches_local(remote: &impl Remote, out: &str, local_out: &Path) {
    let local_m: Manifest =
        serde_json::from_slice(&std::fs::read(local_out.join("_manifest.json")).unwrap()).unwrap();
    let (_, remote_m) = manifest(remote, out)
        .unwrap_or_else(|| panic!("no manifest published to {}", remote.url(out)));
    let names = |m: &Manifest| m.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&remote_m), names(&local_m), "published tables");
    for (name, l) in &local_m.tables {
        let r = &remote_m.tables[name];
        assert_eq!(r.rows, l.rows, "{name}: rows");
        assert_eq!(r.schema, l.schema, "{name}: schema in the manifest");
        let local_batches: Vec<RecordBatch> = l
            .files
            .iter()
            .flat_map(|f| local_parquet(&local_out.join(f)))
            .collect();
        let remote_batches: Vec<RecordBatch> = r
            .files
            .iter()
            .flat_map(|f| remote_parquet(remote, &format!("{out}/{f}")))
            .collect();
        let (l, r) = (contents(&local_batches), contents(&remote_batches));
        assert_eq!(r.columns, l.columns, "{name}: Parquet schema");
        assert_eq!(r.rows.len(), l.rows.len(), "{name}: rows read");
        for (i, (lr, rr)) in l.rows.iter().zip(&r.rows).enumerate() {
            assert!(
                lr.iter().zip(rr).all(|(a, b)| a.same(b)),
                "{name}: row {i} differs\n local: {lr:?}\nremote: {rr:?}"
            );
        }
    }
}

/// A value of a table, for comparing two builds of it.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Float(f64),
    Other(String),
}

impl Cell {
    /// A sort key: floats to 9 digits, so that two builds that sum in
    /// different orders still sort their rows alike.
    fn key(&self) -> String {
        match self {
            Cell::Null => "\u{0}".into(),
            Cell::Float(v) => format!("{v:.9e}"),
            Cell::Other(s) => s.clone(),
        }
    }

    pub fn same(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Float(a), Cell::Float(b)) => {
                (a.is_nan() && b.is_nan()) || a == b || close(*a, *b)
            }
            (Cell::Other(a), Cell::Other(b)) => a == b,
            _ => false,
        }
    }
}

/// A table's columns (name, type, nullable) and its rows, sorted.
pub struct Contents {
    pub columns: Vec<(String, DataType, bool)>,
    pub rows: Vec<Vec<Cell>>,
}

pub fn contents(batches: &[RecordBatch]) -> Contents {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for b in batches {
        let schema: Vec<(String, DataType, bool)> = b
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        if columns.is_empty() {
            columns = schema.clone();
        }
        assert_eq!(columns, schema, "files of one table disagree on the schema");
        let cells: Vec<Box<dyn Fn(usize) -> Cell>> = b
            .columns()
            .iter()
            .map(|c| -> Box<dyn Fn(usize) -> Cell> {
                match c.data_type() {
                    DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                        let c = cast(c, &DataType::Float64).unwrap();
                        Box::new(move |r| {
                            if c.is_null(r) {
                                Cell::Null
                            } else {
                                Cell::Float(c.as_primitive::<Float64Type>().value(r))
                            }
                        })
                    }
                    _ => {
                        let c = c.clone();
                        Box::new(move |r| {
                            if c.is_null(r) {
                                Cell::Null
                            } else {
                                Cell::Other(array_value_to_string(&c, r).unwrap())
                            }
                        })
                    }
                }
            })
            .collect();
        for r in 0..b.num_rows() {
            rows.push(cells.iter().map(|cell| cell(r)).collect::<Vec<_>>());
        }
    }
    rows.sort_by_cached_key(|row| row.iter().map(Cell::key).collect::<Vec<_>>());
    Contents { columns, rows }
}

/// The one number of a `vitals query` result table.
pub fn single_number(stdout: &str) -> u64 {
    let cells: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').trim())
        .collect();
    assert_eq!(cells.len(), 2, "a header and one value expected:\n{stdout}");
    cells[1]
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {}\n{stdout}", cells[1]))
}

/// Polls `what` every 50 ms until it returns something, for at most
/// `limit`; fails with `context()` then.
pub fn poll<T>(
    limit: Duration,
    mut what: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = what() {
            return v;
        }
        assert!(started.elapsed() < limit, "{}", context());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the build `proc` writes files of its own under `out`: a
/// `build-<id>/` folder of none of the builds `not`.
pub fn wait_until_writing(
    remote: &impl Remote,
    out: &str,
    proc: &mut Proc,
    not: &[&str],
) -> String {
    poll(
        Duration::from_secs(90),
        || {
            proc.assert_running("the build ended before it wrote a file");
            remote.try_list(out).ok()?.into_iter().find(|k| {
                k.contains("/build-") && !not.iter().any(|id| k.contains(&format!("build-{id}/")))
            })
        },
        || format!("the build wrote no file under {}", remote.url(out)),
    )
}

/// The lock of a build other than `not`, once it appears.
pub fn wait_for_lock(remote: &impl Remote, out: &str, proc: &mut Proc, not: &[&str]) -> LockInfo {
    poll(
        Duration::from_secs(60),
        || {
            proc.assert_running("the build ended before it was seen holding the lock");
            lock(remote, out).filter(|l| !not.contains(&l.build_id.as_str()))
        },
        || format!("no build took the lock of {}", remote.url(out)),
    )
}

/// The store honours conditional puts as the lock and the manifest need:
/// a second create of a key fails, an update with the current version
/// succeeds and one with a stale version fails, leaving the object alone.
pub fn assert_conditional_puts(store: Arc<dyn ObjectStore>) {
    let report = block_on(async move {
        let key = Key::from("harness/conditional");
        let create = || PutOptions::from(PutMode::Create);
        let first = store
            .put_opts(&key, PutPayload::from_static(b"one"), create())
            .await
            .expect("a first create");
        let second = store
            .put_opts(&key, PutPayload::from_static(b"two"), create())
            .await;
        let version = || {
            PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag: first.e_tag.clone(),
                version: first.version.clone(),
            }))
        };
        let updated = store
            .put_opts(&key, PutPayload::from_static(b"three"), version())
            .await;
        let stale = store
            .put_opts(&key, PutPayload::from_static(b"four"), version())
            .await;
        let now = store.get(&key).await.unwrap().bytes().await.unwrap();
        (first, second, updated, stale, now.to_vec())
    });
    let (first, second, updated, stale, now) = report;
    assert!(first.e_tag.is_some(), "no ETag on a put: {first:?}");
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "a second If-None-Match: * put: {second:?}"
    );
    assert!(
        updated.is_ok(),
        "an If-Match put with the current ETag: {updated:?}"
    );
    assert!(
        matches!(stale, Err(object_store::Error::Precondition { .. })),
        "an If-Match put with a stale ETag: {stale:?}"
    );
    assert_eq!(now, b"three", "what the conditional puts left");
}
