//! Few-demo behaviour cloning with a frozen (or scratch-trained) encoder, evaluated closed loop.
//!
//! For one cell (encoder × number of demos × policy seed): embed the demo frames once with the
//! frozen encoder, train the policy on [features, proprio] → action with MSE (Adam, batch 32),
//! and every `eval_every` steps roll it out in fresh layouts (evaluation seeds, the same for
//! every cell, so encoders are compared on the same layouts) with several environments stepping
//! in parallel and one batched encoder call per step. Every frame the encoder sees, demo or
//! rollout, goes through [`FramePrep`]: the frozen encoder's evaluation transform (shorter side
//! → 8/7·size, centre crop), the same definition `r3m embed` and `r3m view` decode with.
//!
//! Rows that test the evaluation itself: `state` (the full simulator observation instead of an
//! image: the ceiling), `proprio` (no image features at all: the floor), `scratch` (ResNet trained
//! end to end on the demos), `scratch-shallow` (DrQ's shallow ConvNet with random shifts),
//! `scratch-shallow-noshift` (the same without the shifts) and `random-shallow` (that ConvNet
//! frozen at its random initialisation), which separate the architecture, the augmentation and
//! the training on the demos.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use r3m_data::Rng;
use r3m_model::{Arch, Encoder, Precision};
use r3m_video::{Resize, RgbTransform};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use crate::bridge::Env;
use crate::demos::Demo;
use crate::policy::Policy;
use crate::shallow::random_shift;

/// Which features a cell's policy sees.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderKind {
    /// A trained checkpoint under a row name (`pretrained` for `--checkpoint`): frozen, or with
    /// `finetune` (`--encoders finetune:NAME=PATH`) the policy's starting encoder, trained end to
    /// end on the demos like `scratch` (a ResNet) or `scratch-shallow` (a shallow checkpoint,
    /// random shifts included): pretraining as initialisation.
    Pretrained {
        /// Row name.
        name: String,
        /// Checkpoint or run directory.
        path: PathBuf,
        /// Trained on the demos instead of frozen.
        finetune: bool,
    },
    /// Random initialisation (seeded), frozen.
    Random,
    /// The same frozen random network without its global average pool: the last feature map
    /// flattened (512 × 4 × 4 at 112 px), a diagnostic of what pooling loses.
    RandomSpatial,
    /// Random initialisation trained end to end on the demos.
    Scratch,
    /// DrQ's shallow ConvNet ([`Arch::Shallow`]) trained end to end on the demos, with DrQ's
    /// random shifts (±4 px) on every training frame unless `shift` is false
    /// (`scratch-shallow-noshift`).
    ScratchShallow {
        /// Random-shift augmentation on the demo frames.
        shift: bool,
    },
    /// DrQ's shallow ConvNet at its seeded random initialisation, frozen: the architecture
    /// without any training.
    RandomShallow,
    /// No image: the simulator's full observation vector (the protocol's ceiling).
    State,
    /// No image features at all, proprioception only (the protocol's floor).
    Proprio,
    /// No image: only the object poses and the goal from the simulator ([`OBJECT_STATE`], the 17
    /// values the positive control's state head predicts), with Gaussian noise of `noise` metres
    /// on the position coordinates that vary across the training demos (more than 1 mm standard
    /// deviation: an encoder predicts a constant as a constant, and noise on a constant column
    /// would become a pure-noise feature after the policy's input BatchNorm)
    /// on their positions (0: exact). A diagnostic row: how precisely must an encoder locate the
    /// objects for the evaluation to reward it? `--encoders state-objects` or
    /// `state-objects:SIGMA` (e.g. `state-objects:0.02`, 2 cm).
    StateObjects {
        /// Row name (the spec as written).
        name: String,
        /// Noise standard deviation on each position coordinate, metres.
        noise: f64,
    },
}

/// Columns of Meta-World's 39-d observation that `state-objects` keeps: object 1 and 2 poses
/// (position, quaternion; obs[4..18]) and the goal (obs[36..39]). The previous-frame copy
/// (obs[18..36]) and the hand (in proprio already) are left out.
pub const OBJECT_STATE: [usize; 17] = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 36, 37, 38];

/// Positions among [`OBJECT_STATE`]'s 17 values (object 1, object 2, goal): where
/// `state-objects:SIGMA` adds noise (those that vary, [`varying_positions`]). Quaternions stay exact.
const OBJECT_POSITIONS: [usize; 9] = [0, 1, 2, 7, 8, 9, 14, 15, 16];

/// A position coordinate varies when its standard deviation over the demo frames exceeds this
/// (metres).
const VARYING_SD: f64 = 1e-3;

/// Which of [`OBJECT_POSITIONS`] vary over `rows` (full 39-d states): standard deviation above
/// [`VARYING_SD`].
fn varying_positions(rows: &[&Vec<f32>]) -> Vec<usize> {
    OBJECT_POSITIONS
        .iter()
        .copied()
        .filter(|&i| {
            let col = OBJECT_STATE[i];
            let vals: Vec<f64> = rows.iter().filter_map(|r| r.get(col)).map(|&v| f64::from(v)).collect();
            let n = vals.len().max(1) as f64;
            let mean = vals.iter().sum::<f64>() / n;
            (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt() > VARYING_SD
        })
        .collect()
}

/// The names `--encoders` takes besides checkpoints.
pub const BUILTIN_ENCODERS: &str =
    "state, proprio, state-objects[:SIGMA], random, random-spatial, random-shallow, scratch, \
     scratch-shallow, scratch-shallow-noshift, pretrained (with --checkpoint), NAME=CHECKPOINT, \
     finetune:NAME=CHECKPOINT";

impl EncoderKind {
    /// Parses one `--encoders` entry: a built-in name, `pretrained` (the `checkpoint`), or
    /// `NAME=PATH` for a checkpoint shown under NAME.
    pub fn parse(spec: &str, checkpoint: Option<&Path>) -> Result<Self> {
        Ok(match spec {
            "pretrained" => EncoderKind::Pretrained {
                name: "pretrained".into(),
                path: checkpoint.context("--encoders pretrained needs --checkpoint RUN")?.to_path_buf(),
                finetune: false,
            },
            "random" => EncoderKind::Random,
            "random-spatial" => EncoderKind::RandomSpatial,
            "scratch" => EncoderKind::Scratch,
            "scratch-shallow" => EncoderKind::ScratchShallow { shift: true },
            "scratch-shallow-noshift" => EncoderKind::ScratchShallow { shift: false },
            "random-shallow" => EncoderKind::RandomShallow,
            "state" => EncoderKind::State,
            "proprio" => EncoderKind::Proprio,
            "state-objects" => EncoderKind::StateObjects { name: spec.into(), noise: 0.0 },
            other if other.starts_with("state-objects:") => {
                let sigma = &other["state-objects:".len()..];
                let noise: f64 =
                    sigma.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0).with_context(|| {
                        format!("--encoders {other}: SIGMA must be a noise in metres ≥ 0, like 0.02")
                    })?;
                EncoderKind::StateObjects { name: spec.into(), noise }
            }
            other if other.starts_with("finetune:") => match Self::parse(&other["finetune:".len()..], None) {
                Ok(EncoderKind::Pretrained { name, path, .. }) => {
                    EncoderKind::Pretrained { name, path, finetune: true }
                }
                _ => bail!(
                    "--encoders {other}: give finetune:NAME=CHECKPOINT (a row name and a checkpoint to train from)"
                ),
            },
            other => match other.split_once('=') {
                Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                    // a row name that parses as a built-in row is reserved (`name` holds no '=')
                    let builtin = Self::parse(name, None).is_ok();
                    if builtin || name.starts_with("state-objects") || name.contains(['/', '\\']) {
                        bail!(
                            "--encoders {other}: '{name}' cannot name a checkpoint row (reserved or contains a slash)"
                        );
                    }
                    EncoderKind::Pretrained { name: name.into(), path: path.into(), finetune: false }
                }
                _ => bail!("--encoders: unknown encoder '{other}' ({BUILTIN_ENCODERS})"),
            },
        })
    }

    /// Row name.
    pub fn name(&self) -> &str {
        match self {
            EncoderKind::Pretrained { name, .. } => name,
            EncoderKind::Random => "random",
            EncoderKind::RandomSpatial => "random-spatial",
            EncoderKind::Scratch => "scratch",
            EncoderKind::ScratchShallow { shift: true } => "scratch-shallow",
            EncoderKind::ScratchShallow { shift: false } => "scratch-shallow-noshift",
            EncoderKind::RandomShallow => "random-shallow",
            EncoderKind::State => "state",
            EncoderKind::Proprio => "proprio",
            EncoderKind::StateObjects { name, .. } => name,
        }
    }

    /// Whether rollouts need camera frames (the env renders only then).
    pub fn uses_frames(&self) -> bool {
        !matches!(self, EncoderKind::State | EncoderKind::Proprio | EncoderKind::StateObjects { .. })
    }

    /// Whether the row reads the simulator's state (`observation.environment_state`).
    pub fn uses_state(&self) -> bool {
        matches!(self, EncoderKind::State | EncoderKind::StateObjects { .. })
    }
}

/// Settings of a behaviour-cloning run.
#[derive(Debug, Clone)]
pub struct BcConfig {
    /// Policy training steps.
    pub steps: u64,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: u64,
    /// Rollouts per evaluation.
    pub rollouts: usize,
    /// Policy batch size.
    pub batch: usize,
    /// Policy learning rate (R3M: 1e-3).
    pub lr: f64,
    /// Encoder learning rate for `scratch` and `scratch-shallow`.
    pub encoder_lr: f64,
    /// Where the models run.
    pub device: Device,
    /// Encoder arithmetic.
    pub precision: Precision,
    /// Encoder input side (see [`FramePrep`]).
    pub size: u32,
    /// First evaluation layout seed.
    pub eval_seed_base: u64,
    /// Architecture for `random` and `scratch`.
    pub arch: Arch,
    /// Set from outside (Ctrl-C) to stop the cell at the next step ([`CellOutcome::Interrupted`]).
    pub stop: Option<Arc<AtomicBool>>,
}

/// The cell was stopped through [`BcConfig::stop`]; nothing of it is kept.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Success at one evaluation, per layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Policy step.
    pub step: u64,
    /// Successful rollouts.
    pub successes: usize,
    /// Rollouts.
    pub rollouts: usize,
    /// Success per evaluation layout, in layout order (layout seed = base + position).
    pub outcomes: Vec<bool>,
}

/// Where a cell's time went (differs between runs; kept apart from the results).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wall time of the cell.
    pub seconds: f64,
    /// Policy (and scratch encoder) training.
    pub train_seconds: f64,
    /// Closed-loop rollouts.
    pub rollout_seconds: f64,
    /// Environment steps taken in rollouts.
    pub env_steps: u64,
    /// `env_steps / rollout_seconds`.
    pub env_steps_per_s: f64,
}

/// One cell's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Encoder row name.
    pub encoder: String,
    /// Demonstrations used.
    pub demos: usize,
    /// Policy seed.
    pub seed: u64,
    /// Every evaluation.
    pub evals: Vec<EvalPoint>,
    /// Action MSE on held-out demos (not trained on), at the end.
    pub heldout_mse: Option<f64>,
    /// Training MSE over the last 100 steps.
    pub train_mse: f64,
    /// Time and rollout cost.
    pub timing: Timing,
}

impl CellResult {
    /// Success rate at the last evaluation.
    pub fn final_rate(&self) -> f64 {
        self.evals.last().map_or(0.0, |e| e.successes as f64 / e.rollouts.max(1) as f64)
    }

    /// Best success rate over evaluations (R3M reports this; optimistic).
    pub fn max_rate(&self) -> f64 {
        self.evals.iter().map(|e| e.successes as f64 / e.rollouts.max(1) as f64).fold(0.0, f64::max)
    }
}

/// The frozen encoder's evaluation transform on RGB frames in memory: shorter side → 8/7·size,
/// centre crop size×size ([`Resize::eval`], applied by the same swscale code that decodes video).
/// Rollout frames and demo frames both pass through it.
pub struct FramePrep {
    t: RgbTransform,
    size: u32,
}

impl FramePrep {
    /// For encoder input `size`.
    pub fn new(size: u32) -> Self {
        FramePrep { t: RgbTransform::new(Resize::eval(size)), size }
    }

    /// One `w`×`h` RGB frame → `size`×`size` RGB.
    pub fn apply(&mut self, frame: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
        let (ow, oh, data) =
            self.t.apply(frame, w, h).map_err(|e| anyhow::anyhow!("preparing a {w}x{h} frame: {e}"))?;
        if (ow, oh) != (self.size, self.size) {
            bail!("preparing a {w}x{h} frame gave {ow}x{oh}, expected {}x{}", self.size, self.size);
        }
        Ok(data)
    }
}

/// Replaces every demo's frames by their [`FramePrep`] output (`size`×`size`).
pub fn prepare_demos(demos: &mut [Demo], size: u32) -> Result<()> {
    let mut prep = FramePrep::new(size);
    for d in demos.iter_mut() {
        if (d.width, d.height) == (size, size) && d.prepared {
            continue;
        }
        let frames = d.frames.iter().map(|f| prep.apply(f, d.width, d.height)).collect::<Result<Vec<_>>>()?;
        d.frames = frames;
        (d.width, d.height, d.prepared) = (size, size, true);
    }
    Ok(())
}

/// Prepared square RGB frames (`size`×`size`, from [`FramePrep`]) → float `[N, 3, size, size]`
/// in 0..255, channels-last strides (which the frozen encoders use).
pub fn frames_tensor(frames: &[&[u8]], size: u32, device: Device) -> Tensor {
    let n = frames.len() as i64;
    let mut data = Vec::with_capacity(frames.len() * (size * size * 3) as usize);
    for f in frames {
        data.extend_from_slice(f);
    }
    let s = i64::from(size);
    Tensor::from_slice(&data).view([n, s, s, 3]).permute([0, 3, 1, 2]).to_device(device).to_kind(Kind::Float)
}

/// Embeddings `[N, dim]` of prepared frames with a frozen encoder, in chunks of 64.
pub fn embed_prepared(enc: &Encoder, frames: &[&[u8]], size: u32, device: Device, precision: Precision) -> Tensor {
    let out: Vec<Tensor> = frames
        .chunks(64)
        .map(|c| tch::no_grad(|| enc.embed(&frames_tensor(c, size, device), false, precision)))
        .collect();
    if out.is_empty() {
        return Tensor::zeros([0, enc.dim_at(i64::from(size))], (Kind::Float, device));
    }
    Tensor::cat(&out, 0)
}

fn stack_rows(demos: &[&Demo], f: impl Fn(&Demo) -> &Vec<Vec<f32>>, device: Device) -> Tensor {
    let rows: Vec<f32> = demos.iter().flat_map(|d| f(d).iter().flatten().copied()).collect();
    let width = demos.first().and_then(|d| f(d).first()).map_or(0, Vec::len) as i64;
    Tensor::from_slice(&rows).view([-1, width]).to_device(device)
}

/// Runs `seeds.len()` rollouts over `envs` in parallel; `act` maps the observations of the envs
/// still running to their actions (one batched call per step); `on_step` sees every step.
/// Returns success per seed and the number of environment steps taken.
pub fn rollouts(
    envs: &mut [Box<dyn Env>],
    seeds: &[u64],
    mut act: impl FnMut(&[&crate::bridge::Observation]) -> Result<Vec<Vec<f32>>>,
    mut on_done: impl FnMut(bool, u64),
    mut on_step: impl FnMut(usize, u64, &[u8], &[f32], bool, bool),
) -> Result<(Vec<bool>, u64)> {
    let mut results = vec![false; seeds.len()];
    let mut next = 0;
    let mut env_steps = 0u64;
    // per env: (rollout index, last observation)
    let mut active: Vec<Option<(usize, crate::bridge::Observation)>> = (0..envs.len()).map(|_| None).collect();
    loop {
        // start rollouts on idle envs
        let mut started = Vec::new();
        for (i, env) in envs.iter_mut().enumerate() {
            if active[i].is_none() && next < seeds.len() {
                env.send_reset(seeds[next])?;
                started.push((i, next));
                next += 1;
            }
        }
        for (i, r) in started {
            let obs = envs[i].finish()?;
            active[i] = Some((r, obs));
        }
        let running: Vec<usize> = (0..envs.len()).filter(|&i| active[i].is_some()).collect();
        if running.is_empty() {
            break;
        }
        let obs: Vec<&crate::bridge::Observation> =
            running.iter().filter_map(|&i| active[i].as_ref().map(|a| &a.1)).collect();
        let actions = act(&obs)?;
        if actions.len() != running.len() {
            bail!("the policy gave {} actions for {} environments", actions.len(), running.len());
        }
        for (&i, a) in running.iter().zip(&actions) {
            envs[i].send_step(a)?;
        }
        for (k, &i) in running.iter().enumerate() {
            let obs = envs[i].finish()?;
            env_steps += 1;
            let Some((r, prev)) = active[i].take() else { continue };
            on_step(r, obs.step, &prev.frame, &actions[k], obs.success, obs.done);
            if obs.success {
                results[r] = true;
            }
            if obs.done {
                on_done(results[r], env_steps);
            } else {
                active[i] = Some((r, obs));
            }
        }
    }
    Ok((results, env_steps))
}

/// The image part of a cell's policy input.
enum Visual {
    Frozen(Encoder),
    ResNet(Encoder, nn::VarStore),
    /// DrQ's ConvNet trained on the demos; `shift`: random shifts on the training frames.
    Shallow(Encoder, nn::VarStore, bool),
}

impl Visual {
    /// Feature size for inputs of side `size`.
    fn dim(&self, size: i64) -> i64 {
        match self {
            Visual::Frozen(e) | Visual::ResNet(e, _) | Visual::Shallow(e, ..) => e.dim_at(size),
        }
    }

    fn trainable(&self) -> Option<&nn::VarStore> {
        match self {
            Visual::Frozen(_) => None,
            Visual::ResNet(_, vs) | Visual::Shallow(_, vs, _) => Some(vs),
        }
    }

    /// `[N, 3, s, s]` float 0..255 → `[N, dim]`.
    fn embed(&self, x: &Tensor, train: bool, precision: Precision) -> Tensor {
        match self {
            Visual::Frozen(e) => e.embed(x, false, precision),
            Visual::ResNet(e, _) => e.embed(x, train, precision),
            // fp32 as DrQ (no BatchNorm: `train` changes nothing)
            Visual::Shallow(e, ..) => e.forward_u8(x, train),
        }
    }
}

/// What the policy sees besides proprioception.
enum Features {
    Visual(Visual),
    State(StateView),
    Nothing,
}

/// Which simulator values a state row sees, and how noisy.
struct StateView {
    /// Columns kept ([`OBJECT_STATE`]), or `None` for the full vector.
    cols: Option<&'static [usize]>,
    /// Standard deviation of the noise on the positions, metres.
    noise: f64,
    /// Which of the kept values get noise (indices into `cols`).
    noisy: Vec<usize>,
}

impl StateView {
    /// One observation's features: the kept columns, positions jittered by `rng`.
    fn apply(&self, full: &[f32], rng: &mut Rng) -> Result<Vec<f32>> {
        let Some(cols) = self.cols else { return Ok(full.to_vec()) };
        let Some(&last) = cols.iter().max() else { return Ok(Vec::new()) };
        if full.len() <= last {
            bail!(
                "a {}-value state has no column {last}: `state-objects` needs Meta-World's 39-d observation",
                full.len()
            );
        }
        let mut v: Vec<f32> = cols.iter().map(|&c| full[c]).collect();
        if self.noise > 0.0 {
            for &i in &self.noisy {
                v[i] += (self.noise * gaussian(rng)) as f32;
            }
        }
        Ok(v)
    }

    /// The features of every frame of `demos`, one row each.
    fn rows(&self, demos: &[&Demo], rng: &mut Rng, device: Device) -> Result<Tensor> {
        let mut rows = Vec::new();
        let mut width = 0;
        for d in demos {
            for s in d.state.as_ref().context("checked in run_cell")? {
                let v = self.apply(s, rng)?;
                width = v.len();
                rows.extend(v);
            }
        }
        Ok(Tensor::from_slice(&rows).view([-1, width as i64]).to_device(device))
    }
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut Rng) -> f64 {
    let u = rng.unit().max(f64::MIN_POSITIVE);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Trains and evaluates one cell. `train` are the demos to learn from, `heldout` demos only
/// measure action MSE; frames must be prepared ([`prepare_demos`]) for image rows.
/// `on_progress(what)` reports progress.
/// How a cell ended: finished, or stopped through [`BcConfig::stop`] (nothing of it is kept).
#[derive(Debug, Clone)]
pub enum CellOutcome {
    /// The cell ran to its end.
    Done(CellResult),
    /// The stop flag was set; the cell was abandoned.
    Interrupted,
}

/// Trains and evaluates one cell (encoder × demos × seed); a stop through [`BcConfig::stop`] is
/// [`CellOutcome::Interrupted`], an error anything that went wrong.
#[allow(clippy::too_many_arguments)]
pub fn run_cell(
    kind: &EncoderKind,
    train: &[&Demo],
    heldout: &[&Demo],
    seed: u64,
    cfg: &BcConfig,
    envs: &mut [Box<dyn Env>],
    on_progress: impl FnMut(&str),
    observer: &mut dyn FnMut(&RolloutStep),
) -> Result<CellOutcome> {
    match run_cell_inner(kind, train, heldout, seed, cfg, envs, on_progress, observer) {
        Ok(r) => Ok(CellOutcome::Done(r)),
        Err(e) if e.is::<Interrupted>() => Ok(CellOutcome::Interrupted),
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_cell_inner(
    kind: &EncoderKind,
    train: &[&Demo],
    heldout: &[&Demo],
    seed: u64,
    cfg: &BcConfig,
    envs: &mut [Box<dyn Env>],
    mut on_progress: impl FnMut(&str),
    observer: &mut dyn FnMut(&RolloutStep),
) -> Result<CellResult> {
    let t0 = Instant::now();
    if train.is_empty() {
        bail!("no demonstrations to train on");
    }
    if kind.uses_frames() {
        if let Some(d) =
            train.iter().chain(heldout).find(|d| !d.prepared || (d.width, d.height) != (cfg.size, cfg.size))
        {
            bail!("episode {}: frames are not prepared for {} px (call prepare_demos)", d.episode, cfg.size);
        }
    }
    if kind.uses_state() {
        if let Some(d) = train.iter().chain(heldout).find(|d| d.state.is_none()) {
            bail!(
                "episode {} has no observation.environment_state: the `{}` row needs a dataset made by the current \
                 python/r3m_tools/metaworld_demos.py",
                d.episode,
                kind.name()
            );
        }
    }
    for env in envs.iter_mut() {
        env.set_render(kind.uses_frames());
    }
    tch::manual_seed(seed as i64);
    let features = match kind {
        EncoderKind::Pretrained { path, finetune: true, .. } => {
            let r3m_model::checkpoint::FrozenEncoder { encoder, mut vs, .. } =
                r3m_model::checkpoint::load_encoder(path, cfg.device)?;
            vs.unfreeze();
            Features::Visual(if encoder.arch() == Arch::Shallow {
                Visual::Shallow(encoder, vs, true)
            } else {
                Visual::ResNet(encoder, vs)
            })
        }
        EncoderKind::Pretrained { path, .. } => {
            let f = r3m_model::checkpoint::load_encoder(path, cfg.device)?;
            // frozen inference: channels-last (1.36× NCHW in fp32 on CPU, benches/embed.rs)
            r3m_model::precision::vars_to_channels_last(&f.vs);
            Features::Visual(Visual::Frozen(f.encoder))
        }
        EncoderKind::Random | EncoderKind::RandomSpatial => {
            // the same seeded initialisation for both (same variables, drawn in the same order),
            // so the two rows differ only in the pooling
            let vs = nn::VarStore::new(cfg.device);
            let e = if *kind == EncoderKind::RandomSpatial {
                Encoder::unpooled(&vs.root(), cfg.arch)
            } else {
                Encoder::new(&vs.root(), cfg.arch)
            };
            r3m_model::precision::vars_to_channels_last(&vs);
            Features::Visual(Visual::Frozen(e))
        }
        EncoderKind::Scratch => {
            let vs = nn::VarStore::new(cfg.device);
            let e = Encoder::new(&vs.root(), cfg.arch);
            Features::Visual(Visual::ResNet(e, vs))
        }
        EncoderKind::ScratchShallow { shift } => {
            let vs = nn::VarStore::new(cfg.device);
            let e = Encoder::new(&vs.root(), Arch::Shallow);
            Features::Visual(Visual::Shallow(e, vs, *shift))
        }
        EncoderKind::RandomShallow => {
            let vs = nn::VarStore::new(cfg.device);
            Features::Visual(Visual::Frozen(Encoder::new(&vs.root(), Arch::Shallow)))
        }
        EncoderKind::State => Features::State(StateView { cols: None, noise: 0.0, noisy: Vec::new() }),
        EncoderKind::StateObjects { noise, .. } => {
            let rows: Vec<&Vec<f32>> = train.iter().filter_map(|d| d.state.as_ref()).flatten().collect();
            Features::State(StateView { cols: Some(&OBJECT_STATE), noise: *noise, noisy: varying_positions(&rows) })
        }
        EncoderKind::Proprio => Features::Nothing,
    };
    run_with_features(kind, &features, train, heldout, seed, cfg, envs, t0, &mut on_progress, observer)
}

/// One environment step of a rollout, for observers (rerun).
#[derive(Debug)]
pub struct RolloutStep<'a> {
    /// Policy step of the evaluation this rollout belongs to.
    pub eval_step: u64,
    /// Rollout number within the evaluation.
    pub rollout: usize,
    /// Environment step (1 after the first action).
    pub t: u64,
    /// The frame the action was chosen on (RGB u8, as rendered; empty for rows without images).
    pub frame: &'a [u8],
    /// The action taken.
    pub action: &'a [f32],
    /// Whether the task is solved after the step.
    pub success: bool,
    /// Whether the episode ended with this step.
    pub done: bool,
}

fn stopped(cfg: &BcConfig) -> bool {
    cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
}

/// The policy and how it reads observations, for [`evaluate`].
struct PolicyView<'a> {
    policy: &'a Policy,
    adim: i64,
    input_for: &'a mut dyn FnMut(&[&crate::bridge::Observation]) -> Result<Tensor>,
}

/// Closed-loop evaluation at policy step `step`: one rollout per seed in `seeds`.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    step: u64,
    cfg: &BcConfig,
    envs: &mut [Box<dyn Env>],
    seeds: &[u64],
    view: PolicyView,
    on_progress: &mut dyn FnMut(&str),
    observer: &mut dyn FnMut(&RolloutStep),
    timing: &mut Timing,
) -> Result<EvalPoint> {
    let PolicyView { policy, adim, input_for } = view;
    let clock = Instant::now();
    let mut done = 0usize;
    let mut ok = 0usize;
    let total = seeds.len();
    let (outcomes, env_steps) = rollouts(
        envs,
        seeds,
        |obs| {
            if stopped(cfg) {
                return Err(Interrupted.into());
            }
            let x = input_for(obs)?;
            let a = tch::no_grad(|| policy.forward_t(&x, false)).to_device(Device::Cpu).to_kind(Kind::Float);
            let a: Vec<f32> = Vec::<f32>::try_from(a.flatten(0, -1)).context("reading actions")?;
            Ok(a.chunks(adim as usize).map(<[f32]>::to_vec).collect())
        },
        |s, steps| {
            done += 1;
            ok += usize::from(s);
            let rate = steps as f64 / clock.elapsed().as_secs_f64().max(1e-9);
            on_progress(&format!("eval @ step {step}: rollout {done}/{total} ({ok} succeeded), {rate:.0} env steps/s"));
        },
        |rollout, t, frame, action, success, done| {
            observer(&RolloutStep { eval_step: step, rollout, t, frame, action, success, done });
        },
    )?;
    timing.rollout_seconds += clock.elapsed().as_secs_f64();
    timing.env_steps += env_steps;
    Ok(EvalPoint { step, successes: outcomes.iter().filter(|&&s| s).count(), rollouts: outcomes.len(), outcomes })
}

/// The policy's mean squared error on the held-out demos' actions; `None` without held-out demos.
fn heldout_mse(
    features: &Features,
    policy: &Policy,
    heldout: &[&Demo],
    seed: u64,
    cfg: &BcConfig,
) -> Result<Option<f64>> {
    if heldout.is_empty() {
        return Ok(None);
    }
    let dev = cfg.device;
    let hp = stack_rows(heldout, |d| &d.proprio, dev);
    let ha = stack_rows(heldout, |d| &d.actions, dev);
    let hframes: Vec<&[u8]> = heldout.iter().flat_map(|d| d.frames.iter().map(Vec::as_slice)).collect();
    let f = match features {
        Features::Visual(v) => {
            let parts: Vec<Tensor> = hframes
                .chunks(64)
                .map(|c| tch::no_grad(|| v.embed(&frames_tensor(c, cfg.size, dev), false, cfg.precision)))
                .collect();
            Some(Tensor::cat(&parts, 0))
        }
        Features::State(view) => Some(view.rows(heldout, &mut Rng::stream(seed, 0x4E1D), dev)?),
        Features::Nothing => None,
    };
    let x = match f {
        Some(f) => Tensor::cat(&[f, hp], 1),
        None => hp,
    };
    Ok(Some(tch::no_grad(|| policy.forward_t(&x, false).mse_loss(&ha, tch::Reduction::Mean).double_value(&[]))))
}

#[allow(clippy::too_many_arguments)]
fn run_with_features(
    kind: &EncoderKind,
    features: &Features,
    train: &[&Demo],
    heldout: &[&Demo],
    seed: u64,
    cfg: &BcConfig,
    envs: &mut [Box<dyn Env>],
    t0: Instant,
    on_progress: &mut dyn FnMut(&str),
    observer: &mut dyn FnMut(&RolloutStep),
) -> Result<CellResult> {
    let dev = cfg.device;
    let proprio = stack_rows(train, |d| &d.proprio, dev);
    let actions = stack_rows(train, |d| &d.actions, dev);
    let (pdim, adim) = (proprio.size()[1], actions.size()[1]);
    let n = proprio.size()[0];
    let frames: Vec<&[u8]> = train.iter().flat_map(|d| d.frames.iter().map(Vec::as_slice)).collect();
    // fixed per-row features: frozen embeddings of the demo frames, or the simulator state
    let fixed: Option<Tensor> = match features {
        Features::Visual(Visual::Frozen(e)) => Some(embed_prepared(e, &frames, cfg.size, dev, cfg.precision)),
        // the noise of a demo frame is drawn once: a state encoder's error on a frame is fixed
        Features::State(view) => Some(view.rows(train, &mut Rng::stream(seed, 0x5747), dev)?),
        Features::Visual(_) | Features::Nothing => None,
    };
    let fdim = match features {
        Features::Visual(v) => v.dim(i64::from(cfg.size)),
        Features::State(_) => fixed.as_ref().map_or(0, |f| f.size()[1]),
        Features::Nothing => 0,
    };
    let trainable = match features {
        Features::Visual(v) => v.trainable(),
        _ => None,
    };
    tch::manual_seed(seed as i64 + 1);
    let pvs = nn::VarStore::new(dev);
    let policy = Policy::new(&pvs.root(), fdim + pdim, adim);
    let mut opt = nn::Adam::default().build(&pvs, cfg.lr)?;
    let mut enc_opt = match trainable {
        Some(vs) => Some(nn::Adam::default().build(vs, cfg.encoder_lr)?),
        None => None,
    };
    let mut rng = Rng::stream(seed, 0xBC);
    let mut shift_rng = Rng::stream(seed, 0x5817);
    let seeds: Vec<u64> = (0..cfg.rollouts as u64).map(|i| cfg.eval_seed_base + i).collect();
    let mut evals = Vec::new();
    let mut recent = Vec::new();
    let mut timing = Timing::default();
    let mut prep = FramePrep::new(cfg.size);
    let mut rollout_noise = Rng::stream(seed, 0x0B5E);
    // policy input for observations: [features, proprio]
    let mut input_for = |obs: &[&crate::bridge::Observation]| -> Result<Tensor> {
        let p: Vec<f32> = obs.iter().flat_map(|o| o.proprio.iter().copied()).collect();
        let p = Tensor::from_slice(&p).view([obs.len() as i64, -1]).to_device(dev);
        let f = match features {
            Features::Visual(v) => {
                let prepared = obs
                    .iter()
                    .map(|o| {
                        let (w, h) = o.frame_size;
                        prep.apply(&o.frame, w, h)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&[u8]> = prepared.iter().map(Vec::as_slice).collect();
                Some(tch::no_grad(|| v.embed(&frames_tensor(&refs, cfg.size, dev), false, cfg.precision)))
            }
            Features::State(view) => {
                let mut s = Vec::new();
                for o in obs {
                    s.extend(view.apply(&o.state, &mut rollout_noise)?);
                }
                if s.len() != obs.len() * fdim as usize {
                    bail!(
                        "the environment sent a {}-value state, the demos have {fdim} (bridge protocol 2 needed)",
                        s.len() / obs.len().max(1)
                    );
                }
                Some(Tensor::from_slice(&s).view([obs.len() as i64, fdim]).to_device(dev))
            }
            Features::Nothing => None,
        };
        Ok(match f {
            Some(f) => Tensor::cat(&[f, p], 1),
            None => p,
        })
    };
    let mut train_clock = Instant::now();
    for step in 1..=cfg.steps {
        if stopped(cfg) {
            return Err(Interrupted.into());
        }
        let idx: Vec<i64> = (0..cfg.batch).map(|_| rng.below(n as u64) as i64).collect();
        let it = Tensor::from_slice(&idx).to_device(dev);
        let feat = match (&fixed, features) {
            (Some(f), _) => Some(f.index_select(0, &it)),
            (None, Features::Visual(v)) => {
                let refs: Vec<&[u8]> = idx.iter().map(|&i| frames[i as usize]).collect();
                let x = frames_tensor(&refs, cfg.size, dev);
                let x = if matches!(v, Visual::Shallow(_, _, true)) { random_shift(&x, 4, &mut shift_rng) } else { x };
                Some(v.embed(&x, true, cfg.precision))
            }
            (None, _) => None,
        };
        let p = proprio.index_select(0, &it);
        let x = match feat {
            Some(f) => Tensor::cat(&[f, p], 1),
            None => p,
        };
        let pred = policy.forward_t(&x, true);
        let loss = pred.mse_loss(&actions.index_select(0, &it), tch::Reduction::Mean);
        opt.zero_grad();
        if let Some(o) = enc_opt.as_mut() {
            o.zero_grad();
        }
        loss.backward();
        opt.step();
        if let Some(o) = enc_opt.as_mut() {
            o.step();
        }
        recent.push(loss.double_value(&[]));
        if recent.len() > 100 {
            recent.remove(0);
        }
        if step % 50 == 0 {
            on_progress(&format!(
                "{} policy step {step}/{} mse {:.4}",
                kind.name(),
                cfg.steps,
                recent.iter().sum::<f64>() / recent.len() as f64
            ));
        }
        if step % cfg.eval_every.max(1) == 0 || step == cfg.steps {
            timing.train_seconds += train_clock.elapsed().as_secs_f64();
            let view = PolicyView { policy: &policy, adim, input_for: &mut input_for };
            evals.push(evaluate(step, cfg, envs, &seeds, view, on_progress, observer, &mut timing)?);
            train_clock = Instant::now();
        }
    }
    let heldout_mse = heldout_mse(features, &policy, heldout, seed, cfg)?;
    timing.seconds = t0.elapsed().as_secs_f64();
    timing.env_steps_per_s = timing.env_steps as f64 / timing.rollout_seconds.max(1e-9);
    Ok(CellResult {
        encoder: kind.name().to_string(),
        demos: train.len(),
        seed,
        evals,
        heldout_mse,
        train_mse: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        timing,
    })
}

/// Wilson score 95% interval for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval() {
        let (lo, hi) = wilson(0, 50);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.0713).abs() < 1e-3, "{hi}");
        let (lo, hi) = wilson(25, 50);
        assert!((lo - 0.3664).abs() < 1e-3 && (hi - 0.6336).abs() < 1e-3, "{lo} {hi}");
    }

    #[test]
    fn state_objects_rows_parse_and_keep_the_object_values() {
        let k = EncoderKind::parse("state-objects:0.02", None).unwrap();
        assert_eq!(k, EncoderKind::StateObjects { name: "state-objects:0.02".into(), noise: 0.02 });
        assert!(!k.uses_frames() && k.uses_state());
        assert_eq!(EncoderKind::parse("state-objects", None).unwrap().name(), "state-objects");
        for bad in ["state-objects:-1", "state-objects:x", "state-objects:", "state-objects:inf"] {
            let e = EncoderKind::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("metres"), "{e}");
        }
        assert!(EncoderKind::parse("state-objects=run", None).is_err(), "reserved as a checkpoint name");
        assert!(EncoderKind::parse("random-spatial=run", None).is_err(), "built-in names are reserved");
        assert!(EncoderKind::parse("tcn=run", None).is_ok());
        // shallow rows, and checkpoints as initialisation
        assert_eq!(EncoderKind::parse("random-shallow", None).unwrap(), EncoderKind::RandomShallow);
        let ns = EncoderKind::parse("scratch-shallow-noshift", None).unwrap();
        assert_eq!((ns.clone(), ns.name()), (EncoderKind::ScratchShallow { shift: false }, "scratch-shallow-noshift"));
        assert_eq!(EncoderKind::parse("scratch-shallow", None).unwrap().name(), "scratch-shallow");
        let ft = EncoderKind::parse("finetune:tcn-ft=runs/x", None).unwrap();
        assert_eq!(ft, EncoderKind::Pretrained { name: "tcn-ft".into(), path: "runs/x".into(), finetune: true });
        assert_eq!(ft.name(), "tcn-ft");
        assert!(!matches!(
            EncoderKind::parse("tcn=runs/x", None).unwrap(),
            EncoderKind::Pretrained { finetune: true, .. }
        ));
        for bad in ["finetune:random", "finetune:runs/x", "finetune:=runs/x", "finetune:random-shallow=runs/x"] {
            assert!(EncoderKind::parse(bad, None).is_err(), "{bad}");
        }

        let full: Vec<f32> = (0..39).map(|i| i as f32).collect();
        let exact = StateView { cols: Some(&OBJECT_STATE), noise: 0.0, noisy: OBJECT_POSITIONS.to_vec() };
        let v = exact.apply(&full, &mut Rng::new(1)).unwrap();
        let want: Vec<f32> = (4..18).chain(36..39).map(|i| i as f32).collect();
        assert_eq!(v, want);
        let e = exact.apply(&full[..20], &mut Rng::new(1)).unwrap_err().to_string();
        assert!(e.contains("20-value state"), "{e}");
        // noise: on the 9 positions only, with the asked standard deviation
        let noisy = StateView { cols: Some(&OBJECT_STATE), noise: 0.05, noisy: OBJECT_POSITIONS.to_vec() };
        let mut rng = Rng::new(7);
        let mut sq = [0.0f64; 17];
        let n = 4000;
        for _ in 0..n {
            let v = noisy.apply(&full, &mut rng).unwrap();
            for (i, (a, b)) in v.iter().zip(&want).enumerate() {
                sq[i] += f64::from(a - b).powi(2);
            }
        }
        for (i, s) in sq.iter().enumerate() {
            let sd = (s / n as f64).sqrt();
            if OBJECT_POSITIONS.contains(&i) {
                assert!((sd - 0.05).abs() < 0.004, "value {i}: sd {sd}");
            } else {
                assert_eq!(sd, 0.0, "value {i} is a quaternion component, kept exact");
            }
        }
        // only coordinates that vary over the demos get noise: object 2 fixed, goal height fixed
        let states: Vec<Vec<f32>> = (0..20)
            .map(|k| {
                let mut s = vec![0.0f32; 39];
                s[4] = 0.01 * k as f32; // object 1 x varies
                s[5] = 0.6 + 0.0001 * k as f32; // under 1 mm: constant
                s[36] = -0.02 * k as f32; // goal x varies
                s[38] = 0.02; // goal z fixed
                s
            })
            .collect();
        let refs: Vec<&Vec<f32>> = states.iter().collect();
        assert_eq!(varying_positions(&refs), vec![0, 14]);
    }

    #[test]
    fn policy_fits_a_linear_map() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let p = Policy::new(&vs.root(), 6, 2);
        let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
        let x = Tensor::randn([256, 6], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([6, 2], (Kind::Float, Device::Cpu)) * 0.3;
        let y = x.matmul(&w).tanh();
        let first = p.forward_t(&x, false).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        for _ in 0..500 {
            let loss = p.forward_t(&x, true).mse_loss(&y, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let last = p.forward_t(&x, false).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        assert!(last < first * 0.1, "{first} -> {last}");
    }
}
