//! Few-demo behaviour cloning with a frozen (or scratch-trained) encoder, evaluated closed loop.
//!
//! For one cell (encoder × number of demos × policy seed): embed the demo frames once with the
//! frozen encoder, train the policy on [embedding, proprio] → action with MSE (Adam, batch 32),
//! and every `eval_every` steps roll it out in fresh layouts (evaluation seeds, the same for
//! every cell, so encoders are compared on the same layouts) with several environments stepping
//! in parallel and one batched encoder call per step. The `scratch` baseline trains the encoder
//! end to end with the policy instead.

use std::time::Instant;

use anyhow::{bail, Result};
use r3m_data::Rng;
use r3m_model::{Arch, Encoder, Precision};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use crate::bridge::Env;
use crate::demos::Demo;
use crate::policy::Policy;

/// Which encoder a cell uses.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderKind {
    /// A trained checkpoint, frozen.
    Pretrained(std::path::PathBuf),
    /// Random initialisation (seeded), frozen.
    Random,
    /// Random initialisation trained end to end on the demos.
    Scratch,
}

impl EncoderKind {
    /// `pretrained` / `random` / `scratch`.
    pub fn name(&self) -> &'static str {
        match self {
            EncoderKind::Pretrained(_) => "pretrained",
            EncoderKind::Random => "random",
            EncoderKind::Scratch => "scratch",
        }
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
    /// Encoder learning rate for `scratch`.
    pub encoder_lr: f64,
    /// Where the models run.
    pub device: Device,
    /// Encoder arithmetic.
    pub precision: Precision,
    /// Encoder input side (frames are resized to it).
    pub size: u32,
    /// First evaluation layout seed.
    pub eval_seed_base: u64,
    /// Architecture for `random` and `scratch`.
    pub arch: Arch,
}

/// Success counts at one evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalPoint {
    /// Policy step.
    pub step: u64,
    /// Successful rollouts.
    pub successes: usize,
    /// Rollouts.
    pub rollouts: usize,
}

/// One cell's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CellResult {
    /// Encoder kind.
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
    /// Wall time.
    pub seconds: f64,
}

impl CellResult {
    /// Success rate at the last evaluation.
    pub fn final_rate(&self) -> f64 {
        self.evals.last().map_or(0.0, |e| e.successes as f64 / e.rollouts.max(1) as f64)
    }

    /// Best success rate over evaluations (R3M reports this).
    pub fn max_rate(&self) -> f64 {
        self.evals.iter().map(|e| e.successes as f64 / e.rollouts.max(1) as f64).fold(0.0, f64::max)
    }
}

/// Frames (RGB u8 `[h, w, 3]`) → float `[N, 3, size, size]` in 0..255 (bilinear resize when the
/// size differs), the one preprocessing used for demos and rollouts alike.
pub fn prepare(frames: &[&[u8]], w: u32, h: u32, size: u32, device: Device) -> Tensor {
    let n = frames.len() as i64;
    let mut data = Vec::with_capacity(frames.len() * (w * h * 3) as usize);
    for f in frames {
        data.extend_from_slice(f);
    }
    // NHWC data viewed as NCHW: channels-last strides, which the frozen encoders use
    let x = Tensor::from_slice(&data).view([n, i64::from(h), i64::from(w), 3]).permute([0, 3, 1, 2]).to_device(device).to_kind(Kind::Float);
    if (w, h) == (size, size) {
        x
    } else {
        x.upsample_bilinear2d([i64::from(size), i64::from(size)], false, None, None)
    }
}

fn embed_all(enc: &Encoder, cfg: &BcConfig, demos: &[&Demo]) -> Tensor {
    let mut out = Vec::new();
    for d in demos {
        for chunk in d.frames.chunks(64) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let x = prepare(&refs, d.width, d.height, cfg.size, cfg.device);
            out.push(tch::no_grad(|| enc.embed(&x, false, cfg.precision)));
        }
    }
    Tensor::cat(&out, 0)
}

fn stack_rows(demos: &[&Demo], f: impl Fn(&Demo) -> &Vec<Vec<f32>>, device: Device) -> Tensor {
    let rows: Vec<f32> = demos.iter().flat_map(|d| f(d).iter().flatten().copied()).collect();
    let width = demos.first().and_then(|d| f(d).first()).map_or(0, Vec::len) as i64;
    Tensor::from_slice(&rows).view([-1, width]).to_device(device)
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
    /// The frame the action was chosen on (RGB u8, square).
    pub frame: &'a [u8],
    /// The action taken.
    pub action: &'a [f32],
    /// Whether the task is solved after the step.
    pub success: bool,
    /// Whether the episode ended with this step.
    pub done: bool,
}

/// Runs `seeds.len()` rollouts over `envs` in parallel; `act` maps the frames and proprio of the
/// envs still running to their actions (one batched call per step); `on_step` sees every step.
/// Returns success per seed.
pub fn rollouts(
    envs: &mut [Box<dyn Env>],
    seeds: &[u64],
    mut act: impl FnMut(&[&[u8]], &[&[f32]]) -> Result<Vec<Vec<f32>>>,
    mut on_done: impl FnMut(bool),
    mut on_step: impl FnMut(usize, u64, &[u8], &[f32], bool, bool),
) -> Result<Vec<bool>> {
    let mut results = vec![false; seeds.len()];
    let mut next = 0;
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
        let frames: Vec<&[u8]> = running.iter().map(|&i| active[i].as_ref().map(|a| a.1.frame.as_slice()).unwrap_or(&[])).collect();
        let proprio: Vec<&[f32]> = running.iter().map(|&i| active[i].as_ref().map(|a| a.1.proprio.as_slice()).unwrap_or(&[])).collect();
        let actions = act(&frames, &proprio)?;
        for (&i, a) in running.iter().zip(&actions) {
            envs[i].send_step(a)?;
        }
        for (k, &i) in running.iter().enumerate() {
            let obs = envs[i].finish()?;
            let (r, prev) = active[i].take().expect("running");
            on_step(r, obs.step, &prev.frame, &actions[k], obs.success, obs.done);
            if obs.success {
                results[r] = true;
            }
            if obs.done {
                on_done(results[r]);
            } else {
                active[i] = Some((r, obs));
            }
        }
    }
    Ok(results)
}

/// Trains and evaluates one cell. `train` are the demos to learn from, `heldout` demos only
/// measure action MSE. `on_progress(what)` reports progress.
#[allow(clippy::too_many_arguments)]
pub fn run_cell(
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
    tch::manual_seed(seed as i64);
    let enc_vs = nn::VarStore::new(cfg.device);
    let encoder = match kind {
        EncoderKind::Pretrained(path) => {
            let f = r3m_model::checkpoint::load_encoder(path, cfg.device)?;
            // frozen inference: channels-last (1.36× NCHW in fp32 on CPU, benches/embed.rs)
            r3m_model::precision::vars_to_channels_last(&f.vs);
            std::mem::drop(enc_vs);
            return run_with_encoder(kind, f.encoder, None, train, heldout, seed, cfg, envs, t0, &mut on_progress, observer);
        }
        EncoderKind::Random => {
            let e = Encoder::new(&enc_vs.root(), cfg.arch);
            r3m_model::precision::vars_to_channels_last(&enc_vs);
            e
        }
        EncoderKind::Scratch => Encoder::new(&enc_vs.root(), cfg.arch),
    };
    let trainable = (*kind == EncoderKind::Scratch).then_some(enc_vs);
    run_with_encoder(kind, encoder, trainable, train, heldout, seed, cfg, envs, t0, &mut on_progress, observer)
}

#[allow(clippy::too_many_arguments)]
fn run_with_encoder(
    kind: &EncoderKind,
    encoder: Encoder,
    trainable: Option<nn::VarStore>,
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
    let dim = encoder.dim();
    let proprio = stack_rows(train, |d| &d.proprio, dev);
    let actions = stack_rows(train, |d| &d.actions, dev);
    let (pdim, adim) = (proprio.size()[1], actions.size()[1]);
    let n = proprio.size()[0];
    let feats = trainable.is_none().then(|| embed_all(&encoder, cfg, train));
    let frames: Vec<(&[u8], u32, u32)> = train.iter().flat_map(|d| d.frames.iter().map(move |f| (f.as_slice(), d.width, d.height))).collect();
    tch::manual_seed(seed as i64 + 1);
    let pvs = nn::VarStore::new(dev);
    let policy = Policy::new(&pvs.root(), dim + pdim, adim);
    let mut opt = nn::Adam::default().build(&pvs, cfg.lr)?;
    let mut enc_opt = match &trainable {
        Some(vs) => Some(nn::Adam::default().build(vs, cfg.encoder_lr)?),
        None => None,
    };
    let mut rng = Rng::stream(seed, 0xBC);
    let seeds: Vec<u64> = (0..cfg.rollouts as u64).map(|i| cfg.eval_seed_base + i).collect();
    let mut evals = Vec::new();
    let mut recent = Vec::new();
    let embed_now = |refs: &[&[u8]], w: u32, h: u32, train_mode: bool| -> Tensor {
        let x = prepare(refs, w, h, cfg.size, dev);
        encoder.embed(&x, train_mode, cfg.precision)
    };
    let evaluate = |step: u64, envs: &mut [Box<dyn Env>], on_progress: &mut dyn FnMut(&str), observer: &mut dyn FnMut(&RolloutStep)| -> Result<EvalPoint> {
        let mut done = 0usize;
        let mut ok = 0usize;
        let (w, h) = envs.first().map_or((train[0].width, train[0].height), |e| e.frame_size());
        let res = rollouts(
            envs,
            &seeds,
            |frames, prop| {
                let e = tch::no_grad(|| embed_now(frames, w, h, false));
                let p: Vec<f32> = prop.iter().flat_map(|p| p.iter().copied()).collect();
                let p = Tensor::from_slice(&p).view([frames.len() as i64, -1]).to_device(dev);
                let a = tch::no_grad(|| policy.forward_t(&Tensor::cat(&[e, p], 1), false)).to_device(Device::Cpu).to_kind(Kind::Float);
                Ok((0..frames.len() as i64).map(|i| Vec::<f32>::try_from(a.get(i)).unwrap_or_default()).collect())
            },
            |s| {
                done += 1;
                ok += usize::from(s);
                on_progress(&format!("eval @ step {step}: rollout {done}/{} ({ok} succeeded)", seeds.len()));
            },
            |rollout, t, frame, action, success, done| {
                observer(&RolloutStep { eval_step: step, rollout, t, frame, action, success, done });
            },
        )?;
        Ok(EvalPoint { step, successes: res.iter().filter(|&&s| s).count(), rollouts: res.len() })
    };
    for step in 1..=cfg.steps {
        let idx: Vec<i64> = (0..cfg.batch).map(|_| rng.below(n as u64) as i64).collect();
        let it = Tensor::from_slice(&idx).to_device(dev);
        let emb = match &feats {
            Some(f) => f.index_select(0, &it),
            None => {
                let refs: Vec<&[u8]> = idx.iter().map(|&i| frames[i as usize].0).collect();
                let (w, h) = (frames[0].1, frames[0].2);
                embed_now(&refs, w, h, true)
            }
        };
        let x = Tensor::cat(&[emb, proprio.index_select(0, &it)], 1);
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
            on_progress(&format!("{} policy step {step}/{} mse {:.4}", kind.name(), cfg.steps, recent.iter().sum::<f64>() / recent.len() as f64));
        }
        if step % cfg.eval_every.max(1) == 0 || step == cfg.steps {
            evals.push(evaluate(step, envs, on_progress, observer)?);
        }
    }
    let heldout_mse = (!heldout.is_empty()).then(|| {
        let hp = stack_rows(heldout, |d| &d.proprio, dev);
        let ha = stack_rows(heldout, |d| &d.actions, dev);
        let hf = embed_all(&encoder, cfg, heldout);
        tch::no_grad(|| policy.forward_t(&Tensor::cat(&[hf, hp], 1), false).mse_loss(&ha, tch::Reduction::Mean).double_value(&[]))
    });
    Ok(CellResult {
        encoder: kind.name().to_string(),
        demos: train.len(),
        seed,
        evals,
        heldout_mse,
        train_mse: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        seconds: t0.elapsed().as_secs_f64(),
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
