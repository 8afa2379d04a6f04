//! Builds that race and builds that die: real `vitals` processes on one
//! local target. Whatever happens, the published build (what
//! `_manifest.json` lists) is complete and consistent, two builds never
//! both publish, and the next build needs no manual cleanup.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use vitals::publish::Manifest;

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    /// Generated sample data of every table, large enough that a debug
    /// build takes a few seconds.
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&[
            "generate",
            "--customers",
            "400",
            "--out",
            &dir.path().join("data").display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bench { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn build_args(&self, more: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "build",
            "--data",
            &self.dir.path().join("data").display().to_string(),
            "--target",
            &self.target().display().to_string(),
            "--as-of",
            "2025-12-31",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(more.iter().map(|s| s.to_string()));
        args
    }

    fn spawn_build(&self, more: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args(self.build_args(more))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vitals")
    }

    fn build(&self, more: &[&str]) -> Output {
        let args = self.build_args(more);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn manifest(&self) -> Option<Manifest> {
        let bytes = std::fs::read(self.target().join("_manifest.json")).ok()?;
        Some(serde_json::from_slice(&bytes).expect("a manifest is always whole JSON"))
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(args)
        .output()
        .expect("run vitals")
}

/// Every file the manifest lists exists and is a whole Parquet file, the
/// tables hold the rows it says, and nothing of another build is listed.
fn assert_consistent(target: &Path, m: &Manifest) {
    assert_eq!(m.tables.len(), 11, "{:?}", m.tables.keys());
    for (name, t) in &m.tables {
        let mut rows = 0;
        for f in &t.files {
            assert!(
                f.contains(&format!("build-{}/", m.build_id)),
                "{name}: {f} is not of build {}",
                m.build_id
            );
            let file = std::fs::File::open(target.join(f))
                .unwrap_or_else(|e| panic!("{name}: {f} listed but unreadable: {e}"));
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap_or_else(|e| panic!("{name}: {f} is not whole Parquet: {e}"))
                .build()
                .unwrap();
            for batch in reader {
                rows += batch.unwrap().num_rows() as u64;
            }
        }
        assert_eq!(rows, t.rows, "{name}: rows in the files vs the manifest");
    }
}

#[test]
fn a_killed_build_never_leaves_a_half_published_target() {
    let bench = Bench::new();
    let clock = Instant::now();
    let first = bench.build(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let full = clock.elapsed();
    let mut published = bench.manifest().expect("published");
    assert_consistent(&bench.target(), &published);

    // Kill builds at moments spread over a whole build: planning, writing
    // tables, around the manifest.
    for fraction in [0.1, 0.35, 0.6, 0.85, 1.05] {
        let mut child = bench.spawn_build(&[]);
        std::thread::sleep(full.mul_f64(fraction));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = bench.manifest().expect("a manifest stays published");
        assert_consistent(&bench.target(), &now);
        // Either the killed build had published in time, or the previous
        // build is still the published one, whole.
        assert!(
            now.build_id >= published.build_id,
            "{} after {}",
            now.build_id,
            published.build_id
        );
        published = now;
    }

    // The next build takes the dead build's lock over and cleans up.
    let next = bench.build(&[]);
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let last = bench.manifest().unwrap();
    assert_consistent(&bench.target(), &last);
    assert!(!bench.target().join("_lock.json").exists());
    // Only this build and the one before it are kept on disk.
    for table in last.tables.keys() {
        let builds = std::fs::read_dir(bench.target().join(table))
            .unwrap()
            .count();
        assert!(builds <= 2, "{table}: {builds} build folders left");
    }
    let leftovers: Vec<String> = std::fs::read_dir(bench.target())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.') || n.starts_with("_lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_builds_on_one_target_one_fails_fast_or_waits() {
    let bench = Bench::new();
    let first = bench.spawn_build(&[]);
    // Wait until the first build holds the target.
    let lock = bench.target().join("_lock.json");
    let started = Instant::now();
    let held: vitals::publish::LockInfo = loop {
        // A lock appears whole (written aside, then linked to its name).
        if let Ok(bytes) = std::fs::read(&lock) {
            break serde_json::from_slice(&bytes).expect("a whole lock");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    // A second build fails at once, naming the running one (exit 3).
    let clock = Instant::now();
    let second = bench.build(&[]);
    assert_eq!(second.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&held.build_id), "{stderr}");
    assert!(stderr.contains("--wait"), "{stderr}");
    assert!(
        clock.elapsed() < Duration::from_secs(10),
        "it did not fail fast"
    );

    // A third waits for the first, then publishes after it.
    let third = bench.build(&["--wait"]);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let m = bench.manifest().unwrap();
    assert!(
        m.build_id > held.build_id,
        "the waiting build published last"
    );
    assert_consistent(&bench.target(), &m);
}
