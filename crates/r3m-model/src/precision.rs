//! Compute precision and memory layout.
//!
//! * [`Precision::Bf16`] runs the encoder under libtorch's bf16 autocast (convolutions and matrix
//!   products in bf16, weights kept in fp32, BatchNorm statistics in fp32) on CPU or CUDA. tch only
//!   switches CUDA autocast, so the CPU switch comes from a small C++ shim (`src/shim.cpp`) compiled
//!   against the same libtorch. Embeddings always come back as fp32 and the loss is computed in fp32.
//! * Channels-last (NHWC strides) for images and convolution weights lets oneDNN skip its layout
//!   reorders; on CPU it is the larger win of the two (docs/guide/train.md, "Precision").
//!
//! bf16 pays only on hardware with bf16 units (CUDA; Xeons with AMX or AVX512-BF16). On a CPU
//! without them PyTorch emulates bf16 and it is several times *slower* than fp32, so
//! [`Precision::auto`] picks bf16 only where the hardware has it.

use tch::{nn, Device, Tensor};

/// Arithmetic of the encoder's forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// fp32 throughout.
    Fp32,
    /// bf16 autocast (fp32 master weights, fp32 loss).
    Bf16,
}

impl Precision {
    /// The fastest precision for `device` whose results track fp32: bf16 on CUDA and on CPUs with
    /// bf16 units, fp32 elsewhere.
    pub fn auto(device: Device) -> Precision {
        match device {
            Device::Cuda(_) => Precision::Bf16,
            _ if cpu_has_bf16_units() => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }

    /// `fp32` / `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "f32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision '{other}' (expected fp32 or bf16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this CPU has native bf16 arithmetic (AMX-BF16 or AVX512-BF16), from `/proc/cpuinfo`.
pub fn cpu_has_bf16_units() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "amx_bf16" || f == "avx512_bf16"))
        })
        .unwrap_or(false)
}

extern "C" {
    fn r3m_autocast_enter(device: i32, prev_dtype: *mut i32) -> i32;
    fn r3m_autocast_exit(device: i32, prev: i32, prev_dtype: i32) -> i32;
    fn r3m_autocast_enabled(device: i32) -> i32;
    fn r3m_autocast_dtype(device: i32) -> i32;
    #[cfg(test)]
    fn r3m_autocast_set_dtype(device: i32, dtype: i32) -> i32;
}

fn device_code(device: Device) -> i32 {
    i32::from(matches!(device, Device::Cuda(_)))
}

/// Whether bf16 autocast is on for `device`'s type right now (on this thread).
pub fn autocast_enabled(device: Device) -> bool {
    // SAFETY: the shim takes and returns plain integers and catches every C++ exception.
    unsafe { r3m_autocast_enabled(device_code(device)) == 1 }
}

/// The autocast dtype for `device`'s type right now, as libtorch's ScalarType number.
pub fn autocast_dtype(device: Device) -> i32 {
    // SAFETY: the shim takes and returns plain integers and catches every C++ exception.
    unsafe { r3m_autocast_dtype(device_code(device)) }
}

struct AutocastGuard {
    device: i32,
    prev: i32,
    prev_dtype: i32,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: as above; pairs with the enter call that made this guard.
        unsafe { r3m_autocast_exit(self.device, self.prev, self.prev_dtype) };
    }
}

/// Runs `f` with `precision`'s autocast on for `device` (nothing changes for fp32). The
/// cast-weight cache is cleared when the outermost region ends, as `torch.autocast` does, so an
/// optimiser step between two regions is always seen.
pub fn autocast<T>(device: Device, precision: Precision, f: impl FnOnce() -> T) -> T {
    if precision == Precision::Fp32 {
        return f();
    }
    let code = device_code(device);
    // SAFETY: as above.
    let mut prev_dtype = 0i32;
    // SAFETY: as above; prev_dtype is a live local the shim writes once.
    let prev = unsafe { r3m_autocast_enter(code, &mut prev_dtype) };
    assert!(prev >= 0, "enabling libtorch autocast failed");
    let _guard = AutocastGuard { device: code, prev, prev_dtype };
    f()
}

/// A view of the same values with channels-last (NHWC) strides; 4-D tensors only, others are
/// returned as they are. Copies unless `t` already has those strides.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D tensor has channels-last strides.
pub fn is_channels_last(t: &Tensor) -> bool {
    if t.dim() != 4 {
        return false;
    }
    let (s, st) = (t.size(), t.stride());
    st[1] == 1 && st[3] == s[1] && st[2] == s[1] * s[3] && st[0] == s[1] * s[2] * s[3]
}

/// Gives every 4-D variable of `vs` (the convolution weights) channels-last strides in place.
pub fn vars_to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 && !is_channels_last(&v) {
                let cl = channels_last(&v.detach());
                v.set_data(&cl);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocast_restores_the_callers_state_and_dtype() {
        // a caller's own autocast setting (fp16, off) survives an r3m bf16 region, nested too
        const HALF: i32 = 5; // c10::ScalarType::Half
                             // SAFETY: plain integers
        assert_eq!(unsafe { r3m_autocast_set_dtype(0, HALF) }, 0);
        let before = (autocast_enabled(Device::Cpu), autocast_dtype(Device::Cpu));
        assert_eq!(before, (false, HALF));
        autocast(Device::Cpu, Precision::Bf16, || {
            assert!(autocast_enabled(Device::Cpu));
            assert_eq!(autocast_dtype(Device::Cpu), 15, "bf16 (ScalarType 15) inside");
            autocast(Device::Cpu, Precision::Bf16, || assert!(autocast_enabled(Device::Cpu)));
            assert!(autocast_enabled(Device::Cpu), "still on after the inner region");
        });
        assert_eq!((autocast_enabled(Device::Cpu), autocast_dtype(Device::Cpu)), before);
        // SAFETY: plain integers; back to libtorch's CPU default
        unsafe { r3m_autocast_set_dtype(0, 15) };
    }
    use tch::Kind;

    #[test]
    fn parse_and_names() {
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!("FP32".parse::<Precision>().unwrap(), Precision::Fp32);
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
        assert_eq!(Precision::auto(Device::Cuda(0)), Precision::Bf16);
    }

    #[test]
    fn cpu_autocast_switches_and_restores() {
        assert!(!autocast_enabled(Device::Cpu));
        let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        let (kind, inner) = autocast(Device::Cpu, Precision::Bf16, || (a.mm(&b).kind(), autocast_enabled(Device::Cpu)));
        assert_eq!(kind, Kind::BFloat16, "mm under CPU autocast runs in bf16");
        assert!(inner);
        assert!(!autocast_enabled(Device::Cpu), "autocast is off again after the region");
        assert_eq!(a.mm(&b).kind(), Kind::Float);
        let k = autocast(Device::Cpu, Precision::Fp32, || a.mm(&b).kind());
        assert_eq!(k, Kind::Float);
        // nested regions restore the outer state
        autocast(Device::Cpu, Precision::Bf16, || {
            autocast(Device::Cpu, Precision::Bf16, || ());
            assert!(autocast_enabled(Device::Cpu));
        });
        assert!(!autocast_enabled(Device::Cpu));
    }

    #[test]
    fn channels_last_keeps_values() {
        let t = Tensor::randn([2, 3, 5, 7], (Kind::Float, Device::Cpu));
        let c = channels_last(&t);
        assert!(is_channels_last(&c) && !is_channels_last(&t));
        assert_eq!(c.size(), t.size());
        assert!(c.equal(&t));
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[4, 3, 3, 3], 0.0, 1.0);
        let before = w.copy();
        vars_to_channels_last(&vs);
        let w2 = &vs.variables()["w"];
        assert!(is_channels_last(w2) && w2.requires_grad());
        assert!(w2.equal(&before));
    }
}
