//! Chunked Parquet writer of one table: rows are appended to Arrow builders
//! and every `row_group_rows` rows (128k) become one record batch, handed
//! to the table's encoder thread, which writes it as one row group and
//! starts a new part file once a file holds `file_rows` rows (2M). Memory stays bounded
//! by a few row groups per table; generating and encoding overlap.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use super::GenerateError;
use super::TableSummary;
use super::tables::RowBuffer;

/// Sizes of row groups and part files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Rows per row group (and per buffered batch).
    pub row_group_rows: usize,
    /// A part file is closed once it holds at least this many rows.
    pub file_rows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            row_group_rows: 128 * 1024,
            file_rows: 2_000_000,
        }
    }
}

/// Rows the builders are first sized for (they grow as needed).
const INITIAL_ROWS: usize = 4096;
/// Batches queued per table before the generator waits for the encoder.
const QUEUED_BATCHES: usize = 2;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parquet_err(
    path: &Path,
) -> impl FnOnce(datafusion::parquet::errors::ParquetError) -> GenerateError + '_ {
    move |source| GenerateError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn part_name(part: usize) -> String {
    format!("part-{part:05}.parquet")
}

/// Whether a file name is one of ours (`part-NNNNN.parquet`).
fn is_part_file(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes the part files a previous run left in `dir`; other files stay.
fn remove_old_parts(dir: &Path) -> Result<(), GenerateError> {
    let mut old = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_name().to_str().is_some_and(is_part_file) {
            old.push(entry.path());
        }
    }
    for path in old {
        fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Zstd-compressed row groups of `row_group_rows` rows. Dictionary
/// encoding only for the low-cardinality string columns (plan, feature,
/// priority, ...), and no statistics for string columns other than
/// `customer_id`: for ids they cost more time than they save.
fn writer_properties(schema: &SchemaRef, row_group_rows: usize) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Page);
    for field in schema.fields() {
        if !matches!(field.data_type(), DataType::Utf8) {
            continue;
        }
        let column = ColumnPath::from(field.name().as_str());
        if field.name() != "customer_id" {
            builder =
                builder.set_column_statistics_enabled(column.clone(), EnabledStatistics::None);
        }
        if !field.name().ends_with("_id") {
            builder = builder.set_column_dictionary_enabled(column, true);
        }
    }
    builder.build()
}

/// The open part file of a table.
struct Part {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    rows: u64,
}

impl Part {
    fn create(path: PathBuf, schema: SchemaRef, limits: Limits) -> Result<Self, GenerateError> {
        let file = File::create(&path).map_err(io_err(&path))?;
        let props = writer_properties(&schema, limits.row_group_rows);
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema, Some(props))
                .map_err(parquet_err(&path))?;
        Ok(Part {
            path,
            writer,
            rows: 0,
        })
    }

    fn close(self) -> Result<(), GenerateError> {
        let Part { path, writer, .. } = self;
        let buffered = writer.into_inner().map_err(parquet_err(&path))?;
        buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err(&path))?;
        Ok(())
    }
}

/// The encoder thread of a table: writes each batch as one row group,
/// rolling to a new part file when the current one is full. Returns the
/// number of part files.
fn encode(
    dir: PathBuf,
    schema: SchemaRef,
    limits: Limits,
    mut part: Part,
    batches: Receiver<RecordBatch>,
) -> Result<usize, GenerateError> {
    let mut files = 1;
    for batch in batches {
        if part.rows >= limits.file_rows {
            let next = Part::create(dir.join(part_name(files)), schema.clone(), limits)?;
            std::mem::replace(&mut part, next).close()?;
            files += 1;
        }
        part.writer.write(&batch).map_err(parquet_err(&part.path))?;
        part.writer.flush().map_err(parquet_err(&part.path))?;
        part.rows += batch.num_rows() as u64;
    }
    part.close()?;
    Ok(files)
}

/// Writes one table as `<out>/<table>/part-NNNNN.parquet`.
pub(crate) struct TableWriter<B: RowBuffer> {
    /// Builders the next rows are appended to; call [`TableWriter::row`]
    /// after appending one value to every column.
    pub buf: B,
    dir: PathBuf,
    schema: SchemaRef,
    row_group_rows: usize,
    batches: Option<SyncSender<RecordBatch>>,
    encoder: Option<JoinHandle<Result<usize, GenerateError>>>,
    rows: u64,
    bad_rows: u64,
}

impl<B: RowBuffer> TableWriter<B> {
    /// Creates `<out>/<table>/`, removes its old part files, opens
    /// `part-00000.parquet` (so even an empty table has one file) and
    /// starts the table's encoder thread.
    pub(crate) fn create(out: &Path, limits: Limits) -> Result<Self, GenerateError> {
        let dir = out.join(B::TABLE);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        remove_old_parts(&dir)?;
        let schema = B::schema();
        let part = Part::create(dir.join(part_name(0)), schema.clone(), limits)?;
        let (tx, rx) = sync_channel(QUEUED_BATCHES);
        let encoder = {
            let (dir, schema) = (dir.clone(), schema.clone());
            std::thread::Builder::new()
                .name(format!("generate-{}", B::TABLE))
                .spawn(move || encode(dir, schema, limits, part, rx))
        }
        .map_err(io_err(&dir))?;
        Ok(TableWriter {
            buf: B::with_rows(INITIAL_ROWS.min(limits.row_group_rows)),
            dir,
            schema,
            row_group_rows: limits.row_group_rows,
            batches: Some(tx),
            encoder: Some(encoder),
            rows: 0,
            bad_rows: 0,
        })
    }

    /// Ends a row whose values were appended to `buf`.
    #[inline]
    pub(crate) fn row(&mut self) -> Result<(), GenerateError> {
        self.rows += 1;
        if self.buf.len() >= self.row_group_rows {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Ends a row that breaks the input contract on purpose.
    pub(crate) fn bad_row(&mut self) -> Result<(), GenerateError> {
        self.bad_rows += 1;
        self.row()
    }

    /// Hands the buffered rows to the encoder thread.
    fn send_batch(&mut self) -> Result<(), GenerateError> {
        if self.buf.len() == 0 {
            return Ok(());
        }
        let batch =
            RecordBatch::try_new(self.schema.clone(), self.buf.finish()).map_err(|source| {
                GenerateError::Arrow {
                    path: self.dir.clone(),
                    source,
                }
            })?;
        let sent = self.batches.as_ref().map(|tx| tx.send(batch).is_ok());
        if sent != Some(true) {
            // The encoder stopped early: its error says why.
            self.join()?;
            return Err(encoder_gone(&self.dir));
        }
        Ok(())
    }

    /// Stops the encoder thread and returns the number of part files.
    fn join(&mut self) -> Result<usize, GenerateError> {
        self.batches = None;
        let encoder = self.encoder.take().ok_or_else(|| encoder_gone(&self.dir))?;
        match encoder.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Writes the last rows, closes the file and reports the counts.
    pub(crate) fn finish(mut self) -> Result<TableSummary, GenerateError> {
        self.send_batch()?;
        let files = self.join()?;
        Ok(TableSummary {
            table: B::TABLE.to_string(),
            rows: self.rows,
            bad_rows: self.bad_rows,
            files,
        })
    }
}

fn encoder_gone(dir: &Path) -> GenerateError {
    GenerateError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other("the table's encoder thread has already stopped"),
    }
}

impl<B: RowBuffer> Drop for TableWriter<B> {
    /// On an early return, lets the encoder thread end (its result is
    /// dropped: the error being returned is the one that matters).
    fn drop(&mut self) {
        self.batches = None;
        if let Some(encoder) = self.encoder.take() {
            let _ = encoder.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_names() {
        assert_eq!(part_name(3), "part-00003.parquet");
        assert!(is_part_file("part-00000.parquet"));
        assert!(is_part_file("part-12.parquet"));
        assert!(!is_part_file("part-.parquet"));
        assert!(!is_part_file("part-0001.parquet.tmp"));
        assert!(!is_part_file("notes.parquet"));
    }
}
