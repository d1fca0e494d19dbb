//! `r3m embed`'s engine: frames of a source → frozen encoder → Parquet, streaming.
//!
//! Frames are decoded by a [`DecodePool`] at the encoder's evaluation preprocessing (short side to
//! `size·8/7`, centre crop `size`: R3M's Resize(256)+CenterCrop(224) at 224), batched through the
//! encoder in eval mode without gradients, and written row by row: memory does not grow with the
//! dataset.
//!
//! Resumable: a part's clips are cut into *pieces* of about `piece_frames` frames (whole clips), each written
//! atomically to `PART.pieces/piece-NNNNN.parquet`; `resume` keeps finished pieces (when they were
//! made with the same settings), and the part is assembled from its pieces at the end.

use std::path::{Path, PathBuf};

use r3m_data::Clip;
use r3m_model::precision::autocast;
use r3m_model::{Encoder, Precision};
use r3m_video::{DecodeOptions, DecodePool, Request, Resize};
use tch::{Device, Kind, Tensor};

use crate::{EmbeddingWriter, ExportError};

/// Default frames per resumable piece.
pub const PIECE_FRAMES: usize = 8192;
/// Frames per decode request (a long clip is decoded in chunks so memory stays bounded).
const CHUNK_FRAMES: usize = 128;

/// Settings of one embedding job.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// Keep every Nth frame of each clip (1 = all).
    pub every: usize,
    /// Or: frames nearest to a grid of this many per second (overrides `every`).
    pub fps: Option<f64>,
    /// Frames per encoder call.
    pub batch: usize,
    /// Decode threads.
    pub workers: usize,
    /// Where the encoder runs.
    pub device: Device,
    /// Forward-pass arithmetic.
    pub precision: Precision,
    /// Channels-last images and weights.
    pub channels_last: bool,
    /// Crop side (the encoder's training size).
    pub size: u32,
    /// Frames per resumable piece (what an interruption can lose at most).
    pub piece_frames: usize,
}

/// The decode preprocessing for crops of `size`: short side to `size·8/7`, centre crop.
pub fn eval_resize(size: u32) -> Resize {
    Resize::eval(size)
}

/// The frames of `clip` to embed (absolute indices in its video).
pub fn select_frames(clip: &Clip, every: usize, fps: Option<f64>) -> Vec<usize> {
    match fps {
        Some(f) if f > 0.0 => {
            let t0 = clip.video.timestamp(clip.start).unwrap_or(0.0);
            let mut out: Vec<usize> = Vec::new();
            let mut next = t0;
            for i in clip.start..clip.end {
                let t = clip.video.timestamp(i).unwrap_or(t0 + (i - clip.start) as f64 / clip.video.fps.max(1e-9));
                if t + 1e-9 >= next {
                    out.push(i);
                    while next <= t + 1e-9 {
                        next += 1.0 / f;
                    }
                }
            }
            out
        }
        _ => (clip.start..clip.end).step_by(every.max(1)).collect(),
    }
}

/// The clips of shard `i` of `n`: every n-th clip starting at the i-th (clips are in source order,
/// which is sorted and deterministic), so shards are balanced and together cover each clip once.
pub fn shard(clips: &[Clip], i: usize, n: usize) -> Vec<Clip> {
    clips.iter().enumerate().filter(|(k, _)| k % n.max(1) == i).map(|(_, c)| c.clone()).collect()
}

/// What one job did.
#[derive(Debug, Clone, Default)]
pub struct EmbedReport {
    /// Rows in the output.
    pub rows: u64,
    /// Clips embedded.
    pub clips: usize,
    /// Pieces reused from an earlier run (`resume`).
    pub pieces_reused: usize,
    /// Clips that failed to decode: (video, reason). Their rows are left out.
    pub failed: Vec<(PathBuf, String)>,
    /// Frames that could not be decoded in clips that were otherwise embedded: (video named as
    /// in the file, frame indices relative to the clip). Their rows are left out; the file's
    /// metadata `r3m.lost_frames` lists them.
    pub lost: Vec<(String, Vec<i64>)>,
}

impl EmbedReport {
    /// Frames lost to decoding errors, over all clips.
    pub fn lost_frames(&self) -> usize {
        self.lost.iter().map(|(_, v)| v.len()).sum()
    }
}

/// File metadata key listing lost frames: JSON `[[video, [frame_index, ...]], ...]`.
pub const LOST_KEY: &str = "r3m.lost_frames";
/// A piece's metadata key listing clips that failed whole (so a resumed job reports them too).
const FAILED_KEY: &str = "r3m.failed_clips";

/// How many frames [`select_frames`] selects, without building the list.
pub fn count_frames(clip: &Clip, every: usize, fps: Option<f64>) -> usize {
    match fps {
        Some(f) if f > 0.0 => select_frames(clip, every, fps).len(),
        _ => clip.len().div_ceil(every.max(1)),
    }
}

fn piece_plan(counts: &[usize], piece_frames: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut n) = (0, 0);
    for (k, c) in counts.iter().enumerate() {
        n += c;
        if n >= piece_frames.max(1) {
            out.push(start..k + 1);
            (start, n) = (k + 1, 0);
        }
    }
    if start < counts.len() {
        out.push(start..counts.len());
    }
    out
}

/// Frames waiting for the encoder, with the row each will become.
struct Pending {
    data: Vec<u8>,
    rows: Vec<(usize, i64, f64)>,
}

/// Embeds `clips` (relative names from `root`) into the Parquet file `out` with `metadata`.
/// `on_progress(frames)` is called as frames are done; returning `false` stops the job (finished
/// pieces stay for `resume`).
///
/// Memory is flat in clip length and dataset size: rows go to the file as soon as their batch is
/// encoded (nothing is buffered per clip), a clip's frame indices are built one decode chunk at a
/// time, and the part is assembled from its pieces one record batch at a time. A frame that cannot
/// be decoded costs that frame ([`EmbedReport::lost`]); a clip none of whose frames decodes is
/// [`EmbedReport::failed`].
#[allow(clippy::too_many_arguments)]
pub fn embed_clips(
    encoder: &Encoder,
    clips: &[Clip],
    root: &Path,
    cfg: &EmbedConfig,
    out: &Path,
    metadata: &[(String, String)],
    resume: bool,
    mut on_progress: impl FnMut(u64) -> bool,
) -> Result<EmbedReport, ExportError> {
    let counts: Vec<usize> = clips.iter().map(|c| count_frames(c, cfg.every, cfg.fps)).collect();
    let episodes = clips.iter().any(|c| c.episode.is_some());
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("embeddings.parquet");
    let pieces_dir = out.with_file_name(format!("{name}.pieces"));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ExportError::Io { path: p, source: e }
    };
    let fs_err = |e: r3m_fs::Error| ExportError::Io { path: e.path, source: e.source };
    if !resume && pieces_dir.exists() {
        std::fs::remove_dir_all(&pieces_dir).map_err(io(&pieces_dir))?;
    }
    std::fs::create_dir_all(&pieces_dir).map_err(io(&pieces_dir))?;
    // temporaries of a killed job (never those of a job still running)
    r3m_fs::clean_stale(&pieces_dir).map_err(fs_err)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        r3m_fs::clean_stale(parent).map_err(fs_err)?;
    }
    // pieces are only reused when made with the same settings and inputs
    let fingerprint = {
        let mut s = format!("{metadata:?}|{}|{:?}|{}|{}|", cfg.every, cfg.fps, cfg.size, cfg.piece_frames);
        for (c, n) in clips.iter().zip(&counts) {
            s.push_str(&format!("{}:{}:{}:{n};", c.video.path.display(), c.start, c.end));
        }
        crate::sha256_hex(s.as_bytes())
    };
    let mut report = EmbedReport::default();
    let plan = piece_plan(&counts, cfg.piece_frames);
    let pool = DecodePool::new(
        cfg.workers,
        DecodeOptions { resize: eval_resize(cfg.size), threads: 1, ..Default::default() },
        cfg.workers * 2 + 2,
    );
    let dim = encoder.dim() as usize;
    let frame_bytes = (cfg.size * cfg.size * 3) as usize;
    let rel_name = |c: &Clip| c.video.path.strip_prefix(root).unwrap_or(&c.video.path).to_string_lossy().into_owned();
    let mut piece_paths = Vec::new();
    for (pi, range) in plan.iter().enumerate() {
        let path = pieces_dir.join(format!("piece-{pi:05}.parquet"));
        piece_paths.push(path.clone());
        let piece_frames: usize = counts[range.clone()].iter().sum();
        if resume && reuse_piece(&path, &fingerprint, &mut report) {
            report.clips += range.len();
            if !on_progress(piece_frames as u64) {
                return Ok(report);
            }
            continue;
        }
        let mut meta = metadata.to_vec();
        meta.push(("r3m.piece".into(), fingerprint.clone()));
        let mut writer = EmbeddingWriter::create(&path, dim, episodes, &meta)?;
        // decode requests: each clip's selected frames in chunks (one piece's worth of indices,
        // bounded by --piece-frames or one clip)
        let mut requests = Vec::new();
        let mut owners: Vec<(usize, Vec<usize>)> = Vec::new();
        for k in range.clone() {
            for chunk in select_frames(&clips[k], cfg.every, cfg.fps).chunks(CHUNK_FRAMES) {
                // a frame that cannot be decoded costs that frame, not the clip
                requests.push(Request::frames_lossy(clips[k].video.clone(), chunk.to_vec()));
                owners.push((k, chunk.to_vec()));
            }
        }
        let results = pool.run(requests);
        let mut pending =
            Pending { data: Vec::with_capacity(cfg.batch * frame_bytes), rows: Vec::with_capacity(cfg.batch) };
        let mut emb: Vec<f32> = Vec::with_capacity(cfg.batch * dim);
        // per clip of the piece: rows written, frames lost, the first fatal error
        let mut written = vec![0usize; range.len()];
        let mut lost: Vec<Vec<i64>> = vec![Vec::new(); range.len()];
        let mut error: Vec<Option<String>> = vec![None; range.len()];
        let mut encode =
            |pending: &mut Pending, writer: &mut EmbeddingWriter, written: &mut [usize]| -> Result<(), ExportError> {
                if pending.rows.is_empty() {
                    return Ok(());
                }
                emb.clear();
                encode_batch(encoder, &pending.data, cfg.size, cfg.device, cfg.precision, cfg.channels_last, &mut emb);
                for (j, &(k, fi, t)) in pending.rows.iter().enumerate() {
                    let c = &clips[k];
                    writer.push(&rel_name(c), c.episode, fi, t, &emb[j * dim..(j + 1) * dim])?;
                    written[k - range.start] += 1;
                }
                pending.data.clear();
                pending.rows.clear();
                Ok(())
            };
        for (r, (k, asked)) in results.zip(owners) {
            let c = &clips[k];
            let t0 = c.video.timestamp(c.start).unwrap_or(0.0);
            let slot = k - range.start;
            match r {
                Ok(fs) => {
                    // the frames of this chunk that did not arrive
                    let got: std::collections::HashSet<usize> = fs.iter().map(|f| f.index).collect();
                    lost[slot].extend(asked.iter().filter(|i| !got.contains(i)).map(|&i| (i - c.start) as i64));
                    for f in fs {
                        pending.rows.push((k, (f.index - c.start) as i64, f.timestamp - t0));
                        pending.data.extend_from_slice(&f.data);
                        if pending.rows.len() >= cfg.batch {
                            encode(&mut pending, &mut writer, &mut written)?;
                        }
                    }
                }
                Err(e) => {
                    lost[slot].extend(asked.iter().map(|&i| (i - c.start) as i64));
                    error[slot].get_or_insert_with(|| e.to_string());
                }
            }
            if !on_progress(asked.len() as u64) {
                return Ok(report);
            }
        }
        encode(&mut pending, &mut writer, &mut written)?;
        let (mut piece_lost, mut piece_failed) = (Vec::new(), Vec::new());
        for (slot, k) in range.clone().enumerate() {
            let c = &clips[k];
            if written[slot] == 0 {
                let why = error[slot].take().unwrap_or_else(|| "no frame could be decoded".into());
                piece_failed.push((c.video.path.clone(), why));
                continue;
            }
            report.clips += 1;
            if !lost[slot].is_empty() {
                piece_lost.push((rel_name(c), std::mem::take(&mut lost[slot])));
            }
        }
        if !piece_lost.is_empty() {
            writer.append_metadata(LOST_KEY, serde_json::to_string(&piece_lost).unwrap_or_default());
        }
        if !piece_failed.is_empty() {
            writer.append_metadata(FAILED_KEY, serde_json::to_string(&piece_failed).unwrap_or_default());
        }
        report.lost.extend(piece_lost);
        report.failed.extend(piece_failed);
        report.rows += writer.finish()?;
    }
    assemble_part(out, dim, episodes, metadata, &report, &piece_paths)?;
    std::fs::remove_dir_all(&pieces_dir).map_err(io(&pieces_dir))?;
    Ok(report)
}

/// Whether the finished piece at `path` was made with the same settings and inputs
/// (`fingerprint`); if so its rows, lost frames and failed clips are counted into `report`.
fn reuse_piece(path: &Path, fingerprint: &str, report: &mut EmbedReport) -> bool {
    let Ok((meta, rows)) = crate::read_embeddings_metadata(path) else { return false };
    if meta.get("r3m.piece").map(String::as_str) != Some(fingerprint) {
        return false;
    }
    if let Some(lost) = meta.get(LOST_KEY).and_then(|l| serde_json::from_str::<Vec<(String, Vec<i64>)>>(l).ok()) {
        report.lost.extend(lost);
    }
    if let Some(failed) = meta.get(FAILED_KEY).and_then(|l| serde_json::from_str::<Vec<(PathBuf, String)>>(l).ok()) {
        report.failed.extend(failed);
    }
    report.pieces_reused += 1;
    report.rows += rows;
    true
}

/// Assembles the part `out` from its pieces, one record batch at a time, renumbering `index`
/// globally.
fn assemble_part(
    out: &Path,
    dim: usize,
    episodes: bool,
    metadata: &[(String, String)],
    report: &EmbedReport,
    pieces: &[PathBuf],
) -> Result<(), ExportError> {
    let mut meta = metadata.to_vec();
    meta.push(("r3m.rows".into(), report.rows.to_string()));
    meta.push((LOST_KEY.into(), serde_json::to_string(&report.lost).unwrap_or_default()));
    let mut writer = EmbeddingWriter::create(out, dim, episodes, &meta)?;
    for p in pieces {
        crate::for_each_chunk(p, |e| {
            for i in 0..e.len() {
                writer.push(
                    &e.video[i],
                    e.episode_index.as_ref().map(|v| v[i]),
                    e.frame_index[i],
                    e.timestamp[i],
                    e.row(i),
                )?;
            }
            Ok(())
        })?;
    }
    writer.finish()?;
    Ok(())
}

/// Runs the frozen encoder (eval mode, no grad, `precision`, optionally channels-last) over square
/// RGB u8 frames packed in `data` (`[n, side, side, 3]`) and appends the fp32 embeddings to `out`.
pub fn encode_batch(
    encoder: &Encoder,
    data: &[u8],
    side: u32,
    device: Device,
    precision: Precision,
    channels_last: bool,
    out: &mut Vec<f32>,
) {
    let side = i64::from(side);
    let n = data.len() as i64 / (side * side * 3);
    if n == 0 {
        return;
    }
    let x = Tensor::from_slice(data).view([n, side, side, 3]).permute([0, 3, 1, 2]);
    let x = if channels_last { r3m_model::precision::channels_last(&x) } else { x.contiguous() }.to_device(device);
    let e = tch::no_grad(|| autocast(device, precision, || encoder.forward_u8(&x, false)))
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous();
    let len = e.numel();
    let start = out.len();
    out.resize(start + len, 0.0);
    e.copy_data(&mut out[start..], len);
}
