//! Sources and targets on S3: real `vitals` processes against a real
//! S3-compatible server (SeaweedFS, see `seaweed.rs`) that checks request
//! signatures. A build from S3 gives what a build from disk gives; wrong
//! credentials, a server that goes away, racing and killed builds never
//! leave a half-published target and never print a secret.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::path::Path as Key;

use vitals::publish::Manifest;

use super::common::{catalog_variant, shipped_catalog};
use super::remote::{
    Done, PROCESS_LIMIT, Sample, assert_conditional_puts, assert_consistent, assert_matches_local,
    build_args, finish, history, lock, manifest, run, single_number, spawn, vitals, wait_for_lock,
    wait_until_writing,
};
use super::seaweed::{SECRET_KEY, Seaweed, block_on, shared};

/// A secret that does not match the server's.
const WRONG_SECRET: &str = "wrong-secret-never-print-9876";

/// Storage settings that give up within seconds once the server is gone.
const FAIL_FAST: &str = "\n[storage]\nretries = 1\nretry_timeout_seconds = 5\n\
                         request_timeout_seconds = 10\nconnect_timeout_seconds = 2\n";

/// Sample data of the S3 tests: 400 customers.
const CUSTOMERS: usize = 400;

/// Neither the server's secret nor a wrong one was printed.
trait NoSecret {
    fn assert_no_secret(&self);
}

impl NoSecret for Done {
    fn assert_no_secret(&self) {
        self.assert_hides(&[SECRET_KEY, WRONG_SECRET]);
    }
}

// ------------------------------------------------------------------ tests

/// The harness itself: the server takes signed requests, rejects a wrong
/// secret, and (what a lock and a publish on S3 rest on) refuses a second
/// `If-None-Match: *` put and an `If-Match` put with a stale ETag.
#[test]
fn s3_server_round_trip_and_conditional_puts() {
    let sw = shared();
    let sample = Sample::new(CUSTOMERS);
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
    assert_conditional_puts(sw.store());
}

/// A build from S3 to S3 publishes the same tables, schemas and rows as a
/// build of the same data on disk; a build from disk to S3 can be queried
/// there.
#[test]
fn s3_build_matches_local_build() {
    let sw = shared();
    let sample = Sample::new(CUSTOMERS);
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

    assert_matches_local(sw, out, local_out.path());
    let names = |m: &Manifest| m.tables.keys().cloned().collect::<Vec<_>>();

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
    let sample = Sample::new(CUSTOMERS);
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

/// The server dies while a build writes its tables: the build fails within
/// bounded time with a clear error, and once the server is back the
/// previous build is still the published one, whole.
#[test]
fn s3_server_stopped_mid_build() {
    let mut sw = Seaweed::start("vitals-stop");
    let sample = Sample::new(CUSTOMERS);
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
    let sample = Sample::new(CUSTOMERS);
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
    let sample = Sample::new(CUSTOMERS);
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
