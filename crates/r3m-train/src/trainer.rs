//! The R3M training loop: loader batches → encoder (BatchNorm in train mode) → R3M objective →
//! Adam, with metrics to `metrics.csv`, atomic checkpoints and exact resume.
//!
//! A run directory holds `metrics.csv`, `checkpoints/step-NNNNNNNN/` (the last `keep_last`),
//! `checkpoints/best/` (the checkpoint that ended the interval with the lowest mean training loss;
//! its `config.json` has `interval_mean_loss`) and `latest` (the name of the newest checkpoint,
//! replaced atomically). Everything random lives in
//! seeded generators whose states go into each checkpoint (the loader's and the negatives'), so a
//! resumed run continues with the same batches, the same negatives and the same Adam state as an
//! uninterrupted one.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use r3m_data::{Augment, Clip, Loader, LoaderConfig, LoaderMode, LoaderState, Rng};
use r3m_model::objectives::LANG_DIM;
use r3m_model::precision::channels_last;
use r3m_model::{checkpoint, Objective, ObjectiveInput, PixelSpec};
use r3m_video::{DecodeOptions, Resize};
use tch::{nn, Device, Kind, Tensor};

use crate::budget::{Budget, Tally};
use crate::metrics::{MetricsRow, MetricsWriter};
use crate::model::build_model;
use crate::policy::CheckpointPolicy;
use crate::run::latest_checkpoint;
use crate::run::{DataFingerprint, RunConfig, SamplerConfig};
use crate::{Adam, TrainConfig};

/// One step's numbers.
#[derive(Debug, Clone)]
pub struct StepMetrics {
    /// Step number (1-based: the state after this many updates).
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// R3M's TCN term, measured for every objective (it is the loss for `r3m-tcn`).
    pub tcn: f64,
    /// The objective's own loss.
    pub objective: f64,
    /// The objective's own accuracy (its positive ranked first).
    pub objective_acc: f64,
    /// Language term and its accuracy, when on.
    pub lang: Option<(f64, f64)>,
    /// Mean L1 norm.
    pub l1: f64,
    /// Mean L2 norm.
    pub l2: f64,
    /// Alignment accuracy.
    pub aligned: f64,
    /// Seconds waiting for the batch.
    pub wait_s: f64,
    /// Seconds for the whole step.
    pub step_s: f64,
    /// Every `sample_every` steps: the first tuple of the batch as the model saw it.
    pub sample: Option<TupleSample>,
    /// Clips dropped since the previous step because they failed to decode: `path: reason`.
    pub dropped: Vec<String>,
    /// Clips dropped so far in this process.
    pub dropped_total: usize,
    /// Tuples drawn again so far (in this process) because a frame could not be decoded.
    pub redrawn_total: u64,
}

/// A trained step whose numbers are still on the device.
struct Pending {
    step: u64,
    /// total, tcn, objective, objective_acc, l1, l2, aligned[, lang, lang_acc], as f64
    values: Tensor,
    wait_s: f64,
    step_s: f64,
    sample: Option<TupleSample>,
    dropped: Vec<String>,
    dropped_total: usize,
    redrawn_total: u64,
}

/// `host` on `device`. To a GPU through pinned memory and without waiting: a plain copy from
/// pageable memory would make the host wait for the GPU's queue to drain.
fn upload(host: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) => {
            let kind = host.kind();
            host.pin_memory(device).to_device_(device, kind, true, false)
        }
        _ => host,
    }
}

/// A batch's NHWC u8 pixels as the NCHW tensor the encoder takes, on `device`: on a GPU the bytes
/// go up from pinned memory without making the host wait, and the layout changes there; on the
/// CPU the permuted view already has channels-last strides.
fn upload_images(data: &[u8], nhwc: [i64; 4], device: Device, channels_last_on: bool) -> Tensor {
    let x = upload(Tensor::from_slice(data).view(nhwc), device).permute([0, 3, 1, 2]);
    if channels_last_on {
        channels_last(&x)
    } else {
        x.contiguous()
    }
}

/// One tuple of a batch, for looking at: its 5 frames after augmentation (start, end, s0, s1, s2)
/// and the 5×5 distances between their embeddings.
#[derive(Debug, Clone)]
pub struct TupleSample {
    /// RGB u8 frames, `width`×`height` each.
    pub frames: Vec<Vec<u8>>,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Row-major 5×5 embedding distances.
    pub distances: Vec<f32>,
}

fn loader_config(cfg: &TrainConfig, clips: &[Clip]) -> LoaderConfig {
    // decode a little larger than the crop, as R3M's frames are larger than its 224 crops
    let decode_side = Resize::eval_short_side(cfg.size);
    let mut lc = LoaderConfig {
        batch: cfg.batch,
        tuples_per_clip: cfg.tuples_per_clip,
        workers: cfg.workers,
        decode: DecodeOptions {
            resize: Resize::ShortSideCrop { short: decode_side, crop_w: decode_side, crop_h: decode_side },
            threads: 1,
            ..Default::default()
        },
        augment: if cfg.augment_on_device {
            Augment::RcTrajDeferred { size: cfg.size, scale: (0.2, 1.0) }
        } else {
            Augment::rctraj(cfg.size)
        },
        sampler: cfg.sampler,
        weighting: cfg.weighting,
        seed: cfg.seed,
        prefetch_groups: 2,
        mode: LoaderMode::Grouped,
    };
    if let Some(mb) = cfg.reservoir_mb {
        lc.mode = LoaderMode::Reservoir {
            slots: r3m_data::reservoir::pool_slots(clips, &lc.decode, lc.tuples_per_clip, lc.batch, mb),
        };
    }
    lc
}

/// Held while libtorch's global generator is seeded and the model initialised.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The typed config of a run at `step` (written into every checkpoint; compared on resume).
/// The run's data: one `path:frames` line per clip, in loader order.
fn data_fingerprint(clips: &[Clip]) -> DataFingerprint {
    DataFingerprint::of(clips.iter().map(|c| format!("{}:{}", c.video.path.display(), c.len())).collect())
}

fn run_config(
    cfg: &TrainConfig,
    step: u64,
    (loader, neg): (LoaderState, u64),
    clips: &[Clip],
    data: DataFingerprint,
) -> RunConfig {
    RunConfig {
        rng_streams: r3m_data::rng::STREAMS,
        format: crate::run::CONFIG_FORMAT.into(),
        arch: cfg.arch.name().into(),
        dim: cfg.proj_dim.unwrap_or(cfg.arch.dim()),
        trunk_dim: cfg.arch.dim(),
        proj_dim: cfg.proj_dim,
        size: cfg.size,
        precision: cfg.precision.name().into(),
        channels_last: cfg.channels_last,
        clip_weighting: format!("{:?}", cfg.weighting),
        batch: cfg.batch,
        tuples_per_clip: cfg.tuples_per_clip,
        loader: if cfg.reservoir_mb.is_some() { "reservoir" } else { "grouped" }.into(),
        reservoir: cfg.reservoir_mb.map(|mb| match loader_config(cfg, clips).mode {
            LoaderMode::Reservoir { slots } => (mb, slots),
            LoaderMode::Grouped => (mb, 0),
        }),
        lr: cfg.lr,
        seed: cfg.seed,
        steps: cfg.steps,
        checkpoint_every: cfg.checkpoint_every,
        keep_last: cfg.keep_last,
        workers: cfg.workers,
        objective: cfg.objective.to_json(),
        sampler: SamplerConfig {
            alpha: cfg.sampler.alpha,
            positive_window: cfg.sampler.positive_window.map(|s| s.to_string()),
            negative_gap: cfg.sampler.negative_gap.map(|s| s.to_string()),
        },
        text_embeddings: cfg.text_embeddings.as_ref().map(text_hash),
        preprocess: serde_json::to_value(PixelSpec::new(cfg.arch, cfg.size, Resize::eval_short_side(cfg.size)))
            .unwrap_or_default(),
        step,
        loader_state: loader,
        negatives_rng: neg,
        data,
        world_size: cfg.dist.as_ref().map_or(1, |d| d.world),
        rank_states: Vec::new(),
        interval_mean_loss: None,
        autotune: cfg.autotune.clone(),
    }
}

/// FNV-1a over the text embeddings table (texts and values in order), as hex.
fn text_hash(table: &std::collections::BTreeMap<String, Vec<f32>>) -> String {
    let mut h = r3m_fs::Fnv64::default();
    for (t, v) in table {
        h.update(t.as_bytes()).update(&[0]);
        for x in v {
            h.update(&x.to_le_bytes());
        }
    }
    format!("{:016x}", h.finish())
}

/// Compares the run in `run` with what `cfg` and `clips` would train: every difference that would
/// change batches, numbers or the model is refused (the error names each, old → new); the
/// returned lines are the differences a resume may make (`--steps`, checkpoint cadence, `--keep`,
/// `--workers`).
pub fn check_resume(run: &Path, cfg: &TrainConfig, clips: &[Clip]) -> Result<Vec<String>> {
    let Some(dir) = latest_checkpoint(run) else {
        bail!(
            "{}: nothing to resume (no complete checkpoint named by {}): start it over with --overwrite",
            run.display(),
            run.join("latest").display()
        )
    };
    let file = dir.join(checkpoint::CONFIG_FILE);
    let stored = checkpoint::read_config(&dir)?;
    let mut old = RunConfig::from_json(stored, &file)?;
    // the run's clip list, so a difference can be named clip by clip
    old.data.read_list(run);
    let mut now = run_config(cfg, old.step, (old.loader_state, old.negatives_rng), clips, data_fingerprint(clips));
    now.format.clone_from(&old.format);
    let c = old.resume_check(&now);
    if !c.refused.is_empty() {
        bail!(
            "{}: --resume would not continue the same run; these differ from the run's config (old → new):\n  {}\nuse the run's settings, or start a new run (another --out, or --overwrite)",
            file.display(),
            c.refused.join("\n  ")
        );
    }
    Ok(c.allowed)
}

/// Trains on `clips`, writing into `run`. With `resume`, continues from `run`'s latest checkpoint
/// (same batches, negatives and optimiser state as an uninterrupted run). `on_step` sees every
/// step's metrics (for progress display); it returns `false` to stop early, which still writes a
/// checkpoint.
pub fn train(
    clips: Vec<Clip>,
    cfg: &TrainConfig,
    run: &Path,
    resume: bool,
    mut on_step: impl FnMut(&StepMetrics) -> bool,
) -> Result<u64> {
    check_clip_lengths(&clips)?;
    let dist = cfg.dist.clone();
    let rank = dist.as_ref().map_or(0, |d| d.rank);
    // rank 0 owns the run directory; the others read it
    let lead = rank == 0;
    // the clip list and its hash, computed once (checkpoints keep the count and the hash)
    let data = data_fingerprint(&clips);
    let seed = dist.as_ref().map_or(cfg.seed, |d| crate::dist::rank_seed(cfg.seed, d.rank));
    prepare_run(run, cfg, &clips, &data, resume, lead)?;
    if let Some(d) = &dist {
        d.barrier()?;
    }
    if matches!(cfg.device, Device::Cuda(_)) {
        // every step has the same shapes: let cuDNN time its convolution algorithms once and keep
        // the fastest
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut vs = nn::VarStore::new(cfg.device);
    let lang_table = lang_table(&clips, cfg)?;
    let (encoder, mut objective, params) = seeded_model(cfg, &vs, lang_table.as_ref());
    // what Adam updates: the gradients that are averaged over ranks
    let grad_params: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut adam = Adam::new(params, cfg.lr);
    let (mut step, loader_state, mut neg) = if resume {
        let (step, state, neg) = restore(run, &mut vs, &mut objective, &mut adam, dist.as_deref())?;
        (step, Some(state), neg)
    } else {
        (0u64, None, Rng::stream(seed, 0x004E_4547))
    };
    if let Some(d) = &dist {
        broadcast_model(d, &vs, &objective)?;
    }
    let (mut metrics, mut tally) =
        if lead { open_metrics(run, resume.then_some(step))? } else { (None, Tally::default()) };
    let mut loader = make_loader(&clips, cfg, seed, lead, loader_state);
    // the best checkpoint: lowest mean training loss over a checkpoint interval
    let best_dir = run.join("checkpoints").join("best");
    let mut best_loss = best_loss_of(&best_dir);
    let (mut interval_sum, mut interval_n) = (0.0f64, 0u64);
    let policy = CheckpointPolicy { every: cfg.checkpoint_every, steps: cfg.steps, keep_last: cfg.keep_last };
    // this process is one more invocation of the run
    let invocations = if resume { Budget::read(run).map_or(1, |b| b.invocations + 1) } else { 1 };
    let device_name = device_name(cfg.device);
    let saver = Saver {
        run,
        cfg,
        data: data.without_lines(),
        dist: dist.as_deref(),
        best_dir: &best_dir,
        policy,
        invocations,
        device_name,
        clips: clips.len(),
    };
    let mut last_saved = step;
    let mut reported = 0usize;
    // metrics stay on the device and are read every `sync_every` steps (and before every
    // checkpoint): on a GPU that read is the step's one wait for the device
    let sync_every = cfg.sync_every.max(1);
    if sync_every > 1 && lead {
        tracing::info!(
            "metrics are read from the device every {sync_every} steps (--sync-every): a non-finite loss stops the run at most {} steps later, before any checkpoint",
            sync_every - 1
        );
    }
    let mut pending: Vec<Pending> = Vec::new();
    let (syncs_at_start, steps_at_start) = (crate::syncs::count(), step);
    while step < cfg.steps {
        let t0 = Instant::now();
        let Some(batch) = loader.next() else { return Err(loader_failure(&loader, &clips)) };
        let dropped: Vec<String> = loader.stats().failed[reported..]
            .iter()
            .map(|(c, why)| format!("{}: {why}", clip_name(&clips, *c)))
            .collect();
        reported = loader.stats().failed.len();
        let wait_s = t0.elapsed().as_secs_f64();
        let b = batch.batch as i64;
        let x = batch_images(&batch, cfg);
        let emb = encoder.embed(&x, true, cfg.precision).view([b, 5, -1]);
        let sample =
            (cfg.sample_every > 0 && (step + 1).is_multiple_of(cfg.sample_every)).then(|| tuple_sample(&x, &emb));
        let k = cfg.objective.r3m.num_negatives;
        let StepInts { p0, p2, clip_ids, lang } = step_ints(&batch, &mut neg, k, lang_table.as_ref(), cfg.device);
        // data-parallel global negatives: every rank's embeddings, as a leaf whose gradient
        // `backward_global` sums over ranks and sends back through this rank's rows
        let global = match (&dist, cfg.objective.global_negatives && cfg.objective.kind.has_global_negatives()) {
            (Some(d), true) => Some(gather_global(d, &emb, &clip_ids)?),
            _ => None,
        };
        let loss = objective.loss(&ObjectiveInput {
            emb: &emb,
            images: &x,
            clips: &clip_ids,
            perms0: &p0,
            perms2: &p2,
            lang: lang.as_ref().map(|(t, m, p, b)| (t, m, p.as_slice(), b)),
            precision: cfg.precision,
            global: global.as_ref().map(|(_, g, c)| (&g.all, c, g.offset)),
        });
        if let Some(d) = &dist {
            // MoCo: every rank enqueues the global batch's keys (identical queues on all ranks)
            objective.gather_pending_keys(|k| d.all_gather(k))?;
        }
        // the step's numbers, still on the device
        let values = loss_values(&loss);
        adam.zero_grad();
        match &dist {
            Some(d) => {
                backward_dist(d, &loss.total, global.as_ref().map(|(e, g, _)| (e, g)), &grad_params, cfg.device)?
            }
            None => loss.total.backward(),
        }
        adam.step();
        objective.after_step(&vs);
        step += 1;
        pending.push(Pending {
            step,
            values,
            wait_s,
            step_s: t0.elapsed().as_secs_f64(),
            sample,
            dropped,
            dropped_total: reported,
            redrawn_total: loader.stats().redrawn,
        });
        let due = policy.due(step, false);
        if pending.len() < sync_every as usize && !due && step < cfg.steps {
            continue;
        }
        // one read of the pending steps' numbers
        let f = flush(std::mem::take(&mut pending), metrics.as_mut(), &mut tally, &mut on_step)?;
        let (non_finite, go_on) = (f.non_finite, f.go_on);
        interval_sum += f.loss_sum;
        interval_n += f.steps;
        // a non-finite loss or a stop (Ctrl-C, a callback) on any rank stops every rank at the
        // same step: one collective for both
        let (bad, stop) = match &dist {
            Some(d) => d.any2(non_finite.is_some(), !go_on)?,
            None => (non_finite.is_some(), !go_on),
        };
        if bad {
            return Err(non_finite_error(non_finite, step, sync_every, run));
        }
        if policy.due(step, stop) {
            let mean = interval_sum / interval_n as f64;
            let best = CheckpointPolicy::is_best(mean, best_loss).then_some(mean);
            saver.save(step, &loader, &neg, &adam, &vs, &objective, best, &tally)?;
            if best.is_some() {
                best_loss = mean;
            }
            (interval_sum, interval_n) = (0.0, 0);
            last_saved = step;
        }
        if stop {
            break;
        }
    }
    report_syncs(step - steps_at_start, crate::syncs::count() - syncs_at_start, sync_every);
    if last_saved != step {
        saver.save(step, &loader, &neg, &adam, &vs, &objective, None, &tally)?;
    }
    if let Some(d) = &dist {
        report_checksum(d, &grad_params, step);
    }
    Ok(step)
}

fn clip_name(clips: &[Clip], i: usize) -> String {
    clips
        .get(i)
        .map_or_else(|| format!("clip {i}"), |c| format!("{} (frames {}..{})", c.video.path.display(), c.start, c.end))
}

/// The language term's inputs per clip: `[clips, L]` text embeddings and a `[clips]` mask (1 for
/// clips with a text). `None` when the term is off.
fn lang_table(clips: &[Clip], cfg: &TrainConfig) -> Result<Option<(Tensor, Tensor)>> {
    if cfg.objective.lang_weight <= 0.0 {
        return Ok(None);
    }
    let Some(table) = &cfg.text_embeddings else {
        bail!("the language term (lang weight {}) needs text embeddings (--text-embeddings)", cfg.objective.lang_weight)
    };
    let dim = table.values().next().map(|v| v.len()).context("the text embeddings are empty")?;
    if let Some((t, v)) = table.iter().find(|(_, v)| v.len() != dim) {
        bail!("text embeddings differ in size: '{t}' has {} values, others {dim}", v.len());
    }
    let mut rows = Vec::with_capacity(clips.len() * dim);
    let mut mask = Vec::with_capacity(clips.len());
    let mut missing = std::collections::BTreeSet::new();
    for c in clips {
        match c.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => match table.get(t) {
                Some(v) => {
                    rows.extend_from_slice(v);
                    mask.push(1.0f32);
                }
                None => {
                    missing.insert(t.to_string());
                    rows.extend(std::iter::repeat_n(0.0, dim));
                    mask.push(0.0);
                }
            },
            None => {
                rows.extend(std::iter::repeat_n(0.0, dim));
                mask.push(0.0);
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().take(5).map(|t| format!("'{t}'")).collect();
        bail!(
            "{} clip text(s) have no embedding in --text-embeddings: {}{}",
            missing.len(),
            list.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    if mask.iter().all(|&m| m == 0.0) {
        bail!("the language term is on but no clip has a text (LeRobot tasks or a manifest 'text' column give them)");
    }
    let n = clips.len() as i64;
    Ok(Some((
        Tensor::from_slice(&rows).view([n, dim as i64]).to_device(cfg.device),
        Tensor::from_slice(&mask).to_device(cfg.device),
    )))
}

/// Checks that `run` may be written (a new run, or `resume` of a matching one) and, on rank 0
/// (`lead`), makes its folders, removes a killed run's temporaries and writes the clip list.
fn prepare_run(
    run: &Path,
    cfg: &TrainConfig,
    clips: &[Clip],
    data: &DataFingerprint,
    resume: bool,
    lead: bool,
) -> Result<()> {
    if resume {
        check_resume(run, cfg, clips)?;
    } else if lead && (run.join("latest").exists() || run.join("metrics.csv").exists()) {
        bail!(
            "{} already holds a run: continue it with --resume, or clear it first (r3m train --overwrite)",
            run.display()
        );
    }
    if lead {
        std::fs::create_dir_all(run.join("checkpoints")).with_context(|| format!("creating {}", run.display()))?;
        // a killed run leaves temporaries of checkpoints it was writing: remove them
        r3m_fs::clean_stale(run)?;
        r3m_fs::clean_stale(&run.join("checkpoints"))?;
        // the clip list, once per run (checkpoints keep its count and hash); a resume has checked
        // that the clips are the same
        if !run.join(crate::run::CLIPS_FILE).exists() || !resume {
            data.write_list(run)?;
        }
    }
    Ok(())
}

/// Loads `run`'s latest checkpoint into `vs`, `objective` and `adam`, and returns the step and this
/// rank's place in the loader's and the negatives' streams.
fn restore(
    run: &Path,
    vs: &mut nn::VarStore,
    objective: &mut Objective,
    adam: &mut Adam,
    dist: Option<&crate::dist::Dist>,
) -> Result<(u64, LoaderState, Rng)> {
    let Some(dir) = latest_checkpoint(run) else { bail!("{}: nothing to resume (no checkpoint)", run.display()) };
    let loaded = checkpoint::load(&dir, vs)?;
    let stored = RunConfig::from_json(loaded.config.clone(), &dir.join(checkpoint::CONFIG_FILE))?;
    let state = objective.state();
    if !state.is_empty() {
        let file = dir.join(checkpoint::OBJECTIVE_FILE);
        let saved =
            Tensor::read_safetensors(&file).with_context(|| format!("{}: the objective's state", file.display()))?;
        objective.load_state(&saved).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    adam.load_state(&loaded.optimizer).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    match dist {
        Some(d) => {
            let mine = stored
                .rank_states
                .get(d.rank)
                .with_context(|| format!("{}: no state for rank {}", dir.display(), d.rank))?;
            Ok((stored.step, mine.loader_state, Rng::from_state(mine.negatives_rng)))
        }
        None => Ok((stored.step, stored.loader_state, Rng::from_state(stored.negatives_rng))),
    }
}

/// The batch's images on the device, `[5B, 3, size, size]`: uploaded as they are, or whole
/// frames up with R3M's crops cut and resized on the device.
fn batch_images(batch: &r3m_data::Batch, cfg: &TrainConfig) -> Tensor {
    let b = batch.batch as i64;
    let (h, w) = (i64::from(batch.height), i64::from(batch.width));
    if batch.crops.is_empty() {
        return upload_images(&batch.data, [b * 5, h, w, 3], cfg.device, cfg.channels_last);
    }
    let whole = upload(Tensor::from_slice(&batch.data).view([b * 5, h, w, 3]), cfg.device).permute([0, 3, 1, 2]);
    let x = crate::device_augment::crop_resize(&whole, &batch.crops, i64::from(cfg.size), |t| upload(t, cfg.device));
    if cfg.channels_last {
        channels_last(&x)
    } else {
        x
    }
}

/// The first tuple's frames as the model saw them, and their embeddings' distances.
fn tuple_sample(x: &Tensor, emb: &Tensor) -> TupleSample {
    let hwc = x.narrow(0, 0, 5).permute([0, 2, 3, 1]).contiguous().to_device(Device::Cpu);
    let e0 = emb.get(0).detach().to_device(Device::Cpu);
    crate::syncs::note();
    let (side_h, side_w) = (x.size()[2], x.size()[3]);
    let frames: Vec<u8> = Vec::try_from(hwc.view([-1])).unwrap_or_default();
    let frame = (side_h * side_w * 3) as usize;
    let d = r3m_model::analysis::distance_matrix(&e0).contiguous().view([-1]);
    TupleSample {
        frames: frames.chunks(frame.max(1)).map(<[u8]>::to_vec).collect(),
        width: side_w as u32,
        height: side_h as u32,
        distances: Vec::<f32>::try_from(d).unwrap_or_default(),
    }
}

/// A step's integer inputs on the device.
struct StepInts {
    /// R3M's negatives' permutations for the two negative terms (k each).
    p0: Vec<Tensor>,
    p2: Vec<Tensor>,
    clip_ids: Tensor,
    /// The language term's text embeddings, mask, permutations and direction flags.
    lang: Option<(Tensor, Tensor, Vec<Tensor>, Tensor)>,
}

/// The negatives' permutations (R3M: `k` for each of the two negative terms, and three other clips
/// for each of the language term's three terms), the clip ids and the language term's direction
/// flags: one upload of int64 rows.
fn step_ints(
    batch: &r3m_data::Batch,
    neg: &mut Rng,
    k: usize,
    lang_table: Option<&(Tensor, Tensor)>,
    device: Device,
) -> StepInts {
    let b = batch.batch as i64;
    let n_perm = 2 * k + if lang_table.is_some() { 9 } else { 0 };
    let mut rows: Vec<i64> = Vec::with_capacity((n_perm + 2) * b as usize);
    for _ in 0..n_perm {
        rows.extend(neg.permutation(b as usize).into_iter().map(|i| i as i64));
    }
    rows.extend(batch.clips.iter().map(|&c| c as i64));
    rows.extend(batch.tuples.iter().map(|t| i64::from(t[2] > t[4])));
    let ints = upload(Tensor::from_slice(&rows).view([n_perm as i64 + 2, b]), device);
    let row = |i: usize| ints.get(i as i64);
    let clip_ids = row(n_perm);
    let lang = lang_table.map(|(table, mask)| {
        (
            table.index_select(0, &clip_ids),
            mask.index_select(0, &clip_ids),
            (2 * k..n_perm).map(row).collect::<Vec<Tensor>>(),
            row(n_perm + 1).to_kind(Kind::Bool),
        )
    });
    StepInts { p0: (0..k).map(row).collect(), p2: (k..2 * k).map(row).collect(), clip_ids, lang }
}

/// What [`flush`] read.
struct Flushed {
    /// The first step whose loss was not finite, and that loss.
    non_finite: Option<(u64, f64)>,
    /// Whether every step's callback wanted to go on.
    go_on: bool,
    /// The finite steps' losses summed, and their count.
    loss_sum: f64,
    steps: u64,
}

/// Reads the pending steps' numbers in one host synchronisation, writes them to `metrics.csv` and
/// the tally (rank 0) and shows each to `on_step`, up to the first non-finite loss.
fn flush(
    done: Vec<Pending>,
    mut metrics: Option<&mut MetricsWriter>,
    tally: &mut Tally,
    on_step: &mut impl FnMut(&StepMetrics) -> bool,
) -> Result<Flushed> {
    let vals =
        Tensor::stack(&done.iter().map(|p| p.values.shallow_clone()).collect::<Vec<_>>(), 0).to_device(Device::Cpu);
    crate::syncs::note();
    let vals: Vec<f64> = Vec::try_from(vals.view([-1])).context("reading the step metrics")?;
    let width = vals.len() / done.len().max(1);
    let mut out = Flushed { non_finite: None, go_on: true, loss_sum: 0.0, steps: 0 };
    for (p, v) in done.into_iter().zip(vals.chunks(width.max(1))) {
        if !v[0].is_finite() {
            out.non_finite = Some((p.step, v[0]));
            break;
        }
        let m = StepMetrics {
            step: p.step,
            loss: v[0],
            tcn: v[1],
            objective: v[2],
            objective_acc: v[3],
            l1: v[4],
            l2: v[5],
            aligned: v[6],
            lang: (width > 7).then(|| (v[7], v[8])),
            wait_s: p.wait_s,
            step_s: p.step_s,
            sample: p.sample,
            dropped: p.dropped,
            dropped_total: p.dropped_total,
            redrawn_total: p.redrawn_total,
        };
        if let Some(metrics) = metrics.as_deref_mut() {
            metrics.write(&MetricsRow {
                step: m.step,
                loss: m.loss,
                tcn: m.tcn,
                l1: m.l1,
                l2: m.l2,
                aligned: m.aligned,
                wait_s: m.wait_s,
                step_s: m.step_s,
                objective: m.objective,
                objective_acc: m.objective_acc,
                lang: m.lang.map(|(l, _)| l),
                lang_acc: m.lang.map(|(_, a)| a),
                dropped_clips: m.dropped_total as u64,
            })?;
            tally.push(m.step, m.wait_s, m.step_s);
        }
        out.loss_sum += m.loss;
        out.steps += 1;
        // every step's callback runs (progress), a stop from any of them counts
        out.go_on &= on_step(&m);
    }
    Ok(out)
}

/// Writes checkpoints of one run: the step's, `best` when the interval's mean loss is the lowest so
/// far, `latest`, budget.json, and removes those the keep policy drops. Under data parallelism
/// every rank calls it (the collectives gather BatchNorm statistics and every rank's streams);
/// rank 0 writes.
struct Saver<'a> {
    run: &'a Path,
    cfg: &'a TrainConfig,
    /// The clips' count and hash (the list is in clips.txt).
    data: DataFingerprint,
    dist: Option<&'a crate::dist::Dist>,
    best_dir: &'a Path,
    policy: CheckpointPolicy,
    invocations: u32,
    device_name: String,
    clips: usize,
}

impl Saver<'_> {
    #[allow(clippy::too_many_arguments)]
    fn save(
        &self,
        step: u64,
        loader: &Loader,
        neg: &Rng,
        adam: &Adam,
        vs: &nn::VarStore,
        objective: &Objective,
        best: Option<f64>,
        tally: &Tally,
    ) -> Result<()> {
        let (run, cfg) = (self.run, self.cfg);
        let name = crate::policy::step_name(step);
        let dir = run.join("checkpoints").join(&name);
        let mut config = run_config(cfg, step, (loader.state(), neg.state()), loader.clips(), self.data.clone());
        if let Some(d) = self.dist {
            // BatchNorm running statistics from rank 0, so the checkpoint is every rank's model
            let mut buffers: Vec<(String, Tensor)> =
                vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()).collect();
            d.broadcast_all(&mut buffers)?;
            // every rank's place in its streams, for an exact resume
            let ls = loader.state();
            let mine = [ls.rng as i64, ls.group as i64, ls.within as i64, neg.state() as i64];
            let mut all = Tensor::zeros([d.world as i64, 4], (Kind::Int64, Device::Cpu));
            all.get(d.rank as i64).copy_(&Tensor::from_slice(&mine));
            d.allreduce_sum(&mut all)?;
            let v: Vec<i64> = Vec::try_from(all.view([-1])).context("gathering rank states")?;
            config.rank_states = v
                .chunks(4)
                .map(|c| crate::run::RankState {
                    loader_state: LoaderState { rng: c[0] as u64, group: c[1] as u64, within: c[2] as usize },
                    negatives_rng: c[3] as u64,
                })
                .collect();
            if d.rank != 0 {
                return Ok(());
            }
        }
        let state = objective.state();
        let json = serde_json::to_value(&config).context("serialising the run config")?;
        checkpoint::save_with(&dir, vs, &adam.state(), &json, &state)?;
        r3m_fs::write(&run.join("latest"), name.as_bytes())?;
        let world = self.dist.map_or(1, |d| d.world);
        Budget::from_tally(
            tally,
            cfg.batch,
            world,
            cfg.size,
            self.clips,
            self.invocations,
            &self.device_name,
            cfg.precision.name(),
        )
        .write(run)?;
        if let Some(mean) = best {
            config.interval_mean_loss = Some(mean);
            let json = serde_json::to_value(&config).context("serialising the run config")?;
            checkpoint::save_with(self.best_dir, vs, &adam.state(), &json, &state)?;
        }
        let existing: Vec<String> = std::fs::read_dir(run.join("checkpoints"))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        for old in self.policy.to_remove(&existing, &name) {
            let _ = std::fs::remove_dir_all(run.join("checkpoints").join(old));
        }
        Ok(())
    }
}

/// Rank 0's metrics writer (a resume first drops rows past the checkpoint, steps a crash lost, so
/// the file has each step once) and what the run has spent so far (budget.json), read once.
fn open_metrics(run: &Path, resume_at: Option<u64>) -> Result<(Option<MetricsWriter>, Tally)> {
    let writer = MetricsWriter::open(run, resume_at)?;
    let path = run.join(crate::metrics::FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((Some(writer), Tally::from_csv(&text)?))
}

/// The loader for this rank (`seed`), continuing from `state` on a resume.
fn make_loader(clips: &[Clip], cfg: &TrainConfig, seed: u64, lead: bool, state: Option<LoaderState>) -> Loader {
    let mut lc = loader_config(cfg, clips);
    lc.seed = seed;
    if let (LoaderMode::Reservoir { slots }, true) = (lc.mode, lead) {
        let mb = r3m_data::reservoir::clip_bytes(clips, &lc.decode, lc.tuples_per_clip).unwrap_or(0.0)
            * slots.min(clips.len()).max(lc.batch) as f64
            / 1e6;
        tracing::info!(
            "reservoir: {} decoded clip(s) held, each serving {} tuple(s) (~{mb:.0} MB)",
            slots.min(clips.len()).max(lc.batch),
            lc.tuples_per_clip
        );
    }
    Loader::resume(clips.to_vec(), lc, state)
}

/// The interval mean loss of the run's best checkpoint so far (infinity without one).
fn best_loss_of(best_dir: &Path) -> f64 {
    checkpoint::read_config(best_dir)
        .ok()
        .and_then(|v| RunConfig::from_json(v, &best_dir.join(checkpoint::CONFIG_FILE)).ok())
        .and_then(|c| c.interval_mean_loss)
        .unwrap_or(f64::INFINITY)
}

/// Why the loader gave no batch: its thread panicked, or every clip failed to decode.
fn loader_failure(loader: &Loader, clips: &[Clip]) -> anyhow::Error {
    if let Some(msg) = &loader.stats().panic {
        return anyhow::anyhow!("the data loader failed: its thread panicked: {msg}");
    }
    let failed = &loader.stats().failed;
    let reasons: Vec<String> =
        failed.iter().take(10).map(|(c, why)| format!("\n  {}: {why}", clip_name(clips, *c))).collect();
    anyhow::anyhow!(
        "the loader ran out of usable clips: {} of {} failed to decode{}{}",
        failed.len(),
        clips.len(),
        reasons.concat(),
        if failed.len() > 10 { "\n  ..." } else { "" }
    )
}

/// The step's numbers as one f64 vector on the device: total, tcn, objective, objective_acc, l1,
/// l2, aligned[, lang, lang_acc].
fn loss_values(loss: &r3m_model::Terms) -> Tensor {
    let mut terms = vec![&loss.total, &loss.tcn, &loss.main, &loss.main_acc, &loss.l1, &loss.l2, &loss.aligned];
    if let Some((l, a)) = &loss.lang {
        terms.push(l);
        terms.push(a);
    }
    Tensor::stack(&terms.iter().map(|t| t.detach().to_kind(Kind::Double).view([])).collect::<Vec<_>>(), 0)
}

/// Backward under data parallelism: every parameter gets a gradient (0·Σp adds zeros where one is
/// unused, so all ranks send the same buffer), global negatives send their gradient back to the
/// rank that owns each row, and the gradients are averaged over ranks.
fn backward_dist(
    d: &crate::dist::Dist,
    total: &Tensor,
    global: Option<(&Tensor, &crate::dist::GlobalBatch)>,
    grad_params: &[Tensor],
    device: Device,
) -> Result<()> {
    let zero =
        grad_params.iter().fold(Tensor::zeros([], (Kind::Float, device)), |acc, p| acc + p.sum(Kind::Float) * 0.0);
    let total = total + zero;
    match global {
        Some((e, g)) => d.backward_global(&total, e, g)?,
        None => total.backward(),
    }
    d.average_grads(grad_params)
}

/// The error that stops a run whose loss became non-finite (here at `non_finite`, or on another
/// rank), at `step`.
fn non_finite_error(non_finite: Option<(u64, f64)>, step: u64, sync_every: u64, run: &Path) -> anyhow::Error {
    let late = match non_finite {
        Some((at, _)) if at < step => {
            format!(" (metrics are read every {sync_every} steps: {} more step(s) ran and are discarded)", step - at)
        }
        _ => String::new(),
    };
    anyhow::anyhow!(
        "loss became {} at step {}{late}: stopping; the last good checkpoint is {}",
        non_finite.map_or_else(|| "non-finite on another rank".to_string(), |(_, v)| v.to_string()),
        non_finite.map_or(step, |(at, _)| at),
        latest_checkpoint(run).map(|p| p.display().to_string()).unwrap_or_else(|| "none".into())
    )
}

/// The encoder, objective and trainable parameters, initialised from `cfg.seed`. libtorch's
/// generator is process-wide: seeding and initialising under one lock keeps the initial weights a
/// function of the seed when several trainings share a process (tests run in threads). Concurrent
/// trainings in one process still differ in another way: CONTRIBUTING.md, "Known issues".
fn seeded_model(
    cfg: &TrainConfig,
    vs: &nn::VarStore,
    lang_table: Option<&(Tensor, Tensor)>,
) -> (r3m_model::Encoder, Objective, Vec<(String, Tensor)>) {
    let lang_dim = lang_table.map_or(LANG_DIM, |(t, _)| t.size()[1]);
    let _guard = INIT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(cfg.seed as i64);
    build_model(cfg, vs, lang_dim, cfg.channels_last)
}

/// One model on every rank: parameters, buffers and the objective's heads from rank 0.
fn broadcast_model(d: &crate::dist::Dist, vs: &nn::VarStore, objective: &Objective) -> Result<()> {
    let mut all: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    all.extend(objective.trainable());
    all.extend(objective.momentum.variables().into_iter().map(|(n, t)| (format!("momentum.{n}"), t)));
    d.broadcast_all(&mut all)
}

/// Every rank's embeddings for global negatives, as a leaf whose gradient `backward_global` sums
/// over ranks and sends back through this rank's rows, and every rank's clip ids.
fn gather_global(
    d: &crate::dist::Dist,
    emb: &Tensor,
    clip_ids: &Tensor,
) -> Result<(Tensor, crate::dist::GlobalBatch, Tensor)> {
    let e = emb.to_kind(Kind::Float);
    let g = d.gather_global(&e)?;
    Ok((e, g, d.all_gather(clip_ids)?))
}

/// The device as budget.json names it.
fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        d => format!("{d:?}"),
    }
}

/// At -v: how often the run waited for the device.
fn report_syncs(trained: u64, syncs: u64, sync_every: u64) {
    if trained > 0 {
        tracing::debug!(
            "host synchronisations: {syncs} in {trained} steps ({:.2} per step; metrics read every {sync_every} steps)",
            syncs as f64 / trained as f64
        );
    }
}

fn check_clip_lengths(clips: &[Clip]) -> Result<()> {
    if let Some(c) = clips.iter().find(|c| c.len() < r3m_data::MIN_CLIP_FRAMES) {
        bail!(
            "{}: {} frame(s), a tuple needs {} (Dataset::for_tuples drops such clips)",
            c.video.path.display(),
            c.len(),
            r3m_data::MIN_CLIP_FRAMES
        );
    }
    Ok(())
}

/// One number per rank to compare at the end: the ranks must hold the same weights.
fn report_checksum(d: &crate::dist::Dist, params: &[Tensor], step: u64) {
    let sum: f64 = params.iter().map(|p| p.to_kind(Kind::Double).abs().sum(Kind::Double).double_value(&[])).sum();
    tracing::info!("rank {} of {}: {step} steps, parameter checksum {sum:.17e}", d.rank, d.world);
}
