//! A run directory and its typed, versioned configuration.
//!
//! Every checkpoint's `config.json` is a [`RunConfig`]: what rebuilds the model (read by `embed`,
//! `view` and `eval bc`) and what decides the batches and the updates (read by `--resume`).
//! [`RunConfig::resume_check`] compares a stored config with the one a resume asks for and sorts
//! every difference into refused (it would change batches, numbers or the model) or allowed
//! (`--steps`, checkpoint cadence, kept checkpoints, workers: the batches do not depend on them).

use std::path::Path;

use anyhow::{bail, Result};
use r3m_data::LoaderState;
use serde::{Deserialize, Serialize};

/// Format tag of the checkpoint config written now.
pub const CONFIG_FORMAT: &str = "r3m-checkpoint-2";
/// Formats `--resume` reads (1 lacks the fields marked `serde(default)` below).
const READABLE: [&str; 2] = ["r3m-checkpoint-1", CONFIG_FORMAT];

/// How tuples were drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Fraction of the clip at each end where start and end are drawn.
    pub alpha: f64,
    /// Positive window (`8f`, `0.25s`), `None`: R3M's ordering rule.
    pub positive_window: Option<String>,
    /// Negative gap, `None`: just beyond the positive.
    pub negative_gap: Option<String>,
}

/// The run directory's list of the clips a run trains on, one `path:frames` line per clip in
/// loader order, written once when the run starts; checkpoints keep only its count and hash.
pub const CLIPS_FILE: &str = "clips.txt";

/// The data a run trained on: the number of clips and a hash of their `path:frames` lines (in
/// loader order). The lines themselves are in the run directory's [`CLIPS_FILE`], so a checkpoint's
/// `config.json` stays small at any dataset size; configs written before that kept them inline
/// (`fingerprint`), and still compare.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Number of clips.
    pub clips: usize,
    /// FNV-1a of the lines joined by newlines, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Older configs: the lines inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprint: Vec<String>,
    /// The lines, when known (from the clips, or read back from [`CLIPS_FILE`]); never written
    /// into a config.
    #[serde(skip)]
    pub lines: Vec<String>,
}

impl DataFingerprint {
    /// The fingerprint of `lines` (one `path:frames` per clip), keeping them in memory.
    pub fn of(lines: Vec<String>) -> Self {
        DataFingerprint { clips: lines.len(), hash: Some(digest(&lines)), fingerprint: Vec::new(), lines }
    }

    /// The same fingerprint without the lines in memory (what a checkpoint's config keeps).
    pub fn without_lines(&self) -> Self {
        DataFingerprint { clips: self.clips, hash: Some(self.digest()), fingerprint: Vec::new(), lines: Vec::new() }
    }

    /// The hash, from the stored one or the inline lines of an older config.
    pub fn digest(&self) -> String {
        self.hash.clone().unwrap_or_else(|| digest(&self.fingerprint))
    }

    /// The lines, if known: in memory, or inline in an older config.
    fn known_lines(&self) -> Option<&[String]> {
        if !self.lines.is_empty() {
            Some(&self.lines)
        } else if !self.fingerprint.is_empty() {
            Some(&self.fingerprint)
        } else {
            None
        }
    }

    /// Writes the lines to `run/`[`CLIPS_FILE`] (atomically).
    pub fn write_list(&self, run: &Path) -> Result<()> {
        let mut text = self.lines.join("\n");
        text.push('\n');
        Ok(r3m_fs::write(&run.join(CLIPS_FILE), text.as_bytes())?)
    }

    /// Reads the lines of `run/`[`CLIPS_FILE`] into `self` when the file matches this fingerprint
    /// (a missing or different file leaves them unknown).
    pub fn read_list(&mut self, run: &Path) {
        if let Ok(text) = std::fs::read_to_string(run.join(CLIPS_FILE)) {
            let lines: Vec<String> = text.lines().map(String::from).collect();
            if lines.len() == self.clips && digest(&lines) == self.digest() {
                self.lines = lines;
            }
        }
    }
}

impl PartialEq for DataFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.clips == other.clips && self.digest() == other.digest()
    }
}

fn digest(lines: &[String]) -> String {
    r3m_fs::Fnv64::hex(lines.join("\n").as_bytes())
}

/// A checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`CONFIG_FORMAT`].
    pub format: String,
    /// Encoder name (`resnet18`, ...).
    pub arch: String,
    /// Embedding size (projection or trunk).
    pub dim: i64,
    /// Trunk output size.
    pub trunk_dim: i64,
    /// Projection head size.
    pub proj_dim: Option<i64>,
    /// Training crop side.
    pub size: u32,
    /// Forward arithmetic (`fp32`, `bf16`).
    pub precision: String,
    /// Channels-last images and weights.
    pub channels_last: bool,
    /// How clips are drawn (`ByLength`, `Uniform`).
    pub clip_weighting: String,
    /// Clips per batch.
    pub batch: usize,
    /// Tuples per decoded clip.
    pub tuples_per_clip: usize,
    /// How batches are drawn from decoded clips (`grouped`, `reservoir`).
    #[serde(default = "grouped")]
    pub loader: String,
    /// The reservoir's memory budget in MB (`--reservoir-mb`) and the clip slots it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir: Option<(usize, usize)>,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// Steps the run was asked for.
    pub steps: u64,
    /// Steps between checkpoints.
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    #[serde(default)]
    pub keep_last: usize,
    /// Decode workers.
    #[serde(default)]
    pub workers: usize,
    /// The objective's settings.
    pub objective: serde_json::Value,
    /// The tuple sampler.
    pub sampler: SamplerConfig,
    /// FNV-1a hash of the text embeddings table (language term), `None` without it.
    #[serde(default)]
    pub text_embeddings: Option<String>,
    /// Input preprocessing (scale, mean, std) for readers of the checkpoint.
    pub preprocess: serde_json::Value,
    /// Updates done when this checkpoint was written.
    pub step: u64,
    /// Where the loader is (exact resume).
    pub loader_state: LoaderState,
    /// The negatives' RNG state (exact resume).
    pub negatives_rng: u64,
    /// The data.
    pub data: DataFingerprint,
    /// Processes of a data-parallel run (1: one process).
    #[serde(default = "one")]
    pub world_size: usize,
    /// Data-parallel runs: each rank's loader and negatives state, by rank (exact resume needs
    /// every rank's, not only rank 0's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_states: Vec<RankState>,
    /// `best/` only: the mean training loss of the interval that ended with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_mean_loss: Option<f64>,
    /// `--precision auto` / `--memory-format auto`: the measured choice (see
    /// [`crate::autotune`]); absent when the flags were given or the static rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autotune: Option<crate::modes::Choice>,
    /// How the loader derives its random streams ([`r3m_data::rng::STREAMS`]); configs written
    /// before the field existed used derivation 1. A resume needs the same derivation: another one
    /// draws other batches.
    #[serde(default = "one_u32")]
    pub rng_streams: u32,
}

fn one() -> usize {
    1
}

fn one_u32() -> u32 {
    1
}

fn grouped() -> String {
    "grouped".into()
}

/// One rank's place in its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankState {
    /// The rank's loader.
    pub loader_state: LoaderState,
    /// The rank's negatives RNG.
    pub negatives_rng: u64,
}

/// What [`RunConfig::resume_check`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResumeCheck {
    /// Differences that would change batches, numbers or the model: `--flag old → new`.
    pub refused: Vec<String>,
    /// Differences a resume may make: `--flag old → new`.
    pub allowed: Vec<String>,
}

impl RunConfig {
    /// Reads and validates a stored config (`path` names the file in errors).
    pub fn from_json(value: serde_json::Value, path: &Path) -> Result<Self> {
        let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("(none)").to_string();
        if !READABLE.contains(&format.as_str()) {
            bail!("{}: format '{format}' is not one this r3m reads ({})", path.display(), READABLE.join(", "));
        }
        serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Compares `self` (stored in the run) with `new` (what the resume asks for).
    pub fn resume_check(&self, new: &RunConfig) -> ResumeCheck {
        let mut c = ResumeCheck::default();
        let mut diff = |flag: &str, old: String, now: String, allowed: bool| {
            if old != now {
                let line = format!("{flag} {old} → {now}");
                if allowed {
                    c.allowed.push(line)
                } else {
                    c.refused.push(line)
                }
            }
        };
        let s = |v: &dyn std::fmt::Debug| format!("{v:?}");
        diff("--arch", self.arch.clone(), new.arch.clone(), false);
        diff("--proj-dim", s(&self.proj_dim), s(&new.proj_dim), false);
        diff("--size", self.size.to_string(), new.size.to_string(), false);
        diff("--precision", self.precision.clone(), new.precision.clone(), false);
        diff("--memory-format (channels-last)", self.channels_last.to_string(), new.channels_last.to_string(), false);
        diff("--clip-weighting", self.clip_weighting.clone(), new.clip_weighting.clone(), false);
        diff("--batch", self.batch.to_string(), new.batch.to_string(), false);
        diff("--tuples-per-clip", self.tuples_per_clip.to_string(), new.tuples_per_clip.to_string(), false);
        diff("--loader", self.loader.clone(), new.loader.clone(), false);
        let mb = |r: &Option<(usize, usize)>| {
            r.map_or("(none)".to_string(), |(mb, slots)| format!("{mb} MB ({slots} clips)"))
        };
        diff("--reservoir-mb", mb(&self.reservoir), mb(&new.reservoir), false);
        diff("--lr", self.lr.to_string(), new.lr.to_string(), false);
        diff("--seed", self.seed.to_string(), new.seed.to_string(), false);
        diff("--positive-window", s(&self.sampler.positive_window), s(&new.sampler.positive_window), false);
        diff("--negative-gap", s(&self.sampler.negative_gap), s(&new.sampler.negative_gap), false);
        diff("sampler alpha", self.sampler.alpha.to_string(), new.sampler.alpha.to_string(), false);
        diff("--text-embeddings (hash)", s(&self.text_embeddings), s(&new.text_embeddings), false);
        diff("world size (WORLD_SIZE: processes)", self.world_size.to_string(), new.world_size.to_string(), false);
        diff(
            "random-stream derivation (the run was started by an r3m that draws other batches: resume it with that r3m, or start over)",
            self.rng_streams.to_string(),
            new.rng_streams.to_string(),
            false,
        );
        // every objective setting, by its key
        let keys: std::collections::BTreeSet<&String> =
            self.objective.as_object().into_iter().chain(new.objective.as_object()).flat_map(|m| m.keys()).collect();
        for k in keys {
            if k == "name" {
                let name =
                    |c: &RunConfig| c.objective.get("name").and_then(|v| v.as_str()).unwrap_or("(unset)").to_string();
                diff("--objective", name(self), name(new), false);
                continue;
            }
            let old = self.objective.get(k).map(|v| v.to_string()).unwrap_or_else(|| "(unset)".into());
            let now = new.objective.get(k).map(|v| v.to_string()).unwrap_or_else(|| "(unset)".into());
            diff(&format!("objective {k}"), old, now, false);
        }
        // every other field of the config, whatever it is: a field added later is compared too
        let others = match (serde_json::to_value(self), serde_json::to_value(new)) {
            (Ok(a), Ok(b)) => other_differences(&a, &b),
            _ => Vec::new(),
        };
        let data = (self.data != new.data).then(|| data_diff(&self.data, &new.data));
        diff("--steps", self.steps.to_string(), new.steps.to_string(), true);
        // format-1 configs did not store these: nothing to compare
        if self.checkpoint_every != 0 {
            diff("--checkpoint-every", self.checkpoint_every.to_string(), new.checkpoint_every.to_string(), true);
        }
        if self.keep_last != 0 {
            diff("--keep", self.keep_last.to_string(), new.keep_last.to_string(), true);
        }
        if self.workers != 0 {
            diff("--workers", self.workers.to_string(), new.workers.to_string(), true);
        }
        c.refused.extend(others);
        c.refused.extend(data);
        c
    }
}

/// "the data differ: ..." with counts and a few examples.
/// The config fields [`RunConfig::resume_check`] compares by name (with the flag that sets them),
/// or lets change (`steps`, `checkpoint_every`, `keep_last`, `workers`).
const NAMED_FIELDS: [&str; 22] = [
    "arch",
    "proj_dim",
    "size",
    "precision",
    "channels_last",
    "clip_weighting",
    "batch",
    "tuples_per_clip",
    "loader",
    "reservoir",
    "lr",
    "seed",
    "sampler",
    "text_embeddings",
    "world_size",
    "rng_streams",
    "objective",
    "data",
    "steps",
    "checkpoint_every",
    "keep_last",
    "workers",
];

/// The fields a resume does not compare: where the run is (its state), and what follows from the
/// settings or the machine rather than setting anything (the pixel spec follows from `arch` and
/// `size`; `autotune` records how `auto` chose, and a resume keeps the run's own mode).
const NOT_COMPARED: [&str; 8] =
    ["format", "step", "loader_state", "negatives_rng", "rank_states", "interval_mean_loss", "preprocess", "autotune"];

/// Differences in the fields neither named nor exempt: any field a config has, now or later, that
/// nobody listed is compared, so a new setting cannot slip through a resume unchecked.
fn other_differences(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else { return Vec::new() };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !NAMED_FIELDS.contains(&k.as_str()) && !NOT_COMPARED.contains(&k.as_str()))
        .filter_map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "(unset)".to_string(), ToString::to_string);
            (a.get(k) != b.get(k)).then(|| format!("{k} {} → {}", show(a.get(k)), show(b.get(k))))
        })
        .collect()
}

fn data_diff(old: &DataFingerprint, new: &DataFingerprint) -> String {
    let mut msg = format!("the data differ: {} clip(s) → {}", old.clips, new.clips);
    let (Some(old_lines), Some(new_lines)) = (old.known_lines(), new.known_lines()) else {
        msg.push_str(&format!(
            " (clip list hash {} → {}; {} holds the run's list)",
            old.digest(),
            new.digest(),
            CLIPS_FILE
        ));
        return msg;
    };
    let a: std::collections::BTreeSet<&String> = old_lines.iter().collect();
    let b: std::collections::BTreeSet<&String> = new_lines.iter().collect();
    let gone: Vec<&&String> = a.difference(&b).collect();
    let added: Vec<&&String> = b.difference(&a).collect();
    if gone.is_empty() && added.is_empty() {
        msg.push_str(" (same clips, another order)");
    }
    if !gone.is_empty() {
        msg.push_str(&format!("; {} gone or changed (e.g. {})", gone.len(), gone[0]));
    }
    if !added.is_empty() {
        msg.push_str(&format!("; {} new or changed (e.g. {})", added.len(), added[0]));
    }
    msg
}

/// Whether `dir` looks like an r3m run directory (so `--overwrite` may clear it).
/// The run's message log (written by the `r3m` binary; appended to on resume).
pub const LOG_FILE: &str = "train.log";

fn is_run_dir(dir: &Path) -> bool {
    dir.join("metrics.csv").exists() || dir.join("latest").exists() || dir.join("checkpoints").is_dir()
}

/// Makes `out` ready for a run that `resume`s or starts fresh, before anything is written: a
/// non-empty `out` without `--resume` is refused (naming `--resume` and `--overwrite`);
/// `overwrite` clears it first, but only when it is an r3m run directory (it holds `metrics.csv`,
/// `latest` or `checkpoints/`), never an arbitrary folder. Returns what it cleared.
pub fn prepare_run_dir(out: &Path, resume: bool, overwrite: bool) -> Result<usize> {
    if resume && overwrite {
        bail!("--resume and --overwrite contradict each other: continue the run in {} or start it over", out.display());
    }
    let entries: Vec<std::path::PathBuf> = match std::fs::read_dir(out) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => bail!("--out {}: {e}", out.display()),
    };
    if out.exists() && !out.is_dir() {
        bail!("--out {}: is a file, not a run directory", out.display());
    }
    // the log of an attempt that stopped before training (bad data, bad flags) does not make a
    // run, and the writer's lock is the caller's own
    let entries: Vec<std::path::PathBuf> =
        entries.into_iter().filter(|p| p.file_name().is_none_or(|n| n != LOG_FILE && n != r3m_fs::LOCK_FILE)).collect();
    let no_checkpoint = is_run_dir(out) && latest_checkpoint(out).is_none();
    if resume {
        if !is_run_dir(out) {
            bail!("--resume: {} is not a run directory (no metrics.csv, latest or checkpoints/)", out.display());
        }
        if no_checkpoint {
            bail!(
                "--resume: {} holds a run with no complete checkpoint named by latest (stopped before its first?), nothing to resume: start it over with --overwrite",
                out.display()
            );
        }
        return Ok(0);
    }
    if entries.is_empty() {
        return Ok(0);
    }
    if !overwrite {
        let (what, hint) = if no_checkpoint {
            (
                ", it holds a run with no complete checkpoint named by latest (stopped before its first?), nothing to resume",
                "start it over with --overwrite",
            )
        } else if is_run_dir(out) {
            (", it holds a run", "continue that run with --resume, start it over with --overwrite")
        } else {
            (", not an r3m run (no metrics.csv, latest or checkpoints/)", "empty it")
        };
        bail!(
            "--out {} is not empty ({} entries){what}: {hint}, or choose another --out",
            out.display(),
            entries.len()
        );
    }
    if !is_run_dir(out) {
        bail!("--overwrite: {} is not an r3m run directory (no metrics.csv, latest or checkpoints/); refusing to delete it", out.display());
    }
    // `latest` first: a clear cut short never leaves a `latest` naming a removed checkpoint
    let mut entries = entries;
    entries.sort_by_key(|p| p.file_name().is_none_or(|n| n != "latest"));
    for p in &entries {
        let r = if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
        r.map_err(|e| anyhow::anyhow!("--overwrite: removing {}: {e}", p.display()))?;
    }
    Ok(entries.len())
}

/// Name of the newest checkpoint in `run`, if any.
pub fn latest_checkpoint(run: &Path) -> Option<std::path::PathBuf> {
    let name = std::fs::read_to_string(run.join("latest")).ok()?;
    let dir = run.join("checkpoints").join(name.trim());
    dir.join(r3m_model::checkpoint::CONFIG_FILE).exists().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig {
            rng_streams: r3m_data::rng::STREAMS,
            format: CONFIG_FORMAT.into(),
            arch: "resnet18".into(),
            dim: 512,
            trunk_dim: 512,
            proj_dim: None,
            size: 64,
            precision: "fp32".into(),
            channels_last: false,
            clip_weighting: "ByLength".into(),
            batch: 4,
            tuples_per_clip: 2,
            loader: "grouped".into(),
            reservoir: None,
            lr: 1e-4,
            seed: 0,
            steps: 10,
            checkpoint_every: 5,
            keep_last: 3,
            workers: 2,
            objective: serde_json::json!({"name": "r3m-tcn", "w_l1": 1e-5}),
            sampler: SamplerConfig { alpha: 0.2, positive_window: None, negative_gap: None },
            text_embeddings: None,
            preprocess: serde_json::json!({}),
            step: 5,
            loader_state: LoaderState { rng: 1, group: 2, within: 0 },
            negatives_rng: 3,
            data: DataFingerprint::of(vec!["a.mp4:10".into(), "b.mp4:12".into()]),
            world_size: 1,
            rank_states: Vec::new(),
            interval_mean_loss: None,
            autotune: None,
        }
    }

    #[test]
    fn resume_check_sorts_differences() {
        let old = cfg();
        assert_eq!(old.resume_check(&old.clone()), ResumeCheck::default());
        let mut new = old.clone();
        new.steps = 20;
        new.workers = 1;
        new.batch = 8;
        new.objective["w_l1"] = serde_json::json!(0.0);
        let mut lines = new.data.lines.clone();
        lines[1] = "b.mp4:13".into();
        new.data = DataFingerprint::of(lines);
        let c = old.resume_check(&new);
        assert_eq!(c.allowed, vec!["--steps 10 → 20".to_string(), "--workers 2 → 1".to_string()]);
        assert_eq!(c.refused.len(), 3, "{c:?}");
        assert!(c.refused.contains(&"--batch 4 → 8".to_string()), "{c:?}");
        assert!(c.refused.iter().any(|r| r.starts_with("objective w_l1 ")), "{c:?}");
        assert!(
            c.refused.iter().any(|r| r.contains("the data differ") && r.contains("b.mp4:12") && r.contains("b.mp4:13")),
            "{c:?}"
        );
    }

    #[test]
    fn a_config_stays_small_for_a_large_dataset_and_a_resume_still_names_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> =
            (0..200_000).map(|i| format!("/data/videos/episode_{i:07}.mp4:{}", 300 + i % 50)).collect();
        let mut old = cfg();
        old.data = DataFingerprint::of(lines.clone());
        old.data.write_list(dir.path()).unwrap();
        let json = serde_json::to_string_pretty(&old).unwrap();
        assert!(json.len() < 64 * 1024, "config.json of a 200,000-clip run is {} bytes", json.len());
        // read back from disk (no lines in the config), it still names what changed
        let mut stored = RunConfig::from_json(serde_json::from_str(&json).unwrap(), Path::new("x")).unwrap();
        assert!(stored.data.lines.is_empty());
        stored.data.read_list(dir.path());
        assert_eq!(stored.data.lines.len(), 200_000);
        let mut changed = lines;
        changed[123_456] = "/data/videos/episode_0123456.mp4:1".into();
        let mut new = old.clone();
        new.data = DataFingerprint::of(changed);
        let c = stored.resume_check(&new);
        assert!(
            c.refused.iter().any(|r| r.contains("episode_0123456.mp4:306") && r.contains("episode_0123456.mp4:1")),
            "{c:?}"
        );
        // without the list, the counts and hashes
        let mut bare = RunConfig::from_json(serde_json::from_str(&json).unwrap(), Path::new("x")).unwrap();
        bare.data.read_list(Path::new("/nonexistent"));
        let c = bare.resume_check(&new);
        assert!(c.refused.iter().any(|r| r.contains("clip list hash")), "{c:?}");
        // an older config with its lines inline compares with the new form
        let mut v = serde_json::to_value(cfg()).unwrap();
        v["data"] = serde_json::json!({"clips": 2, "fingerprint": ["a.mp4:10", "b.mp4:12"]});
        let older = RunConfig::from_json(v, Path::new("x")).unwrap();
        assert!(older.resume_check(&cfg()).refused.is_empty());
    }

    /// A field a later version adds to the config is compared by a resume without anyone listing
    /// it; derived and state fields are not; every field of today's config is one or the other.
    /// Readers rebuild the encoder from a run config through `r3m_model`'s typed
    /// `EncoderConfig`: the two types agree on those fields.
    #[test]
    fn a_run_config_reads_as_the_encoder_config() {
        let c = cfg();
        let e: r3m_model::checkpoint::EncoderConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(
            (e.format.as_str(), e.arch.as_str(), e.proj_dim, e.size),
            (c.format.as_str(), c.arch.as_str(), c.proj_dim, c.size)
        );
        assert_eq!(e.architecture(), Ok(r3m_model::Arch::Resnet18));
    }

    #[test]
    fn a_field_added_later_is_checked_on_resume() {
        let mut a = serde_json::to_value(cfg()).unwrap();
        let mut b = a.clone();
        assert!(other_differences(&a, &b).is_empty());
        b["new_setting"] = serde_json::json!(2);
        assert_eq!(other_differences(&a, &b), vec!["new_setting (unset) → 2".to_string()]);
        a["new_setting"] = serde_json::json!(1);
        assert_eq!(other_differences(&a, &b), vec!["new_setting 1 → 2".to_string()]);
        // dim follows arch and proj_dim but is compared all the same (nobody exempted it)
        let mut c = serde_json::to_value(cfg()).unwrap();
        c["dim"] = serde_json::json!(64);
        assert_eq!(other_differences(&serde_json::to_value(cfg()).unwrap(), &c), vec!["dim 512 → 64".to_string()]);
        // state and derived fields are not compared
        let mut d = serde_json::to_value(cfg()).unwrap();
        d["step"] = serde_json::json!(99);
        d["preprocess"] = serde_json::json!({"format": "other"});
        assert!(other_differences(&serde_json::to_value(cfg()).unwrap(), &d).is_empty());
    }

    #[test]
    fn a_run_made_with_the_older_random_streams_is_not_resumed() {
        let now = cfg();
        let mut v = serde_json::to_value(&now).unwrap();
        v.as_object_mut().unwrap().remove("rng_streams");
        let old = RunConfig::from_json(v, Path::new("x")).unwrap();
        assert_eq!(old.rng_streams, 1);
        let c = old.resume_check(&now);
        assert!(c.refused.iter().any(|r| r.starts_with("random-stream derivation") && r.ends_with("1 → 2")), "{c:?}");
    }

    #[test]
    fn configs_round_trip_and_unknown_formats_are_refused() {
        let c = cfg();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(RunConfig::from_json(v.clone(), Path::new("x")).unwrap(), c);
        let mut bad = v;
        bad["format"] = serde_json::json!("r3m-checkpoint-9");
        let e = RunConfig::from_json(bad, Path::new("run/config.json")).unwrap_err().to_string();
        assert!(e.contains("run/config.json") && e.contains("r3m-checkpoint-9"), "{e}");
    }

    #[test]
    fn run_directories_have_one_owner() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        assert_eq!(prepare_run_dir(&out, false, false).unwrap(), 0, "a missing folder is fine");
        std::fs::create_dir_all(out.join("checkpoints")).unwrap();
        std::fs::write(out.join("metrics.csv"), "step\n").unwrap();
        // stopped before its first checkpoint: nothing to resume, and both errors say so
        let e = prepare_run_dir(&out, false, false).unwrap_err().to_string();
        assert!(e.contains("no complete checkpoint") && e.contains("--overwrite") && !e.contains("--resume"), "{e}");
        let e = prepare_run_dir(&out, true, false).unwrap_err().to_string();
        assert!(e.contains("nothing to resume") && e.contains("--overwrite"), "{e}");
        // with a checkpoint named by `latest` it is a run to continue
        std::fs::create_dir_all(out.join("checkpoints/step-00000005")).unwrap();
        std::fs::write(out.join("checkpoints/step-00000005").join(r3m_model::checkpoint::CONFIG_FILE), "{}").unwrap();
        std::fs::write(out.join("latest"), "step-00000005\n").unwrap();
        let e = prepare_run_dir(&out, false, false).unwrap_err().to_string();
        assert!(e.contains("it holds a run:") && e.contains("--resume") && e.contains("--overwrite"), "{e}");
        prepare_run_dir(&out, true, false).unwrap();
        assert!(prepare_run_dir(&out, true, true).is_err());
        assert_eq!(prepare_run_dir(&out, false, true).unwrap(), 3);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        // a folder that is not a run is never deleted
        let other = d.path().join("photos");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("cat.jpg"), b"x").unwrap();
        let e = prepare_run_dir(&other, false, true).unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
        assert!(other.join("cat.jpg").exists());
        assert!(prepare_run_dir(&other, true, false).is_err(), "nothing to resume");
    }
}
