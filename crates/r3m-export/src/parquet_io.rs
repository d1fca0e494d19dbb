//! The embeddings Parquet format: writer (streaming, temp file + rename) and reader.
//!
//! One row per frame:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `video` | utf8 | source video, relative to the input root |
//! | `episode_index` | int64 | LeRobot episode (only for LeRobot input) |
//! | `frame_index` | int64 | frame within the clip / episode (0-based) |
//! | `timestamp` | float64 | seconds from the clip's / episode's first frame |
//! | `index` | int64 | global row number, LeRobot style (0.. over the whole export) |
//! | `embedding` | fixed_size_list<float32>[D] | the encoder's output |
//!
//! Key-value metadata (file level, so every engine sees it): `r3m.version`, `r3m.checkpoint`,
//! `r3m.checkpoint_sha256`, `r3m.arch`, `r3m.dim`, `r3m.preprocess`, `r3m.precision`,
//! `r3m.source`, `r3m.shard`. zstd compression; row groups of about 32 MB.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

/// Errors of the writer and reader; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Parquet/Arrow trouble, or a file that is not an embeddings table.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn fmt_err(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Format { path: path.to_path_buf(), reason: e.to_string() }
}

/// The Arrow schema of an embeddings file with `dim`-d embeddings; `episodes` adds
/// `episode_index`.
pub fn schema(dim: usize, episodes: bool) -> SchemaRef {
    let mut fields = vec![Field::new("video", DataType::Utf8, false)];
    if episodes {
        fields.push(Field::new("episode_index", DataType::Int64, false));
    }
    fields.extend([
        Field::new("frame_index", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("index", DataType::Int64, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32),
            false,
        ),
    ]);
    Arc::new(Schema::new(fields))
}

/// Rows waiting to become a record batch.
#[derive(Default)]
struct Pending {
    video: Vec<String>,
    episode: Vec<i64>,
    frame: Vec<i64>,
    time: Vec<f64>,
    index: Vec<i64>,
    emb: Vec<f32>,
}

/// Streams rows into `PATH` through a hidden temporary beside it ([`r3m_fs::TempFile`]);
/// [`EmbeddingWriter::finish`] closes the file, fsyncs it and renames it into place, so `PATH` either
/// does not exist or is complete. Dropping an unfinished writer removes the temporary.
pub struct EmbeddingWriter {
    path: PathBuf,
    tmp: PathBuf,
    staged: Option<r3m_fs::TempFile>,
    dim: usize,
    episodes: bool,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    pending: Pending,
    rows: u64,
}

/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 4096;

impl EmbeddingWriter {
    /// Starts a file for `dim`-d embeddings (`episodes`: with `episode_index`) with `metadata`.
    pub fn create(path: &Path, dim: usize, episodes: bool, metadata: &[(String, String)]) -> Result<Self, ExportError> {
        if dim == 0 {
            return Err(fmt_err(path, "embedding dimension 0"));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ExportError::Io { path: dir.to_path_buf(), source: e })?;
        }
        let mut staged = r3m_fs::TempFile::new(path).map_err(|e| ExportError::Io { path: e.path, source: e.source })?;
        let tmp = staged.tmp_path().to_path_buf();
        let file = staged.take_file().expect("fresh temporary");
        // about 32 MB of embeddings per row group: large enough for fast scans, small enough that
        // memory stays flat however long the export
        let group_rows = (32 << 20) / (4 * dim).max(1);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
            .set_max_row_group_row_count(Some(group_rows.max(BATCH_ROWS)))
            .set_key_value_metadata(Some(metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect()))
            .build();
        let schema = schema(dim, episodes);
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| fmt_err(&tmp, e))?;
        Ok(EmbeddingWriter {
            path: path.to_path_buf(),
            tmp,
            staged: Some(staged),
            dim,
            episodes,
            schema,
            writer: Some(writer),
            pending: Pending::default(),
            rows: 0,
        })
    }

    /// Rows written so far (including those not yet flushed).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one row; `index` is the running row count.
    pub fn push(
        &mut self,
        video: &str,
        episode: Option<i64>,
        frame_index: i64,
        timestamp: f64,
        embedding: &[f32],
    ) -> Result<(), ExportError> {
        if embedding.len() != self.dim {
            return Err(fmt_err(
                &self.path,
                format!("embedding of {} values, the file holds {}", embedding.len(), self.dim),
            ));
        }
        if self.episodes != episode.is_some() {
            return Err(fmt_err(&self.path, "episode_index given for some rows and not others"));
        }
        let p = &mut self.pending;
        p.video.push(video.to_string());
        if let Some(e) = episode {
            p.episode.push(e);
        }
        p.frame.push(frame_index);
        p.time.push(timestamp);
        p.index.push(self.rows as i64);
        p.emb.extend_from_slice(embedding);
        self.rows += 1;
        if p.frame.len() >= BATCH_ROWS {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), ExportError> {
        if self.pending.frame.is_empty() {
            return Ok(());
        }
        let p = std::mem::take(&mut self.pending);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(p.video))];
        if self.episodes {
            cols.push(Arc::new(Int64Array::from(p.episode)));
        }
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let emb = FixedSizeListArray::try_new(item, self.dim as i32, Arc::new(Float32Array::from(p.emb)), None)
            .map_err(|e| fmt_err(&self.tmp, e))?;
        cols.extend([
            Arc::new(Int64Array::from(p.frame)) as ArrayRef,
            Arc::new(Float64Array::from(p.time)),
            Arc::new(Int64Array::from(p.index)),
            Arc::new(emb),
        ]);
        let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| fmt_err(&self.tmp, e))?;
        self.writer.as_mut().expect("open until finish").write(&batch).map_err(|e| fmt_err(&self.tmp, e))
    }

    /// Adds a key-value pair to the file metadata (written with the footer).
    pub fn append_metadata(&mut self, key: &str, value: String) {
        if let Some(w) = self.writer.as_mut() {
            w.append_key_value_metadata(KeyValue::new(key.to_string(), value));
        }
    }

    /// Writes the footer, syncs, and renames the file into place. Returns the row count.
    pub fn finish(mut self) -> Result<u64, ExportError> {
        self.flush_pending()?;
        let w = self.writer.take().expect("open until finish");
        let file = w.into_inner().map_err(|e| fmt_err(&self.tmp, e))?;
        let staged = self.staged.take().expect("open until finish");
        staged.commit(file).map_err(|e| ExportError::Io { path: e.path, source: e.source })?;
        Ok(self.rows)
    }
}

/// An embeddings file read back whole.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    /// `video` per row.
    pub video: Vec<String>,
    /// `episode_index` per row, when the file has it.
    pub episode_index: Option<Vec<i64>>,
    /// `frame_index` per row.
    pub frame_index: Vec<i64>,
    /// `timestamp` per row.
    pub timestamp: Vec<f64>,
    /// `index` per row.
    pub index: Vec<i64>,
    /// Embedding size.
    pub dim: usize,
    /// Row-major `[rows, dim]` values.
    pub values: Vec<f32>,
    /// File key-value metadata.
    pub metadata: HashMap<String, String>,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.frame_index.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frame_index.is_empty()
    }

    /// Row `i`'s embedding.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Runs `f`, a read of the Parquet file at `path`, turning a panic of the Parquet or Arrow reader
/// (a corrupt file can make them panic, e.g. on a malformed embedded Arrow schema) into an error
/// that names the file.
fn no_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, ExportError>) -> Result<T, ExportError> {
    r3m_data::table::no_panic(f).map_err(|e| e.map_or_else(|own| own, |why| fmt_err(path, why)))
}

/// Reads an embeddings file (ours, or any Parquet file with that schema) whole.
pub fn read_embeddings(path: &Path) -> Result<Embeddings, ExportError> {
    no_panic(path, || read_embeddings_inner(path))
}

fn read_embeddings_inner(path: &Path) -> Result<Embeddings, ExportError> {
    let mut out: Option<Embeddings> = None;
    let (metadata, dim, episodes) = for_each_chunk(path, |c| {
        let o = out.get_or_insert_with(|| Embeddings {
            dim: c.dim,
            episode_index: c.episode_index.as_ref().map(|_| Vec::new()),
            ..Default::default()
        });
        o.video.extend_from_slice(&c.video);
        if let (Some(a), Some(b)) = (o.episode_index.as_mut(), c.episode_index.as_ref()) {
            a.extend_from_slice(b);
        }
        o.frame_index.extend_from_slice(&c.frame_index);
        o.timestamp.extend_from_slice(&c.timestamp);
        o.index.extend_from_slice(&c.index);
        o.values.extend_from_slice(&c.values);
        Ok(())
    })?;
    let mut out =
        out.unwrap_or_else(|| Embeddings { dim, episode_index: episodes.then(Vec::new), ..Default::default() });
    out.metadata = metadata;
    Ok(out)
}

/// An embeddings file's key-value metadata and row count, without reading its rows.
pub fn read_embeddings_metadata(path: &Path) -> Result<(HashMap<String, String>, u64), ExportError> {
    no_panic(path, || {
        let (builder, metadata) = open_parquet(path)?;
        Ok((metadata, builder.metadata().file_metadata().num_rows().max(0) as u64))
    })
}

/// Opens a Parquet file for reading and returns its key-value metadata.
fn open_parquet(path: &Path) -> Result<(ParquetRecordBatchReaderBuilder<File>, HashMap<String, String>), ExportError> {
    let file = File::open(path).map_err(|e| ExportError::Io { path: path.to_path_buf(), source: e })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fmt_err(path, format!("not a Parquet file ({e})")))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().filter_map(|k| k.value.clone().map(|v| (k.key.clone(), v))).collect())
        .unwrap_or_default();
    Ok((builder, metadata))
}

/// Streams an embeddings file record batch by record batch (memory: one batch, not the file):
/// `f` sees each batch as an [`Embeddings`] without metadata. Returns the file's metadata, the
/// embedding size and whether it has `episode_index`.
pub fn for_each_chunk(
    path: &Path,
    f: impl FnMut(&Embeddings) -> Result<(), ExportError>,
) -> Result<(HashMap<String, String>, usize, bool), ExportError> {
    no_panic(path, || for_each_chunk_inner(path, f))
}

fn for_each_chunk_inner(
    path: &Path,
    mut f: impl FnMut(&Embeddings) -> Result<(), ExportError>,
) -> Result<(HashMap<String, String>, usize, bool), ExportError> {
    let mut reader = ChunkReader::open(path)?;
    while let Some(chunk) = reader.next_chunk()? {
        f(&chunk)?;
    }
    Ok((reader.metadata, reader.dim, reader.episodes))
}

/// Reads an embeddings file one record batch at a time, on demand (the pull form of
/// [`for_each_chunk`]): memory is one batch.
pub struct ChunkReader {
    path: PathBuf,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// The file's key-value metadata.
    pub metadata: HashMap<String, String>,
    /// Embedding size.
    pub dim: usize,
    /// Whether the file has `episode_index`.
    pub episodes: bool,
}

impl ChunkReader {
    /// Opens `path` and checks that it is an embeddings file.
    pub fn open(path: &Path) -> Result<ChunkReader, ExportError> {
        no_panic(path, || {
            let (builder, metadata) = open_parquet(path)?;
            let schema = builder.schema().clone();
            let dim = match schema.field_with_name("embedding").map(|f| f.data_type().clone()) {
                Ok(DataType::FixedSizeList(_, d)) => d as usize,
                Ok(other) => {
                    return Err(fmt_err(
                        path,
                        format!("column 'embedding' is {other}, not a fixed-size list of float32"),
                    ))
                }
                Err(_) => return Err(fmt_err(path, "no 'embedding' column: not an r3m embeddings file")),
            };
            let episodes = schema.field_with_name("episode_index").is_ok();
            let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(|e| fmt_err(path, e))?;
            Ok(ChunkReader { path: path.to_path_buf(), reader, metadata, dim, episodes })
        })
    }

    /// The next record batch as [`Embeddings`] (without metadata); `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Embeddings>, ExportError> {
        let path = self.path.clone();
        let (dim, episodes) = (self.dim, self.episodes);
        let reader = &mut self.reader;
        no_panic(&path, || match reader.next() {
            None => Ok(None),
            Some(batch) => chunk_of(&path, &batch.map_err(|e| fmt_err(&path, e))?, dim, episodes).map(Some),
        })
    }
}

fn chunk_of(path: &Path, b: &RecordBatch, dim: usize, episodes: bool) -> Result<Embeddings, ExportError> {
    let mut out = Embeddings { dim, episode_index: episodes.then(Vec::new), ..Default::default() };
    let col = |name: &str| b.column_by_name(name).cloned().ok_or_else(|| fmt_err(path, format!("no '{name}' column")));
    let video = col("video")?;
    let video = video.as_string_opt::<i32>().ok_or_else(|| fmt_err(path, "column 'video' is not utf8"))?;
    out.video.extend((0..video.len()).map(|i| video.value(i).to_string()));
    if let Some(ep) = out.episode_index.as_mut() {
        let a = col("episode_index")?;
        ep.extend(
            a.as_primitive_opt::<Int64Type>()
                .ok_or_else(|| fmt_err(path, "episode_index is not int64"))?
                .values()
                .iter(),
        );
    }
    let a = col("frame_index")?;
    out.frame_index.extend(
        a.as_primitive_opt::<Int64Type>().ok_or_else(|| fmt_err(path, "frame_index is not int64"))?.values().iter(),
    );
    let a = col("timestamp")?;
    out.timestamp.extend(
        a.as_primitive_opt::<Float64Type>().ok_or_else(|| fmt_err(path, "timestamp is not float64"))?.values().iter(),
    );
    let a = col("index")?;
    out.index
        .extend(a.as_primitive_opt::<Int64Type>().ok_or_else(|| fmt_err(path, "index is not int64"))?.values().iter());
    let a = col("embedding")?;
    let list = a.as_fixed_size_list_opt().ok_or_else(|| fmt_err(path, "embedding is not a fixed-size list"))?;
    let vals = list.values();
    let vals =
        vals.as_primitive_opt::<Float32Type>().ok_or_else(|| fmt_err(path, "embedding items are not float32"))?;
    let start = list.offset() * dim;
    let end = start + list.len() * dim;
    if end > vals.len() {
        return Err(fmt_err(path, "embedding column shorter than its rows"));
    }
    out.values.extend_from_slice(&vals.values()[start..end]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomicity() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/e.parquet");
        let meta = vec![("r3m.arch".to_string(), "resnet18".to_string())];
        let mut w = EmbeddingWriter::create(&p, 3, true, &meta).unwrap();
        for i in 0..10_000i64 {
            w.push(
                &format!("v{}.mp4", i / 5000),
                Some(i / 5000),
                i % 5000,
                (i % 5000) as f64 / 30.0,
                &[i as f32, -1.0, 0.5],
            )
            .unwrap();
        }
        assert!(!p.exists(), "nothing at the final path before finish");
        assert!(w.push("x", None, 0, 0.0, &[0.0; 3]).is_err());
        assert!(w.push("x", Some(0), 0, 0.0, &[0.0; 2]).is_err());
        assert_eq!(w.finish().unwrap(), 10_000);
        let e = read_embeddings(&p).unwrap();
        assert_eq!((e.len(), e.dim), (10_000, 3));
        assert_eq!(e.row(7777), &[7777.0, -1.0, 0.5]);
        assert_eq!(e.video[7777], "v1.mp4");
        assert_eq!(e.episode_index.as_ref().unwrap()[7777], 1);
        assert_eq!((e.frame_index[7777], e.index[7777]), (2777, 7777));
        assert_eq!(e.metadata["r3m.arch"], "resnet18");
        // an abandoned writer leaves nothing behind
        let q = d.path().join("sub/f.parquet");
        let w = EmbeddingWriter::create(&q, 3, false, &[]).unwrap();
        drop(w);
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["e.parquet"]);
        // not an embeddings file
        std::fs::write(&q, b"PAR1 nope").unwrap();
        assert!(read_embeddings(&q).unwrap_err().to_string().contains("f.parquet"));
    }
}
