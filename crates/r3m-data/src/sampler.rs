//! R3M's 5-frame tuple per clip.
//!
//! For a clip of `L` frames (α = 0.2 by default), following the reference loader with 0-based
//! indices: `start ∈ [0, ⌊αL⌋]`, `end ∈ [⌊(1−α)L⌋ − 1, L − 1]`, `s1 ∈ [1, L − 2]`,
//! `s0 ∈ [0, s1 − 1]`, `s2 ∈ [s1 + 1, L − 1]` (strictly `s0 < s1 < s2`; the reference allows
//! `s2 = s1`, which makes the positive and the anchor the same frame). The tuple is returned in the
//! reference's stack order `[start, end, s0, s1, s2]`, which is what the objective expects.

use crate::rng::Rng;

/// Fewest frames a clip needs for a tuple (`s0 < s1 < s2`).
pub const MIN_CLIP_FRAMES: usize = 3;

/// One R3M tuple: frame indices within a clip, in stack order `[start, end, s0, s1, s2]`.
pub type Tuple = [usize; 5];

/// R3M's tuple sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TupleSampler {
    /// Fraction of the clip at each end where `start` and `end` are drawn.
    pub alpha: f64,
}

impl Default for TupleSampler {
    fn default() -> Self {
        TupleSampler { alpha: 0.2 }
    }
}

impl TupleSampler {
    /// Draws a tuple for a clip of `len` frames; `None` when the clip is shorter than
    /// [`MIN_CLIP_FRAMES`].
    pub fn sample(&self, len: usize, rng: &mut Rng) -> Option<Tuple> {
        if len < MIN_CLIP_FRAMES {
            return None;
        }
        let a = (self.alpha * len as f64) as usize;
        let start = rng.range(0, a.min(len - 1));
        let end_lo = (((1.0 - self.alpha) * len as f64) as usize).saturating_sub(1).min(len - 1);
        let end = rng.range(end_lo, len - 1);
        let s1 = rng.range(1, len - 2);
        let s0 = rng.range(0, s1 - 1);
        let s2 = rng.range(s1 + 1, len - 1);
        Some([start, end, s0, s1, s2])
    }

    /// The tuple's frames sorted ascending (for decoding) and, for each stack slot, the position
    /// of its frame in that sorted list.
    pub fn decode_order(t: &Tuple) -> (Vec<usize>, [usize; 5]) {
        let mut sorted: Vec<usize> = t.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut slot = [0usize; 5];
        for (k, f) in t.iter().enumerate() {
            slot[k] = sorted.binary_search(f).expect("frame is in the sorted list");
        }
        (sorted, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_respect_the_r3m_rules() {
        let s = TupleSampler::default();
        let mut rng = Rng::new(5);
        for len in [3usize, 4, 5, 10, 57, 300] {
            for _ in 0..2000 {
                let [start, end, s0, s1, s2] = s.sample(len, &mut rng).unwrap();
                assert!(s0 < s1 && s1 < s2 && s2 < len, "len {len}: {s0} {s1} {s2}");
                assert!(start <= (0.2 * len as f64) as usize && start < len);
                assert!(end < len && end + 1 >= (0.8 * len as f64) as usize);
            }
        }
        assert!(s.sample(2, &mut rng).is_none());
    }

    #[test]
    fn middle_frame_spreads_over_the_clip() {
        // s1 is uniform on [1, L-2]: its mean is near (L-1)/2
        let s = TupleSampler::default();
        let mut rng = Rng::new(9);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| s.sample(101, &mut rng).unwrap()[3] as f64).sum::<f64>() / n as f64;
        assert!((mean - 50.0).abs() < 1.0, "mean s1 {mean}");
    }

    #[test]
    fn decode_order_maps_slots() {
        let t = [2, 90, 10, 40, 41];
        let (sorted, slot) = TupleSampler::decode_order(&t);
        assert_eq!(sorted, vec![2, 10, 40, 41, 90]);
        for k in 0..5 {
            assert_eq!(sorted[slot[k]], t[k]);
        }
        let (sorted, slot) = TupleSampler::decode_order(&[0, 4, 0, 1, 4]);
        assert_eq!(sorted, vec![0, 1, 4]);
        assert_eq!(slot, [0, 2, 0, 1, 2]);
    }
}
