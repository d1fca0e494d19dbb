//! `r3m doctor`: is every real part of the pipeline here and working?

use std::time::Instant;

use anyhow::Result;
use tch::{nn, Device, Kind, Tensor};

/// Options for `r3m doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also run the forward pass on this device (`cpu`, `cuda`, `cuda:N`); by default on the CPU
    /// and on the first GPU when one is present.
    #[arg(long)]
    device: Option<String>,
}

struct Report {
    failures: Vec<String>,
}

impl Report {
    fn ok(&self, part: &str, detail: impl std::fmt::Display) {
        println!("  ok    {part:<22} {detail}");
    }
    fn info(&self, part: &str, detail: impl std::fmt::Display) {
        println!("        {part:<22} {detail}");
    }
    fn fail(&mut self, part: &str, detail: impl std::fmt::Display) {
        println!("  FAIL  {part:<22} {detail}");
        self.failures.push(format!("{part}: {detail}"));
    }
}

pub fn run(args: Args) -> Result<i32> {
    let mut r = Report { failures: Vec::new() };
    println!("r3m {}", env!("CARGO_PKG_VERSION"));

    println!("libtorch");
    r.ok("version", r3m_model::libtorch_version());
    r.info("library dir", r3m_model::libtorch_lib_dir());
    r.info("CPU threads", tch::get_num_threads());
    let cuda = tch::Cuda::is_available();
    let n_gpu = tch::Cuda::device_count();
    r.info(
        "CUDA",
        if cuda {
            format!("available, {n_gpu} device(s), cuDNN {}", tch::Cuda::cudnn_is_available())
        } else {
            "not available (CPU only)".into()
        },
    );
    for (i, name) in gpu_names().into_iter().enumerate() {
        r.info(&format!("cuda:{i}"), name);
    }
    let mut devices = vec![Device::Cpu];
    match args.device.as_deref() {
        Some(d) => devices = vec![crate::device::parse(d)?],
        None if cuda => devices.push(Device::Cuda(0)),
        None => {}
    }
    for dev in devices {
        match forward_check(dev) {
            Ok(detail) => r.ok(&format!("resnet18 forward {}", crate::device::name(dev)), detail),
            Err(e) => r.fail(&format!("resnet18 forward {}", crate::device::name(dev)), e),
        }
    }

    println!("FFmpeg");
    for (lib, v) in r3m_video::library_versions() {
        r.ok(lib, v);
    }
    for (codec, dec) in r3m_video::decoders() {
        match dec {
            Some(name) => r.ok(&format!("decoder {codec}"), name),
            None => r.fail(&format!("decoder {codec}"), "missing: this FFmpeg cannot decode it"),
        }
    }
    match decode_check() {
        Ok(detail) => r.ok("encode→decode", detail),
        Err(e) => r.fail("encode→decode", e),
    }

    println!("rerun");
    r.ok("SDK", r3m_viz::sdk_version());
    match r3m_viz::self_check() {
        Ok(bytes) => r.ok("in-memory recording", format!("{bytes} bytes")),
        Err(e) => r.fail("in-memory recording", e),
    }

    if r.failures.is_empty() {
        println!("all checks passed");
        Ok(0)
    } else {
        tracing::warn!("r3m doctor: {} check(s) failed:", r.failures.len());
        for f in &r.failures {
            tracing::warn!("  - {f}");
        }
        Ok(1)
    }
}

/// GPU names from `nvidia-smi` (libtorch's C API does not expose them); empty when there is none.
fn gpu_names() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

/// A real ResNet18 forward pass on a small batch; checks shape and finiteness.
fn forward_check(dev: Device) -> Result<String, String> {
    if let Device::Cuda(n) = dev {
        if n as i64 >= tch::Cuda::device_count() {
            return Err(format!("cuda:{n} does not exist"));
        }
    }
    let result = std::panic::catch_unwind(|| {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(dev);
        let enc = r3m_model::Encoder::new(&vs.root(), r3m_model::Arch::Resnet18);
        let x = Tensor::randint(256, [2, 3, 112, 112], (Kind::Uint8, dev));
        let t0 = Instant::now();
        let y = tch::no_grad(|| enc.forward_u8(&x, false));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let finite = y.isfinite().all().int64_value(&[]) == 1;
        (y.size(), finite, ms)
    });
    match result {
        Ok((size, true, ms)) if size == [2, 512] => Ok(format!("[2,3,112,112] u8 -> {size:?} in {ms:.0} ms")),
        Ok((size, finite, _)) => Err(format!("unexpected output {size:?} (finite: {finite})")),
        Err(_) => Err("libtorch raised an error (see above)".into()),
    }
}

/// Encodes a small grey-ramp video with FFmpeg, probes it and decodes frame 5 by random access;
/// each pixel must be the grey level that frame was written with.
fn decode_check() -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let path = dir.path().join("doctor.mp4");
    let encoder = r3m_video::synth::write_gray_ramp(&path, 64, 48, 8).map_err(|e| e.to_string())?;
    let info = r3m_video::probe(&path).map_err(|e| e.to_string())?;
    if info.frame_count() != 8 {
        return Err(format!("wrote 8 frames, probe counted {}", info.frame_count()));
    }
    let mut reader =
        r3m_video::VideoReader::open(&path, r3m_video::DecodeOptions::default()).map_err(|e| e.to_string())?;
    let frames = reader.read_frames(&[5]).map_err(|e| e.to_string())?;
    let want = r3m_video::synth::ramp_luma(5);
    let f = &frames[0];
    let worst = f.data.iter().map(|&v| (i32::from(v) - i32::from(want)).abs()).max().unwrap_or(255);
    if f.width != 64 || f.height != 48 || worst > 3 {
        return Err(format!("frame 5: {}x{}, max error {worst} from grey {want}", f.width, f.height));
    }
    Ok(format!("{encoder} mp4 64x48, 8 frames; frame 5 by seek = grey {want} (max error {worst})"))
}
