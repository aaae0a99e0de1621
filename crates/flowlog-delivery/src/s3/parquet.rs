//! Parquet flow-log files (`DestinationOptions.FileFormat=parquet`, spec §4.1, §5.5), written
//! with the `parquet` crate's column writer (no arrow: the records are flat, and the column
//! API is all it takes).
//!
//! - Columns: the format's fields in order, named as AWS names them (`-` → `_`), physical
//!   types INT32 (version, ports, protocol, tcp-flags, traffic-path), INT64 (packets, bytes,
//!   start, end), else BYTE_ARRAY annotated UTF8 (STRING). All columns are `optional`: a
//!   value AWS prints as `-` is a null.
//! - Pages are GZIP-compressed, as AWS compresses its Parquet files.
//! - Streaming: rows are buffered per row group ([`ROW_GROUP_ROWS`]) and written out when it
//!   is full, so memory is bounded by one row group, not by the file.
//!
//! Input is the record lines the spool already holds (the text formatter's output, fields
//! separated by one space), so text and Parquet files carry the same values by construction.

use std::io::{BufRead, Write};
use std::sync::Arc;

use flowlog_model::record::{ColumnType, Field};
use parquet::basic::{Compression, GzipLevel, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// Rows per row group: about 10-20 MB of buffered values for the longest format.
pub const ROW_GROUP_ROWS: usize = 100_000;

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn pq(e: parquet::errors::ParquetError) -> std::io::Error {
    std::io::Error::other(e)
}

/// The Parquet schema of a format.
pub fn schema(fields: &[Field]) -> parquet::errors::Result<Type> {
    let columns = fields
        .iter()
        .map(|f| {
            let name = f.column_name();
            let b = match f.parquet_type() {
                ColumnType::Int32 => Type::primitive_type_builder(&name, Physical::INT32),
                ColumnType::Int64 => Type::primitive_type_builder(&name, Physical::INT64),
                ColumnType::String => Type::primitive_type_builder(&name, Physical::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
            };
            b.with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
        })
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    Type::group_type_builder("schema")
        .with_fields(columns)
        .build()
}

/// Buffered values of one column for the current row group.
enum Column {
    I32(Vec<i32>, Vec<i16>),
    I64(Vec<i64>, Vec<i16>),
    Str(Vec<ByteArray>, Vec<i16>),
}

/// A Parquet file being written from record lines.
pub struct LineWriter<W: Write + Send> {
    fields: Vec<Field>,
    writer: SerializedFileWriter<W>,
    columns: Vec<Column>,
    rows: usize,
    /// Rows in the file so far.
    pub total_rows: u64,
}

impl<W: Write + Send> LineWriter<W> {
    pub fn new(fields: &[Field], out: W) -> std::io::Result<LineWriter<W>> {
        let props = WriterProperties::builder()
            .set_compression(Compression::GZIP(GzipLevel::default()))
            .set_created_by("flowlog".to_string())
            .build();
        let writer =
            SerializedFileWriter::new(out, Arc::new(schema(fields).map_err(pq)?), Arc::new(props))
                .map_err(pq)?;
        let columns = fields
            .iter()
            .map(|f| match f.parquet_type() {
                ColumnType::Int32 => Column::I32(Vec::new(), Vec::new()),
                ColumnType::Int64 => Column::I64(Vec::new(), Vec::new()),
                ColumnType::String => Column::Str(Vec::new(), Vec::new()),
            })
            .collect();
        Ok(LineWriter {
            fields: fields.to_vec(),
            writer,
            columns,
            rows: 0,
            total_rows: 0,
        })
    }

    /// Adds one record line (fields in the format's order, one space apart, `-` = absent).
    pub fn push_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut tokens = line.split(' ');
        for (i, col) in self.columns.iter_mut().enumerate() {
            let t = tokens.next().ok_or_else(|| {
                invalid(format!(
                    "record line has fewer fields than its format ({}): {line:?}",
                    self.fields.len()
                ))
            })?;
            let absent = t == "-";
            let bad = || {
                invalid(format!(
                    "field {} of record line is not a number: {line:?}",
                    self.fields[i].name()
                ))
            };
            match col {
                Column::I32(_, d) if absent => d.push(0),
                Column::I32(v, d) => {
                    v.push(t.parse().map_err(|_| bad())?);
                    d.push(1);
                }
                Column::I64(_, d) if absent => d.push(0),
                Column::I64(v, d) => {
                    // u64 counters above i64::MAX cannot occur in practice; refuse them.
                    v.push(t.parse().map_err(|_| bad())?);
                    d.push(1);
                }
                Column::Str(_, d) if absent => d.push(0),
                Column::Str(v, d) => {
                    v.push(ByteArray::from(t));
                    d.push(1);
                }
            }
        }
        if tokens.next().is_some() {
            return Err(invalid(format!(
                "record line has more fields than its format ({}): {line:?}",
                self.fields.len()
            )));
        }
        self.rows += 1;
        self.total_rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    pub fn flush_row_group(&mut self) -> std::io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group().map_err(pq)?;
        for col in &mut self.columns {
            let mut w = rg.next_column().map_err(pq)?.ok_or_else(|| {
                invalid("parquet schema has fewer columns than the format".into())
            })?;
            match col {
                Column::I32(v, d) => {
                    w.typed::<Int32Type>()
                        .write_batch(v, Some(d), None)
                        .map_err(pq)?;
                    v.clear();
                    d.clear();
                }
                Column::I64(v, d) => {
                    w.typed::<Int64Type>()
                        .write_batch(v, Some(d), None)
                        .map_err(pq)?;
                    v.clear();
                    d.clear();
                }
                Column::Str(v, d) => {
                    w.typed::<ByteArrayType>()
                        .write_batch(v, Some(d), None)
                        .map_err(pq)?;
                    v.clear();
                    d.clear();
                }
            }
            w.close().map_err(pq)?;
        }
        rg.close().map_err(pq)?;
        self.rows = 0;
        Ok(())
    }

    /// The underlying writer, for taking out what was written so far (see
    /// [`write_from_lines`]). Only ever drained, never written to directly.
    pub fn inner_mut(&mut self) -> &mut W {
        self.writer.inner_mut()
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_row_group()?;
        self.writer.into_inner().map_err(pq)
    }
}

/// Fields of a header line (`version account-id ...`).
pub fn fields_of_header(header: &str) -> std::io::Result<Vec<Field>> {
    header
        .split(' ')
        .map(|n| {
            Field::from_name(n).ok_or_else(|| invalid(format!("unknown field {n:?} in header")))
        })
        .collect()
}

/// Converts spooled record lines (`lines`, one record per line, without header) of the format
/// named by `header` into a Parquet file on `out`. Streaming: the file is built in an in-memory
/// buffer that is moved to `out` after every row group (`out` need not be `Send`).
pub fn write_from_lines(
    header: &str,
    lines: &mut dyn BufRead,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let fields = fields_of_header(header)?;
    let mut w = LineWriter::new(&fields, Vec::<u8>::with_capacity(1 << 20))?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end_matches('\n');
        if l.is_empty() {
            continue;
        }
        w.push_line(l)?;
        if w.rows == 0 {
            // A row group was just written: move its bytes out.
            out.write_all(&std::mem::take(w.inner_mut()))?;
        }
    }
    let rest = w.finish()?;
    out.write_all(&rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn lines_become_typed_columns_with_nulls() {
        let header = "version account-id srcport packets action flow-direction traffic-path";
        let text = "5 123456789012 443 10 ACCEPT egress 1\n5 123456789012 - - - - -\n";
        let mut out = Vec::new();
        write_from_lines(header, &mut text.as_bytes(), &mut out).unwrap();
        let r = SerializedFileReader::new(bytes::Bytes::from(out)).unwrap();
        let md = r.metadata();
        assert_eq!(md.file_metadata().num_rows(), 2);
        let schema = md.file_metadata().schema_descr();
        let cols: Vec<(String, Physical)> = (0..schema.num_columns())
            .map(|i| {
                let c = schema.column(i);
                (c.name().to_string(), c.physical_type())
            })
            .collect();
        assert_eq!(
            cols,
            vec![
                ("version".into(), Physical::INT32),
                ("account_id".into(), Physical::BYTE_ARRAY),
                ("srcport".into(), Physical::INT32),
                ("packets".into(), Physical::INT64),
                ("action".into(), Physical::BYTE_ARRAY),
                ("flow_direction".into(), Physical::BYTE_ARRAY),
                ("traffic_path".into(), Physical::INT32),
            ]
        );
        let rg = md.row_group(0);
        assert!(matches!(rg.column(0).compression(), Compression::GZIP(_)));
        let rows: Vec<String> = r
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_string())
            .collect();
        assert!(rows[0].contains("packets: 10"), "{}", rows[0]);
        assert!(rows[1].contains("packets: null"), "{}", rows[1]);
    }

    #[test]
    fn many_rows_stream_in_row_groups_and_bad_lines_are_refused() {
        let header = "srcport bytes";
        let mut text = String::new();
        let n = ROW_GROUP_ROWS * 2 + 5;
        for i in 0..n {
            text.push_str(&format!("{} {}\n", i % 65536, i));
        }
        let mut out = Vec::new();
        write_from_lines(header, &mut text.as_bytes(), &mut out).unwrap();
        let r = SerializedFileReader::new(bytes::Bytes::from(out)).unwrap();
        assert_eq!(r.metadata().num_row_groups(), 3);
        assert_eq!(r.metadata().file_metadata().num_rows(), n as i64);
        let mut sink = Vec::new();
        assert!(write_from_lines(header, &mut "1 2 3\n".as_bytes(), &mut sink).is_err());
        assert!(write_from_lines(header, &mut "x 2\n".as_bytes(), &mut sink).is_err());
        assert!(write_from_lines("nope", &mut "1\n".as_bytes(), &mut sink).is_err());
    }
}
