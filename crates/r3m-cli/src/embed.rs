//! `r3m embed`: a frozen encoder's per-frame embeddings to Parquet, or into a copy of a LeRobot
//! dataset ([`crate::into_dataset`]).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Options for `r3m embed`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["out", "into_dataset"])))]
pub struct Args {
    /// Checkpoint directory, or a run directory (its latest checkpoint).
    #[arg(help_heading = "Essentials", long, value_name = "RUN|DIR")]
    checkpoint: PathBuf,
    /// Output: a .parquet file, or a directory that receives part-I-of-N.parquet (always a
    /// directory with --shard).
    #[arg(help_heading = "Essentials", long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Instead of a Parquet file: write a copy of the --lerobot dataset at OUT (same format
    /// version) whose frames carry the embedding as a feature LeRobot's policies read (--feature).
    /// The source dataset is only read; OUT is refused if it exists, unless --overwrite.
    #[arg(
        help_heading = "LeRobot dataset output",
        long,
        value_name = "OUT",
        conflicts_with = "out",
        requires = "lerobot"
    )]
    into_dataset: Option<PathBuf>,
    /// The feature name the embeddings get in the dataset (ACT and Diffusion Policy read a state
    /// vector from observation.environment_state).
    #[arg(help_heading = "LeRobot dataset output", long, value_name = "NAME", default_value = r3m_export::lerobot_out::DEFAULT_FEATURE, requires = "into_dataset")]
    feature: String,
    /// Leave the videos out of the copy, so a policy trains on the features alone (by default they
    /// are hard-linked from the source, or copied where a link cannot be made).
    #[arg(help_heading = "LeRobot dataset output", long, requires = "into_dataset")]
    drop_videos: bool,
    /// Continue an interrupted job: finished pieces of the part are kept.
    #[arg(help_heading = "Essentials", long)]
    resume: bool,
    /// Replace an output that already exists (by default a finished part is skipped; an existing
    /// --into-dataset folder is refused).
    #[arg(help_heading = "Essentials", long, conflicts_with = "resume")]
    overwrite: bool,
    #[command(flatten, next_help_heading = "Input")]
    source: crate::source::SourceArgs,
    /// Keep every Nth frame of each clip.
    #[arg(help_heading = "Frames", long, default_value_t = 1, conflicts_with = "fps")]
    every: usize,
    /// Keep frames on a grid of F per second instead (the nearest frame at or after each tick).
    #[arg(help_heading = "Frames", long)]
    fps: Option<f64>,
    /// Frames per encoder call (the encoder's batch; `r3m train --batch` counts clips instead).
    #[arg(help_heading = "Performance", long, default_value_t = 64)]
    batch_frames: usize,
    /// Decode threads.
    #[arg(help_heading = "Performance", long, default_value_t = 2)]
    workers: usize,
    #[command(flatten, next_help_heading = "Performance")]
    compute: crate::device::Compute,
    /// Memory layout: channels-last, nchw, or auto (channels-last: faster for inference in fp32 and bf16).
    #[arg(help_heading = "Performance", long, default_value = "auto", value_parser = ["auto", "channels-last", "nchw"])]
    memory_format: String,
    /// Frames per resumable piece: an interruption loses at most this much work.
    #[arg(help_heading = "Performance", long, default_value_t = r3m_export::embed::PIECE_FRAMES)]
    piece_frames: usize,
    /// Embed only slice I of N of the inputs (every N-th clip from the I-th; 0-based) into
    /// OUT/part-I-of-N.parquet, so a cluster scheduler can fan the work out.
    #[arg(help_heading = "Distributed", long, value_name = "I/N")]
    shard: Option<String>,
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').with_context(|| format!("--shard {s}: expected I/N, e.g. 0/8"))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().with_context(|| format!("--shard {s}: I is not a number"))?,
        n.trim().parse().with_context(|| format!("--shard {s}: N is not a number"))?,
    );
    if n == 0 || i >= n {
        bail!("--shard {s}: need 0 ≤ I < N");
    }
    Ok((i, n))
}

/// Checks the flags and says where the part goes: `--out`'s file or folder, or the staging folder
/// of `--into-dataset` (with its target).
fn output_of(args: &Args, shard: Option<(usize, usize)>) -> Result<(Option<crate::into_dataset::Target>, PathBuf)> {
    if args.every == 0 {
        bail!("--every must be ≥ 1");
    }
    if matches!(args.fps, Some(f) if !(f > 0.0 && f.is_finite())) {
        bail!("--fps must be a positive number");
    }
    if args.batch_frames == 0 {
        bail!("--batch-frames must be ≥ 1");
    }
    let into = match &args.into_dataset {
        Some(dest) => Some(crate::into_dataset::Target::check(
            dest,
            &args.source,
            args.every,
            args.fps,
            args.overwrite,
            &args.feature,
        )?),
        None => None,
    };
    let out_dir = match (&into, &args.out) {
        (Some(t), _) => t.staging.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => bail!("give --out PATH or --into-dataset OUT"),
    };
    let out = match shard {
        Some((i, n)) => out_dir.join(format!("part-{i}-of-{n}.parquet")),
        None if into.is_none() && out_dir.extension().is_some_and(|e| e == "parquet") => out_dir.clone(),
        None => out_dir.join("part-0-of-1.parquet"),
    };
    Ok((into, out))
}

pub fn run(args: Args) -> Result<i32> {
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let (into, out) = output_of(&args, shard)?;
    // one writer per output part (shards of one job write different parts side by side)
    let _lock = r3m_fs::OutputLock::acquire_file(&out)?;
    if out.exists() && !args.overwrite {
        tracing::info!("{} exists: finished, skipping (--overwrite to redo it)", out.display());
        return match &into {
            Some(t) => t.assemble_if_complete(shard.map_or(1, |s| s.1), &args.feature, args.drop_videos),
            None => Ok(0),
        };
    }
    let (dev, precision) = args.compute.resolve()?;
    // inference: channels-last measured 1.36x NCHW fp32 on this CPU (benches/embed.rs), and it pays with bf16 too
    let channels_last = matches!(args.memory_format.as_str(), "auto" | "channels-last");
    let frozen = r3m_model::checkpoint::load_encoder(&args.checkpoint, dev)?;
    if channels_last {
        r3m_model::precision::vars_to_channels_last(&frozen.vs);
    }
    let ds = args.source.open()?;
    let (si, sn) = shard.unwrap_or((0, 1));
    let clips = r3m_export::shard(&ds.clips, si, sn);
    let cfg = r3m_export::EmbedConfig {
        every: args.every,
        fps: args.fps,
        batch: args.batch_frames,
        workers: args.workers.max(1),
        device: dev,
        precision,
        channels_last,
        size: frozen.size,
        piece_frames: args.piece_frames.max(1),
    };
    let total: u64 = clips.iter().map(|c| r3m_export::select_frames(c, cfg.every, cfg.fps).len() as u64).sum();
    let model_file = frozen.dir.join(r3m_model::checkpoint::MODEL_FILE);
    let sha = r3m_export::sha256_file(&model_file).with_context(|| format!("hashing {}", model_file.display()))?;
    let mut summary = frozen.config.clone();
    if let Some(o) = summary.as_object_mut() {
        for k in ["loader_state", "data", "negatives_rng"] {
            o.remove(k);
        }
    }
    let metadata = r3m_export::EmbedMeta {
        format: r3m_export::EMBED_FORMAT.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        checkpoint: frozen.dir.display().to_string(),
        checkpoint_sha256: sha,
        arch: frozen.encoder.arch().name().into(),
        dim: frozen.encoder.dim() as usize,
        preprocess: {
            // the encoder's pixel spec, and which frames were kept
            let spec = r3m_model::PixelSpec::new(
                frozen.encoder.arch(),
                frozen.size,
                r3m_video::Resize::eval_short_side(frozen.size),
            );
            let mut v = serde_json::to_value(spec).context("the pixel spec")?;
            v["every"] = serde_json::json!(cfg.every);
            v["fps"] = serde_json::json!(cfg.fps);
            v
        },
        precision: format!("{precision}{}", if channels_last { ", channels-last" } else { "" }),
        source: args.source.describe(),
        shard: format!("{si}/{sn}"),
        checkpoint_config: summary,
    }
    .to_pairs();
    tracing::info!(
        "embedding {} frames of {} clips (shard {si}/{sn}) with {} ({}-d, {precision}) on {}",
        total,
        clips.len(),
        frozen.dir.display(),
        frozen.encoder.dim(),
        crate::device::name(dev)
    );
    let stop = crate::interrupt::stop_flag()?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} frames [{elapsed_precise}<{eta_precise}] {per_sec}")
            .expect("valid template"),
    );
    let report =
        r3m_export::embed_clips(&frozen.encoder, &clips, ds.name_root(), &cfg, &out, &metadata, args.resume, |n| {
            bar.inc(n);
            !stop.load(Ordering::SeqCst)
        })?;
    bar.finish();
    for (p, why) in &report.failed {
        tracing::warn!("  failed to decode {}: {why} (its rows are left out)", p.display());
    }
    for (video, lost) in report.lost.iter().take(10) {
        let shown: Vec<String> = lost.iter().take(8).map(i64::to_string).collect();
        tracing::warn!(
            "  {video}: {} frame(s) could not be decoded and have no row: {}{}",
            lost.len(),
            shown.join(", "),
            if lost.len() > 8 { ", ..." } else { "" }
        );
    }
    if report.lost.len() > 10 {
        tracing::warn!("  ... and {} more video(s) with lost frames", report.lost.len() - 10);
    }
    if stop.load(Ordering::SeqCst) {
        tracing::warn!("interrupted; finished pieces are kept: rerun with --resume to continue");
        return Ok(130);
    }
    if report.rows == 0 {
        // an empty file would pass for a finished part on the next run
        let _ = std::fs::remove_file(&out);
        let why = report.failed.first().map(|(p, w)| format!(": {} ({w})", p.display())).unwrap_or_default();
        bail!(
            "wrote no rows: {} of {} clip(s) failed to decode{why}; no file written at {}",
            report.failed.len(),
            clips.len(),
            out.display()
        );
    }
    tracing::info!(
        "wrote {} rows ({} clips{}{}{}) to {}",
        report.rows,
        report.clips,
        if report.failed.is_empty() { String::new() } else { format!(", {} failed", report.failed.len()) },
        if report.lost.is_empty() {
            String::new()
        } else {
            format!(", {} frame(s) lost (metadata {})", report.lost_frames(), r3m_export::embed::LOST_KEY)
        },
        if report.pieces_reused > 0 { format!(", {} piece(s) reused", report.pieces_reused) } else { String::new() },
        out.display()
    );
    match &into {
        Some(t) => t.assemble_if_complete(shard.map_or(1, |s| s.1), &args.feature, args.drop_videos),
        None => Ok(0),
    }
}
