//! Publishing: the manifest lists exactly the current build's files, a
//! failed build publishes nothing, and builds are repeatable.

use std::path::Path;

use vitals::build::{BuildOptions, run};
use vitals::execute::{SessionOptions, SourceLocations};
use vitals::publish::Manifest;

use super::common::{Data, date, shipped_catalog, sub};

fn sample() -> Data {
    let data = Data::new();
    data.subscriptions(&[
        sub("s1", "A", "2024-01-01", Some("2024-03-01"), 100.0),
        sub("s2", "B", "2024-01-15", None, 50.0),
        sub("s3", "B", "2024-02-01", None, 25.0),
    ]);
    data.customers(&[("A", Some("SMB")), ("B", None)]);
    data
}

async fn build_into(
    data: &Data,
    target: &Path,
    partitions: usize,
) -> vitals::error::Result<Manifest> {
    build_limited(data, target, partitions, None).await
}

async fn build_limited(
    data: &Data,
    target: &Path,
    partitions: usize,
    memory_limit: Option<usize>,
) -> vitals::error::Result<Manifest> {
    run(&BuildOptions {
        session: SessionOptions {
            memory_limit,
            target_partitions: Some(partitions),
            // With a limit, no model is kept in memory: they all go
            // through local Parquet files.
            model_cache: memory_limit.map(|_| 0),
            ..Default::default()
        },
        ..options(data, target)
    })
    .await
}

/// A build of the sample into `target`, as of 2024-03-31.
fn options(data: &Data, target: &Path) -> BuildOptions {
    BuildOptions {
        catalog: shipped_catalog(),
        locations: SourceLocations {
            data_dir: Some(data.path().display().to_string()),
            ..Default::default()
        },
        target: target.display().to_string(),
        as_of: Some(date("2024-03-31")),
        select: Vec::new(),
        session: SessionOptions::default(),
        progress: vitals::progress::ProgressMode::Quiet,
        wait: false,
        keep_builds: 2,
    }
}

/// Every Parquet file below the target, relative to it.
fn files_below(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn listed(m: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = m.tables.values().flat_map(|t| t.files.clone()).collect();
    files.sort();
    files
}

fn read_manifest(target: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(target.join("_manifest.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn the_manifest_lists_exactly_the_files_of_the_build() {
    let data = sample();
    let target = tempfile::tempdir().unwrap();
    let first = build_into(&data, target.path(), 2).await.unwrap();
    assert_eq!(read_manifest(target.path()), first);
    assert_eq!(files_below(target.path()), listed(&first));
    for name in [
        "customer_mrr_monthly",
        "mrr_movements_monthly",
        "saas_kpis_monthly",
        "rejected_rows",
    ] {
        let t = &first.tables[name];
        assert!(
            !t.files.is_empty()
                && t.files
                    .iter()
                    .all(|f| f.starts_with(&format!("{name}/build-"))),
            "{name}: {:?}",
            t.files
        );
    }
    assert_eq!(
        first.tables["mrr_movements_monthly"].rows,
        3 * 3,
        "3 months x (SMB, unknown, total)"
    );

    // A second build replaces the first; the first's files stay until the
    // next build, for readers that are still reading them.
    let second = build_into(&data, target.path(), 2).await.unwrap();
    assert_ne!(first.build_id, second.build_id);
    let mut both = listed(&first);
    both.extend(listed(&second));
    both.sort();
    assert_eq!(files_below(target.path()), both);
    let third = build_into(&data, target.path(), 2).await.unwrap();
    let mut kept = listed(&second);
    kept.extend(listed(&third));
    kept.sort();
    assert_eq!(
        files_below(target.path()),
        kept,
        "builds older than the previous one are removed"
    );
}

#[tokio::test]
async fn a_failed_build_leaves_the_published_build_untouched() {
    let data = sample();
    let target = tempfile::tempdir().unwrap();
    let good = build_into(&data, target.path(), 2).await.unwrap();
    // The required table disappears: the build fails before publishing.
    std::fs::remove_dir_all(data.path().join("subscriptions")).unwrap();
    let err = build_into(&data, target.path(), 2).await.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().contains("table subscriptions is required"),
        "{err}"
    );
    assert_eq!(read_manifest(target.path()), good);
    assert_eq!(files_below(target.path()), listed(&good));
}

#[tokio::test]
async fn the_same_inputs_give_the_same_tables_whatever_the_partitions() {
    let data = sample();
    let one = tempfile::tempdir().unwrap();
    let four = tempfile::tempdir().unwrap();
    let a = build_into(&data, one.path(), 1).await.unwrap();
    // Four partitions, and with a memory limit: the models go through
    // local Parquet files instead of memory.
    let b = build_limited(&data, four.path(), 4, Some(256 << 20))
        .await
        .unwrap();
    for (name, ta) in &a.tables {
        let tb = &b.tables[name];
        assert_eq!((ta.rows, &ta.schema), (tb.rows, &tb.schema), "{name}");
        let bytes = |root: &Path, files: &[String]| -> Vec<Vec<u8>> {
            files
                .iter()
                .map(|f| std::fs::read(root.join(f)).unwrap())
                .collect()
        };
        assert_eq!(
            bytes(one.path(), &ta.files),
            bytes(four.path(), &tb.files),
            "{name}: the Parquet bytes differ"
        );
    }
}

/// A table that publishes a model as it is is written by the model's own
/// step, once: the manifest gives the model and the table that step's rows
/// and seconds. (That the model's readers then read the same rows, from
/// memory or from the table's files, is the test above.)
#[tokio::test]
async fn a_model_published_as_it_is_is_computed_by_its_table_step() {
    let data = sample();
    let target = tempfile::tempdir().unwrap();
    let m = build_into(&data, target.path(), 2).await.unwrap();
    for name in ["customer_mrr_monthly", "cohort_retention"] {
        let (model, table) = (&m.models[name], &m.tables[name]);
        assert!(table.rows > 0, "{name}");
        assert_eq!(
            (model.rows, model.seconds),
            (table.rows, table.seconds),
            "{name}"
        );
    }
    // A model no table publishes keeps a step of its own.
    assert!(m.models.contains_key("customer_mrr_snapshot"));
    assert!(!m.tables.contains_key("customer_mrr_snapshot"));
}

#[tokio::test]
async fn a_selective_build_keeps_the_other_tables_published() {
    let data = sample();
    let target = tempfile::tempdir().unwrap();
    let full = build_into(&data, target.path(), 2).await.unwrap();
    let partial = run(&BuildOptions {
        select: vec!["saas_kpis_monthly".into()],
        ..options(&data, target.path())
    })
    .await
    .unwrap();
    assert_eq!(partial.tables.len(), full.tables.len());
    assert_ne!(
        partial.tables["saas_kpis_monthly"].files,
        full.tables["saas_kpis_monthly"].files
    );
    assert_eq!(
        partial.tables["customer_mrr_monthly"],
        full.tables["customer_mrr_monthly"]
    );
    assert_eq!(files_below(target.path()).len(), listed(&full).len() + 1);
}

/// Old builds are kept for `keep_builds` builds, then removed with their
/// history entry; `gc` removes more on demand and never what the published
/// manifest lists.
#[tokio::test]
async fn old_builds_are_kept_for_a_number_of_builds_then_collected() {
    let data = sample();
    let target = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let m = run(&BuildOptions {
            select: vec!["mrr_movements_monthly".into()],
            keep_builds: 3,
            ..options(&data, target.path())
        })
        .await
        .unwrap();
        ids.push(m.build_id);
    }
    let folders = |root: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("mrr_movements_monthly"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let expected: Vec<String> = ids[1..].iter().map(|id| format!("build-{id}")).collect();
    assert_eq!(folders(target.path()), expected);
    let history = std::fs::read_dir(target.path().join(vitals::publish::HISTORY))
        .unwrap()
        .count();
    assert_eq!(history, 3);

    let root = vitals::storage::Location::local(target.path()).unwrap();
    let report = vitals::publish::Target::gc(&root, 1, None).await;
    assert_eq!(report.builds_kept, 1);
    assert_eq!(report.history_removed, 2);
    assert_eq!(folders(target.path()), [format!("build-{}", ids[3])]);
    let published: Manifest =
        serde_json::from_slice(&std::fs::read(target.path().join("_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(published.build_id, ids[3]);
    for f in &published.tables["mrr_movements_monthly"].files {
        assert!(target.path().join(f).exists(), "{f}");
    }
}
