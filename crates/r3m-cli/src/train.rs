//! `r3m train`: R3M time-contrastive training straight from a folder of videos.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use r3m_data::ClipWeighting;
use r3m_data::Span;
use r3m_model::{Arch, ObjectiveConfig, ObjectiveKind, Precision, R3mObjective, Similarity};

/// Options for `r3m train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory: metrics.csv, checkpoints/, latest.
    #[arg(help_heading = "Essentials", long)]
    out: PathBuf,
    /// Continue the run in --out from its latest checkpoint (same batches and optimiser state as
    /// an uninterrupted run). Settings that would change the batches or the model must match the
    /// run's (each difference is named); --steps, --checkpoint-every, --keep and --workers may change.
    #[arg(help_heading = "Essentials", long)]
    resume: bool,
    /// Clear --out first when it holds a run (without --resume or --overwrite a non-empty --out
    /// is refused; a folder that is not an r3m run is never deleted).
    #[arg(help_heading = "Essentials", long, conflicts_with = "resume")]
    overwrite: bool,
    /// Total optimisation steps.
    #[arg(help_heading = "Essentials", long, default_value_t = 1000)]
    steps: u64,
    /// Clips per batch (R3M: 16).
    #[arg(help_heading = "Essentials", long, default_value_t = 16)]
    batch: usize,
    /// Side of the square training crops (R3M: 224).
    #[arg(help_heading = "Essentials", long, default_value_t = 224)]
    size: u32,
    /// Encoder: resnet18, resnet34, resnet50, or shallow (DrQ's 4-layer ConvNet, 50-d: the architecture
    /// of `eval bc`'s `scratch-shallow` row, cheap to pretrain on a CPU).
    #[arg(help_heading = "Essentials", long, default_value = "resnet18")]
    arch: Arch,
    /// Adam learning rate.
    #[arg(help_heading = "Essentials", long, default_value_t = 1e-4)]
    lr: f64,
    /// Seed of everything random.
    #[arg(help_heading = "Essentials", long, default_value_t = 0)]
    seed: u64,
    #[command(flatten, next_help_heading = "Data")]
    source: crate::source::SourceArgs,
    /// Tuples drawn per decoded clip, K (fewer decodes per tuple). Default 4 with
    /// `--loader grouped` (1 = R3M's sampling exactly), 16 with `--loader reservoir`.
    #[arg(help_heading = "Data", long)]
    tuples_per_clip: Option<usize>,
    /// How batches come from decoded clips. The default departs from R3M, which draws fresh clips
    /// for every batch: `grouped` with K = 4 serves each group of `batch` decoded clips for 4
    /// consecutive batches, so a batch's negatives repeat for 4 steps (`--tuples-per-clip 1` is
    /// R3M's sampling exactly, at 4× the decoding). `reservoir`: a pool of decoded clips
    /// (`--reservoir-mb`); every batch draws `batch` clips from it at random, one tuple each, and
    /// a clip leaves after K tuples: R3M's fresh draw per batch at the decode cost of K tuples per
    /// clip (docs/guide/train.md, "Data loaders").
    #[arg(help_heading = "Data", long, default_value = "grouped", value_parser = ["grouped", "reservoir"])]
    loader: String,
    /// Memory for the reservoir's decoded clips, in MB (each holds the union of its K tuples'
    /// frames at the decode size, ≈ 8/7·size squared × 3 bytes a frame: ~1.3 MB a clip at 64 px,
    /// ~16 MB at 224 px with K = 16; default 2048). The slots it buys are printed and kept in the
    /// run config.
    #[arg(help_heading = "Data", long)]
    reservoir_mb: Option<usize>,
    /// How clips are drawn: length (proportional to frames) or uniform.
    #[arg(help_heading = "Data", long, default_value = "length", value_parser = ["length", "uniform"])]
    clip_weighting: String,
    /// Weight of the L1 penalty.
    #[arg(help_heading = "Objective", long, default_value_t = 1e-5)]
    l1_weight: f64,
    /// Weight of the L2 penalty.
    #[arg(help_heading = "Objective", long, default_value_t = 1e-5)]
    l2_weight: f64,
    /// Frame similarity of r3m-tcn: l2 (R3M) or cosine.
    #[arg(help_heading = "Objective", long, default_value = "l2")]
    similarity: Similarity,
    /// The objective, over the same tuples (anchor s2, positive s1, in-clip negative s0):
    /// r3m-tcn (R3M's time-contrastive InfoNCE), triplet, npair, simclr, moco, byol, proto.
    #[arg(help_heading = "Objective", long, default_value = "r3m-tcn")]
    objective: ObjectiveKind,
    /// triplet: the margin [default: 1.0].
    #[arg(help_heading = "Objective", long)]
    margin: Option<f64>,
    /// triplet: use the nearest negative in the batch (own far frame or any frame of another
    /// clip) instead of the clip's own far frame.
    #[arg(help_heading = "Objective", long)]
    hard_negatives: bool,
    /// simclr / moco: softmax temperature (default: simclr 0.1, moco 0.2).
    #[arg(help_heading = "Objective", long)]
    temperature: Option<f64>,
    /// moco: length of the queue of past keys [default: 4096].
    #[arg(help_heading = "Objective", long)]
    queue: Option<usize>,
    /// moco / byol: target momentum m in θ' ← m·θ' + (1−m)·θ [default: 0.99].
    #[arg(help_heading = "Objective", long)]
    momentum: Option<f64>,
    /// Positives within this distance of the anchor: frames (8, 8f) or seconds (0.25s). Default:
    /// R3M's ordering rule (any frame between the anchor and the negative).
    #[arg(help_heading = "Objective", long)]
    positive_window: Option<Span>,
    /// In-clip negatives at least this far from the anchor: frames or seconds. Default: just
    /// beyond the positive.
    #[arg(help_heading = "Objective", long)]
    negative_gap: Option<Span>,
    /// Weight of R3M's language term G(e_start, e_t, text) (0: off). Needs --text-embeddings;
    /// clips without a text are masked out.
    #[arg(help_heading = "Objective", long, default_value_t = 0.0)]
    lang_weight: f64,
    /// Parquet of text embeddings (columns `text`, `embedding` list<float>), as written by
    /// `python/r3m_tools/embed_texts.py` (all-MiniLM-L6-v2, offline).
    #[arg(help_heading = "Objective", long)]
    text_embeddings: Option<PathBuf>,
    /// Hidden width of the language head (R3M: 1024).
    #[arg(help_heading = "Objective", long, default_value_t = 1024)]
    lang_hidden: i64,
    /// Add a linear projection head to this many dimensions after the trunk.
    #[arg(help_heading = "Objective", long)]
    proj_dim: Option<i64>,
    /// Decode workers. Default: 2 on the CPU (they share its cores with the training step); on a
    /// GPU, where the CPU only decodes and augments, one per core but one, 2 to 16.
    #[arg(help_heading = "Performance", long)]
    workers: Option<usize>,
    /// Read the loss and metrics from the device every N steps (and before every checkpoint):
    /// on a GPU that read is the step's only wait for the device, so the host can queue the next
    /// steps meanwhile. The weights do not depend on it; progress, metrics.csv and a Ctrl-C stop
    /// come in groups of N, and a non-finite loss stops the run up to N−1 steps after it (before
    /// any checkpoint). Default: 16 on CUDA, 1 on the CPU (where reads cost nothing).
    #[arg(help_heading = "Performance", long, value_name = "N")]
    sync_every: Option<u64>,
    /// Where R3M's random crop is cut and resized: device (on the training device, after the
    /// whole frames are uploaded: the CPU only decodes), workers (in the decode workers, before
    /// upload), or auto: device on CUDA, workers on the CPU. The crops are the same either way;
    /// pixels differ by at most a grey level or two (interpolation weights).
    #[arg(help_heading = "Performance", long, default_value = "auto", value_parser = ["auto", "device", "workers"])]
    augment_on: String,
    #[command(flatten, next_help_heading = "Performance")]
    compute: crate::device::Compute,
    /// Memory layout of images and conv weights: channels-last, nchw (as the reference recipe
    /// trains) or auto. With `auto` (here or in --precision) a run of ≥ 360 steps times the
    /// candidate modes (fp32 NCHW, fp32 channels-last, bf16 channels-last where the hardware has
    /// bf16) for a few steps on its own model and shape and keeps the fastest; the timings are
    /// printed, kept in the run config and cached per machine and shape ($R3M_CACHE/autotune.json).
    /// Shorter runs: channels-last with bf16, nchw with fp32. R3M_AUTOTUNE=always|never overrides
    /// when to time.
    #[arg(help_heading = "Performance", long, default_value = "auto", value_parser = ["auto", "channels-last", "nchw"])]
    memory_format: String,
    /// simclr / npair, data-parallel (WORLD_SIZE > 1): negatives from every rank's batch, with the
    /// large-batch gradient (the all-gather's backward sums every rank's gradient for each rank's
    /// rows), as SimCLR's large-batch recipe does.
    #[arg(help_heading = "Distributed", long)]
    global_negatives: bool,
    /// Data-parallel (launched by torchrun, WORLD_SIZE > 1): seconds a rendezvous or a collective
    /// may wait for the other ranks before this rank gives up with an error.
    #[arg(help_heading = "Distributed", long, default_value_t = 300)]
    dist_timeout: u64,
    /// Data-parallel: the c10d backend. auto: NCCL for CUDA (gradients reduced on the GPUs) where
    /// this build has it, Gloo otherwise (CPU tensors; a CUDA run on Gloo stages its gradients
    /// through host memory). nccl on a CPU run, or without a GPU, is an error. Given explicitly
    /// under torchrun, even one process (--nproc-per-node=1) joins a group of one.
    #[arg(help_heading = "Distributed", long, default_value = "auto", value_parser = ["auto", "gloo", "nccl"])]
    dist_backend: String,
    /// Write a checkpoint every N steps (and at the end, and on Ctrl-C).
    #[arg(help_heading = "Output", long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Checkpoints to keep.
    #[arg(help_heading = "Output", long, default_value_t = 3)]
    keep: usize,
    /// Log to rerun: save:PATH.rrd, spawn, or connect[:URL] (loss terms, alignment, images/s and
    /// data wait per step; sampled tuples with their distances every --rerun-every steps).
    #[arg(help_heading = "Output", long)]
    rerun: Option<r3m_viz::Sink>,
    /// Steps between sampled tuples in the rerun recording.
    #[arg(help_heading = "Output", long, default_value_t = 20)]
    rerun_every: u64,
}

pub fn run(args: Args) -> Result<i32> {
    if args.batch < 2 {
        bail!("--batch {}: the objective needs other clips in the batch for negatives (use ≥ 2)", args.batch);
    }
    if !(32..=2048).contains(&args.size) {
        bail!("--size {}: give a crop side between 32 (the smallest a ResNet takes) and 2048 pixels", args.size);
    }
    let (dev, precision) = args.compute.resolve()?;
    // data-parallel when torchrun (or the like) says so: join the group before anything else
    // an explicit --dist-backend under a launcher joins even a group of one (torchrun
    // --nproc-per-node=1: a check of the backend)
    let dist = join_group(&args, dev)?;
    let lead = dist.as_ref().is_none_or(|d| d.rank == 0);
    let dev = match (dev, &dist) {
        (tch::Device::Cuda(_), Some(d)) => crate::device::parse_checked(&format!("cuda:{}", d.local_rank))?,
        (dev, _) => dev,
    };
    // the run directory is checked before anything (a rerun recording inside it included) is written
    // rank 0 owns the run directory
    // one writer per run directory: a second `r3m train` on the same --out is refused by name
    let _lock = if lead { Some(r3m_fs::OutputLock::acquire_dir(&args.out)?) } else { None };
    let cleared = if lead { r3m_train::prepare_run_dir(&args.out, args.resume, args.overwrite)? } else { 0 };
    if lead {
        // the run keeps its messages (the lines so far included)
        std::fs::create_dir_all(&args.out).with_context(|| format!("creating --out {}", args.out.display()))?;
        crate::log::to_file(&args.out.join(r3m_train::run::LOG_FILE))
            .with_context(|| format!("opening the run log in {}", args.out.display()))?;
    }
    if cleared > 0 {
        tracing::info!("--overwrite: cleared {} ({cleared} entries)", args.out.display());
    }
    let ds = args.source.open()?;
    // training's own length rule: a tuple needs MIN_CLIP_FRAMES frames
    let before = ds.skipped.len();
    let ds = ds.for_tuples()?;
    for s in &ds.skipped[before..] {
        tracing::warn!("  skipped {}: {}", s.path.display(), s.reason);
    }
    if args.batch > ds.clips.len() {
        bail!(
            "--batch {} is more than the {} clip(s) in {}: clips would repeat within a batch and be each other's negatives (use --batch ≤ {})",
            args.batch,
            ds.clips.len(),
            args.source.describe(),
            ds.clips.len()
        );
    }
    let mut cfg = r3m_train::TrainConfig::new(dev);
    cfg.dist = dist.clone();
    model_settings(&args, &mut cfg, precision)?;
    loader_settings(&args, &mut cfg)?;
    let viz = args
        .rerun
        .as_ref()
        .filter(|_| lead)
        .map(|s| r3m_viz::Viz::open("r3m_train", s))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(v) = &viz {
        v.send_blueprint(r3m_viz::train_blueprint()).map_err(anyhow::Error::msg)?;
    }
    if viz.is_some() {
        cfg.sample_every = args.rerun_every.max(1);
    }
    refuse_unused_options(&args)?;
    if args.global_negatives && dist.is_none() {
        bail!("--global-negatives does nothing in one process: launch with torchrun (WORLD_SIZE > 1)");
    }
    cfg.objective = objective_config(&args)?;
    sampler_and_texts(&args, &mut cfg)?;
    resolve_auto(&args, &mut cfg)?;
    if args.resume {
        for change in r3m_train::check_resume(&args.out, &cfg, &ds.clips)? {
            tracing::info!("resume: {change} (allowed: it does not change the batches or the model)");
        }
    }
    let stop = crate::interrupt::stop_flag()?;
    announce(&cfg, dev);
    let bar = if lead { ProgressBar::new(args.steps) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("valid template"),
    );
    let (mut wait, mut total) = (0.0, 0.0);
    let images_per_step = (args.batch * 5) as f64;
    let objective_name = cfg.objective.kind.name();
    let mut dropped_total = 0usize;
    let mut redrawn_total = 0u64;
    let done = r3m_train::train(ds.clips, &cfg, &args.out, args.resume, |m| {
        if bar.position() == 0 {
            bar.set_position(m.step - 1);
        }
        for d in &m.dropped {
            bar.println(format!("warning: clip dropped (failed to decode): {d}"));
        }
        dropped_total = m.dropped_total;
        redrawn_total = m.redrawn_total;
        wait += m.wait_s;
        total += m.step_s;
        if let Some(v) = &viz {
            if let Err(e) = log_step(v, m, images_per_step) {
                bar.println(format!("warning: {e}"));
            }
        }
        let own = if objective_name == "r3m-tcn" {
            String::new()
        } else {
            format!("{objective_name} {:.4} acc {:.2} ", m.objective, m.objective_acc)
        };
        let lang = m.lang.map(|(l, a)| format!("lang {l:.3} acc {a:.2} ")).unwrap_or_default();
        bar.set_message(format!(
            "loss {:.4} {own}tcn {:.4} aligned {:.2} {lang}| {:.1} img/s, data wait {:.0}%",
            m.loss,
            m.tcn,
            m.aligned,
            images_per_step / m.step_s,
            100.0 * wait / total.max(1e-9)
        ));
        bar.inc(1);
        !stop.load(Ordering::SeqCst)
    })?;
    bar.finish();
    if let Some(v) = viz {
        v.finish().map_err(anyhow::Error::msg)?;
        if let Some(r3m_viz::Sink::Save(p)) = &args.rerun {
            tracing::info!("rerun recording: {}", p.display());
        }
    }
    if redrawn_total > 0 {
        tracing::warn!("{redrawn_total} tuple(s) were drawn again around frames that could not be decoded");
    }
    if dropped_total > 0 {
        tracing::warn!("{dropped_total} clip(s) were dropped because they failed to decode (listed above; column dropped_clips of metrics.csv)");
    }
    let ck =
        r3m_train::latest_checkpoint(&args.out).map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into());
    if stop.load(Ordering::SeqCst) {
        tracing::warn!("interrupted at step {done}; checkpoint {ck}; continue with --resume");
        return Ok(130);
    }
    tracing::info!("trained {done} steps; checkpoint {ck}; metrics {}", args.out.join("metrics.csv").display());
    if let Some(b) = r3m_train::Budget::read(&args.out) {
        tracing::info!("budget: {} ({})", b.summary(), args.out.join(r3m_train::budget::FILE).display());
    }
    Ok(0)
}

/// Reads `text` → `embedding` from a Parquet file written by `python/r3m_tools/embed_texts.py`.
fn read_text_embeddings(path: &std::path::Path) -> Result<std::collections::BTreeMap<String, Vec<f32>>> {
    use anyhow::Context;
    let batches = r3m_data::table::read_parquet(path)
        .map_err(|e| anyhow::anyhow!("--text-embeddings {}: {e}", path.display()))?;
    let mut out = std::collections::BTreeMap::new();
    for b in &batches {
        let err = |e: String| anyhow::anyhow!("{}: {e}", path.display());
        let texts = r3m_data::table::strings(b, "text")
            .map_err(err)?
            .with_context(|| format!("{}: no 'text' column", path.display()))?;
        let embs = r3m_data::table::f32_lists(b, "embedding")
            .map_err(err)?
            .with_context(|| format!("{}: no 'embedding' column", path.display()))?;
        for (t, e) in texts.into_iter().zip(embs) {
            let Some(t) = t else { continue };
            if e.is_empty() || e.iter().any(|v| !v.is_finite()) {
                bail!("{}: the embedding of '{t}' is empty or not finite", path.display());
            }
            out.insert(t.trim().to_string(), e);
        }
    }
    if out.is_empty() {
        bail!("{}: no text embeddings", path.display());
    }
    Ok(out)
}

/// `--precision auto` / `--memory-format auto`. A resume keeps the run's own mode. A new run of
/// enough steps ([`autotune::worth_measuring`]) times the candidate modes on its model and shape
/// (cached per machine, [`autotune::choose`]) and keeps the fastest; shorter runs, data-parallel
/// runs (every rank must agree) and a single candidate take the static rule already in `cfg`.
fn resolve_auto(args: &Args, cfg: &mut r3m_train::TrainConfig) -> Result<()> {
    use r3m_train::autotune;
    let (auto_p, auto_m) = (args.compute.precision == "auto", args.memory_format == "auto");
    if !auto_p && !auto_m {
        return Ok(());
    }
    let layout = |cl: bool| if cl { "channels-last" } else { "nchw" };
    if args.resume {
        let Some(dir) = r3m_train::latest_checkpoint(&args.out) else { return Ok(()) };
        let file = dir.join(r3m_model::checkpoint::CONFIG_FILE);
        let old = r3m_train::RunConfig::from_json(r3m_model::checkpoint::read_config(&dir)?, &file)?;
        if auto_p {
            cfg.precision = old.precision.parse().map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        }
        if auto_m {
            cfg.channels_last = old.channels_last;
        }
        cfg.autotune = old.autotune;
        tracing::info!("auto: the run's own {} {} (resume)", cfg.precision, layout(cfg.channels_last));
        return Ok(());
    }
    let modes =
        autotune::candidates(cfg.device, (!auto_p).then_some(cfg.precision), (!auto_m).then_some(cfg.channels_last));
    let policy = autotune::Policy::from_env()?;
    if cfg.dist.is_some() || !policy.measures(cfg.steps, &modes) {
        if modes.len() >= 2 {
            tracing::info!(
                "auto: {} {} (the static rule: {})",
                cfg.precision,
                layout(cfg.channels_last),
                if cfg.dist.is_some() {
                    "data-parallel ranks must agree"
                } else if policy == autotune::Policy::Never {
                    "R3M_AUTOTUNE=never"
                } else {
                    "too few --steps to time the modes; R3M_AUTOTUNE=always times them anyway"
                }
            );
        }
        return Ok(());
    }
    let cache = autotune::default_cache();
    let choice = match autotune::lookup(cfg, &modes, cache.as_deref()) {
        Some(c) => c,
        None => {
            tracing::info!(
                "auto: timing {} mode(s) on random pixels: {} warm-up and {} timed training steps each, taken in turn ...",
                modes.len(),
                autotune::WARMUP_STEPS,
                autotune::TIMED_STEPS
            );
            let (c, cache_err) = autotune::measure_and_store(cfg, &modes, cache.as_deref())?;
            if let Some(e) = cache_err {
                tracing::warn!("{e:#} (the choice is not cached)");
            }
            c
        }
    };
    tracing::info!("{}", choice.summary());
    cfg.precision = choice.mode.precision;
    cfg.channels_last = choice.mode.channels_last;
    cfg.autotune = Some(choice);
    Ok(())
}

/// Joins the data-parallel group when torchrun (or the like) says so; an explicit --dist-backend
/// under a launcher joins even a group of one (torchrun --nproc-per-node=1: a check of the backend).
fn join_group(args: &Args, dev: tch::Device) -> Result<Option<std::rc::Rc<r3m_train::Dist>>> {
    let Some(env) = r3m_train::DistEnv::from_env_with(args.dist_backend != "auto")? else { return Ok(None) };
    let backend = match args.dist_backend.as_str() {
        "auto" => r3m_train::dist::Backend::for_device(dev),
        b => b.parse()?,
    };
    backend.check(dev).with_context(|| format!("WORLD_SIZE={}: --dist-backend {}", env.world, args.dist_backend))?;
    if args.dist_timeout == 0 {
        bail!("--dist-timeout must be ≥ 1 second");
    }
    let d = r3m_train::Dist::join(&env, backend, std::time::Duration::from_secs(args.dist_timeout))?;
    tracing::info!(
        "rank {} of {} (local rank {}), {} backend, store {}:{}",
        d.rank,
        d.world,
        d.local_rank,
        backend.name(),
        env.addr,
        env.port
    );
    Ok(Some(std::rc::Rc::new(d)))
}

/// The loader's settings: mode, tuples per clip, reservoir budget, decode workers, how often
/// metrics are read, where augmentation runs.
fn loader_settings(args: &Args, cfg: &mut r3m_train::TrainConfig) -> Result<()> {
    let reservoir = args.loader == "reservoir";
    cfg.tuples_per_clip = args.tuples_per_clip.unwrap_or(if reservoir { 16 } else { 4 }).max(1);
    match (reservoir, args.reservoir_mb) {
        (false, Some(_)) => bail!("--reservoir-mb does nothing with --loader grouped: give --loader reservoir"),
        (true, Some(0)) => bail!("--reservoir-mb must be ≥ 1"),
        _ => {}
    }
    cfg.reservoir_mb = reservoir.then(|| args.reservoir_mb.unwrap_or(2048));
    cfg.workers = match args.workers {
        Some(n) => n.max(1),
        None if matches!(cfg.device, tch::Device::Cuda(_)) => {
            std::thread::available_parallelism().map_or(2, |n| n.get().saturating_sub(1)).clamp(2, 16)
        }
        None => 2,
    };
    if args.sync_every == Some(0) {
        bail!("--sync-every must be ≥ 1");
    }
    if let Some(n) = args.sync_every {
        cfg.sync_every = n;
    }
    match args.augment_on.as_str() {
        "device" => cfg.augment_on_device = true,
        "workers" => cfg.augment_on_device = false,
        _ => {}
    }
    Ok(())
}

/// An option of another objective would be silently ignored: refuse it.
fn refuse_unused_options(args: &Args) -> Result<()> {
    let kind = args.objective;
    let unused: Vec<&str> = [
        ("--margin", args.margin.is_some(), kind == ObjectiveKind::Triplet),
        ("--hard-negatives", args.hard_negatives, kind == ObjectiveKind::Triplet),
        ("--temperature", args.temperature.is_some(), matches!(kind, ObjectiveKind::SimClr | ObjectiveKind::Moco)),
        ("--queue", args.queue.is_some(), kind == ObjectiveKind::Moco),
        ("--momentum", args.momentum.is_some(), kind.has_target()),
        ("--global-negatives", args.global_negatives, kind.has_global_negatives()),
    ]
    .into_iter()
    .filter(|&(_, given, used)| given && !used)
    .map(|(flag, _, _)| flag)
    .collect();
    if !unused.is_empty() {
        bail!(
            "{} do(es) nothing with --objective {} (triplet: --margin, --hard-negatives; simclr/moco: --temperature; moco: --queue; moco/byol: --momentum; simclr/npair: --global-negatives)",
            unused.join(", "),
            kind.name()
        );
    }
    Ok(())
}

/// The objective from its flags, checked.
fn objective_config(args: &Args) -> Result<ObjectiveConfig> {
    if args.text_embeddings.is_some() && args.lang_weight == 0.0 {
        bail!("--text-embeddings does nothing without the language term: give --lang-weight W (R3M: 1.0)");
    }
    let mut objective = ObjectiveConfig::new(args.objective);
    objective.r3m =
        R3mObjective { w_l1: args.l1_weight, w_l2: args.l2_weight, similarity: args.similarity, ..Default::default() };
    objective.margin = args.margin.unwrap_or(objective.margin);
    objective.hard_negatives = args.hard_negatives;
    objective.temperature = args.temperature.unwrap_or(args.objective.default_temperature());
    objective.queue = args.queue.unwrap_or(objective.queue);
    objective.momentum = args.momentum.unwrap_or(objective.momentum);
    objective.lang_weight = args.lang_weight;
    objective.lang_hidden = args.lang_hidden;
    objective.global_negatives = args.global_negatives;
    if objective.temperature.is_nan() || objective.temperature <= 0.0 {
        bail!("--temperature must be > 0");
    }
    if !(0.0..1.0).contains(&objective.momentum) {
        bail!("--momentum must be in [0, 1)");
    }
    if objective.queue == 0 {
        bail!("--queue must be ≥ 1");
    }
    if args.lang_weight < 0.0 {
        bail!("--lang-weight must be ≥ 0");
    }
    Ok(objective)
}

/// One step's numbers (and, every --rerun-every steps, its first tuple) to the rerun recording.
fn log_step(v: &r3m_viz::Viz, m: &r3m_train::StepMetrics, images_per_step: f64) -> Result<(), String> {
    v.train_step(m.step, m.loss, m.tcn, m.aligned, images_per_step / m.step_s, 100.0 * m.wait_s / m.step_s.max(1e-9))?;
    match &m.sample {
        Some(t) => v.train_tuple(m.step, &t.frames, t.width, t.height, &t.distances),
        None => Ok(()),
    }
}

/// The model, precision and schedule settings from their flags.
fn model_settings(args: &Args, cfg: &mut r3m_train::TrainConfig, precision: Precision) -> Result<()> {
    if matches!(args.proj_dim, Some(d) if d < 1) {
        bail!("--proj-dim must be ≥ 1");
    }
    cfg.precision = precision;
    cfg.channels_last = match args.memory_format.as_str() {
        "auto" => precision == Precision::Bf16,
        m => m == "channels-last",
    };
    cfg.proj_dim = args.proj_dim;
    cfg.weighting = if args.clip_weighting == "uniform" { ClipWeighting::Uniform } else { ClipWeighting::ByLength };
    cfg.arch = args.arch;
    cfg.size = args.size;
    cfg.batch = args.batch;
    cfg.steps = args.steps;
    cfg.lr = args.lr;
    cfg.seed = args.seed;
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.keep_last = args.keep;
    Ok(())
}

/// The sampler's windows (checked) and the language term's text embeddings.
fn sampler_and_texts(args: &Args, cfg: &mut r3m_train::TrainConfig) -> Result<()> {
    cfg.sampler.positive_window = args.positive_window;
    cfg.sampler.negative_gap = args.negative_gap;
    if let (Some(w), Some(g)) = (args.positive_window, args.negative_gap) {
        if matches!((w, g), (Span::Frames(a), Span::Frames(b)) if b <= a)
            || matches!((w, g), (Span::Seconds(a), Span::Seconds(b)) if b <= a)
        {
            bail!("--negative-gap {g} must be larger than --positive-window {w}");
        }
    }
    if args.lang_weight > 0.0 {
        let Some(path) = &args.text_embeddings else {
            bail!(
                "--lang-weight {} needs --text-embeddings FILE.parquet (make it with python/r3m_tools/embed_texts.py)",
                args.lang_weight
            )
        };
        cfg.text_embeddings = Some(read_text_embeddings(path)?);
    }
    Ok(())
}

/// What is about to train, on what.
fn announce(cfg: &r3m_train::TrainConfig, dev: tch::Device) {
    tracing::info!(
        "training {} with {}{} on {} ({}, {}), batch {} x 5 frames at {} px",
        cfg.arch,
        cfg.objective.kind.name(),
        if cfg.objective.lang_weight > 0.0 {
            format!(" + language x{}", cfg.objective.lang_weight)
        } else {
            String::new()
        },
        crate::device::name(dev),
        cfg.precision,
        if cfg.channels_last { "channels-last" } else { "nchw" },
        cfg.batch,
        cfg.size
    );
}
