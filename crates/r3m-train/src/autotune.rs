//! `--precision auto` / `--memory-format auto` decided by a measurement, like cuDNN's benchmark
//! mode: a few training steps of the run's own model, objective, batch and size in each candidate
//! mode (fp32 NCHW, fp32 channels-last, and bf16 channels-last where the hardware has bf16
//! units), the fastest kept. The result is cached per machine and shape
//! ([`key`]: CPU model or GPU, threads, libtorch, architecture, objective, batch, size) in a
//! small JSON file, so the measurement runs once per machine and shape.
//!
//! A static rule is wrong somewhere: on a Xeon with AVX512-BF16 but no AMX, fp32 channels-last
//! measured 1.35× the PyTorch recipe and bf16 1.17×, yet "bf16 where the CPU has it" picked bf16.
//!
//! The steps run on random pixels: the loader is the same whatever the mode, so it is left out
//! of the timing. The model is its own copy, built like the run's ([`crate::model::build_model`]); the run seeds libtorch before building its model and keeps its other random
//! streams in its own generators, so measuring does not change what the run computes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use r3m_model::objectives::LANG_DIM;
use r3m_model::precision::channels_last;
use r3m_model::{ObjectiveInput, Precision};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::modes::{Choice, Mode, Timing};
use crate::{Adam, TrainConfig};

/// Cache file format tag.
const CACHE_FORMAT: &str = "r3m-autotune-2";
/// Untimed steps per mode first: the first steps allocate memory and pick kernels.
pub const WARMUP_STEPS: usize = 2;
/// Steps timed per mode, taken in turn across the modes (one step of each, then again) so that a
/// change in the machine's load falls on every mode alike; the median counts. Measured on the
/// 2-vCPU Xeon (`median_of_more_steps_is_steadier`: shallow ConvNet, batch 16, 112 px, three
/// times 6 measurements): a mode's time moved between measurements by 8–46% (max/min) as the
/// median of two steps, which r3m took before, and by 4–37% as the median of seven. Most of what
/// remains is one measurement in six running 20–30% slower throughout, which more steps do not
/// remove: modes within a few percent of each other are a tie that either choice settles.
pub const TIMED_STEPS: usize = 7;

/// The candidate modes. `precision` / `channels_last` given: only modes with that value (an
/// explicit flag wins). bf16 is a candidate on CUDA and on CPUs with bf16 units; elsewhere it is
/// emulated, several times slower, and not worth the measurement.
pub fn candidates(device: Device, precision: Option<Precision>, channels_last: Option<bool>) -> Vec<Mode> {
    let bf16 = Precision::auto(device) == Precision::Bf16;
    let mut all = vec![
        Mode { precision: Precision::Fp32, channels_last: false },
        Mode { precision: Precision::Fp32, channels_last: true },
    ];
    if bf16 || precision == Some(Precision::Bf16) {
        all.push(Mode { precision: Precision::Bf16, channels_last: true });
        all.push(Mode { precision: Precision::Bf16, channels_last: false });
    }
    all.retain(|m| precision.is_none_or(|p| p == m.precision) && channels_last.is_none_or(|c| c == m.channels_last));
    // bf16 NCHW only when the layout is fixed to NCHW (it is slower than bf16 channels-last
    // wherever measured here)
    if channels_last.is_none() {
        all.retain(|m| m.precision != Precision::Bf16 || m.channels_last);
    }
    all
}

/// Training steps one measurement of `modes` costs.
pub fn cost_in_steps(modes: &[Mode]) -> u64 {
    (modes.len() * (WARMUP_STEPS + TIMED_STEPS)) as u64
}

/// A run is measured only when the measurement costs at most 1/20 of its steps (two candidates:
/// 18 steps, so runs of ≥ 360 steps); shorter runs take the static rule.
pub fn worth_measuring(steps: u64, modes: &[Mode]) -> bool {
    modes.len() >= 2 && steps >= 20 * cost_in_steps(modes)
}

/// The machine and shape a measurement belongs to.
pub fn key(cfg: &TrainConfig) -> String {
    let machine = match cfg.device {
        Device::Cuda(n) => format!("CUDA device {n} of {}", tch::Cuda::device_count()),
        _ => cpu_model(),
    };
    format!(
        "{machine}, {} threads, r3m {}, {} {} batch {} size {}",
        tch::get_num_threads(),
        env!("CARGO_PKG_VERSION"),
        cfg.arch.name(),
        cfg.objective.kind.name(),
        cfg.batch,
        cfg.size
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().into())
        })
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

/// One mode's model, optimiser and input, ready to step.
struct Candidate {
    mode: Mode,
    vs: nn::VarStore,
    encoder: r3m_model::Encoder,
    objective: r3m_model::objectives::Objective,
    adam: Adam,
    pixels: Tensor,
    times: Vec<f64>,
}

impl Candidate {
    fn new(cfg: &TrainConfig, mode: Mode) -> Candidate {
        let (b, s) = (cfg.batch as i64, i64::from(cfg.size));
        let vs = nn::VarStore::new(cfg.device);
        let (encoder, objective, params) = crate::model::build_model(cfg, &vs, LANG_DIM, mode.channels_last);
        let adam = Adam::new(params, cfg.lr);
        let pixels = Tensor::randint(256, [b * 5, s, s, 3], (Kind::Uint8, Device::Cpu)).permute([0, 3, 1, 2]);
        Candidate { mode, vs, encoder, objective, adam, pixels, times: Vec::new() }
    }

    /// One training step, upload included, waited for; its seconds.
    fn step(&mut self, cfg: &TrainConfig, clips: &Tensor, perms: &[Tensor]) -> f64 {
        let (dev, b) = (cfg.device, cfg.batch as i64);
        let t0 = Instant::now();
        let x =
            if self.mode.channels_last { channels_last(&self.pixels) } else { self.pixels.contiguous() }.to_device(dev);
        let emb = self.encoder.embed(&x, true, self.mode.precision).view([b, 5, -1]);
        let loss = self.objective.loss(&ObjectiveInput {
            emb: &emb,
            images: &x,
            clips,
            perms0: perms,
            perms2: perms,
            lang: None,
            precision: self.mode.precision,
            global: None,
        });
        self.adam.zero_grad();
        loss.total.backward();
        self.adam.step();
        self.objective.after_step(&self.vs);
        // wait for the device (a GPU runs asynchronously)
        let _ = loss.total.double_value(&[]);
        if let Device::Cuda(n) = dev {
            tch::Cuda::synchronize(n as i64);
        }
        t0.elapsed().as_secs_f64()
    }
}

/// Each mode's timed steps in seconds, in the order taken: [`WARMUP_STEPS`] untimed steps per
/// mode, then [`TIMED_STEPS`] rounds of one timed step per mode.
fn measure_raw(cfg: &TrainConfig, modes: &[Mode]) -> Vec<(Mode, Vec<f64>)> {
    let (dev, b) = (cfg.device, cfg.batch as i64);
    let clips = Tensor::arange(b, (Kind::Int64, dev));
    let k = cfg.objective.r3m.num_negatives;
    let perms: Vec<Tensor> = (0..k).map(|i| Tensor::arange(b, (Kind::Int64, dev)).roll([i as i64 + 1], [0])).collect();
    let mut cands: Vec<Candidate> = modes.iter().map(|&m| Candidate::new(cfg, m)).collect();
    for c in &mut cands {
        for _ in 0..WARMUP_STEPS {
            c.step(cfg, &clips, &perms);
        }
    }
    for _ in 0..TIMED_STEPS {
        for c in &mut cands {
            let t = c.step(cfg, &clips, &perms);
            c.times.push(t);
        }
    }
    cands.into_iter().map(|c| (c.mode, c.times)).collect()
}

/// The median of `times` (the upper one for an even count).
fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Times `cfg`'s training step in each mode ([`measure_raw`]); each mode's median counts.
pub fn measure(cfg: &TrainConfig, modes: &[Mode]) -> Result<Vec<Timing>> {
    Ok(measure_raw(cfg, modes)
        .into_iter()
        .map(|(mode, times)| {
            let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = times.iter().copied().fold(0.0, f64::max);
            Timing { mode, step_s: median(&times), steps: times.len(), spread: hi / lo.max(1e-12) }
        })
        .collect())
}

/// The cache file: `$R3M_CACHE/autotune.json` (default `~/.cache/r3m/`), `None` without a home.
pub fn default_cache() -> Option<PathBuf> {
    r3m_fs::cache_root().map(|d| d.join("autotune.json"))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    /// key → (candidate list as text → timings)
    entries: BTreeMap<String, Vec<Timing>>,
}

fn cache_key(key: &str, modes: &[Mode]) -> String {
    let m: Vec<String> = modes.iter().map(Mode::to_string).collect();
    format!("{key} [{}]", m.join(", "))
}

fn read_cache(path: &Path) -> CacheFile {
    // an unreadable or foreign cache is not an error: it is measured again and rewritten
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        .filter(|c| c.format == CACHE_FORMAT)
        .unwrap_or_default()
}

/// The cached choice among `modes` for `cfg`'s machine and shape, if `cache` holds one.
pub fn lookup(cfg: &TrainConfig, modes: &[Mode], cache: Option<&Path>) -> Option<Choice> {
    let key = key(cfg);
    let file = read_cache(cache?);
    let timings = file.entries.get(&cache_key(&key, modes)).filter(|t| t.len() == modes.len())?.clone();
    let mode = fastest(&timings)?;
    Some(Choice { mode, timings, key, cached: true })
}

fn fastest(timings: &[Timing]) -> Option<Mode> {
    timings.iter().min_by(|a, b| a.step_s.total_cmp(&b.step_s)).map(|t| t.mode)
}

/// Measures `modes` for `cfg` ([`measure`]), keeps the fastest, and stores the timings in `cache`
/// (atomically). A cache that cannot be written costs only the caching, so that error comes back
/// beside the choice.
pub fn measure_and_store(
    cfg: &TrainConfig,
    modes: &[Mode],
    cache: Option<&Path>,
) -> Result<(Choice, Option<anyhow::Error>)> {
    anyhow::ensure!(!modes.is_empty(), "no candidate modes to measure");
    let key = key(cfg);
    let timings = measure(cfg, modes)?;
    let mut write_err = None;
    if let Some(path) = cache {
        let mut file = read_cache(path);
        file.format = CACHE_FORMAT.into();
        file.entries.insert(cache_key(&key, modes), timings.clone());
        let res = serde_json::to_vec_pretty(&file)
            .context("serialising the autotune cache")
            .and_then(|b| {
                if let Some(d) = path.parent() {
                    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                }
                Ok(r3m_fs::write(path, &b)?)
            })
            .with_context(|| format!("writing {}", path.display()));
        write_err = res.err();
    }
    let mode = fastest(&timings).context("no timings")?;
    Ok((Choice { mode, timings, key, cached: false }, write_err))
}

/// [`lookup`], else [`measure_and_store`].
pub fn choose(cfg: &TrainConfig, modes: &[Mode], cache: Option<&Path>) -> Result<(Choice, Option<anyhow::Error>)> {
    match lookup(cfg, modes, cache) {
        Some(c) => Ok((c, None)),
        None => measure_and_store(cfg, modes, cache),
    }
}

/// When `auto` measures (`R3M_AUTOTUNE`): `auto` (default) runs of enough steps
/// ([`worth_measuring`]), `always` every run, `never` none (the static rule everywhere, e.g. for
/// the same mode on every machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Runs of enough steps.
    Auto,
    /// Every run.
    Always,
    /// No run.
    Never,
}

impl Policy {
    /// From `R3M_AUTOTUNE` (unset: `auto`).
    pub fn from_env() -> Result<Policy> {
        match std::env::var("R3M_AUTOTUNE").ok().as_deref().map(str::trim) {
            None | Some("" | "auto") => Ok(Policy::Auto),
            Some("always") => Ok(Policy::Always),
            Some("never") => Ok(Policy::Never),
            Some(other) => anyhow::bail!("R3M_AUTOTUNE={other}: expected auto, always or never"),
        }
    }

    /// Whether a run of `steps` steps with these candidates is measured.
    pub fn measures(self, steps: u64, modes: &[Mode]) -> bool {
        modes.len() >= 2
            && match self {
                Policy::Auto => worth_measuring(steps, modes),
                Policy::Always => true,
                Policy::Never => false,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_flags_and_the_hardware() {
        let all = candidates(Device::Cpu, None, None);
        assert!(all.contains(&Mode { precision: Precision::Fp32, channels_last: false }));
        assert!(all.contains(&Mode { precision: Precision::Fp32, channels_last: true }));
        let bf16_here = Precision::auto(Device::Cpu) == Precision::Bf16;
        assert_eq!(all.iter().any(|m| m.precision == Precision::Bf16), bf16_here);
        // an explicit flag wins: only modes with that value
        let cl = candidates(Device::Cpu, Some(Precision::Bf16), None);
        assert_eq!(cl, vec![Mode { precision: Precision::Bf16, channels_last: true }]);
        let nchw = candidates(Device::Cpu, Some(Precision::Bf16), Some(false));
        assert_eq!(nchw, vec![Mode { precision: Precision::Bf16, channels_last: false }]);
        let fp = candidates(Device::Cpu, None, Some(true));
        assert!(fp.iter().all(|m| m.channels_last) && !fp.is_empty());
        assert_eq!(candidates(Device::Cuda(0), None, None).len(), 3);
        let two = candidates(Device::Cpu, Some(Precision::Fp32), None);
        assert_eq!(cost_in_steps(&two), 18);
        assert!(!worth_measuring(359, &two) && worth_measuring(360, &two));
        assert!(!worth_measuring(1_000_000, &two[..1]), "one candidate: nothing to choose");
    }

    /// How much a mode's measured time moves between measurements: the median of the first two
    /// timed steps (what r3m took before) against the median of all [`TIMED_STEPS`], over 6
    /// measurements of the default shallow shape. Prints; run by hand, on a quiet machine or beside
    /// other work, with `--ignored --nocapture`.
    #[test]
    #[ignore = "a timing study, tens of seconds"]
    fn median_of_more_steps_is_steadier() {
        let mut cfg = TrainConfig::new(Device::Cpu);
        cfg.arch = r3m_model::Arch::Shallow;
        cfg.size = 112;
        cfg.batch = 16;
        let modes = candidates(Device::Cpu, Some(Precision::Fp32), None);
        let runs: Vec<Vec<(Mode, Vec<f64>)>> = (0..6).map(|_| measure_raw(&cfg, &modes)).collect();
        for (i, mode) in modes.iter().enumerate() {
            let two: Vec<f64> = runs.iter().map(|r| median(&r[i].1[..2])).collect();
            let all: Vec<f64> = runs.iter().map(|r| median(&r[i].1)).collect();
            let ratio =
                |v: &[f64]| v.iter().copied().fold(0.0, f64::max) / v.iter().copied().fold(f64::INFINITY, f64::min);
            let fastest: Vec<f64> = runs.iter().map(|r| r[i].1.iter().copied().fold(f64::INFINITY, f64::min)).collect();
            let ms = |v: &[f64]| v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>();
            eprintln!(
                "{mode}: median of 2 {:?} (max/min {:.3}); median of {TIMED_STEPS} {:?} (max/min {:.3}); fastest of {TIMED_STEPS} {:?} (max/min {:.3})",
                ms(&two),
                ratio(&two),
                ms(&all),
                ratio(&all),
                ms(&fastest),
                ratio(&fastest)
            );
        }
    }

    #[test]
    fn measures_once_then_reads_the_cache() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("sub/autotune.json");
        let mut cfg = TrainConfig::new(Device::Cpu);
        cfg.size = 32;
        cfg.batch = 2;
        let modes = candidates(Device::Cpu, Some(Precision::Fp32), None);
        let (first, err) = choose(&cfg, &modes, Some(&cache)).unwrap();
        assert!(err.is_none(), "{err:?}");
        assert!(!first.cached);
        assert_eq!(first.timings.len(), 2);
        assert!(first.timings.iter().all(|t| t.step_s > 0.0 && t.step_s.is_finite()));
        assert!(first.timings.iter().all(|t| t.steps == TIMED_STEPS && t.spread >= 1.0), "{first:?}");
        assert!(first.summary().contains("; median of 7 steps per mode;"), "{}", first.summary());
        let fastest = first.timings.iter().min_by(|a, b| a.step_s.total_cmp(&b.step_s)).unwrap().mode;
        assert_eq!(first.mode, fastest);
        // the second time: the same choice, from the cache
        let (second, _) = choose(&cfg, &modes, Some(&cache)).unwrap();
        assert!(second.cached);
        assert_eq!(second.mode, first.mode);
        // JSON may move a float by an ulp
        for (a, b) in second.timings.iter().zip(&first.timings) {
            assert!(a.mode == b.mode && (a.step_s - b.step_s).abs() <= 1e-12 * b.step_s, "{a:?} {b:?}");
        }
        assert!(second.summary().contains("cached measurement"), "{}", second.summary());
        // another shape is measured anew
        cfg.batch = 3;
        assert!(!choose(&cfg, &modes, Some(&cache)).unwrap().0.cached);
        // a corrupt cache is measured again and rewritten
        std::fs::write(&cache, b"{not json").unwrap();
        let (third, err) = choose(&cfg, &modes, Some(&cache)).unwrap();
        assert!(!third.cached && err.is_none());
        assert!(choose(&cfg, &modes, Some(&cache)).unwrap().0.cached);
    }
}
