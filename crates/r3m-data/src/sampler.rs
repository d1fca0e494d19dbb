//! R3M's 5-frame tuple per clip.
//!
//! For a clip of `L` frames (α = 0.2 by default), following the reference loader (which numbers
//! frames from 1) with 0-based indices: `start ∈ [0, ⌊αL⌋]`, `end ∈ [⌊(1−α)L⌋ − 2, L − 2]`,
//! `s1 ∈ [1, L − 2]`,
//! `s0 ∈ [0, s1 − 1]`, `s2 ∈ [s1 + 1, L − 1]` (strictly `s0 < s1 < s2`; the reference allows
//! `s2 = s1`, which makes the positive and the anchor the same frame). The tuple is returned in the
//! reference's stack order `[start, end, s0, s1, s2]`, which is what the objective expects.
//!
//! With a positive window W and a negative gap G (frames, or seconds at the clip's rate), the
//! tuple is drawn by time instead: the anchor `s2` anywhere, the positive `s1` with
//! `1 ≤ |s1 − s2| ≤ W`, and the in-clip negative `s0` beyond `s1` on the far side from `s2` with
//! `|s0 − s2| ≥ G` (and ≥ W + 1), so `s1` still lies between `s0` and `s2` and both of R3M's
//! ordering terms keep their meaning. The three may then run backwards in time (`s0 > s1 > s2`);
//! every objective only needs `s1` between the other two. A clip too short for a window/gap draw
//! falls back to R3M's rule for that tuple.

use crate::rng::Rng;

/// Fewest frames a clip needs for a tuple (`s0 < s1 < s2`).
pub const MIN_CLIP_FRAMES: usize = 3;

/// One R3M tuple: frame indices within a clip, in stack order `[start, end, s0, s1, s2]`.
pub type Tuple = [usize; 5];

/// A span of time within a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// A number of frames.
    Frames(usize),
    /// Seconds, converted with the clip's frame rate.
    Seconds(f64),
}

impl Span {
    /// The span in frames at `fps` (at least 1).
    pub fn frames(&self, fps: f64) -> usize {
        match *self {
            Span::Frames(n) => n.max(1),
            Span::Seconds(s) => ((s * fps).round() as usize).max(1),
        }
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    /// `12` or `12f` (frames), `0.5s` (seconds).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("'{s}' is not a span: give frames (12, 12f) or seconds (0.5s)");
        if let Some(x) = t.strip_suffix('s') {
            let v: f64 = x.trim().parse().map_err(|_| bad())?;
            return if v.is_finite() && v > 0.0 { Ok(Span::Seconds(v)) } else { Err(bad()) };
        }
        let n: usize = t.strip_suffix('f').unwrap_or(t).trim().parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok(Span::Frames(n))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Span::Frames(n) => write!(f, "{n}f"),
            Span::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

/// R3M's tuple sampler, optionally with a positive window and a negative gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TupleSampler {
    /// Fraction of the clip at each end where `start` and `end` are drawn.
    pub alpha: f64,
    /// Positives within this distance of the anchor (`None`: R3M's ordering rule).
    pub positive_window: Option<Span>,
    /// In-clip negatives at least this far from the anchor (`None`: just beyond the positive).
    pub negative_gap: Option<Span>,
}

impl Default for TupleSampler {
    fn default() -> Self {
        TupleSampler { alpha: 0.2, positive_window: None, negative_gap: None }
    }
}

impl TupleSampler {
    /// Draws a tuple for a clip of `len` frames at `fps`; `None` when the clip is shorter than
    /// [`MIN_CLIP_FRAMES`].
    pub fn sample(&self, len: usize, fps: f64, rng: &mut Rng) -> Option<Tuple> {
        if len < MIN_CLIP_FRAMES {
            return None;
        }
        let a = (self.alpha * len as f64) as usize;
        let start = rng.range(0, a.min(len - 1));
        // the reference's `randint(int((1 − α)L) − 1, L)` over frames numbered from 1
        let end_lo = (((1.0 - self.alpha) * len as f64) as usize).saturating_sub(2).min(len - 2);
        let end = rng.range(end_lo, len - 2);
        if self.positive_window.is_some() || self.negative_gap.is_some() {
            if let Some([s0, s1, s2]) = self.sample_by_time(len, fps, rng) {
                return Some([start, end, s0, s1, s2]);
            }
        }
        let s1 = rng.range(1, len - 2);
        let s0 = rng.range(0, s1 - 1);
        let s2 = rng.range(s1 + 1, len - 1);
        Some([start, end, s0, s1, s2])
    }

    /// `[s0, s1, s2]` by window and gap, or `None` when the clip has no room for them.
    fn sample_by_time(&self, len: usize, fps: f64, rng: &mut Rng) -> Option<[usize; 3]> {
        let w = self.positive_window.map_or(len, |s| s.frames(fps)).min(len - 1);
        let g = self.negative_gap.map_or(2, |s| s.frames(fps)).max(w + 1);
        if g > len - 1 {
            return None;
        }
        // anchors with a negative g frames away on at least one side
        let n_anchor = 2 * (len - g);
        let mut k = rng.range(0, n_anchor - 1);
        // forward: the negative after the anchor; backward: before it
        let forward = k < len - g;
        if !forward {
            k -= len - g;
        }
        let s2 = if forward { k } else { g + k };
        let room = if forward { len - 1 - s2 } else { s2 };
        let d1 = rng.range(1, w.min(room));
        let d0 = rng.range(g, room);
        Some(if forward { [s2 + d0, s2 + d1, s2] } else { [s2 - d0, s2 - d1, s2] })
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
                let [start, end, s0, s1, s2] = s.sample(len, 30.0, &mut rng).unwrap();
                assert!(s0 < s1 && s1 < s2 && s2 < len, "len {len}: {s0} {s1} {s2}");
                assert!(start <= (0.2 * len as f64) as usize && start < len);
                assert!(end + 1 < len && end + 2 >= (0.8 * len as f64) as usize);
            }
        }
        assert!(s.sample(2, 30.0, &mut rng).is_none());
    }

    #[test]
    fn middle_frame_spreads_over_the_clip() {
        // s1 is uniform on [1, L-2]: its mean is near (L-1)/2
        let s = TupleSampler::default();
        let mut rng = Rng::new(9);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| s.sample(101, 30.0, &mut rng).unwrap()[3] as f64).sum::<f64>() / n as f64;
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

    #[test]
    fn window_and_gap_bound_positives_and_negatives() {
        let s = TupleSampler {
            positive_window: Some(Span::Frames(3)),
            negative_gap: Some(Span::Seconds(0.5)),
            ..Default::default()
        };
        let mut rng = Rng::new(3);
        let (mut fwd, mut back) = (0, 0);
        for len in [17usize, 40, 300] {
            for _ in 0..3000 {
                let [_, _, s0, s1, s2] = s.sample(len, 30.0, &mut rng).unwrap();
                let (d1, d0) = (s1.abs_diff(s2), s0.abs_diff(s2));
                assert!((1..=3).contains(&d1), "len {len}: positive {s1} anchor {s2}");
                assert!(d0 >= 15, "len {len}: negative {s0} anchor {s2}");
                assert!(s0.max(s1).max(s2) < len);
                // s1 lies between s0 and s2
                assert!((s0 < s1 && s1 < s2) || (s0 > s1 && s1 > s2));
                if s0 > s2 {
                    fwd += 1
                } else {
                    back += 1
                }
            }
        }
        assert!(fwd > 2000 && back > 2000, "both directions drawn: {fwd} {back}");
        // too short for the gap: R3M's rule
        let [_, _, s0, s1, s2] = s.sample(10, 30.0, &mut rng).unwrap();
        assert!(s0 < s1 && s1 < s2);
    }

    #[test]
    fn spans_parse() {
        assert_eq!("12".parse::<Span>().unwrap(), Span::Frames(12));
        assert_eq!("4f".parse::<Span>().unwrap(), Span::Frames(4));
        assert_eq!("0.5s".parse::<Span>().unwrap(), Span::Seconds(0.5));
        assert_eq!(Span::Seconds(0.5).frames(30.0), 15);
        for bad in ["0", "-1s", "x", "", "1.5"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }
}
