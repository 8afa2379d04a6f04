use std::sync::Arc;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::{Result, VitalsError};

use super::Target;

const ROWS_PER_FILE: u64 = 5_000_000;

/// Writes a table's batches as Parquet files into its build folder;
/// returns the files (relative to the target) and the row count.
pub async fn write_table(
    target: &Target,
    table: &str,
    stream: SendableRecordBatchStream,
) -> Result<(Vec<String>, u64)> {
    write_files(&target.root, &target.table_dir(table), table, stream).await
}

/// Writes batches as Parquet files `part-NNNNN.parquet` into `root/dir`
/// (at least one, so that an empty result keeps its schema); returns the
/// files (relative to `root`) and the row count. `table` names the result
/// in errors.
pub async fn write_files(
    root: &std::path::Path,
    dir: &str,
    table: &str,
    mut stream: SendableRecordBatchStream,
) -> Result<(Vec<String>, u64)> {
    let path = |rel: &str| root.join(rel);
    std::fs::create_dir_all(path(dir))
        .map_err(|e| VitalsError::data(format!("table {table}: cannot create {dir}"), e))?;
    let schema = stream.schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let fail = |e: &dyn std::fmt::Display| {
        VitalsError::Data(format!("table {table}: cannot write {dir}: {e}"))
    };
    let mut files = Vec::new();
    let mut rows = 0;
    let mut in_file = 0;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    loop {
        let batch = match stream.next().await {
            Some(b) => b.map_err(|e| VitalsError::data(format!("table {table}"), e))?,
            None => break,
        };
        if writer.is_none() || in_file >= ROWS_PER_FILE {
            if let Some(w) = writer.take() {
                close(w).map_err(|e| fail(&e))?;
            }
            let rel = format!("{dir}/part-{:05}.parquet", files.len());
            let file = std::fs::File::create(path(&rel)).map_err(|e| fail(&e))?;
            writer = Some(
                ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone()))
                    .map_err(|e| fail(&e))?,
            );
            files.push(rel);
            in_file = 0;
        }
        let w = writer.as_mut().expect("writer opened above");
        w.write(&batch).map_err(|e| fail(&e))?;
        rows += batch.num_rows() as u64;
        in_file += batch.num_rows() as u64;
    }
    if writer.is_none() {
        // An empty table still gets one file, so readers learn its schema.
        let rel = format!("{dir}/part-00000.parquet");
        let file = std::fs::File::create(path(&rel)).map_err(|e| fail(&e))?;
        writer = Some(
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| fail(&e))?,
        );
        files.push(rel);
    }
    if let Some(w) = writer {
        close(w).map_err(|e| fail(&e))?;
    }
    Ok((files, rows))
}

/// Writes the footer (into_inner finishes the file) and syncs to disk.
fn close(w: ArrowWriter<std::fs::File>) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let file = w.into_inner()?;
    file.sync_all()?;
    Ok(())
}
