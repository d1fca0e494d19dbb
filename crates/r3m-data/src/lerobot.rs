//! LeRobot datasets as a clip source: one clip per episode, from the camera you pick.
//!
//! * **v2.0 / v2.1**: `meta/info.json`, `meta/episodes.jsonl` (`episode_index`, `tasks`, `length`),
//!   one mp4 per episode and camera at `info.video_path` (default
//!   `videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4`).
//! * **v3.0**: episodes are concatenated in shared mp4 files; `meta/episodes/*/*.parquet` says, per
//!   episode and camera, which file (`videos/<key>/chunk_index`, `.../file_index`) and which span
//!   (`.../from_timestamp`, `.../to_timestamp`, seconds). A frame belongs to an episode when its
//!   timestamp is in `[from − ½ frame, to − ½ frame)`.
//!
//! The camera is a video feature of `info.json` (`dtype: "video"`), named in full
//! (`observation.images.top`) or by its last part (`top`); with one camera it may be left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::source::{make_clip, no_clips, probe_all, Dataset, ProbeCache, Skipped, SourceError};
use crate::table;

/// What `meta/info.json` says.
#[derive(Debug, Clone)]
pub struct Info {
    /// `codebase_version` (`v2.1`, `v3.0`, ...).
    pub version: String,
    /// Frames per second of the dataset.
    pub fps: f64,
    /// The video features (cameras), sorted.
    pub video_keys: Vec<String>,
    /// `video_path` template.
    pub video_path: String,
    /// `chunks_size` (episodes per chunk in v2; files per chunk in v3).
    pub chunks_size: i64,
}

impl Info {
    /// Whether this is the v3 layout (episodes share video files).
    pub fn is_v3(&self) -> bool {
        self.version.trim_start_matches('v').starts_with('3')
    }
}

/// One episode's place in the videos of one camera.
#[derive(Debug, Clone)]
pub struct Episode {
    /// `episode_index`.
    pub index: i64,
    /// The task descriptions.
    pub tasks: Vec<String>,
    /// Frames, as `meta/` records them.
    pub length: Option<i64>,
    /// The video file.
    pub video: PathBuf,
    /// Span within the file (v3); `None` means the whole file (v2).
    pub span_s: Option<(f64, f64)>,
}

fn invalid(path: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// Whether `root` looks like a LeRobot dataset (has `meta/info.json`).
pub fn is_lerobot(root: &Path) -> bool {
    root.join("meta").join("info.json").is_file()
}

/// Reads `meta/info.json`.
pub fn read_info(root: &Path) -> Result<Info, SourceError> {
    let path = root.join("meta").join("info.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| invalid(&path, format!("not a LeRobot dataset root ({e})")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(&path, format!("invalid JSON: {e}")))?;
    let version = v["codebase_version"].as_str().ok_or_else(|| invalid(&path, "no codebase_version"))?.to_string();
    let major = version.trim_start_matches('v').chars().next();
    if !matches!(major, Some('2' | '3')) {
        return Err(invalid(&path, format!("codebase_version {version} is not supported (v2.0, v2.1 and v3.0 are)")));
    }
    let fps = v["fps"].as_f64().filter(|f| *f > 0.0).ok_or_else(|| invalid(&path, "no positive fps"))?;
    let mut video_keys: Vec<String> = v["features"]
        .as_object()
        .map(|f| f.iter().filter(|(_, d)| d["dtype"] == "video").map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    video_keys.sort();
    let is_v3 = major == Some('3');
    let default_path = if is_v3 {
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    } else {
        "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    };
    let video_path = v["video_path"].as_str().unwrap_or(default_path).to_string();
    let chunks_size = v["chunks_size"].as_i64().unwrap_or(1000).max(1);
    Ok(Info { version, fps, video_keys, video_path, chunks_size })
}

/// The camera key `camera` names (in full or by its last dotted part); with `None`, the only one.
pub fn resolve_camera(root: &Path, info: &Info, camera: Option<&str>) -> Result<String, SourceError> {
    let path = root.join("meta").join("info.json");
    if info.video_keys.is_empty() {
        return Err(invalid(&path, "the dataset has no video features (cameras)"));
    }
    let list = info.video_keys.join(", ");
    match camera {
        None if info.video_keys.len() == 1 => Ok(info.video_keys[0].clone()),
        None => Err(invalid(&path, format!("{} cameras; pick one with --camera ({list})", info.video_keys.len()))),
        Some(c) => info
            .video_keys
            .iter()
            .find(|k| *k == c || k.rsplit('.').next() == Some(c))
            .cloned()
            .ok_or_else(|| invalid(&path, format!("no camera '{c}' (cameras: {list})"))),
    }
}

/// Fills a Python-style path template: `{name}` and `{name:03d}`.
pub fn fill_template(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed '{{' in {template}"))? + open;
        let field = &rest[open + 1..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("unknown field {{{name}}} in {template}"))?;
        let width: usize = spec.trim_end_matches('d').trim_start_matches('0').parse().unwrap_or(0);
        if spec.starts_with('0') && width > 0 {
            out.push_str(&format!("{value:0>width$}"));
        } else {
            out.push_str(&value);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every episode's video (and span, in v3) for camera `key`.
pub fn episodes(root: &Path, info: &Info, key: &str) -> Result<Vec<Episode>, SourceError> {
    if info.is_v3() {
        episodes_v3(root, info, key)
    } else {
        episodes_v2(root, info, key)
    }
}

fn episodes_v2(root: &Path, info: &Info, key: &str) -> Result<Vec<Episode>, SourceError> {
    let path = root.join("meta").join("episodes.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(&path, e.to_string()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| invalid(&path, format!("line {}: {e}", n + 1)))?;
        let index =
            v["episode_index"].as_i64().ok_or_else(|| invalid(&path, format!("line {}: no episode_index", n + 1)))?;
        let tasks = v["tasks"]
            .as_array()
            .map(|t| t.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let rel = fill_template(
            &info.video_path,
            &[
                ("episode_chunk", (index / info.chunks_size).to_string()),
                ("video_key", key.to_string()),
                ("episode_index", index.to_string()),
            ],
        )
        .map_err(|e| invalid(&root.join("meta/info.json"), e))?;
        out.push(Episode { index, tasks, length: v["length"].as_i64(), video: root.join(rel), span_s: None });
    }
    Ok(out)
}

/// Every `.parquet` file under `dir`, recursively, sorted ([`crate::source::walk_files`]).
pub fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    out.extend(crate::source::walk_files(dir, |p| p.extension().is_some_and(|e| e == "parquet")));
}

fn episodes_v3(root: &Path, info: &Info, key: &str) -> Result<Vec<Episode>, SourceError> {
    let dir = root.join("meta").join("episodes");
    let mut files = Vec::new();
    parquet_files(&dir, &mut files);
    if files.is_empty() {
        return Err(invalid(
            &dir,
            "no episode Parquet files (a v3.0 dataset keeps them in meta/episodes/chunk-*/file-*.parquet)",
        ));
    }
    let mut out = Vec::new();
    for f in files {
        let batches = table::read_parquet(&f).map_err(|e| invalid(&f, e))?;
        for b in batches {
            let need =
                |r: Result<Option<Vec<Option<i64>>>, String>, name: &str| -> Result<Vec<Option<i64>>, SourceError> {
                    r.map_err(|e| invalid(&f, e))?.ok_or_else(|| invalid(&f, format!("no column '{name}'")))
                };
            let col = |c: &str| format!("videos/{key}/{c}");
            let index = need(table::i64s(&b, "episode_index"), "episode_index")?;
            let chunk = need(table::i64s(&b, &col("chunk_index")), &col("chunk_index"))?;
            let file = need(table::i64s(&b, &col("file_index")), &col("file_index"))?;
            let from = table::f64s(&b, &col("from_timestamp"))
                .map_err(|e| invalid(&f, e))?
                .ok_or_else(|| invalid(&f, format!("no column '{}'", col("from_timestamp"))))?;
            let to = table::f64s(&b, &col("to_timestamp"))
                .map_err(|e| invalid(&f, e))?
                .ok_or_else(|| invalid(&f, format!("no column '{}'", col("to_timestamp"))))?;
            let length = table::i64s(&b, "length").map_err(|e| invalid(&f, e))?;
            let tasks = table::string_lists(&b, "tasks").map_err(|e| invalid(&f, e))?;
            for r in 0..b.num_rows() {
                let (Some(index), Some(chunk), Some(file_i), Some(from), Some(to)) =
                    (index[r], chunk[r], file[r], from[r], to[r])
                else {
                    return Err(invalid(&f, format!("row {r}: null episode_index or video location")));
                };
                let rel = fill_template(
                    &info.video_path,
                    &[
                        ("video_key", key.to_string()),
                        ("chunk_index", chunk.to_string()),
                        ("file_index", file_i.to_string()),
                    ],
                )
                .map_err(|e| invalid(&root.join("meta/info.json"), e))?;
                out.push(Episode {
                    index,
                    tasks: tasks.as_ref().map(|t| t[r].clone()).unwrap_or_default(),
                    length: length.as_ref().and_then(|l| l[r]),
                    video: root.join(rel),
                    span_s: Some((from, to)),
                });
            }
        }
    }
    out.sort_by_key(|e| e.index);
    Ok(out)
}

/// Frames `start..end` of `video` that make up a span `[from, to)` seconds (± half a frame).
pub fn span_frames(video: &r3m_video::VideoInfo, fps: f64, from: f64, to: f64) -> (usize, usize) {
    let half = 0.5 / fps;
    let n = video.pts.len();
    let first = (0..n).position(|i| video.timestamp(i).is_some_and(|t| t >= from - half)).unwrap_or(n);
    let end = (first..n).find(|&i| video.timestamp(i).is_some_and(|t| t >= to - half)).unwrap_or(n);
    (first, end)
}

/// One clip per episode of a LeRobot dataset at `root`, from `camera` (see the module doc).
/// Episodes whose video is missing, unreadable or too short are skipped and counted; clips carry
/// `episode` and the episode's task text.
pub fn scan_lerobot(root: &Path, camera: Option<&str>, cache: &mut ProbeCache) -> Result<Dataset, SourceError> {
    let info = read_info(root)?;
    let key = resolve_camera(root, &info, camera)?;
    let eps = episodes(root, &info, &key)?;
    let mut files: Vec<PathBuf> = eps.iter().map(|e| e.video.clone()).collect();
    files.sort();
    files.dedup();
    let (probed, cache_hits) = probe_all(&files, cache);
    let by_file: BTreeMap<&PathBuf, &Result<_, String>> = files.iter().zip(probed.iter()).collect();
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for e in &eps {
        let skip = |reason: String| Skipped { path: e.video.clone(), reason: format!("episode {}: {reason}", e.index) };
        let info_v = match by_file[&e.video] {
            Ok(v) => v,
            Err(reason) => {
                skipped.push(skip(reason.clone()));
                continue;
            }
        };
        let (start, end) = match e.span_s {
            None => (0, info_v.frame_count()),
            Some((from, to)) if info_v.has_complete_index() => span_frames(info_v, info.fps, from, to),
            Some(_) => {
                skipped.push(skip(
                    "the shared video has no complete frame index, so episode spans cannot be located".into(),
                ));
                continue;
            }
        };
        match make_clip(info_v, start, end) {
            Ok(mut c) => {
                c.episode = Some(e.index);
                c.text = (!e.tasks.is_empty()).then(|| e.tasks.join("; "));
                clips.push(c);
            }
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    if clips.is_empty() {
        return Err(no_clips(root, eps.len(), &skipped));
    }
    Ok(Dataset { root: root.into(), clips, skipped, cache_hits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v2 = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4";
        let s = fill_template(
            v2,
            &[
                ("episode_chunk", "1".into()),
                ("video_key", "observation.images.top".into()),
                ("episode_index", "1042".into()),
            ],
        )
        .unwrap();
        assert_eq!(s, "videos/chunk-001/observation.images.top/episode_001042.mp4");
        assert!(fill_template("{nope}", &[]).unwrap_err().contains("nope"));
        assert!(fill_template("a{b", &[]).is_err());
    }
}
