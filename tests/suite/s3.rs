//! Sources and targets on S3: real `vitals` processes against a real
//! S3-compatible server (SeaweedFS, see `seaweed.rs`) that checks request
//! signatures. A build from S3 gives what a build from disk gives; wrong
//! credentials, a server that goes away, racing and killed builds never
//! leave a half-published target and never print a secret.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::ChunkReader;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use vitals::publish::{LockInfo, Manifest};

use super::common::{catalog_variant, close, shipped_catalog};
use super::seaweed::{SECRET_KEY, Seaweed, block_on, shared};

/// A secret that does not match the server's.
const WRONG_SECRET: &str = "wrong-secret-never-print-9876";

/// Storage settings that give up within seconds once the server is gone.
const FAIL_FAST: &str = "\n[storage]\nretries = 1\nretry_timeout_seconds = 5\n\
                         request_timeout_seconds = 10\nconnect_timeout_seconds = 2\n";

/// How long any one `vitals` process may take before the test gives up.
const PROCESS_LIMIT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------- helpers

/// Generated sample data (400 customers) in a folder of its own.
struct Sample {
    dir: tempfile::TempDir,
}

impl Sample {
    fn new() -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args(["generate", "--customers", "400", "--out"])
            .arg(dir.path().join("data"))
            .output()
            .expect("run vitals generate");
        assert!(
            out.status.success(),
            "vitals generate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sample { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Uploads the data under `prefix/` and returns its `s3://` URL.
    fn upload(&self, sw: &Seaweed, prefix: &str) -> String {
        sw.upload_dir(&self.data(), prefix);
        sw.url(prefix)
    }
}

/// `vitals` with the server's credentials and endpoint (and no AWS_
/// variable of the environment the tests run in).
fn vitals(sw: &Seaweed) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vitals"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(sw.env());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `build --catalog C --data DATA --target TARGET --as-of 2025-12-31 -q`
fn build_args(catalog: &Path, data: &str, target: &str, more: &[&str]) -> Vec<String> {
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
struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Done {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// For assertion messages.
    fn show(&self) -> String {
        format!(
            "exit {:?} after {:.1?}\n--- stderr:\n{}\n--- stdout:\n{}",
            self.code, self.elapsed, self.stderr, self.stdout
        )
    }

    /// Neither the server's secret nor a wrong one was printed.
    fn assert_no_secret(&self) {
        for secret in [SECRET_KEY, WRONG_SECRET] {
            assert!(
                !self.stderr.contains(secret) && !self.stdout.contains(secret),
                "a secret was printed:\n{}",
                self.show()
            );
        }
    }
}

fn run(cmd: Command) -> Done {
    finish(spawn(cmd), PROCESS_LIMIT)
}

/// A running process and when it started.
struct Proc {
    child: Child,
    started: Instant,
}

fn spawn(mut cmd: Command) -> Proc {
    Proc {
        started: Instant::now(),
        child: cmd.spawn().expect("start vitals"),
    }
}

impl Proc {
    /// Fails (with its stderr) if the process ended: it was meant to be
    /// still running.
    fn assert_running(&mut self, what: &str) {
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
fn finish(proc: Proc, limit: Duration) -> Done {
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
fn manifest(sw: &Seaweed, out: &str) -> Option<(Vec<u8>, Manifest)> {
    let bytes = sw.try_download(&format!("{out}/_manifest.json"))?;
    let m = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{}/_manifest.json is not a whole manifest: {e}\n{}",
            sw.url(out),
            String::from_utf8_lossy(&bytes)
        )
    });
    Some((bytes, m))
}

/// The build ids of the history `out/_builds/<id>.json`.
fn history(sw: &Seaweed, out: &str) -> BTreeSet<String> {
    let prefix = format!("{out}/_builds/");
    sw.list(&prefix)
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json"))
        .map(str::to_string)
        .collect()
}

/// The lock object under `out`, when one is there and whole.
fn lock(sw: &Seaweed, out: &str) -> Option<LockInfo> {
    let bytes = sw.try_download(&format!("{out}/_lock.json"))?;
    serde_json::from_slice(&bytes).ok()
}

fn parquet<R: ChunkReader + 'static>(reader: R, what: &str) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(reader)
        .unwrap_or_else(|e| panic!("{what} is not whole Parquet: {e}"))
        .build()
        .unwrap()
        .map(|b| b.unwrap_or_else(|e| panic!("{what}: {e}")))
        .collect()
}

/// The batches of a published Parquet file on the server.
fn s3_parquet(sw: &Seaweed, key: &str) -> Vec<RecordBatch> {
    let store = sw.store();
    let path = Key::from(key);
    let bytes = block_on(async move {
        let got = store.get(&path).await?;
        got.bytes().await
    })
    .unwrap_or_else(|e| panic!("{} listed but unreadable: {e}", sw.url(key)));
    parquet(bytes, &sw.url(key))
}

fn local_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{} listed but unreadable: {e}", path.display()));
    parquet(file, &path.display().to_string())
}

/// Every file the manifest lists is on the server, of this build, whole
/// Parquet, and the tables hold the rows it says.
fn assert_consistent(sw: &Seaweed, out: &str, m: &Manifest) {
    assert!(!m.tables.is_empty(), "a manifest without tables");
    for (name, t) in &m.tables {
        let mut rows = 0u64;
        for f in &t.files {
            assert!(
                f.contains(&format!("build-{}/", m.build_id)),
                "{name}: {f} is not of build {}",
                m.build_id
            );
            for b in s3_parquet(sw, &format!("{out}/{f}")) {
                rows += b.num_rows() as u64;
            }
        }
        assert_eq!(rows, t.rows, "{name}: rows in the files vs the manifest");
    }
}

/// A value of a table, for comparing two builds of it.
#[derive(Debug, Clone)]
enum Cell {
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

    fn same(&self, other: &Cell) -> bool {
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
struct Contents {
    columns: Vec<(String, DataType, bool)>,
    rows: Vec<Vec<Cell>>,
}

fn contents(batches: &[RecordBatch]) -> Contents {
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
fn single_number(stdout: &str) -> u64 {
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
fn poll<T>(
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

// ------------------------------------------------------------------ tests

/// The harness itself: the server takes signed requests, rejects a wrong
/// secret, and (what a lock and a publish on S3 rest on) refuses a second
/// `If-None-Match: *` put and an `If-Match` put with a stale ETag.
#[test]
fn s3_server_round_trip_and_conditional_puts() {
    let sw = shared();
    let sample = Sample::new();
    sample.upload(sw, "harness/data");
    let keys = sw.list("harness/data");
    let local: Vec<PathBuf> = std::fs::read_dir(sample.data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), local.len(), "one file per table: {keys:?}");
    for dir in local {
        let table = dir.file_name().unwrap().to_string_lossy().to_string();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let key = format!(
                "harness/data/{table}/{}",
                file.file_name().unwrap().to_string_lossy()
            );
            assert_eq!(sw.download(&key), std::fs::read(&file).unwrap(), "{key}");
        }
    }

    // Signatures are checked.
    let wrong = super::seaweed::s3_store(
        sw.bucket(),
        &sw.endpoint(),
        WRONG_SECRET,
        object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        },
    );
    let denied = block_on(async move { wrong.get(&Key::from(keys[0].as_str())).await.map(|_| ()) });
    assert!(denied.is_err(), "a wrong secret was accepted");

    // Conditional puts.
    let store = sw.store();
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
        let updated = store
            .put_opts(
                &key,
                PutPayload::from_static(b"three"),
                PutOptions::from(PutMode::Update(UpdateVersion {
                    e_tag: first.e_tag.clone(),
                    version: None,
                })),
            )
            .await;
        let stale = store
            .put_opts(
                &key,
                PutPayload::from_static(b"four"),
                PutOptions::from(PutMode::Update(UpdateVersion {
                    e_tag: first.e_tag.clone(),
                    version: None,
                })),
            )
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

/// A build from S3 to S3 publishes the same tables, schemas and rows as a
/// build of the same data on disk; a build from disk to S3 can be queried
/// there.
#[test]
fn s3_build_matches_local_build() {
    let sw = shared();
    let sample = Sample::new();
    let data = sample.upload(sw, "matches/data");
    let catalog = shipped_catalog();

    let local_out = tempfile::tempdir().unwrap();
    let local = run({
        let mut c = vitals(sw);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &local_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert!(local.ok(), "local build: {}", local.show());
    let local_m: Manifest =
        serde_json::from_slice(&std::fs::read(local_out.path().join("_manifest.json")).unwrap())
            .unwrap();

    let out = "matches/out";
    let remote = run({
        let mut c = vitals(sw);
        c.args(build_args(&catalog, &data, &sw.url(out), &[]));
        c
    });
    assert!(remote.ok(), "build from S3 to S3: {}", remote.show());
    remote.assert_no_secret();
    let (_, remote_m) = manifest(sw, out).unwrap_or_else(|| {
        panic!(
            "no manifest published to {}: {}",
            sw.url(out),
            remote.show()
        )
    });
    assert_consistent(sw, out, &remote_m);

    let names = |m: &Manifest| m.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&remote_m), names(&local_m), "published tables");
    for (name, l) in &local_m.tables {
        let r = &remote_m.tables[name];
        assert_eq!(r.rows, l.rows, "{name}: rows");
        assert_eq!(r.schema, l.schema, "{name}: schema in the manifest");
        let local_batches: Vec<RecordBatch> = l
            .files
            .iter()
            .flat_map(|f| local_parquet(&local_out.path().join(f)))
            .collect();
        let remote_batches: Vec<RecordBatch> = r
            .files
            .iter()
            .flat_map(|f| s3_parquet(sw, &format!("{out}/{f}")))
            .collect();
        let (l, r) = (contents(&local_batches), contents(&remote_batches));
        assert_eq!(r.columns, l.columns, "{name}: Parquet schema");
        assert_eq!(r.rows.len(), l.rows.len(), "{name}: rows read");
        for (i, (lr, rr)) in l.rows.iter().zip(&r.rows).enumerate() {
            assert!(
                lr.iter().zip(rr).all(|(a, b)| a.same(b)),
                "{name}: row {i} differs\n local: {lr:?}\n    s3: {rr:?}"
            );
        }
    }

    // Data on disk but one table, a single Parquet object given by
    // --source; an S3 target; then a query of the S3 target.
    let single = "matches/single/subscriptions.parquet";
    let part = std::fs::read_dir(sample.data().join("subscriptions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a subscriptions file");
    sw.put(single, std::fs::read(part).unwrap());
    let out = "matches/from-disk";
    let to_s3 = run({
        let mut c = vitals(sw);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &sw.url(out),
            &["--source", &format!("subscriptions={}", sw.url(single))],
        ));
        c
    });
    assert!(to_s3.ok(), "build from disk to S3: {}", to_s3.show());
    let (_, m) = manifest(sw, out).expect("published");
    assert_consistent(sw, out, &m);
    assert_eq!(names(&m), names(&local_m));
    for (name, l) in &local_m.tables {
        assert_eq!(m.tables[name].rows, l.rows, "{name}: rows");
    }
    let query = run({
        let mut c = vitals(sw);
        c.args([
            "query",
            "--target",
            &sw.url(out),
            "SELECT count(*) AS n FROM mrr_movements_monthly",
        ]);
        c
    });
    assert!(query.ok(), "query of the S3 target: {}", query.show());
    assert_eq!(
        single_number(&query.stdout),
        m.tables["mrr_movements_monthly"].rows,
        "{}",
        query.show()
    );
}

/// A wrong secret: a build fails (exit 1) naming what it could not read or
/// write and saying access was denied, prints no secret, publishes nothing.
#[test]
fn s3_wrong_credentials_fail_clearly() {
    let sw = shared();
    let sample = Sample::new();
    let data = sample.upload(sw, "wrong-credentials/data");
    let catalog = shipped_catalog();

    // Sources on S3 the secret does not open, a target on disk.
    let local_out = tempfile::tempdir().unwrap();
    let done = run({
        let mut c = vitals(sw);
        c.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET);
        c.args(build_args(
            &catalog,
            &data,
            &local_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert_eq!(done.code, Some(1), "{}", done.show());
    done.assert_no_secret();
    assert!(
        done.stderr.contains("subscriptions") || done.stderr.contains(&data),
        "the table or location that could not be read is named: {}",
        done.show()
    );
    let said = done.stderr.to_lowercase();
    assert!(
        said.contains("denied") || said.contains("credential"),
        "it says access was denied or to check credentials: {}",
        done.show()
    );
    assert!(!said.contains("panicked"), "{}", done.show());
    assert!(
        !local_out.path().join("_manifest.json").exists(),
        "nothing is published"
    );

    // Sources on disk, an S3 target the secret does not open.
    let out = "wrong-credentials/target";
    let done = run({
        let mut c = vitals(sw);
        c.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &sw.url(out),
            &[],
        ));
        c
    });
    assert!(!done.ok(), "{}", done.show());
    done.assert_no_secret();
    assert!(
        done.stderr.contains(&sw.url(out)),
        "the target is named: {}",
        done.show()
    );
    let said = done.stderr.to_lowercase();
    assert!(
        said.contains("denied") || said.contains("credential"),
        "it says access was denied or to check credentials: {}",
        done.show()
    );
    assert!(!said.contains("panicked"), "{}", done.show());
    assert_eq!(sw.list(out), Vec::<String>::new(), "nothing is written");
}

/// Waits until the build `proc` writes files of its own under `out`: a
/// `build-<id>/` folder of none of the builds `not`.
fn wait_until_writing(sw: &Seaweed, out: &str, proc: &mut Proc, not: &[&str]) -> String {
    poll(
        Duration::from_secs(90),
        || {
            proc.assert_running("the build ended before it wrote a file");
            sw.try_list(out).ok()?.into_iter().find(|k| {
                k.contains("/build-") && !not.iter().any(|id| k.contains(&format!("build-{id}/")))
            })
        },
        || format!("the build wrote no file under {}", sw.url(out)),
    )
}

/// The lock of a build other than `not`, once it appears.
fn wait_for_lock(sw: &Seaweed, out: &str, proc: &mut Proc, not: &[&str]) -> LockInfo {
    poll(
        Duration::from_secs(60),
        || {
            proc.assert_running("the build ended before it was seen holding the lock");
            lock(sw, out).filter(|l| !not.contains(&l.build_id.as_str()))
        },
        || format!("no build took the lock of {}", sw.url(out)),
    )
}

/// The server dies while a build writes its tables: the build fails within
/// bounded time with a clear error, and once the server is back the
/// previous build is still the published one, whole.
#[test]
fn s3_server_stopped_mid_build() {
    let mut sw = Seaweed::start("vitals-stop");
    let sample = Sample::new();
    let data = sample.upload(&sw, "data");
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_variant(dir.path(), |toml| toml + FAIL_FAST);
    let out = "out";
    let build = || {
        let mut c = vitals(&sw);
        c.args(build_args(&catalog, &data, &sw.url(out), &[]));
        c
    };

    let first = run(build());
    assert!(first.ok(), "first build: {}", first.show());
    let (published, first_m) = manifest(&sw, out).expect("published");
    assert_consistent(&sw, out, &first_m);

    let mut second = spawn(build());
    let file = wait_until_writing(&sw, out, &mut second, &[&first_m.build_id]);
    sw.stop();
    let stopped = Instant::now();
    let done = finish(second, Duration::from_secs(120));
    assert!(
        !done.ok(),
        "a build without its server succeeded (the server stopped when it wrote {file}): {}",
        done.show()
    );
    assert!(!done.stderr.contains("panicked"), "{}", done.show());
    assert!(
        done.stderr.contains("s3://") || done.stderr.contains(&sw.endpoint()),
        "the error names the storage location: {}",
        done.show()
    );
    done.assert_no_secret();
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "with 1 retry and short timeouts the build gives up soon: {:.1?}",
        stopped.elapsed()
    );

    sw.restart();
    let (now, now_m) = manifest(&sw, out).expect("still published");
    assert_eq!(
        String::from_utf8_lossy(&now),
        String::from_utf8_lossy(&published),
        "the first build is still the published one"
    );
    assert_consistent(&sw, out, &now_m);
}

/// Two builds at once on one S3 target: one publishes, the other fails at
/// once naming it (exit 3); with `--wait` the second waits and publishes
/// after the first.
#[test]
fn s3_concurrent_builds_one_wins() {
    let sw = shared();
    let sample = Sample::new();
    let data = sample.upload(sw, "concurrent/data");
    let catalog = shipped_catalog();
    let out = "concurrent/out";
    let build = |more: &[&str]| {
        let mut c = vitals(sw);
        c.args(build_args(&catalog, &data, &sw.url(out), more));
        c
    };

    let (a, b) = (spawn(build(&[])), spawn(build(&[])));
    let (a, b) = (finish(a, PROCESS_LIMIT), finish(b, PROCESS_LIMIT));
    let both = || format!("first: {}\n\nsecond: {}", a.show(), b.show());
    let (_, m) = manifest(sw, out).unwrap_or_else(|| panic!("nothing published\n{}", both()));
    assert_consistent(sw, out, &m);
    let builds = history(sw, out);
    match (a.code, b.code) {
        (Some(0), Some(3)) | (Some(3), Some(0)) => {
            let loser = if a.ok() { &b } else { &a };
            assert!(
                loser.stderr.contains(&m.build_id) && loser.stderr.contains("--wait"),
                "the failed build names the running one ({}) and --wait: {}",
                m.build_id,
                both()
            );
            assert_eq!(
                builds,
                BTreeSet::from([m.build_id.clone()]),
                "the history holds the one build that succeeded\n{}",
                both()
            );
        }
        // One ran after the other.
        (Some(0), Some(0)) => {
            assert_eq!(builds.len(), 2, "{builds:?}\n{}", both());
            assert_eq!(
                builds.last(),
                Some(&m.build_id),
                "the later one is published"
            );
        }
        _ => panic!(
            "one build succeeds, the other fails with exit 3\n{}",
            both()
        ),
    }

    // --wait: a build started while another holds the target waits for it.
    let mut first = spawn(build(&[]));
    let held = wait_for_lock(sw, out, &mut first, &[&m.build_id]);
    let second = run(build(&["--wait"]));
    let first = finish(first, PROCESS_LIMIT);
    assert!(first.ok(), "the first build: {}", first.show());
    assert!(second.ok(), "the waiting build: {}", second.show());
    let (_, last) = manifest(sw, out).unwrap();
    assert!(
        last.build_id > held.build_id,
        "the waiting build ({}) publishes after the one it waited for ({})",
        last.build_id,
        held.build_id
    );
    assert_consistent(sw, out, &last);
    let builds = history(sw, out);
    assert!(
        builds.contains(&held.build_id) && builds.contains(&last.build_id),
        "{builds:?}"
    );
    assert!(lock(sw, out).is_none(), "the lock is released");
}

/// Builds killed (SIGKILL) while reading and while writing: the previous
/// build stays published and whole, and the next build takes the dead
/// builds' lock over at once and publishes.
#[test]
fn s3_killed_build_leaves_previous_intact() {
    let sw = shared();
    let sample = Sample::new();
    let data = sample.upload(sw, "killed/data");
    let catalog = shipped_catalog();
    let out = "killed/out";
    let build = || {
        let mut c = vitals(sw);
        c.args(build_args(&catalog, &data, &sw.url(out), &[]));
        c
    };

    let first = run(build());
    assert!(first.ok(), "first build: {}", first.show());
    let (published, first_m) = manifest(sw, out).expect("published");
    assert_consistent(sw, out, &first_m);
    let still_published = |when: &str| {
        let (now, now_m) = manifest(sw, out).expect("a manifest stays published");
        assert_eq!(
            String::from_utf8_lossy(&now),
            String::from_utf8_lossy(&published),
            "{when}: the first build is still the published one"
        );
        assert_consistent(sw, out, &now_m);
    };

    // Killed a second into the build (reading its sources).
    let mut reading = spawn(build());
    let reader = wait_for_lock(sw, out, &mut reading, &[&first_m.build_id]);
    std::thread::sleep(Duration::from_secs(1));
    reading.assert_running("the build ended before it was killed");
    let _ = reading.child.kill(); // SIGKILL
    let _ = reading.child.wait();
    still_published("killed while reading");

    // Killed as it writes its tables; it takes the dead build's lock over.
    let mut writing = spawn(build());
    let file = wait_until_writing(
        sw,
        out,
        &mut writing,
        &[&first_m.build_id, &reader.build_id],
    );
    let _ = writing.child.kill();
    let _ = writing.child.wait();
    still_published(&format!("killed after writing {file}"));
    let writer = lock(sw, out).expect("a killed build leaves its lock");
    assert!(
        file.contains(&format!("build-{}/", writer.build_id)),
        "{file} is of the build holding the lock, {}",
        writer.build_id
    );

    // No cleanup, no waiting for the lock to expire.
    let next = run(build());
    assert!(
        next.ok(),
        "the build after the killed ones: {}",
        next.show()
    );
    assert!(
        next.elapsed < first.elapsed * 3 + Duration::from_secs(30),
        "it waited for the dead build's lock ({:.1?}; a build takes {:.1?})",
        next.elapsed,
        first.elapsed
    );
    let (_, last) = manifest(sw, out).unwrap();
    assert!(
        last.build_id > writer.build_id,
        "{} publishes after {} (killed)",
        last.build_id,
        writer.build_id
    );
    assert_consistent(sw, out, &last);
    assert!(lock(sw, out).is_none(), "the lock is released");
    let leftovers: Vec<String> = sw
        .list(out)
        .into_iter()
        .filter(|k| k.contains(&reader.build_id) || k.contains(&writer.build_id))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the killed builds' files are removed: {leftovers:?}"
    );
}
