//! How an encoder wants its pixels: one typed spec ([`PixelSpec`]) that `r3m train` writes into
//! every checkpoint's `config.json` (`preprocess`) and `r3m embed` into every Parquet file
//! (`r3m.preprocess`), so a reader outside r3m (`examples/python/load_checkpoint.py`) feeds the
//! encoder exactly what r3m feeds it. The normalisation constants are the ones the
//! [`crate::Encoder`] itself applies ([`Arch::normalization`]).

use serde::{Deserialize, Serialize};

use crate::Arch;

/// [`PixelSpec::format`].
pub const PIXELS_FORMAT: &str = "r3m-pixels-1";

/// What the frozen encoder sees: the frame resized and cropped, then `(x / scale − mean) / std`
/// per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelSpec {
    /// [`PIXELS_FORMAT`].
    pub format: String,
    /// Channel order of the input: `RGB`.
    pub channels: String,
    /// The input's numbers: 8-bit, 0..255.
    pub input: String,
    /// How a frame becomes the input: its shorter side scaled to `short_side` (bilinear, FFmpeg's
    /// swscale), then the centre `size`×`size` crop.
    pub resize: String,
    /// The shorter side after scaling: `size·8/7` (R3M's Resize(256) + CenterCrop(224) at 224).
    pub short_side: u32,
    /// The square input side.
    pub size: u32,
    /// Pixels are divided by this first.
    pub scale: f64,
    /// Then this is subtracted, per channel (R, G, B).
    pub mean: [f64; 3],
    /// And the result divided by this, per channel.
    pub std: [f64; 3],
}

impl PixelSpec {
    /// The spec of an `arch` encoder at input side `size`, whose frames are first scaled to a
    /// shorter side of `short_side` (`r3m_video::Resize::eval`'s rule, which the caller applies).
    pub fn new(arch: Arch, size: u32, short_side: u32) -> Self {
        let (mean, std) = arch.normalization();
        PixelSpec {
            format: PIXELS_FORMAT.into(),
            channels: "RGB".into(),
            input: "u8".into(),
            resize: "shorter side to short_side (bilinear), centre crop size x size".into(),
            short_side,
            size,
            scale: 255.0,
            mean,
            std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnets_use_imagenet_statistics_and_the_shallow_convnet_drqs_scaling() {
        let r = PixelSpec::new(Arch::Resnet18, 224, 256);
        assert_eq!((r.mean[0], r.std[2]), (0.485, 0.225));
        let s = PixelSpec::new(Arch::Shallow, 112, 128);
        assert_eq!((s.mean, s.std), ([0.5; 3], [1.0; 3]));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["format"], PIXELS_FORMAT);
        assert_eq!(serde_json::from_value::<PixelSpec>(v).unwrap(), s);
    }
}
