//! The strong cheap from-scratch baseline: a shallow ConvNet trained end to end with random-shift
//! augmentation, as in DrQ (Kostrikov et al. 2020) and "On Pre-Training for Visuo-Motor Control:
//! Revisiting a Learning-from-Scratch Baseline" (Hansen et al. 2022).
//!
//! Architecture (DrQ's encoder): conv 3→32 3×3 stride 2, three conv 32→32 3×3 stride 1, ReLU after
//! each, flatten, Linear → 50, LayerNorm, tanh. Input: RGB in 0..255, scaled to [-0.5, 0.5].

use r3m_data::Rng;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Output size of the shallow encoder.
pub const SHALLOW_DIM: i64 = 50;

/// DrQ's shallow convolutional encoder.
#[derive(Debug)]
pub struct ShallowEncoder {
    convs: Vec<nn::Conv2D>,
    fc: nn::Linear,
    ln: nn::LayerNorm,
}

/// Spatial side after the four convolutions for a square input of `size`.
fn out_side(size: i64) -> i64 {
    (size - 3) / 2 + 1 - 6
}

impl ShallowEncoder {
    /// Builds the encoder for square inputs of `size` (≥ 16) under `p`.
    pub fn new(p: &nn::Path, size: i64) -> Self {
        let mut convs = Vec::new();
        for i in 0..4 {
            let cfg = nn::ConvConfig { stride: if i == 0 { 2 } else { 1 }, ..Default::default() };
            convs.push(nn::conv2d(p / format!("conv{i}"), if i == 0 { 3 } else { 32 }, 32, 3, cfg));
        }
        let side = out_side(size).max(1);
        let fc = nn::linear(p / "fc", 32 * side * side, SHALLOW_DIM, Default::default());
        let ln = nn::layer_norm(p / "ln", vec![SHALLOW_DIM], Default::default());
        ShallowEncoder { convs, fc, ln }
    }

    /// Images `[N, 3, H, W]` in 0..255 → `[N, 50]`.
    pub fn forward(&self, images: &Tensor) -> Tensor {
        let mut h = images.to_kind(Kind::Float) / 255.0 - 0.5;
        for c in &self.convs {
            h = c.forward(&h).relu();
        }
        self.ln.forward(&self.fc.forward(&h.flatten(1, -1))).tanh()
    }
}

/// DrQ's random shift: pad each image by `pad` pixels (replicating the border) and crop back at a
/// random offset per image, drawn from `rng`. `[N, C, H, W]` → same shape.
pub fn random_shift(x: &Tensor, pad: i64, rng: &mut Rng) -> Tensor {
    let size = x.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    let padded = x.to_kind(Kind::Float).replication_pad2d([pad, pad, pad, pad]);
    let crops: Vec<Tensor> = (0..n)
        .map(|i| {
            let dy = rng.below((2 * pad + 1) as u64) as i64;
            let dx = rng.below((2 * pad + 1) as u64) as i64;
            padded.get(i).narrow(1, dy, h).narrow(2, dx, w)
        })
        .collect();
    Tensor::stack(&crops, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn shapes_and_shift() {
        let vs = nn::VarStore::new(Device::Cpu);
        let e = ShallowEncoder::new(&vs.root(), 64);
        let x = Tensor::rand([3, 3, 64, 64], (Kind::Float, Device::Cpu)) * 255.0;
        assert_eq!(e.forward(&x).size(), vec![3, SHALLOW_DIM]);
        let mut rng = Rng::new(1);
        let s = random_shift(&x, 4, &mut rng);
        assert_eq!(s.size(), x.size());
        // a shift moves content by at most 4 pixels: the centre of every shifted image is found
        // in the original within that window
        let orig = x.get(0).narrow(1, 20, 24).narrow(2, 20, 24);
        let shifted = s.get(0);
        let found = (0..9).any(|dy| {
            (0..9).any(|dx| {
                let c = shifted.narrow(1, 16 + dy, 24).narrow(2, 16 + dx, 24);
                (c - &orig).abs().max().double_value(&[]) == 0.0
            })
        });
        assert!(found);
    }
}
