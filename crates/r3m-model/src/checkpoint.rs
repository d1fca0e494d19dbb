//! The checkpoint format: a directory with `model.safetensors` (torchvision parameter names),
//! `optimizer.safetensors` (the optimiser's state tensors) and `config.json` (everything needed to
//! rebuild the model and resume). Written through `r3m_fs::TempDir` (temporary sibling, fsync,
//! one-step replacement), so a crash never leaves a half-written checkpoint where a complete one is
//! expected.

use std::path::{Path, PathBuf};

use tch::{nn, Tensor};

/// Checkpoint errors; each names the directory or file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Filesystem failure.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is missing or unreadable as safetensors/JSON.
    #[error("{path}: {reason}")]
    Format {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// File names inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimiser state file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Configuration file.
pub const CONFIG_FILE: &str = "config.json";
/// The objective's own state (heads, momentum encoders, queue), for objectives that have one.
pub const OBJECTIVE_FILE: &str = "objective.safetensors";

/// Writes a checkpoint to `dir` atomically and durably through [`r3m_fs::TempDir`]: everything
/// goes to a hidden temporary sibling, is fsynced, then replaces `dir` in one step. An existing
/// checkpoint at `dir` stays intact until the new one is complete.
pub fn save(
    dir: &Path,
    vs: &nn::VarStore,
    optimizer: &[(String, Tensor)],
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    save_with(dir, vs, optimizer, config, &[])
}

/// [`save`], plus the objective's own state (heads, momentum networks, queue) in
/// [`OBJECTIVE_FILE`] when `objective` is not empty.
pub fn save_with(
    dir: &Path,
    vs: &nn::VarStore,
    optimizer: &[(String, Tensor)],
    config: &serde_json::Value,
    objective: &[(String, Tensor)],
) -> Result<(), CheckpointError> {
    let staged = r3m_fs::TempDir::new(dir).map_err(fs_err)?;
    let tmp = staged.staging().to_path_buf();
    // safetensors wants contiguous data; channels-last weights are written in torchvision's layout
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    let optimizer: Vec<(String, Tensor)> = optimizer.iter().map(|(n, t)| (n.clone(), t.contiguous())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let fmt = |p: &Path, e: tch::TchError| CheckpointError::Format { path: p.to_path_buf(), reason: e.to_string() };
    let model = tmp.join(MODEL_FILE);
    Tensor::write_safetensors(&vars, &model).map_err(|e| fmt(&model, e))?;
    let opt = tmp.join(OPTIMIZER_FILE);
    Tensor::write_safetensors(&optimizer, &opt).map_err(|e| fmt(&opt, e))?;
    if !objective.is_empty() {
        let obj = tmp.join(OBJECTIVE_FILE);
        Tensor::write_safetensors(objective, &obj).map_err(|e| fmt(&obj, e))?;
    }
    let cfg = tmp.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(config).expect("JSON values serialise");
    std::fs::write(&cfg, text).map_err(io(&cfg))?;
    // fsync everything, then replace `dir` in one step (a reader never sees half a checkpoint)
    staged.commit().map_err(fs_err)?;
    Ok(())
}

fn fs_err(e: r3m_fs::Error) -> CheckpointError {
    CheckpointError::Io { path: e.path, source: e.source }
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: serde_json::Value,
    /// Optimiser state tensors by name.
    pub optimizer: Vec<(String, Tensor)>,
}

/// Loads the model weights of `dir` into `vs` (every variable of `vs` must be present, with the
/// same shape) and returns `config.json`.
pub fn load_weights(dir: &Path, vs: &mut nn::VarStore) -> Result<serde_json::Value, CheckpointError> {
    let config = read_config(dir)?;
    let model = dir.join(MODEL_FILE);
    let tensors = Tensor::read_safetensors(&model)
        .map_err(|e| CheckpointError::Format { path: model.clone(), reason: e.to_string() })?;
    let by_name: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    tch::no_grad(|| -> Result<(), CheckpointError> {
        for (name, mut var) in vs.variables() {
            let src = by_name.get(&name).ok_or_else(|| CheckpointError::Format {
                path: model.clone(),
                reason: format!("missing tensor '{name}'"),
            })?;
            if src.size() != var.size() {
                return Err(CheckpointError::Format {
                    path: model.clone(),
                    reason: format!("'{name}' has shape {:?}, the model expects {:?}", src.size(), var.size()),
                });
            }
            var.copy_(src);
        }
        Ok(())
    })?;
    Ok(config)
}

/// Reads `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<serde_json::Value, CheckpointError> {
    let cfg = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg).map_err(io(&cfg))?;
    serde_json::from_str(&text)
        .map_err(|e| CheckpointError::Format { path: cfg.clone(), reason: format!("invalid JSON: {e}") })
}

/// Loads the model weights of `dir` into `vs` (every variable of `vs` must be present, with the
/// same shape) and returns the config and optimiser state.
pub fn load(dir: &Path, vs: &mut nn::VarStore) -> Result<Loaded, CheckpointError> {
    let config = load_weights(dir, vs)?;
    let opt = dir.join(OPTIMIZER_FILE);
    let optimizer = if opt.exists() {
        Tensor::read_safetensors(&opt)
            .map_err(|e| CheckpointError::Format { path: opt.clone(), reason: e.to_string() })?
    } else {
        Vec::new()
    };
    Ok(Loaded { config, optimizer })
}

/// The checkpoint directory `path` names: a checkpoint itself (has `config.json`), or a run
/// directory (its `latest` checkpoint).
pub fn resolve(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.join(CONFIG_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join("latest");
    if let Ok(name) = std::fs::read_to_string(&latest) {
        let dir = path.join("checkpoints").join(name.trim());
        if dir.join(CONFIG_FILE).is_file() {
            return Ok(dir);
        }
        return Err(CheckpointError::Format {
            path: latest,
            reason: format!("names {}, which is not a complete checkpoint", dir.display()),
        });
    }
    Err(CheckpointError::Format {
        path: path.to_path_buf(),
        reason: "neither a checkpoint (no config.json) nor a run directory (no latest)".into(),
    })
}

/// What a reader needs from a checkpoint's `config.json` to rebuild its encoder, typed: every
/// config has these keys (a training checkpoint's full config, `r3m_train::RunConfig`, holds them
/// under the same names; `convert_r3m.py`'s smaller one has little more). Readers use this type,
/// never string keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EncoderConfig {
    /// The config's format (`r3m-checkpoint-1` or `-2`).
    #[serde(default)]
    pub format: String,
    /// The architecture's name (`resnet18`, ..., `shallow`).
    pub arch: String,
    /// The projection head's size, when there is one.
    #[serde(default)]
    pub proj_dim: Option<i64>,
    /// Side of the square crops it was trained on (224 when the config does not say).
    #[serde(default = "default_size")]
    pub size: u32,
}

fn default_size() -> u32 {
    224
}

impl EncoderConfig {
    /// Reads `dir/config.json`, with errors naming the file.
    pub fn read(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join(CONFIG_FILE);
        let value = read_config(dir)?;
        let cfg: EncoderConfig = serde_json::from_value(value)
            .map_err(|e| CheckpointError::Format { path: path.clone(), reason: e.to_string() })?;
        cfg.architecture().map_err(|reason| CheckpointError::Format { path, reason })?;
        Ok(cfg)
    }

    /// The architecture, parsed.
    pub fn architecture(&self) -> Result<crate::Arch, String> {
        self.arch.parse()
    }
}

/// A frozen encoder loaded from a checkpoint.
#[derive(Debug)]
pub struct FrozenEncoder {
    /// The encoder (use it in eval mode).
    pub encoder: crate::Encoder,
    /// Its variables.
    pub vs: nn::VarStore,
    /// The checkpoint's `config.json`.
    pub config: serde_json::Value,
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Side of the square crops it was trained on (224 when the config does not say).
    pub size: u32,
}

/// Loads the encoder of checkpoint or run `path` onto `device` (weights only, no optimiser state),
/// rebuilt from its `config.json` (`arch`, optional `proj_dim`, `size`).
pub fn load_encoder(path: &Path, device: tch::Device) -> Result<FrozenEncoder, CheckpointError> {
    let dir = resolve(path)?;
    let config = read_config(&dir)?;
    let typed = EncoderConfig::read(&dir)?;
    let arch =
        typed.architecture().map_err(|reason| CheckpointError::Format { path: dir.join(CONFIG_FILE), reason })?;
    let size = typed.size;
    let mut vs = nn::VarStore::new(device);
    let encoder = crate::Encoder::with_head(&vs.root(), arch, typed.proj_dim);
    load_weights(&dir, &mut vs)?;
    vs.freeze();
    Ok(FrozenEncoder { encoder, vs, config, dir, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arch, Encoder};
    use tch::{Device, Kind};

    fn max_diff(a: &nn::VarStore, b: &nn::VarStore) -> f64 {
        let bv = b.variables();
        a.variables()
            .iter()
            .map(|(n, t)| (t - &bv[n]).abs().max().to_kind(Kind::Double).double_value(&[]))
            .fold(0.0, f64::max)
    }

    #[test]
    fn round_trip_replace_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("run/step-10");
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let _e = Encoder::new(&vs.root(), Arch::Resnet18);
        let opt = vec![("step".to_string(), Tensor::from_slice(&[10i64]))];
        let cfg = serde_json::json!({"arch": "resnet18", "step": 10});
        save(&ck, &vs, &opt, &cfg).unwrap();
        for f in [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE] {
            assert!(ck.join(f).exists(), "{f} missing");
        }
        // no temp or old directories are left behind
        let names: Vec<String> = std::fs::read_dir(dir.path().join("run"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["step-10".to_string()]);

        tch::manual_seed(2);
        let mut other = nn::VarStore::new(Device::Cpu);
        let _e2 = Encoder::new(&other.root(), Arch::Resnet18);
        assert!(max_diff(&vs, &other) > 1e-3, "different seeds should differ before loading");
        let loaded = load(&ck, &mut other).unwrap();
        assert_eq!(max_diff(&vs, &other), 0.0);
        assert_eq!(loaded.config["step"], 10);
        assert_eq!(loaded.optimizer[0].1.int64_value(&[0]), 10);

        // saving again over it replaces it whole
        let cfg2 = serde_json::json!({"arch": "resnet18", "step": 11});
        save(&ck, &other, &opt, &cfg2).unwrap();
        let again = load(&ck, &mut other).unwrap();
        assert_eq!(again.config["step"], 11);

        // a checkpoint of another architecture is refused, naming the file and the tensor
        let mut r50 = nn::VarStore::new(Device::Cpu);
        let _e3 = Encoder::new(&r50.root(), Arch::Resnet50);
        let err = load(&ck, &mut r50).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && (err.contains("missing tensor") || err.contains("shape")),
            "{err}"
        );
        // a missing checkpoint names its config file
        let err = load(&dir.path().join("nope"), &mut r50).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
