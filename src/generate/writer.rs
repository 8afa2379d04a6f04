//! Chunked Parquet writer of one table: rows are appended to Arrow builders,
//! every `ROW_GROUP_ROWS` rows become one row group, and a new part file is
//! started once a file holds `FILE_ROWS` rows. Memory stays bounded by one
//! row group per table.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::GenerateError;
use super::TableSummary;
use super::tables::RowBuffer;

/// Rows per row group (and per buffered batch).
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;
/// A part file is closed once it holds at least this many rows.
pub(crate) const FILE_ROWS: u64 = 2_000_000;

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

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// The open part file of a table.
struct Part {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    rows: u64,
}

impl Part {
    fn create(path: PathBuf, schema: SchemaRef) -> Result<Self, GenerateError> {
        let file = File::create(&path).map_err(io_err(&path))?;
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema,
            Some(writer_properties()),
        )
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

/// Writes one table as `<out>/<table>/part-NNNNN.parquet`.
pub(crate) struct TableWriter<B: RowBuffer> {
    /// Builders the next rows are appended to; call [`TableWriter::row`]
    /// after appending one value to every column.
    pub buf: B,
    dir: PathBuf,
    schema: SchemaRef,
    part: Option<Part>,
    files: usize,
    rows: u64,
    bad_rows: u64,
}

impl<B: RowBuffer> TableWriter<B> {
    /// Creates `<out>/<table>/`, removes its old part files and opens
    /// `part-00000.parquet` (so even an empty table has one file).
    pub(crate) fn create(out: &Path) -> Result<Self, GenerateError> {
        let dir = out.join(B::TABLE);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        remove_old_parts(&dir)?;
        let schema = B::schema();
        let part = Part::create(dir.join(part_name(0)), schema.clone())?;
        Ok(TableWriter {
            buf: B::with_rows(ROW_GROUP_ROWS),
            dir,
            schema,
            part: Some(part),
            files: 1,
            rows: 0,
            bad_rows: 0,
        })
    }

    /// Ends a row whose values were appended to `buf`.
    #[inline]
    pub(crate) fn row(&mut self) -> Result<(), GenerateError> {
        self.rows += 1;
        if self.buf.len() >= ROW_GROUP_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Ends a row that breaks the input contract on purpose.
    pub(crate) fn bad_row(&mut self) -> Result<(), GenerateError> {
        self.bad_rows += 1;
        self.row()
    }

    /// Writes the buffered rows as one row group, rolling to a new part
    /// file first when the current one is full.
    fn write_batch(&mut self) -> Result<(), GenerateError> {
        let n = self.buf.len();
        if n == 0 {
            return Ok(());
        }
        if self.part.as_ref().is_some_and(|p| p.rows >= FILE_ROWS) {
            if let Some(full) = self.part.take() {
                full.close()?;
            }
            let path = self.dir.join(part_name(self.files));
            self.part = Some(Part::create(path, self.schema.clone())?);
            self.files += 1;
        }
        let part = self.part.as_mut().expect("a part file is open");
        let batch =
            RecordBatch::try_new(self.schema.clone(), self.buf.finish()).map_err(|source| {
                GenerateError::Arrow {
                    path: part.path.clone(),
                    source,
                }
            })?;
        part.writer.write(&batch).map_err(parquet_err(&part.path))?;
        part.writer.flush().map_err(parquet_err(&part.path))?;
        part.rows += n as u64;
        Ok(())
    }

    /// Writes the last rows, closes the file and reports the counts.
    pub(crate) fn finish(mut self) -> Result<TableSummary, GenerateError> {
        self.write_batch()?;
        if let Some(part) = self.part.take() {
            part.close()?;
        }
        Ok(TableSummary {
            table: B::TABLE.to_string(),
            rows: self.rows,
            bad_rows: self.bad_rows,
            files: self.files,
        })
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
