//! `r3m view`: a rerun recording of what an encoder sees in videos.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use r3m_video::{DecodeOptions, VideoReader};
use tch::Tensor;

/// Options for `r3m view`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Encoder (checkpoint or run directory) to embed the frames with.
    #[arg(help_heading = "Essentials", long, value_name = "RUN|DIR", required_unless_present = "embeddings")]
    checkpoint: Option<PathBuf>,
    /// Or: embeddings written by `r3m embed` for the same input (rows matched by video and frame).
    #[arg(help_heading = "Essentials", long, value_name = "PARQUET")]
    embeddings: Option<PathBuf>,
    /// Where the recording goes: save:PATH.rrd, spawn, or connect[:URL].
    #[arg(help_heading = "Essentials", long, default_value = "save:view.rrd")]
    rerun: r3m_viz::Sink,
    #[command(flatten, next_help_heading = "Input")]
    source: crate::source::SourceArgs,
    /// Videos (clips/episodes) to show.
    #[arg(help_heading = "Frames", long, default_value_t = 8)]
    max_videos: usize,
    /// Frames per video at most (evenly spaced).
    #[arg(help_heading = "Frames", long, default_value_t = 300)]
    max_frames: usize,
    /// Decode size (default: the checkpoint's training size, else 128).
    #[arg(help_heading = "Frames", long)]
    size: Option<u32>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(help_heading = "Performance", long, default_value = "auto")]
    device: String,
}

pub fn run(args: Args) -> Result<i32> {
    let dev = crate::device::parse_checked(&args.device)?;
    let frozen = args.checkpoint.as_ref().map(|c| r3m_model::checkpoint::load_encoder(c, dev)).transpose()?;
    let table = args.embeddings.as_ref().map(|p| r3m_export::read_embeddings(p)).transpose()?;
    if let (Some(t), Some(p)) = (&table, &args.embeddings) {
        // a file that is not an r3m embeddings table, or whose metadata disagrees with its rows
        let meta = r3m_export::EmbedMeta::from_metadata(p, &t.metadata, Some(t.dim))?;
        tracing::info!("embeddings: {} ({}-d {}, {})", p.display(), meta.dim, meta.arch, meta.checkpoint);
    }
    let size = args.size.or(frozen.as_ref().map(|f| f.size)).unwrap_or(128);
    if !(16..=2048).contains(&size) {
        bail!("--size {size}: give a frame side between 16 and 2048 pixels");
    }
    let ds = args.source.open()?;
    let rows: HashMap<(String, i64), usize> = table
        .as_ref()
        .map(|t| (0..t.len()).map(|i| ((t.video[i].clone(), t.frame_index[i]), i)).collect())
        .unwrap_or_default();
    let viz = r3m_viz::Viz::open("r3m_view", &args.rerun).map_err(anyhow::Error::msg)?;
    let (mut shown, mut skipped) = (0usize, 0usize);
    for clip in ds.clips.iter().take(args.max_videos) {
        let rel = ds.video_name(clip);
        let name = clip.episode.map(|e| format!("episode_{e:06}")).unwrap_or_else(|| rel.clone());
        // with an embeddings table, only frames that have a row (it may hold every Nth frame)
        let avail: Vec<usize> = match &table {
            Some(_) => {
                (clip.start..clip.end).filter(|&i| rows.contains_key(&(rel.clone(), (i - clip.start) as i64))).collect()
            }
            None => (clip.start..clip.end).collect(),
        };
        if avail.is_empty() {
            tracing::warn!("  {name}: no rows in the embeddings table, skipped");
            skipped += 1;
            continue;
        }
        let every = avail.len().div_ceil(args.max_frames.max(1)).max(1);
        let idx: Vec<usize> = avail.into_iter().step_by(every).collect();
        // a bad file costs that clip, a bad frame that frame (the clip is shown with a gap)
        let read = VideoReader::open_probed(
            clip.video.clone(),
            DecodeOptions::with_resize(r3m_export::embed::eval_resize(size)),
        )
        .and_then(|mut r| r.read_frames_lossy(&idx));
        let frames = match read {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("  {name}: skipped: {e}");
                skipped += 1;
                continue;
            }
        };
        let lost = idx.len() - frames.len();
        if frames.len() < 2 {
            tracing::warn!("  {name}: {} frame(s) decoded, 2 needed to show a trajectory; skipped", frames.len());
            skipped += 1;
            continue;
        }
        let (w, h) = (frames[0].width, frames[0].height);
        let t0 = clip.video.timestamp(clip.start).unwrap_or(0.0);
        let emb: Tensor = if let Some(f) = &frozen {
            // the same encoder path as `r3m embed` (fp32 here: the view is for looking, not speed)
            let mut vals = Vec::with_capacity(frames.len() * f.encoder.dim() as usize);
            for chunk in frames.chunks(64) {
                let data: Vec<u8> = chunk.iter().flat_map(|f| f.data.iter().copied()).collect();
                r3m_export::embed::encode_batch(
                    &f.encoder,
                    &data,
                    size,
                    dev,
                    r3m_model::Precision::Fp32,
                    false,
                    &mut vals,
                );
            }
            Tensor::from_slice(&vals).view([frames.len() as i64, f.encoder.dim()])
        } else {
            let t = table.as_ref().expect("clap requires one");
            let mut vals = Vec::with_capacity(frames.len() * t.dim);
            for f in &frames {
                let key = (rel.clone(), (f.index - clip.start) as i64);
                let r = rows.get(&key).with_context(|| {
                    let file = args.embeddings.as_deref().unwrap_or(std::path::Path::new("--embeddings"));
                    format!("{}: no row for {} frame {}", file.display(), key.0, key.1)
                })?;
                vals.extend_from_slice(t.row(*r));
            }
            Tensor::from_slice(&vals).view([frames.len() as i64, t.dim as i64])
        };
        let d = r3m_model::analysis::distance_matrix(&emb).contiguous();
        let n = frames.len();
        let dist: Vec<f32> = Vec::try_from(d.view([-1]))?;
        let to_final: Vec<f32> = (0..n).map(|i| dist[i * n + n - 1]).collect();
        let p = r3m_model::analysis::pca3(&emb).contiguous();
        let pv: Vec<f32> = Vec::try_from(p.view([-1]))?;
        let points: Vec<[f32; 3]> = pv.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let fr: Vec<(i64, f64, &[u8])> =
            frames.iter().map(|f| ((f.index - clip.start) as i64, f.timestamp - t0, f.data.as_slice())).collect();
        viz.video(&name, &fr, w, h, &to_final, &points, &dist).map_err(anyhow::Error::msg)?;
        if lost > 0 {
            tracing::info!("  {name}: {n} frames ({lost} could not be decoded: shown as a gap)");
        } else {
            tracing::info!("  {name}: {n} frames");
        }
        shown += 1;
    }
    if shown == 0 {
        bail!("nothing to show: {skipped} clip(s) skipped (reasons above)");
    }
    if skipped > 0 {
        tracing::warn!("{skipped} clip(s) skipped (reasons above)");
    }
    viz.finish().map_err(anyhow::Error::msg)?;
    if let r3m_viz::Sink::Save(p) = &args.rerun {
        tracing::info!("wrote {} (open it with `rerun {}`)", p.display(), p.display());
    }
    Ok(0)
}
