//! R3M's crop applied where the model runs: the decode workers draw each tuple's
//! RandomResizedCrop ([`r3m_data::Augment::RcTrajDeferred`]) and send the frames whole; here the
//! crops are cut and resized on the training device in one `grid_sample`, so a CPU that feeds a GPU
//! only decodes. The sampling positions are [`r3m_data::Crop::resize`]'s (half-pixel centres,
//! clamped to the crop); the weights are exact where that function rounds them to 1/256, so a
//! pixel differs from it by at most a grey level or two.

use r3m_data::Crop;
use tch::{Device, Kind, Tensor};

/// Sampling positions along one axis: output pixel `i` of `out` reads the crop at
/// `(i + 0.5)·len/out − 0.5`, clamped to the crop, as a `grid_sample` coordinate of an image
/// `full` pixels wide (align_corners = false).
fn axis(start: u32, len: u32, full: u32, out: i64) -> impl Iterator<Item = f32> {
    let s = f64::from(len) / out as f64;
    (0..out).map(move |i| {
        let f = ((i as f64 + 0.5) * s - 0.5).clamp(0.0, f64::from(len - 1));
        let x = f64::from(start) + f;
        ((2.0 * x + 1.0) / f64::from(full) - 1.0) as f32
    })
}

/// Cuts `crops[t]` out of the 5 frames of tuple `t` of `frames` (`[5·n, 3, h, w]` u8, on any
/// device) and resizes them to `size`×`size` (bilinear): `[5·n, 3, size, size]` u8 on the same
/// device. The positions go up in one copy (`upload`).
pub fn crop_resize(frames: &Tensor, crops: &[Crop], size: i64, upload: impl Fn(Tensor) -> Tensor) -> Tensor {
    let s = frames.size();
    let (h, w) = (s[2] as u32, s[3] as u32);
    let n = crops.len() as i64;
    assert_eq!(s[0], 5 * n, "5 frames per crop");
    let mut pos: Vec<f32> = Vec::with_capacity((2 * n * size) as usize);
    for c in crops {
        pos.extend(axis(c.left, c.width, w, size));
    }
    for c in crops {
        pos.extend(axis(c.top, c.height, h, size));
    }
    let pos = upload(Tensor::from_slice(&pos).view([2, n, size]));
    let (xs, ys) = (pos.get(0), pos.get(1));
    // grid[t, y, x] = (xs[t, x], ys[t, y])
    let gx = xs.unsqueeze(1).expand([n, size, size], false);
    let gy = ys.unsqueeze(2).expand([n, size, size], false);
    let grid = Tensor::stack(&[gx, gy], 3).repeat_interleave_self_int(5, 0, None);
    // bilinear (0), border padding (1): positions stay inside the crop anyway
    let out = frames.to_kind(Kind::Float).grid_sampler_2d(&grid, 0, 1, false);
    out.round().clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// Whether the crop runs on the training device by default: on a GPU, where the CPU should only
/// decode; on the CPU it stays in the decode workers (which run beside the step).
pub fn default_on_device(device: Device) -> bool {
    matches!(device, Device::Cuda(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use r3m_data::Rng;

    #[test]
    fn equals_the_decode_workers_crop_within_two_grey_levels() {
        let (w, h, size) = (72u32, 64u32, 48i64);
        let mut rng = Rng::new(5);
        // 4 tuples of 5 noisy frames, crops from R3M's range (scale 0.2–1: up- and downscaling)
        let frames: Vec<Vec<u8>> = (0..20).map(|_| (0..w * h * 3).map(|_| rng.below(256) as u8).collect()).collect();
        let mut crops: Vec<Crop> = (0..3).map(|_| Crop::random(w, h, (0.2, 1.0), &mut rng)).collect();
        crops.push(Crop { left: 3, top: 5, width: 10, height: 7 });
        let flat: Vec<u8> = frames.concat();
        let t = Tensor::from_slice(&flat).view([20, h as i64, w as i64, 3]).permute([0, 3, 1, 2]);
        let got = crop_resize(&t, &crops, size, |x| x).permute([0, 2, 3, 1]).contiguous();
        let got: Vec<u8> = Vec::try_from(got.view([-1])).unwrap();
        let mut want = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            want.extend(crops[i / 5].resize(f, w, h, size as u32, size as u32));
        }
        assert_eq!(got.len(), want.len());
        let diffs: Vec<i32> = got.iter().zip(&want).map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs()).collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        eprintln!("device crop against the workers': max difference {max} grey level(s), mean {mean:.4}");
        assert!(max <= 2 && mean < 0.5, "max {max}, mean {mean}");
    }
}
