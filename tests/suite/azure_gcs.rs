//! Sources and targets on Azure Blob Storage (`az://`) and Google Cloud
//! Storage (`gs://`): real `vitals` processes against real emulators
//! (Azurite and fake-gcs-server, see `emulators.rs`), the way `s3.rs` runs
//! them against SeaweedFS.
//!
//! Azurite serves all a build needs: a build from Azure to Azure gives what
//! a build from disk gives, its lock keeps a second build out (exit 3), and
//! a wrong account key fails clearly without printing it.
//!
//! fake-gcs-server serves object_store's reads but refuses its writes (see
//! `FakeGcs`): builds read sources and query targets on `gs://` here; the
//! tests that publish to `gs://` are ignored until an emulator takes them.

use object_store::path::Path as Key;
use object_store::{
    ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, RetryConfig, UpdateVersion,
};

use super::common::shipped_catalog;
use super::emulators::{AZURE_KEY, azurite, fake_gcs};
use super::remote::{
    PROCESS_LIMIT, Remote, Sample, assert_conditional_puts, assert_consistent,
    assert_matches_local, build_args, finish, history, lock, manifest, run, single_number, spawn,
    vitals, wait_for_lock,
};
use super::seaweed::block_on;

/// Sample data of these tests.
const CUSTOMERS: usize = 200;

/// An Azure account key (valid base64) that is not the emulator's.
const WRONG_AZURE_KEY: &str =
    "d3JvbmctYXp1cmUta2V5LW5ldmVyLXByaW50LTAxMjM0NTY3ODktYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=";

// ---------------------------------------------------------------- helpers

/// The data of the sample uploaded under `prefix/data`, a build of it from
/// the store to the store at `prefix/out`, and one on disk: the same
/// tables, rows and schemas; then `vitals query` of the store's target.
/// `secrets` are never printed.
fn build_matches_local(remote: &impl Remote, prefix: &str, secrets: &[&str]) {
    let sample = Sample::new(CUSTOMERS);
    let data = sample.upload(remote, &format!("{prefix}/data"));
    let catalog = shipped_catalog();

    let local_out = tempfile::tempdir().unwrap();
    let local = run({
        let mut c = vitals(remote);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &local_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert!(local.ok(), "local build: {}", local.show());

    let out = format!("{prefix}/out");
    let built = run({
        let mut c = vitals(remote);
        c.args(build_args(&catalog, &data, &remote.url(&out), &[]));
        c
    });
    assert!(
        built.ok(),
        "build from {data} to {}: {}",
        remote.url(&out),
        built.show()
    );
    built.assert_hides(secrets);
    let (_, m) = manifest(remote, &out).unwrap_or_else(|| {
        panic!(
            "no manifest published to {}: {}",
            remote.url(&out),
            built.show()
        )
    });
    assert_consistent(remote, &out, &m);
    assert_matches_local(remote, &out, local_out.path());
    assert_eq!(
        history(remote, &out).into_iter().collect::<Vec<_>>(),
        vec![m.build_id.clone()],
        "the history holds the build"
    );
    assert!(lock(remote, &out).is_none(), "the lock is released");

    let query = run({
        let mut c = vitals(remote);
        c.args([
            "query",
            "--target",
            &remote.url(&out),
            "SELECT count(*) AS n FROM saas_kpis_monthly",
        ]);
        c
    });
    assert!(
        query.ok(),
        "query of {}: {}",
        remote.url(&out),
        query.show()
    );
    assert_eq!(
        single_number(&query.stdout),
        m.tables["saas_kpis_monthly"].rows,
        "{}",
        query.show()
    );
}

/// A build runs on the store's target `prefix/out`; a second one started
/// meanwhile fails at once (exit 3) naming it and `--wait`, and the first
/// publishes.
fn second_build_exits_3(remote: &impl Remote, prefix: &str) {
    let sample = Sample::new(CUSTOMERS);
    let data = sample.upload(remote, &format!("{prefix}/data"));
    let catalog = shipped_catalog();
    let out = format!("{prefix}/out");
    let build = || {
        let mut c = vitals(remote);
        c.args(build_args(&catalog, &data, &remote.url(&out), &[]));
        c
    };

    let mut first = spawn(build());
    let held = wait_for_lock(remote, &out, &mut first, &[]);
    let second = run(build());
    let first_ran_on = first.child.try_wait().unwrap().is_none();
    let first = finish(first, PROCESS_LIMIT);
    let both = || format!("first: {}\n\nsecond: {}", first.show(), second.show());
    assert!(
        first_ran_on || !second.ok(),
        "the first build ended before the second one looked at the lock: nothing \
         was tested\n{}",
        both()
    );
    assert_eq!(
        second.code,
        Some(3),
        "a second build while one runs\n{}",
        both()
    );
    assert!(
        second.stderr.contains(&held.build_id) && second.stderr.contains("--wait"),
        "the second build names the running one ({}) and --wait\n{}",
        held.build_id,
        both()
    );
    assert!(!second.stderr.contains("panicked"), "{}", both());
    assert!(first.ok(), "the first build\n{}", both());
    let (_, m) = manifest(remote, &out).expect("published");
    assert_eq!(m.build_id, held.build_id, "the first build is published");
    assert_consistent(remote, &out, &m);
    assert_eq!(
        history(remote, &out).into_iter().collect::<Vec<_>>(),
        vec![held.build_id.clone()],
        "the failed build left no history"
    );
    assert!(lock(remote, &out).is_none(), "the lock is released");
}

// ------------------------------------------------------------ Azure tests

/// The harness: Azurite takes requests signed with the account key,
/// refuses a wrong key, and (what the lock and the publish rest on) refuses
/// a second `If-None-Match: *` put and an `If-Match` put with a stale ETag.
#[test]
fn az_emulator_round_trip_and_conditional_puts() {
    let az = azurite();
    let sample = Sample::new(CUSTOMERS);
    sample.upload(az, "harness/data");
    let keys = az.list("harness/data");
    let mut local = Vec::new();
    for table in std::fs::read_dir(sample.data()).unwrap() {
        let table = table.unwrap().path();
        for file in std::fs::read_dir(&table).unwrap() {
            local.push(file.unwrap().path());
        }
    }
    assert_eq!(keys.len(), local.len(), "one object per file: {keys:?}");
    for file in &local {
        let relative = file.strip_prefix(sample.data()).unwrap();
        let key = format!("harness/data/{}", relative.display());
        assert_eq!(az.download(&key), std::fs::read(file).unwrap(), "{key}");
    }

    // Signatures are checked.
    let wrong = az.store_with_key(
        WRONG_AZURE_KEY,
        RetryConfig {
            max_retries: 0,
            ..Default::default()
        },
    );
    let key = Key::from(keys[0].as_str());
    let denied = block_on(async move { wrong.get(&key).await.map(|_| ()) });
    assert!(
        matches!(
            denied,
            Err(object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. })
        ),
        "a wrong key: {denied:?}"
    );

    // Conditional puts.
    assert_conditional_puts(az.client());
}

/// A build from Azure to Azure publishes the same tables, schemas and rows
/// as a build of the same data on disk, and can be queried there.
#[test]
fn az_build_matches_local_build() {
    build_matches_local(azurite(), "matches", &[AZURE_KEY]);
}

/// A second build while one runs on the same Azure target: exit 3.
#[test]
fn az_second_build_while_one_runs_exits_3() {
    second_build_exits_3(azurite(), "busy");
}

/// A wrong account key: a build fails (exit 1) naming what it could not
/// read or write and saying access was denied, prints no key, and
/// publishes nothing; the same settings with the right key work.
#[test]
fn az_wrong_key_fails_clearly() {
    let az = azurite();
    let sample = Sample::new(CUSTOMERS);
    let data = sample.upload(az, "wrong-key/data");
    let catalog = shipped_catalog();
    // An ordinary account (no emulator mode): name, key, endpoint.
    let with_key = |key: &str| {
        let mut c = vitals(az);
        for (name, _) in az.env() {
            c.env_remove(name);
        }
        c.envs(az.env_with_key(key));
        c
    };

    // The right key opens the sources.
    let control_out = tempfile::tempdir().unwrap();
    let control = run({
        let mut c = with_key(AZURE_KEY);
        c.args(build_args(
            &catalog,
            &data,
            &control_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert!(control.ok(), "the right key: {}", control.show());

    // Sources on Azure the key does not open, a target on disk.
    let local_out = tempfile::tempdir().unwrap();
    let done = run({
        let mut c = with_key(WRONG_AZURE_KEY);
        c.args(build_args(
            &catalog,
            &data,
            &local_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert_eq!(done.code, Some(1), "{}", done.show());
    done.assert_hides(&[WRONG_AZURE_KEY, AZURE_KEY]);
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
    assert!(
        done.stderr.contains("AZURE_STORAGE_ACCOUNT_KEY"),
        "it names the variable to check: {}",
        done.show()
    );
    assert!(!said.contains("panicked"), "{}", done.show());
    assert!(
        !local_out.path().join("_manifest.json").exists(),
        "nothing is published"
    );

    // Sources on disk, an Azure target the key does not open.
    let out = "wrong-key/target";
    let done = run({
        let mut c = with_key(WRONG_AZURE_KEY);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &az.url(out),
            &[],
        ));
        c
    });
    assert_eq!(done.code, Some(1), "{}", done.show());
    done.assert_hides(&[WRONG_AZURE_KEY, AZURE_KEY]);
    assert!(
        done.stderr.contains(&az.url(out)),
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
    assert_eq!(az.list(out), Vec::<String>::new(), "nothing is written");
}

// -------------------------------------------------------------- GCS tests

/// The harness: fake-gcs-server serves what object_store reads with
/// (listing, whole and ranged gets, heads) for objects put through its JSON
/// API; it refuses object_store's puts, conditional or not. When that
/// changes, the ignored `gs://` target tests below can run.
#[test]
fn gcs_emulator_round_trip_and_puts() {
    let gcs = fake_gcs();
    let sample = Sample::new(CUSTOMERS);
    sample.upload(gcs, "harness/data");
    let keys = gcs.list("harness/data");
    let mut local = Vec::new();
    for table in std::fs::read_dir(sample.data()).unwrap() {
        let table = table.unwrap().path();
        for file in std::fs::read_dir(&table).unwrap() {
            local.push(file.unwrap().path());
        }
    }
    assert_eq!(keys.len(), local.len(), "one object per file: {keys:?}");
    for file in &local {
        let relative = file.strip_prefix(sample.data()).unwrap();
        let key = format!("harness/data/{}", relative.display());
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(gcs.download(&key), bytes, "{key}");
        // Ranged reads and heads, as Parquet readers do them.
        let store = gcs.client();
        let path = Key::from(key.as_str());
        let (meta, tail) = block_on(async move {
            let meta = store.head(&path).await?;
            let tail = store.get_range(&path, meta.size - 8..meta.size).await?;
            Ok::<_, object_store::Error>((meta, tail))
        })
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(meta.size, bytes.len() as u64, "{key}: size");
        assert!(
            meta.version.is_some(),
            "{key}: a generation (what a conditional update needs on GCS)"
        );
        assert_eq!(&tail[..], &bytes[bytes.len() - 8..], "{key}: a range");
    }

    // object_store's puts: a create, a plain put, and an update of an
    // object (put through the JSON API) conditional on its generation.
    let store = gcs.client();
    gcs.put("harness/existing", b"one");
    let (create, plain, update) = block_on(async move {
        let new = Key::from("harness/new");
        let create = store
            .put_opts(
                &new,
                PutPayload::from_static(b"one"),
                PutOptions::from(PutMode::Create),
            )
            .await;
        let plain = store.put(&new, PutPayload::from_static(b"two")).await;
        let existing = Key::from("harness/existing");
        let meta = store.head(&existing).await.expect("head");
        let update = store
            .put_opts(
                &existing,
                PutPayload::from_static(b"three"),
                PutOptions::from(PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })),
            )
            .await;
        (create, plain, update)
    });
    let refused = |r: &object_store::Result<PutResult>| matches!(r, Err(e) if e.to_string().contains("invalid uploadType"));
    assert!(
        refused(&create) && refused(&plain) && refused(&update),
        "fake-gcs-server refused object_store's puts (400 invalid uploadType); now it \
         answers otherwise: check its conditional puts and un-ignore the gs:// target \
         tests\ncreate: {create:?}\nplain: {plain:?}\nupdate: {update:?}"
    );
    assert_eq!(gcs.try_download("harness/new"), None, "nothing was created");
    assert_eq!(
        gcs.download("harness/existing"),
        b"one",
        "nothing was replaced"
    );
}

/// A build from GCS sources publishes what a build of the same data on
/// disk publishes; a target on GCS can be queried.
///
/// (The target is written on disk, then copied to the server through its
/// JSON API: fake-gcs-server refuses object_store's writes.)
#[test]
fn gcs_build_matches_local_build() {
    let gcs = fake_gcs();
    let sample = Sample::new(CUSTOMERS);
    let data = sample.upload(gcs, "matches/data");
    let catalog = shipped_catalog();

    let local_out = tempfile::tempdir().unwrap();
    let local = run({
        let mut c = vitals(gcs);
        c.args(build_args(
            &catalog,
            &sample.data().display().to_string(),
            &local_out.path().display().to_string(),
            &[],
        ));
        c
    });
    assert!(local.ok(), "local build: {}", local.show());

    let from_gcs = tempfile::tempdir().unwrap();
    let built = run({
        let mut c = vitals(gcs);
        c.args(build_args(
            &catalog,
            &data,
            &from_gcs.path().display().to_string(),
            &[],
        ));
        c
    });
    assert!(built.ok(), "build from {data}: {}", built.show());

    // The target the build from GCS published, on GCS.
    let out = "matches/out";
    gcs.upload_dir(from_gcs.path(), out);
    let (_, m) = manifest(gcs, out).expect("the copied manifest");
    assert_consistent(gcs, out, &m);
    assert_matches_local(gcs, out, local_out.path());

    let query = run({
        let mut c = vitals(gcs);
        c.args([
            "query",
            "--target",
            &gcs.url(out),
            "SELECT count(*) AS n FROM mrr_movements_monthly",
        ]);
        c
    });
    assert!(query.ok(), "query of {}: {}", gcs.url(out), query.show());
    assert_eq!(
        single_number(&query.stdout),
        m.tables["mrr_movements_monthly"].rows,
        "{}",
        query.show()
    );
}

/// A build from GCS to GCS matches a build on disk.
#[test]
#[ignore = "needs a GCS emulator that takes object_store's writes (XML API PUT and DELETE); \
            fake-gcs-server 1.54 answers a PUT 400 invalid uploadType"]
fn gcs_build_to_gcs_target_matches_local_build() {
    build_matches_local(fake_gcs(), "matches-gcs", &[]);
}

/// A second build while one runs on the same GCS target: exit 3.
#[test]
#[ignore = "needs a GCS emulator that takes object_store's conditional writes \
            (x-goog-if-generation-match); fake-gcs-server 1.54 refuses its PUTs"]
fn gcs_second_build_while_one_runs_exits_3() {
    second_build_exits_3(fake_gcs(), "busy");
}
