//! A LeRobot dataset with r3m features: a copy of a LeRobot dataset (v2.x or v3.0) whose frames carry
//! a frozen encoder's embedding as a new vector feature, so LeRobot's own policies (ACT, Diffusion
//! Policy: `observation.environment_state`) train on it.
//!
//! The copy follows the format's own rules:
//!
//! * `meta/info.json`: the feature is added (`float32`, shape `[D]`); with `drop_videos` the video
//!   features go, `video_path` becomes null and `total_videos` 0 (where the version keeps it).
//! * `data/**.parquet`: each file is rewritten with one more column, a `fixed_size_list<float32>[D]`
//!   like LeRobot's own vector features, and the `huggingface` schema metadata that names the
//!   columns' types gets the new feature too.
//! * Statistics: per episode (`meta/episodes_stats.jsonl` in v2.1, `stats/NAME/*` columns of
//!   `meta/episodes/**.parquet` in v3.0) with the same statistics the dataset keeps for its other
//!   features (min, max, mean, std, count, and quantiles q01..q99 where present; exact, population
//!   std), and `meta/stats.json` aggregated from them the way LeRobot aggregates (pooled mean and
//!   variance, count-weighted quantiles).
//! * Videos are hard-linked from the source (copied where a link cannot be made) or left out.
//!   Everything else is copied as it is. The source is only read.
//!
//! Rows are matched to embeddings by `(episode_index, frame_index)`. A frame that could not be
//! decoded (it has no embedding) takes the embedding of the nearest decoded frame of its episode and
//! is counted in [`FeaturedReport::filled`]; an episode with no decoded frame is an error.
//! Memory: one record batch per embeddings part, one data file's batch and one episode's values.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, FixedSizeListArray, Float32Array, ListBuilder, PrimitiveBuilder, RecordBatch};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Float64Type, Int64Type, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{json, Map, Value};

use crate::parquet_io::{ChunkReader, Embeddings, ExportError};

/// The feature name LeRobot's policies read a state vector from.
pub const DEFAULT_FEATURE: &str = "observation.environment_state";

/// What [`write_featured_dataset`] did.
#[derive(Debug, Default, Clone)]
pub struct FeaturedReport {
    /// Episodes written.
    pub episodes: usize,
    /// Data rows written (every row of the source).
    pub rows: u64,
    /// Rows whose frame had no embedding and took the nearest decoded frame's.
    pub filled: u64,
    /// Video files hard-linked / copied.
    pub videos_linked: usize,
    /// Video files copied because a hard link could not be made.
    pub videos_copied: usize,
    /// Embedding size.
    pub dim: usize,
}

fn fmt_err(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Format { path: path.to_path_buf(), reason: e.to_string() }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |e| ExportError::Io { path: path.to_path_buf(), source: e }
}

fn read_json(path: &Path) -> Result<Value, ExportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| fmt_err(path, format!("not valid JSON ({e})")))
}

fn write_json(path: &Path, v: &Value) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| fmt_err(path, e))?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

/// The dataset's layout, as far as this writer needs it.
struct Layout {
    video_keys: Vec<String>,
    /// Statistic names kept per feature (e.g. min, max, mean, std, count, q01, ...).
    stat_keys: Vec<String>,
}

/// Writes into `out` (an empty folder) a copy of the LeRobot dataset at `src` whose frames carry the
/// embeddings of `parts` (r3m embeddings files of that dataset, e.g. `part-I-of-N.parquet`) as the
/// feature `name`; `drop_videos` leaves the videos out. The caller puts `out` in place.
pub fn write_featured_dataset(
    src: &Path,
    parts: &[PathBuf],
    out: &Path,
    name: &str,
    drop_videos: bool,
) -> Result<FeaturedReport, ExportError> {
    let info_path = src.join("meta/info.json");
    let mut info = read_json(&info_path)?;
    let version = info.get("codebase_version").and_then(Value::as_str).unwrap_or("").to_string();
    let v3 = match version.trim_start_matches('v').chars().next() {
        Some('3') => true,
        Some('2') => false,
        _ => {
            return Err(fmt_err(
                &info_path,
                format!("codebase_version '{version}' is not supported (v2.x and v3.0 are)"),
            ))
        }
    };
    let features = info
        .get("features")
        .and_then(Value::as_object)
        .ok_or_else(|| fmt_err(&info_path, "no 'features' object"))?
        .clone();
    if features.contains_key(name) {
        return Err(fmt_err(
            &info_path,
            format!(
                "the dataset already has a feature '{name}' (--feature NAME writes the embeddings under another name)"
            ),
        ));
    }
    let video_keys: Vec<String> = features
        .iter()
        .filter(|(_, f)| f.get("dtype").and_then(Value::as_str) == Some("video"))
        .map(|(k, _)| k.clone())
        .collect();
    let stats_path = src.join("meta/stats.json");
    let stats = if stats_path.exists() { Some(read_json(&stats_path)?) } else { None };
    let stat_keys = stat_keys_of(stats.as_ref(), &video_keys);
    let layout = Layout { video_keys, stat_keys };

    let mut report = FeaturedReport::default();
    let mut cursors = parts.iter().map(|p| PartCursor::open(p)).collect::<Result<Vec<_>, _>>()?;
    let dim = cursors.first().map(|c| c.reader.dim).ok_or_else(|| fmt_err(src, "no embeddings to write"))?;
    if let Some(c) = cursors.iter().find(|c| c.reader.dim != dim) {
        return Err(fmt_err(&c.path, format!("{}-d embeddings, other parts have {dim}", c.reader.dim)));
    }
    if let Some(c) = cursors.iter().find(|c| !c.reader.episodes) {
        return Err(fmt_err(&c.path, "no episode_index column: not the embeddings of a LeRobot dataset"));
    }
    report.dim = dim;

    // everything but data, statistics and (maybe) videos, as it is
    let mut data_files = Vec::new();
    let mut episode_files = Vec::new();
    copy_tree(src, src, out, &mut |rel: &Path, from: &Path, to: &Path| -> Result<(), ExportError> {
        let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        let is_parquet = rel.extension().is_some_and(|e| e == "parquet");
        match first.as_str() {
            "data" if is_parquet => data_files.push(rel.to_path_buf()),
            "videos" if drop_videos => {}
            "videos" => {
                create_parent(to)?;
                if std::fs::hard_link(from, to).is_ok() {
                    report.videos_linked += 1;
                } else {
                    std::fs::copy(from, to).map_err(io_err(from))?;
                    report.videos_copied += 1;
                }
            }
            "meta" if rel == Path::new("meta/info.json") || rel == Path::new("meta/stats.json") => {}
            "meta" if rel == Path::new("meta/episodes_stats.jsonl") => {}
            "meta" if v3 && is_parquet && rel.starts_with("meta/episodes") => episode_files.push(rel.to_path_buf()),
            _ => {
                create_parent(to)?;
                std::fs::copy(from, to).map_err(io_err(from))?;
            }
        }
        Ok(())
    })?;
    data_files.sort();
    episode_files.sort();

    // data: one more column; per-episode statistics on the way
    let mut per_episode: BTreeMap<i64, Map<String, Value>> = BTreeMap::new();
    let mut current: Option<EpisodeRows> = None;
    for rel in &data_files {
        let n = rewrite_data_file(&src.join(rel), &out.join(rel), name, dim, &mut |ep, frame, vals| {
            if current.as_ref().is_none_or(|c| c.episode != ep) {
                if let Some(done) = current.take() {
                    per_episode.insert(done.episode, done.stats(&layout.stat_keys));
                    report.episodes += 1;
                }
                current = Some(EpisodeRows::load(ep, &mut cursors, dim)?);
            }
            let c = current.as_mut().expect("just set");
            c.take(frame, &mut report.filled, vals);
            Ok(())
        })?;
        report.rows += n;
    }
    if let Some(done) = current.take() {
        per_episode.insert(done.episode, done.stats(&layout.stat_keys));
        report.episodes += 1;
    }

    // statistics and info
    if v3 {
        for rel in &episode_files {
            rewrite_episodes_parquet(&src.join(rel), &out.join(rel), name, &layout, drop_videos, &per_episode)?;
        }
    } else {
        let p = src.join("meta/episodes_stats.jsonl");
        if p.exists() {
            rewrite_episodes_stats_jsonl(
                &p,
                &out.join("meta/episodes_stats.jsonl"),
                name,
                &layout,
                drop_videos,
                &per_episode,
            )?;
        }
    }
    if let Some(mut stats) = stats {
        if let Some(o) = stats.as_object_mut() {
            if drop_videos {
                for k in &layout.video_keys {
                    o.remove(k);
                }
            }
            o.insert(name.to_string(), aggregate(per_episode.values(), &layout.stat_keys, dim));
        }
        create_parent(&out.join("meta/stats.json"))?;
        write_json(&out.join("meta/stats.json"), &stats)?;
    }
    if let Some(f) = info.get_mut("features").and_then(Value::as_object_mut) {
        if drop_videos {
            for k in &layout.video_keys {
                f.remove(k);
            }
        }
        f.insert(name.to_string(), json!({"dtype": "float32", "shape": [dim], "names": Value::Null}));
    }
    if drop_videos {
        if let Some(o) = info.as_object_mut() {
            o.insert("video_path".into(), Value::Null);
            if o.contains_key("total_videos") {
                o.insert("total_videos".into(), json!(0));
            }
        }
    }
    create_parent(&out.join("meta/info.json"))?;
    write_json(&out.join("meta/info.json"), &info)?;
    Ok(report)
}

/// The statistics the dataset keeps per numeric feature (those of its first non-video feature in
/// `stats.json`), or LeRobot's basic five.
fn stat_keys_of(stats: Option<&Value>, video_keys: &[String]) -> Vec<String> {
    let basic = || ["min", "max", "mean", "std", "count"].map(String::from).to_vec();
    let Some(o) = stats.and_then(Value::as_object) else { return basic() };
    o.iter()
        .find(|(k, v)| !video_keys.contains(k) && v.is_object())
        .and_then(|(_, v)| v.as_object())
        .map(|s| {
            s.keys()
                .filter(|k| matches!(k.as_str(), "min" | "max" | "mean" | "std" | "count") || quantile_of(k).is_some())
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|k| !k.is_empty())
        .unwrap_or_else(basic)
}

/// `q01` → 0.01, `q50` → 0.5 (LeRobot's quantile statistics).
fn quantile_of(key: &str) -> Option<f64> {
    let d = key.strip_prefix('q')?;
    (!d.is_empty() && d.chars().all(|c| c.is_ascii_digit())).then(|| d.parse::<f64>().ok().map(|v| v / 100.0))?
}

/// Creates the folder `to` goes in.
fn create_parent(to: &Path) -> Result<(), ExportError> {
    match to.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(io_err(parent)),
        None => Ok(()),
    }
}

/// Calls `f(relative, from, to)` for every file under `dir`, in name order (`f` creates `to`'s
/// folder if it writes there).
fn copy_tree(
    root: &Path,
    dir: &Path,
    out_root: &Path,
    f: &mut dyn FnMut(&Path, &Path, &Path) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(io_err(dir))?.collect::<Result<_, _>>().map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        let meta = std::fs::metadata(&p).map_err(io_err(&p))?;
        if meta.is_dir() {
            copy_tree(root, &p, out_root, f)?;
        } else if meta.is_file() {
            f(&rel, &p, &out_root.join(&rel))?;
        }
    }
    Ok(())
}

/// An embeddings part read in order: rows are grouped by episode (in the order of the dataset's
/// episodes, which is the order `r3m embed` writes them).
struct PartCursor {
    path: PathBuf,
    reader: ChunkReader,
    chunk: Option<Embeddings>,
    at: usize,
}

impl PartCursor {
    fn open(path: &Path) -> Result<PartCursor, ExportError> {
        Ok(PartCursor { path: path.to_path_buf(), reader: ChunkReader::open(path)?, chunk: None, at: 0 })
    }

    /// The episode of the next row, reading a batch if needed; `None` at the end.
    fn peek(&mut self) -> Result<Option<i64>, ExportError> {
        loop {
            if let Some(c) = &self.chunk {
                if self.at < c.len() {
                    return Ok(c.episode_index.as_ref().map(|e| e[self.at]));
                }
            }
            match self.reader.next_chunk()? {
                Some(c) => (self.chunk, self.at) = (Some(c), 0),
                None => return Ok(None),
            }
        }
    }

    /// Moves every row of episode `ep` at the cursor into `rows` (frame → values).
    fn take_episode(&mut self, ep: i64, rows: &mut BTreeMap<i64, Vec<f32>>) -> Result<(), ExportError> {
        while let Some(e) = self.peek()? {
            if e < ep {
                // an episode the data files do not have (or already passed): skip it
                self.at += 1;
                continue;
            }
            if e > ep {
                break;
            }
            let c = self.chunk.as_ref().expect("peeked");
            rows.insert(c.frame_index[self.at], c.row(self.at).to_vec());
            self.at += 1;
        }
        Ok(())
    }
}

/// One episode's embeddings (frame → values) and the values its rows took, for its statistics.
struct EpisodeRows {
    episode: i64,
    by_frame: BTreeMap<i64, Vec<f32>>,
    taken: Vec<f32>,
    dim: usize,
}

impl EpisodeRows {
    fn load(ep: i64, cursors: &mut [PartCursor], dim: usize) -> Result<EpisodeRows, ExportError> {
        let mut by_frame = BTreeMap::new();
        for c in cursors.iter_mut() {
            c.take_episode(ep, &mut by_frame)?;
        }
        if by_frame.is_empty() {
            let parts: Vec<String> = cursors.iter().map(|c| c.path.display().to_string()).collect();
            return Err(fmt_err(
                Path::new(&parts.join(", ")),
                format!(
                    "episode {ep} has no embedding (its video could not be decoded, the parts do not cover it, \
                     or the data files are not in episode order)"
                ),
            ));
        }
        Ok(EpisodeRows { episode: ep, by_frame, taken: Vec::new(), dim })
    }

    /// Appends to `out` the embedding of `frame`, or of the nearest frame that has one (counted in
    /// `filled`), and keeps it for the episode's statistics.
    fn take(&mut self, frame: i64, filled: &mut u64, out: &mut Vec<f32>) {
        let v = match self.by_frame.get(&frame) {
            Some(v) => v,
            None => {
                *filled += 1;
                let after = self.by_frame.range(frame..).next();
                let before = self.by_frame.range(..frame).next_back();
                match (before, after) {
                    (Some(b), Some(a)) => {
                        if frame - b.0 <= a.0 - frame {
                            b.1
                        } else {
                            a.1
                        }
                    }
                    (Some(x), None) | (None, Some(x)) => x.1,
                    (None, None) => unreachable!("an episode has at least one row"),
                }
            }
        };
        out.extend_from_slice(v);
        self.taken.extend_from_slice(v);
    }

    /// This episode's statistics of the feature, under `keys`.
    fn stats(&self, keys: &[String]) -> Map<String, Value> {
        stats_of(&self.taken, self.dim, keys)
    }
}

/// Per-dimension statistics of `values` (`[n, dim]`, row-major) under LeRobot's names.
fn stats_of(values: &[f32], dim: usize, keys: &[String]) -> Map<String, Value> {
    let n = values.len() / dim.max(1);
    let mut cols: Vec<Vec<f64>> = (0..dim).map(|d| (0..n).map(|i| values[i * dim + d] as f64).collect()).collect();
    let mut out = Map::new();
    for c in cols.iter_mut() {
        c.sort_by(f64::total_cmp);
    }
    for k in keys {
        let v = match k.as_str() {
            "count" => json!([n]),
            "min" => json!(cols.iter().map(|c| c.first().copied().unwrap_or(0.0)).collect::<Vec<_>>()),
            "max" => json!(cols.iter().map(|c| c.last().copied().unwrap_or(0.0)).collect::<Vec<_>>()),
            "mean" => json!(cols.iter().map(|c| mean(c)).collect::<Vec<_>>()),
            "std" => json!(cols
                .iter()
                .map(|c| {
                    let m = mean(c);
                    (c.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / c.len().max(1) as f64).sqrt()
                })
                .collect::<Vec<_>>()),
            q => match quantile_of(q) {
                Some(p) => json!(cols.iter().map(|c| quantile_sorted(c, p)).collect::<Vec<_>>()),
                None => continue,
            },
        };
        out.insert(k.clone(), v);
    }
    out
}

fn mean(c: &[f64]) -> f64 {
    c.iter().sum::<f64>() / c.len().max(1) as f64
}

/// The `p` quantile of sorted values, interpolated linearly (NumPy's default).
fn quantile_sorted(c: &[f64], p: f64) -> f64 {
    if c.is_empty() {
        return 0.0;
    }
    let h = p * (c.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    c[lo] + (h - lo as f64) * (c[hi] - c[lo])
}

fn f64s(v: Option<&Value>) -> Vec<f64> {
    v.and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect()).unwrap_or_default()
}

/// The whole dataset's statistics from the episodes', as LeRobot aggregates them: min of mins,
/// max of maxes, pooled mean and variance, count-weighted quantiles.
fn aggregate<'a>(episodes: impl Iterator<Item = &'a Map<String, Value>>, keys: &[String], dim: usize) -> Value {
    let eps: Vec<&Map<String, Value>> = episodes.collect();
    let counts: Vec<f64> = eps.iter().map(|s| f64s(s.get("count")).first().copied().unwrap_or(0.0)).collect();
    let total: f64 = counts.iter().sum::<f64>().max(1.0);
    let weighted = |key: &str| -> Vec<f64> {
        let mut acc = vec![0.0; dim];
        for (s, w) in eps.iter().zip(&counts) {
            for (a, v) in acc.iter_mut().zip(f64s(s.get(key))) {
                *a += v * w;
            }
        }
        acc.iter().map(|a| a / total).collect()
    };
    let mean = weighted("mean");
    let mut out = Map::new();
    for k in keys {
        let v = match k.as_str() {
            "count" => json!([counts.iter().sum::<f64>() as i64]),
            "min" | "max" => {
                let mut acc = vec![if k == "min" { f64::INFINITY } else { f64::NEG_INFINITY }; dim];
                for s in &eps {
                    for (a, v) in acc.iter_mut().zip(f64s(s.get(k.as_str()))) {
                        *a = if k == "min" { a.min(v) } else { a.max(v) };
                    }
                }
                json!(acc)
            }
            "mean" => json!(mean),
            "std" => {
                let mut var = vec![0.0; dim];
                for (s, w) in eps.iter().zip(&counts) {
                    let (m, sd) = (f64s(s.get("mean")), f64s(s.get("std")));
                    for d in 0..dim.min(m.len()).min(sd.len()) {
                        var[d] += (sd[d] * sd[d] + (m[d] - mean[d]).powi(2)) * w;
                    }
                }
                json!(var.iter().map(|v| (v / total).sqrt()).collect::<Vec<_>>())
            }
            q if quantile_of(q).is_some() => json!(weighted(q)),
            _ => continue,
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn writer_props() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default())).build()
}

/// Adds the feature to the `huggingface` schema metadata (the column types `datasets` reads),
/// shaped like the file's own vector features.
fn hf_metadata_with(meta: &HashMap<String, String>, name: &str, dim: usize) -> HashMap<String, String> {
    let mut meta = meta.clone();
    if let Some(text) = meta.get("huggingface") {
        if let Ok(mut v) = serde_json::from_str::<Value>(text) {
            if let Some(f) = v.pointer_mut("/info/features").and_then(Value::as_object_mut) {
                let list_type = f
                    .values()
                    .filter_map(|x| x.get("_type").and_then(Value::as_str))
                    .find(|t| matches!(*t, "List" | "Sequence"))
                    .unwrap_or("Sequence")
                    .to_string();
                f.insert(
                    name.to_string(),
                    json!({"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": list_type}),
                );
                meta.insert("huggingface".into(), v.to_string());
            }
        }
    }
    meta
}

/// Appends the embedding of `(episode, frame)` to the row values.
type RowValue<'a> = dyn FnMut(i64, i64, &mut Vec<f32>) -> Result<(), ExportError> + 'a;

/// Rewrites one data file with the feature column; `value(episode, frame, out)` appends each
/// row's embedding to `out`. Returns the rows written.
fn rewrite_data_file(from: &Path, to: &Path, name: &str, dim: usize, value: &mut RowValue) -> Result<u64, ExportError> {
    r3m_data::table::no_panic(|| {
        let file = File::open(from).map_err(io_err(from))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fmt_err(from, format!("not a Parquet file ({e})")))?;
        let schema = builder.schema().clone();
        if schema.field_with_name(name).is_ok() {
            return Err(fmt_err(from, format!("already has a column '{name}'")));
        }
        // the item field LeRobot's vector columns use (name and nullability), for the new column
        let item = schema
            .fields()
            .iter()
            .find_map(|f| match f.data_type() {
                DataType::FixedSizeList(item, _) => Some(item.clone()),
                _ => None,
            })
            .unwrap_or_else(|| Arc::new(Field::new("element", DataType::Float32, true)));
        let item = Arc::new(Field::new(item.name(), DataType::Float32, item.is_nullable()));
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(name, DataType::FixedSizeList(item.clone(), dim as i32), true)));
        let out_schema = Arc::new(Schema::new_with_metadata(fields, hf_metadata_with(schema.metadata(), name, dim)));
        let reader = builder.build().map_err(|e| fmt_err(from, e))?;
        create_parent(to)?;
        let file = File::create(to).map_err(io_err(to))?;
        let mut w = ArrowWriter::try_new(file, out_schema.clone(), Some(writer_props())).map_err(|e| fmt_err(to, e))?;
        let mut rows = 0u64;
        for batch in reader {
            let b = batch.map_err(|e| fmt_err(from, e))?;
            let ints = |col: &str| -> Result<Vec<i64>, ExportError> {
                let a = b.column_by_name(col).ok_or_else(|| fmt_err(from, format!("no '{col}' column")))?;
                let a = arrow::compute::cast(a, &DataType::Int64).map_err(|e| fmt_err(from, e))?;
                Ok(a.as_primitive::<Int64Type>().values().to_vec())
            };
            let (eps, frames) = (ints("episode_index")?, ints("frame_index")?);
            let mut vals = Vec::with_capacity(b.num_rows() * dim);
            for (&e, &f) in eps.iter().zip(&frames) {
                value(e, f, &mut vals)?;
            }
            let list: ArrayRef = Arc::new(
                FixedSizeListArray::try_new(item.clone(), dim as i32, Arc::new(Float32Array::from(vals)), None)
                    .map_err(|e| fmt_err(from, e))?,
            );
            let mut cols = b.columns().to_vec();
            cols.push(list);
            let nb = RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| fmt_err(from, e))?;
            rows += nb.num_rows() as u64;
            w.write(&nb).map_err(|e| fmt_err(to, e))?;
        }
        w.close().map_err(|e| fmt_err(to, e))?;
        Ok(rows)
    })
    .map_err(|e| e.map_or_else(|own| own, |why| fmt_err(from, why)))
}

/// v3.0: adds `stats/NAME/*` columns to an episodes file (and drops the videos' columns).
fn rewrite_episodes_parquet(
    from: &Path,
    to: &Path,
    name: &str,
    layout: &Layout,
    drop_videos: bool,
    per_episode: &BTreeMap<i64, Map<String, Value>>,
) -> Result<(), ExportError> {
    let batches = r3m_data::table::read_parquet(from).map_err(|e| fmt_err(from, e))?;
    let Some(first) = batches.first() else {
        create_parent(to)?;
        std::fs::copy(from, to).map_err(io_err(from))?;
        return Ok(());
    };
    let schema = first.schema();
    let keep = |f: &str| {
        !drop_videos
            || !layout
                .video_keys
                .iter()
                .any(|k| f.starts_with(&format!("videos/{k}/")) || f.starts_with(&format!("stats/{k}/")))
    };
    let kept: Vec<usize> = (0..schema.fields().len()).filter(|&i| keep(schema.field(i).name())).collect();
    let mut fields: Vec<Arc<Field>> = kept.iter().map(|&i| schema.fields()[i].clone()).collect();
    for k in &layout.stat_keys {
        let item = if k == "count" { DataType::Int64 } else { DataType::Float64 };
        fields.push(Arc::new(Field::new(
            format!("stats/{name}/{k}"),
            DataType::List(Arc::new(Field::new("element", item, true))),
            true,
        )));
    }
    let out_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    create_parent(to)?;
    let file = File::create(to).map_err(io_err(to))?;
    let mut w = ArrowWriter::try_new(file, out_schema.clone(), Some(writer_props())).map_err(|e| fmt_err(to, e))?;
    for b in &batches {
        let eps = b.column_by_name("episode_index").ok_or_else(|| fmt_err(from, "no 'episode_index' column"))?;
        let eps = arrow::compute::cast(eps, &DataType::Int64).map_err(|e| fmt_err(from, e))?;
        let eps = eps.as_primitive::<Int64Type>();
        let mut cols: Vec<ArrayRef> = kept.iter().map(|&i| b.column(i).clone()).collect();
        for k in &layout.stat_keys {
            let stat = |e: i64| per_episode.get(&e).and_then(|s| s.get(k.as_str())).and_then(Value::as_array);
            cols.push(if k == "count" {
                stat_column::<Int64Type>(eps, stat, |x| x.as_i64().unwrap_or(0))
            } else {
                stat_column::<Float64Type>(eps, stat, |x| x.as_f64().unwrap_or(0.0))
            });
        }
        let nb = RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| fmt_err(from, e))?;
        w.write(&nb).map_err(|e| fmt_err(to, e))?;
    }
    w.close().map_err(|e| fmt_err(to, e))?;
    Ok(())
}

/// A `list<T>` column with each episode's statistic (`stat(episode)`; null where it has none),
/// items named `element` as LeRobot writes them.
fn stat_column<'a, T: ArrowPrimitiveType>(
    eps: &arrow::array::Int64Array,
    stat: impl Fn(i64) -> Option<&'a Vec<Value>>,
    item: impl Fn(&Value) -> T::Native,
) -> ArrayRef {
    let mut lb = ListBuilder::new(PrimitiveBuilder::<T>::new()).with_field(Field::new("element", T::DATA_TYPE, true));
    for i in 0..eps.len() {
        match stat(eps.value(i)) {
            Some(a) => {
                lb.values().append_slice(&a.iter().map(&item).collect::<Vec<_>>());
                lb.append(true);
            }
            None => lb.append(false),
        }
    }
    Arc::new(lb.finish())
}

/// v2.x: adds the feature to each episode's line of `meta/episodes_stats.jsonl`.
fn rewrite_episodes_stats_jsonl(
    from: &Path,
    to: &Path,
    name: &str,
    layout: &Layout,
    drop_videos: bool,
    per_episode: &BTreeMap<i64, Map<String, Value>>,
) -> Result<(), ExportError> {
    let text = std::fs::read_to_string(from).map_err(io_err(from))?;
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value =
            serde_json::from_str(line).map_err(|e| fmt_err(from, format!("line {}: not JSON ({e})", i + 1)))?;
        let ep = v.get("episode_index").and_then(Value::as_i64);
        if let (Some(ep), Some(stats)) = (ep, v.get_mut("stats").and_then(Value::as_object_mut)) {
            if drop_videos {
                for k in &layout.video_keys {
                    stats.remove(k);
                }
            }
            if let Some(s) = per_episode.get(&ep) {
                stats.insert(name.to_string(), Value::Object(s.clone()));
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    create_parent(to)?;
    std::fs::write(to, out).map_err(io_err(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_follow_numpy_and_lerobot() {
        let keys: Vec<String> = ["min", "max", "mean", "std", "count", "q10", "q50"].map(String::from).to_vec();
        // two dims: 0..5 and 10 - 2i
        let vals: Vec<f32> = (0..5).flat_map(|i| [i as f32, 10.0 - 2.0 * i as f32]).collect();
        let s = stats_of(&vals, 2, &keys);
        assert_eq!(s["count"], json!([5]));
        assert_eq!(s["min"], json!([0.0, 2.0]));
        assert_eq!(s["max"], json!([4.0, 10.0]));
        assert_eq!(s["mean"], json!([2.0, 6.0]));
        assert_eq!(s["std"], json!([2f64.sqrt(), 8f64.sqrt()]));
        // numpy.quantile([0,1,2,3,4], 0.1) = 0.4
        let q10 = f64s(s.get("q10"));
        assert!((q10[0] - 0.4).abs() < 1e-12 && (q10[1] - 2.8).abs() < 1e-12, "{q10:?}");
        // pooled over two episodes equals the statistics of the whole
        let a = stats_of(&vals[..6], 2, &keys);
        let b = stats_of(&vals[6..], 2, &keys);
        let all = aggregate([&a, &b].into_iter(), &keys, 2);
        for k in ["min", "max", "mean", "std"] {
            let (x, y) = (f64s(all.get(k)), f64s(s.get(k)));
            assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-9), "{k}: {x:?} vs {y:?}");
        }
        assert_eq!(all["count"], json!([5]));
        assert_eq!(quantile_of("q01"), Some(0.01));
        assert_eq!(quantile_of("quux"), None);
    }

    #[test]
    fn a_frame_without_embedding_takes_the_nearest_decoded_one() {
        // frames 0, 3 and 4 decoded; 1 and 2 did not
        let by_frame: BTreeMap<i64, Vec<f32>> = [(0, vec![0.0]), (3, vec![3.0]), (4, vec![4.0])].into_iter().collect();
        let mut ep = EpisodeRows { episode: 7, by_frame, taken: Vec::new(), dim: 1 };
        let mut filled = 0;
        let mut got: Vec<f32> = Vec::new();
        for f in 0..6 {
            ep.take(f, &mut filled, &mut got);
        }
        // 1 → 0 (nearer), 2 → 3, 5 → 4 (past the end)
        assert_eq!(got, [0.0, 0.0, 3.0, 3.0, 4.0, 4.0]);
        assert_eq!(filled, 3);
        assert_eq!(ep.stats(&["count".to_string()])["count"], json!([6]));
    }
}
