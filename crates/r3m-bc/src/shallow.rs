//! The strong cheap from-scratch baseline: a shallow ConvNet trained end to end with random-shift
//! augmentation, as in DrQ (Kostrikov et al. 2020) and "On Pre-Training for Visuo-Motor Control:
//! Revisiting a Learning-from-Scratch Baseline" (Hansen et al. 2022).
//!
//! The encoder itself is `r3m-model`'s [`r3m_model::Arch::Shallow`] (so `r3m train --arch shallow`
//! pretrains the same network and its checkpoints load as rows); this module holds DrQ's
//! augmentation.

use r3m_data::Rng;
use tch::{Kind, Tensor};

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
    fn shift_moves_content_by_at_most_pad() {
        let x = Tensor::rand([3, 3, 64, 64], (Kind::Float, Device::Cpu)) * 255.0;
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
