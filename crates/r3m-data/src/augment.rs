//! Augmentation on u8 RGB frames `[H, W, 3]`, before anything becomes a tensor.
//!
//! R3M's `rctraj` is one RandomResizedCrop (scale 0.2–1.0, ratio 3/4–4/3) drawn per tuple and
//! applied to all of its frames, so the frames of a tuple stay comparable. Crop parameters follow
//! torchvision's `RandomResizedCrop.get_params` (ten tries, then a centre crop with the ratio
//! clamped); the crop is resized with bilinear interpolation (half-pixel centres, no antialias).

use crate::rng::Rng;

/// How frames are augmented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Augment {
    /// No augmentation: frames pass through (they must already be the output size).
    None,
    /// One RandomResizedCrop per tuple, shared by all its frames (R3M's default).
    RcTraj {
        /// Output side.
        size: u32,
        /// Area fraction range.
        scale: (f64, f64),
    },
    /// R3M's crop, drawn exactly as [`Augment::RcTraj`] draws it, but not applied: the frames pass
    /// through whole and the crop goes with the batch ([`crate::Batch::crops`]), to be cut and
    /// resized where the model runs (a GPU), so the CPU only decodes.
    RcTrajDeferred {
        /// Output side (where the crop is applied).
        size: u32,
        /// Area fraction range.
        scale: (f64, f64),
    },
    /// An independent RandomResizedCrop per frame.
    PerFrame {
        /// Output side.
        size: u32,
        /// Area fraction range.
        scale: (f64, f64),
    },
}

impl Augment {
    /// R3M's default at `size`.
    pub fn rctraj(size: u32) -> Self {
        Augment::RcTraj { size, scale: (0.2, 1.0) }
    }

    /// Augments the frames of one tuple, each `w`×`h` RGB; returns the output size and the new
    /// frames (the sources are only read, so decoded frames need no copy first).
    pub fn apply(&self, frames: &[&[u8]], w: u32, h: u32, rng: &mut Rng) -> (u32, u32, Vec<Vec<u8>>) {
        let (w, h, out, _) = self.apply_deferring(frames, w, h, rng);
        (w, h, out)
    }

    /// [`Augment::apply`], and the crop [`Augment::RcTrajDeferred`] leaves to the caller.
    pub fn apply_deferring(
        &self,
        frames: &[&[u8]],
        w: u32,
        h: u32,
        rng: &mut Rng,
    ) -> (u32, u32, Vec<Vec<u8>>, Option<Crop>) {
        let (w, h, out) = match *self {
            Augment::RcTrajDeferred { scale, .. } => {
                let c = Crop::random(w, h, scale, rng);
                return (w, h, frames.iter().map(|f| f.to_vec()).collect(), Some(c));
            }
            _ => self.apply_now(frames, w, h, rng),
        };
        (w, h, out, None)
    }

    fn apply_now(&self, frames: &[&[u8]], w: u32, h: u32, rng: &mut Rng) -> (u32, u32, Vec<Vec<u8>>) {
        match *self {
            Augment::None | Augment::RcTrajDeferred { .. } => (w, h, frames.iter().map(|f| f.to_vec()).collect()),
            Augment::RcTraj { size, scale } => {
                let c = Crop::random(w, h, scale, rng);
                (size, size, frames.iter().map(|f| c.resize(f, w, h, size, size)).collect())
            }
            Augment::PerFrame { size, scale } => {
                let out = frames.iter().map(|f| Crop::random(w, h, scale, rng).resize(f, w, h, size, size)).collect();
                (size, size, out)
            }
        }
    }
}

/// A crop window in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Crop {
    /// The whole `w`×`h` frame.
    pub fn full(w: u32, h: u32) -> Self {
        Crop { left: 0, top: 0, width: w, height: h }
    }

    /// torchvision's `RandomResizedCrop.get_params` with ratio (3/4, 4/3).
    pub fn random(w: u32, h: u32, scale: (f64, f64), rng: &mut Rng) -> Self {
        let area = f64::from(w) * f64::from(h);
        let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
        for _ in 0..10 {
            let target = area * (scale.0 + (scale.1 - scale.0) * rng.unit());
            let ratio = (lo + (hi - lo) * rng.unit()).exp();
            let cw = (target * ratio).sqrt().round() as i64;
            let ch = (target / ratio).sqrt().round() as i64;
            if cw > 0 && ch > 0 && cw <= i64::from(w) && ch <= i64::from(h) {
                let top = rng.range(0, (i64::from(h) - ch) as usize) as u32;
                let left = rng.range(0, (i64::from(w) - cw) as usize) as u32;
                return Crop { left, top, width: cw as u32, height: ch as u32 };
            }
        }
        // fallback: centre crop, ratio clamped to the range
        let in_ratio = f64::from(w) / f64::from(h);
        let (cw, ch) = if in_ratio < 3.0 / 4.0 {
            (w, ((f64::from(w) / (3.0 / 4.0)).round() as u32).min(h))
        } else if in_ratio > 4.0 / 3.0 {
            (((f64::from(h) * (4.0 / 3.0)).round() as u32).min(w), h)
        } else {
            (w, h)
        };
        Crop { left: (w - cw) / 2, top: (h - ch) / 2, width: cw, height: ch }
    }

    /// Cuts this window out of a `w`×`h` RGB frame and resizes it to `dw`×`dh` (bilinear,
    /// half-pixel centres, edge clamp).
    pub fn resize(&self, src: &[u8], w: u32, h: u32, dw: u32, dh: u32) -> Vec<u8> {
        debug_assert_eq!(src.len(), (w * h * 3) as usize);
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (dw, dh) = (dw as usize, dh as usize);
        let (x0, y0, stride) = (self.left as usize, self.top as usize, w as usize * 3);
        let mut out = vec![0u8; dw * dh * 3];
        if (sw, sh) == (dw, dh) {
            for y in 0..dh {
                let s = (y0 + y) * stride + x0 * 3;
                out[y * dw * 3..(y + 1) * dw * 3].copy_from_slice(&src[s..s + dw * 3]);
            }
            return out;
        }
        // separable bilinear in 8-bit fixed point: blend two source rows vertically into `tmp`
        // (crop width only), then interpolate horizontally with precomputed taps
        let sx = sw as f64 / dw as f64;
        let xs: Vec<(usize, usize, u32)> = (0..dw)
            .map(|x| {
                let f = ((x as f64 + 0.5) * sx - 0.5).max(0.0);
                let i = (f.floor() as usize).min(sw - 1);
                let j = (i + 1).min(sw - 1);
                (i * 3, j * 3, ((f - i as f64) * 256.0).round() as u32)
            })
            .collect();
        let sy = sh as f64 / dh as f64;
        let mut tmp = vec![0u32; sw * 3];
        for (y, row) in out.chunks_exact_mut(dw * 3).enumerate() {
            let f = ((y as f64 + 0.5) * sy - 0.5).max(0.0);
            let i = (f.floor() as usize).min(sh - 1);
            let j = (i + 1).min(sh - 1);
            let wy = ((f - i as f64) * 256.0).round() as u32;
            let r0 = &src[(y0 + i) * stride + x0 * 3..][..sw * 3];
            let r1 = &src[(y0 + j) * stride + x0 * 3..][..sw * 3];
            for ((t, &a), &b) in tmp.iter_mut().zip(r0).zip(r1) {
                *t = u32::from(a) * (256 - wy) + u32::from(b) * wy;
            }
            for (px, &(a, b, wx)) in row.chunks_exact_mut(3).zip(&xs) {
                for c in 0..3 {
                    let v = tmp[a + c] * (256 - wx) + tmp[b + c] * wx;
                    px[c] = ((v + (1 << 15)) >> 16) as u8;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).flat_map(move |x| [(x * 4) as u8, (y * 4) as u8, 128])).collect()
    }

    #[test]
    fn crops_stay_inside_and_cover_the_scale_range() {
        let mut rng = Rng::new(1);
        let mut fracs = Vec::new();
        for _ in 0..2000 {
            let c = Crop::random(64, 48, (0.2, 1.0), &mut rng);
            assert!(c.width >= 1 && c.height >= 1);
            assert!(c.left + c.width <= 64 && c.top + c.height <= 48, "{c:?}");
            fracs.push(f64::from(c.width * c.height) / (64.0 * 48.0));
        }
        let min = fracs.iter().copied().fold(1.0, f64::min);
        let max = fracs.iter().copied().fold(0.0, f64::max);
        assert!(min < 0.25 && max > 0.9, "area fractions span {min}..{max}");
    }

    #[test]
    fn identity_crop_is_a_copy_and_resize_interpolates() {
        let img = gradient(32, 16);
        let c = Crop::full(32, 16);
        assert_eq!(c.resize(&img, 32, 16, 32, 16), img);
        // halving a linear ramp keeps it linear: pixel x of the output samples at 2x + 0.5
        let half = c.resize(&img, 32, 16, 16, 8);
        for x in 0..16usize {
            let want = ((2 * x) as f32 + 0.5) * 4.0;
            assert!((f32::from(half[x * 3]) - want).abs() <= 1.0, "x {x}: {} vs {want}", half[x * 3]);
        }
        // a crop picks the right region
        let win = Crop { left: 8, top: 4, width: 4, height: 4 };
        let out = win.resize(&img, 32, 16, 4, 4);
        assert_eq!(&out[..3], &[32, 16, 128]);
    }

    #[test]
    fn rctraj_shares_one_crop_per_tuple() {
        let base = gradient(40, 30);
        let src = vec![base.as_slice(); 5];
        let mut rng = Rng::new(4);
        let (w, h, frames) = Augment::rctraj(16).apply(&src, 40, 30, &mut rng);
        assert_eq!((w, h), (16, 16));
        assert!(frames.iter().all(|f| f == &frames[0] && f.len() == 16 * 16 * 3));
        let (_, _, frames2) = Augment::PerFrame { size: 16, scale: (0.2, 1.0) }.apply(&src, 40, 30, &mut rng);
        assert!(frames2.iter().any(|f| f != &frames2[0]), "per-frame crops should differ");
    }

    #[test]
    fn the_deferred_crop_is_the_one_rctraj_applies() {
        let base = gradient(40, 30);
        let src = vec![base.as_slice(); 5];
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        let (w, h, now) = Augment::rctraj(16).apply(&src, 40, 30, &mut a);
        let deferred = Augment::RcTrajDeferred { size: 16, scale: (0.2, 1.0) };
        let (dw, dh, whole, crop) = deferred.apply_deferring(&src, 40, 30, &mut b);
        assert_eq!((dw, dh), (40, 30));
        assert!(whole.iter().all(|f| f == &base), "frames pass through whole");
        let c = crop.unwrap();
        assert_eq!(c.resize(&base, 40, 30, w, h), now[0], "the same crop, applied later");
        assert_eq!(a.state(), b.state(), "the same random draws");
    }
}
