//! `--device` values, shared by every subcommand that runs a model.

use anyhow::{bail, Result};
use tch::Device;

/// Parses `auto` (the first GPU when there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse(s: &str) -> Result<Device> {
    Ok(match s {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!("--device '{s}': expected auto, cpu, cuda or cuda:N"),
        },
    })
}

/// `cpu` or `cuda:N`.
pub fn name(d: Device) -> String {
    match d {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

/// Parses `--precision`: `auto` (bf16 on CUDA and on CPUs with bf16 units, else fp32), `fp32`, `bf16`.
pub fn precision(s: &str, dev: Device) -> Result<r3m_model::Precision> {
    match s {
        "auto" => Ok(r3m_model::Precision::auto(dev)),
        p => p.parse().map_err(|e| anyhow::anyhow!("--precision: {e}")),
    }
}

/// `--device` and `--precision`, shared by every command that runs an encoder.
#[derive(Debug, Clone, clap::Args)]
pub struct Compute {
    /// cpu, cuda, cuda:N or auto (the first GPU when there is one).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Encoder arithmetic: fp32, bf16 (autocast; weights and loss stay fp32) or auto (bf16 on CUDA
    /// and on CPUs with AMX/AVX512-BF16 units, fp32 elsewhere: emulated bf16 is slower).
    #[arg(long, default_value = "auto")]
    pub precision: String,
}

impl Compute {
    /// The device and precision these flags name.
    pub fn resolve(&self) -> Result<(Device, r3m_model::Precision)> {
        let dev = parse(&self.device)?;
        Ok((dev, precision(&self.precision, dev)?))
    }
}
