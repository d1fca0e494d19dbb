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

/// [`parse`], then checks that the device exists (every subcommand that runs a model calls this,
/// through [`Compute::resolve`] or directly).
pub fn parse_checked(s: &str) -> Result<Device> {
    let dev = parse(s)?;
    if let Device::Cuda(n) = dev {
        let count = tch::Cuda::device_count();
        if count == 0 {
            bail!("--device {s}: no CUDA GPU is available here (libtorch sees none; is this a CPU-only build or machine?); use --device cpu or auto");
        }
        if n as i64 >= count {
            bail!("--device {s}: no such GPU ({count} available: cuda:0..cuda:{})", count - 1);
        }
    }
    Ok(dev)
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
    /// The device and precision these flags name, checked: a GPU that is not there is an error
    /// here, not a panic inside libtorch later.
    pub fn resolve(&self) -> Result<(Device, r3m_model::Precision)> {
        let dev = parse_checked(&self.device)?;
        Ok((dev, precision(&self.precision, dev)?))
    }
}
