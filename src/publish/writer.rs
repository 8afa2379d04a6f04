use std::sync::Arc;

use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::common::spawn_buffered;
use futures::StreamExt;
use object_store::buffered::BufWriter;

use crate::error::{Result, VitalsError};
use crate::storage::{Location, clean};

use super::Target;

const ROWS_PER_FILE: u64 = 5_000_000;

/// Writes a table's batches as Parquet files into its build folder;
/// returns the files (relative to the target) and the row count.
pub async fn write_table(
    target: &Target,
    table: &str,
    stream: SendableRecordBatchStream,
) -> Result<(Vec<String>, u64)> {
    write_files(&target.location, &target.table_dir(table), table, stream).await
}

/// Writes batches as Parquet files `part-NNNNN.parquet` into `dir` below
/// `root` (at least one, so that an empty result keeps its schema); returns
/// the files (relative to `root`) and the row count. `table` names the
/// result in errors. On an object store each file is one upload, visible
/// only once complete; locally each is synced to disk.
pub async fn write_files(
    root: &Location,
    dir: &str,
    table: &str,
    stream: SendableRecordBatchStream,
) -> Result<(Vec<String>, u64)> {
    let schema = stream.schema();
    // A query's last operator (often the merge of a sort) runs in the task
    // that polls it: polled from a task of its own, two batches ahead, it
    // works on the other core while this one encodes Parquet.
    let mut stream = spawn_buffered(stream, 2);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let fail = |e: &dyn std::fmt::Display| {
        VitalsError::Data(format!(
            "table {table}: cannot write {}: {}",
            root.describe(dir),
            clean(&e.to_string())
        ))
    };
    let open = |rel: &str| {
        // Uploads in parts once past its buffer; visible only when closed.
        let sink = BufWriter::new(Arc::clone(root.store()), root.key(rel));
        AsyncArrowWriter::try_new(sink, Arc::clone(&schema), Some(props.clone()))
    };
    let mut files = Vec::new();
    let mut rows = 0;
    let mut in_file = 0;
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    loop {
        let batch = match stream.next().await {
            Some(b) => b.map_err(|e| VitalsError::data(format!("table {table}"), e))?,
            None => break,
        };
        if writer.is_none() || in_file >= ROWS_PER_FILE {
            if let Some(w) = writer.take() {
                w.close().await.map_err(|e| fail(&e))?;
            }
            let rel = format!("{dir}/part-{:05}.parquet", files.len());
            writer = Some(open(&rel).map_err(|e| fail(&e))?);
            files.push(rel);
            in_file = 0;
        }
        let w = writer.as_mut().expect("writer opened above");
        w.write(&batch).await.map_err(|e| fail(&e))?;
        rows += batch.num_rows() as u64;
        in_file += batch.num_rows() as u64;
    }
    if writer.is_none() {
        // An empty table still gets one file, so readers learn its schema.
        let rel = format!("{dir}/part-00000.parquet");
        writer = Some(open(&rel).map_err(|e| fail(&e))?);
        files.push(rel);
    }
    if let Some(w) = writer {
        w.close().await.map_err(|e| fail(&e))?;
    }
    if let Some(local) = root.local_path() {
        // The store renames each finished file into place; make the files
        // survive a power cut before a manifest points at them.
        for f in &files {
            sync_file(&local.join(f)).map_err(|e| fail(&e))?;
        }
    }
    Ok((files, rows))
}

pub(crate) fn sync_file(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
