//! Resize-on-decode with swscale, straight into RGB24, then rotation and centre crop.
//!
//! The colour conversion follows the ffmpeg CLI's `scale` filter: the YCbCr matrix comes from the
//! frame's colourspace tag (BT.601 when untagged) and the range from its range tag (or the pixel
//! format for `yuvj*`), so our frames match `ffmpeg -vf scale=W:H:flags=F -pix_fmt rgb24` output.

use std::ptr;

use ff::ffi;
use ffmpeg_next as ff;

/// How frames are sized on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Keep the (rotated) native size.
    Native,
    /// Scale to exactly `width`×`height`, ignoring aspect ratio.
    Stretch {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
    /// torchvision's `Resize(short)` + `CenterCrop((crop_h, crop_w))`: scale so the shorter side is
    /// `short` (the longer side truncated as torchvision does), then take the centre crop.
    ShortSideCrop {
        /// Target length of the shorter side.
        short: u32,
        /// Crop width.
        crop_w: u32,
        /// Crop height.
        crop_h: u32,
    },
}

impl Resize {
    /// R3M/torchvision evaluation preprocessing: Resize(256) + CenterCrop(224).
    pub const IMAGENET: Resize = Resize::ShortSideCrop { short: 256, crop_w: 224, crop_h: 224 };

    /// The frozen encoder's evaluation transform for crops of `size`: shorter side to
    /// `size·8/7` (R3M's Resize(256) + CenterCrop(224) at 224), centre crop `size`×`size`. The one
    /// definition `r3m embed`, `r3m view` and `r3m eval bc` (demos and rollouts) share.
    pub fn eval(size: u32) -> Resize {
        Resize::ShortSideCrop { short: Resize::eval_short_side(size), crop_w: size, crop_h: size }
    }

    /// The shorter side frames are scaled to for crops of `size`: `size·8/7` (at least `size`).
    /// The one place the rule is written (evaluation, and the training decode before its random
    /// crops).
    pub fn eval_short_side(size: u32) -> u32 {
        (size * 8 / 7).max(size)
    }

    /// Square stretch to `side`×`side`.
    pub fn square(side: u32) -> Resize {
        Resize::Stretch { width: side, height: side }
    }

    /// For a (display) frame of `w`×`h`: the size swscale scales to, and the crop window
    /// `(left, top, width, height)` taken from it.
    pub fn plan(&self, w: u32, h: u32) -> ((u32, u32), (u32, u32, u32, u32)) {
        match *self {
            Resize::Native => ((w, h), (0, 0, w, h)),
            Resize::Stretch { width, height } => ((width, height), (0, 0, width, height)),
            Resize::ShortSideCrop { short, crop_w, crop_h } => {
                let (rw, rh) = if w <= h {
                    (short, ((u64::from(short) * u64::from(h)) / u64::from(w)) as u32)
                } else {
                    (((u64::from(short) * u64::from(w)) / u64::from(h)) as u32, short)
                };
                let (rw, rh) = (rw.max(crop_w), rh.max(crop_h));
                // torchvision: int(round((h - crop_h) / 2.0)), Python rounds half to even
                let off = |total: u32, crop: u32| {
                    let d = f64::from(total - crop) / 2.0;
                    d.round_ties_even() as u32
                };
                ((rw, rh), (off(rw, crop_w), off(rh, crop_h), crop_w, crop_h))
            }
        }
    }

    /// Output size for a display frame of `w`×`h`.
    pub fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        let (_, (_, _, cw, ch)) = self.plan(w, h);
        (cw, ch)
    }
}

/// swscale interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scaler {
    /// `fast_bilinear`
    FastBilinear,
    /// `bilinear` (default; what the ffmpeg CLI's scale filter uses)
    #[default]
    Bilinear,
    /// `bicubic`
    Bicubic,
    /// `area`
    Area,
    /// `lanczos`
    Lanczos,
    /// `neighbor`
    Point,
}

impl Scaler {
    /// The name the ffmpeg CLI uses in `scale=...:flags=NAME`.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Scaler::FastBilinear => "fast_bilinear",
            Scaler::Bilinear => "bilinear",
            Scaler::Bicubic => "bicubic",
            Scaler::Area => "area",
            Scaler::Lanczos => "lanczos",
            Scaler::Point => "neighbor",
        }
    }

    fn flags(self) -> i32 {
        (match self {
            Scaler::FastBilinear => ffi::SWS_FAST_BILINEAR,
            Scaler::Bilinear => ffi::SWS_BILINEAR,
            Scaler::Bicubic => ffi::SWS_BICUBIC,
            Scaler::Area => ffi::SWS_AREA,
            Scaler::Lanczos => ffi::SWS_LANCZOS,
            Scaler::Point => ffi::SWS_POINT,
        }) as i32
    }
}

impl std::str::FromStr for Scaler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "fast_bilinear" => Scaler::FastBilinear,
            "bilinear" => Scaler::Bilinear,
            "bicubic" => Scaler::Bicubic,
            "area" => Scaler::Area,
            "lanczos" => Scaler::Lanczos,
            "neighbor" | "point" => Scaler::Point,
            _ => {
                return Err(format!("unknown scaler '{s}' (fast_bilinear, bilinear, bicubic, area, lanczos, neighbor)"))
            }
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    fmt: i32,
    w: i32,
    h: i32,
    colorspace: i32,
    range: i32,
}

/// Converts decoded frames to RGB24 at the planned size; caches its swscale context until the
/// input format changes.
pub(crate) struct Converter {
    resize: Resize,
    scaler: Scaler,
    rotation: u32,
    key: Option<Key>,
    sws: *mut ffi::SwsContext,
    tmp: Vec<u8>,
    tmp2: Vec<u8>,
}

// SAFETY: the SwsContext is owned exclusively by this struct and only used through &mut self.
unsafe impl Send for Converter {}

impl Drop for Converter {
    fn drop(&mut self) {
        if !self.sws.is_null() {
            // SAFETY: we own the context.
            unsafe { ffi::sws_freeContext(self.sws) };
        }
    }
}

impl Converter {
    pub(crate) fn new(resize: Resize, scaler: Scaler, rotation: u32) -> Self {
        Converter { resize, scaler, rotation, key: None, sws: ptr::null_mut(), tmp: Vec::new(), tmp2: Vec::new() }
    }

    /// Converts `frame` to RGB24; returns `(width, height, data)` with `data.len() == w*h*3`.
    pub(crate) fn convert(&mut self, frame: &ff::frame::Video) -> Result<(u32, u32, Vec<u8>), String> {
        // SAFETY: frame is a valid decoded AVFrame; its planes live as long as the borrow.
        let (fmt, w, h, cs, range, data, linesize) = unsafe {
            let f = frame.as_ptr();
            (
                (*f).format,
                (*f).width,
                (*f).height,
                (*f).colorspace as i32,
                (*f).color_range as i32,
                (*f).data,
                (*f).linesize,
            )
        };
        let planes = [data[0] as *const u8, data[1] as *const u8, data[2] as *const u8, data[3] as *const u8];
        let strides = [linesize[0], linesize[1], linesize[2], linesize[3]];
        // SAFETY: the planes and strides describe the decoded frame of w×h in format fmt.
        unsafe { self.convert_planes(fmt, w, h, cs, range, planes, strides) }
    }

    /// Converts a packed RGB24 image of `w`×`h` (the same resize, crop and scaler as decoded
    /// frames; no colour conversion).
    pub(crate) fn convert_rgb(&mut self, rgb: &[u8], w: u32, h: u32) -> Result<(u32, u32, Vec<u8>), String> {
        if w == 0 || h == 0 || rgb.len() != w as usize * h as usize * 3 {
            return Err(format!("RGB image of {w}x{h} needs {} bytes, got {}", w as usize * h as usize * 3, rgb.len()));
        }
        let planes = [rgb.as_ptr(), ptr::null(), ptr::null(), ptr::null()];
        let strides = [(w * 3) as i32, 0, 0, 0];
        let fmt = ffi::AVPixelFormat::AV_PIX_FMT_RGB24 as i32;
        // SAFETY: one packed plane of h rows of w*3 bytes, borrowed for the call.
        unsafe {
            self.convert_planes(fmt, w as i32, h as i32, 0, ffi::AVColorRange::AVCOL_RANGE_JPEG as i32, planes, strides)
        }
    }

    /// # Safety
    /// `planes`/`strides` must describe a valid `w`×`h` image in pixel format `fmt`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn convert_planes(
        &mut self,
        fmt: i32,
        w: i32,
        h: i32,
        cs: i32,
        range: i32,
        planes: [*const u8; 4],
        strides: [i32; 4],
    ) -> Result<(u32, u32, Vec<u8>), String> {
        if w <= 0 || h <= 0 {
            return Err(format!("decoded frame has no size ({w}x{h})"));
        }
        // the container's size was checked at probe; a stream can still change size mid-way
        if !crate::within_limits(w as u32, h as u32) {
            return Err(format!("decoded frame is {w}x{h}, over the size limit"));
        }
        let rotated = self.rotation % 180 == 90;
        let (dw, dh) = if rotated { (h as u32, w as u32) } else { (w as u32, h as u32) };
        let ((sw, sh), (cx, cy, cw, ch)) = self.resize.plan(dw, dh);
        // swscale works in coded orientation
        let (tw, th) = if rotated { (sh, sw) } else { (sw, sh) };
        if tw == 0 || th == 0 || tw > crate::MAX_SIDE || th > crate::MAX_SIDE {
            return Err(format!("output size {tw}x{th} is out of range (1..={} per side)", crate::MAX_SIDE));
        }
        if fmt == ffi::AVPixelFormat::AV_PIX_FMT_RGB24 as i32 && self.rotation == 0 && (tw, th) == (w as u32, h as u32)
        {
            // RGB in, no scaling: only the crop, byte for byte
            let mut out = Vec::with_capacity(cw as usize * ch as usize * 3);
            for y in cy..cy + ch {
                // SAFETY: row y of plane 0 holds at least w*3 bytes and cx + cw <= w.
                let row = unsafe {
                    std::slice::from_raw_parts(planes[0].add(y as usize * strides[0] as usize), w as usize * 3)
                };
                out.extend_from_slice(&row[cx as usize * 3..(cx + cw) as usize * 3]);
            }
            return Ok((cw, ch, out));
        }
        let key = Key { fmt, w, h, colorspace: cs, range };
        if self.key != Some(key) {
            self.reset(key, tw, th)?;
        }
        let direct = self.rotation == 0 && (cx, cy, cw, ch) == (0, 0, sw, sh);
        let n = tw as usize * th as usize * 3;
        let mut out = Vec::new();
        let buf = if direct { &mut out } else { &mut self.tmp };
        // one spare row: swscale's SIMD paths may write a little past the end of a tightly packed row
        buf.resize(n + tw as usize * 3 + 64, 0);
        let dst = [buf.as_mut_ptr(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut()];
        let dst_stride = [(tw * 3) as i32, 0, 0, 0];
        // SAFETY: src planes/strides are valid per this function's contract; dst is a tightly
        // packed buffer of exactly th rows of tw*3 bytes.
        let rows = unsafe {
            ffi::sws_scale(self.sws, planes.as_ptr(), strides.as_ptr(), 0, h, dst.as_ptr(), dst_stride.as_ptr())
        };
        if rows <= 0 {
            return Err(format!("swscale failed ({rows})"));
        }
        if direct {
            out.truncate(n);
            return Ok((cw, ch, out));
        }
        self.tmp.truncate(n);
        // rotate into display orientation
        let (rw, rh, rotated_buf) = if self.rotation == 0 {
            (tw, th, &self.tmp)
        } else {
            rotate_rgb(&self.tmp, tw, th, self.rotation, &mut self.tmp2);
            let (rw, rh) = if rotated { (th, tw) } else { (tw, th) };
            (rw, rh, &self.tmp2)
        };
        debug_assert_eq!((rw, rh), (sw, sh));
        let mut out = vec![0u8; cw as usize * ch as usize * 3];
        let row = cw as usize * 3;
        for y in 0..ch as usize {
            let src = ((y + cy as usize) * rw as usize + cx as usize) * 3;
            out[y * row..(y + 1) * row].copy_from_slice(&rotated_buf[src..src + row]);
        }
        Ok((cw, ch, out))
    }

    fn reset(&mut self, key: Key, tw: u32, th: u32) -> Result<(), String> {
        if !self.sws.is_null() {
            // SAFETY: we own the context.
            unsafe { ffi::sws_freeContext(self.sws) };
            self.sws = ptr::null_mut();
        }
        // a runtime FFmpeg newer than the bindings can hand over a format they do not name;
        // turning that number into the enum would be undefined, so it is an error instead
        let known = ffi::AVPixelFormat::AV_PIX_FMT_NB as i32;
        if !(0..known).contains(&key.fmt) {
            return Err(format!(
                "pixel format {} is not one this r3m's FFmpeg bindings know (0 to {}): the FFmpeg at run time is newer than the one r3m was built with",
                key.fmt,
                known - 1
            ));
        }
        // SAFETY: plain constructor calls; the format value is in 0..AV_PIX_FMT_NB, and the
        // bindings' enum names every value from AV_PIX_FMT_NONE (-1) to AV_PIX_FMT_NB without a gap.
        unsafe {
            let src_fmt: ffi::AVPixelFormat = std::mem::transmute(key.fmt);
            self.sws = ffi::sws_getContext(
                key.w,
                key.h,
                src_fmt,
                tw as i32,
                th as i32,
                ffi::AVPixelFormat::AV_PIX_FMT_RGB24,
                self.scaler.flags(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
            if self.sws.is_null() {
                return Err(format!("swscale cannot convert pixel format {} at {}x{}", key.fmt, key.w, key.h));
            }
            // Same colour handling as the CLI's scale filter: matrix from the frame's colourspace
            // (sws maps unspecified to BT.601), range from its range tag when it has one.
            let mut inv_table: *mut i32 = ptr::null_mut();
            let mut table: *mut i32 = ptr::null_mut();
            let (mut src_full, mut dst_full, mut bri, mut con, mut sat) = (0, 0, 0, 0, 0);
            ffi::sws_getColorspaceDetails(
                self.sws,
                &mut inv_table,
                &mut src_full,
                &mut table,
                &mut dst_full,
                &mut bri,
                &mut con,
                &mut sat,
            );
            let mut cs = key.colorspace;
            if !(1..=10).contains(&cs) || cs == 8 {
                cs = ffi::AVColorSpace::AVCOL_SPC_BT470BG as i32;
            }
            let coeffs = ffi::sws_getCoefficients(cs);
            if key.range == ffi::AVColorRange::AVCOL_RANGE_JPEG as i32 {
                src_full = 1;
            } else if key.range == ffi::AVColorRange::AVCOL_RANGE_MPEG as i32 {
                src_full = 0;
            }
            ffi::sws_setColorspaceDetails(self.sws, coeffs, src_full, coeffs, dst_full, bri, con, sat);
        }
        self.key = Some(key);
        Ok(())
    }
}

/// Applies a [`Resize`] to packed RGB24 images held in memory (simulator renders, for example) with
/// the same geometry and swscale scaler that decoding uses, so a frame rendered by an environment
/// and the same frame decoded from a lossless video come out identical. When the planned scale
/// size equals the input size only the crop is taken (an exact copy).
pub struct RgbTransform {
    conv: Converter,
}

impl RgbTransform {
    /// A transform for `resize` with the default (bilinear) scaler.
    pub fn new(resize: Resize) -> Self {
        RgbTransform { conv: Converter::new(resize, Scaler::default(), 0) }
    }

    /// Transforms one `w`×`h` RGB24 image; returns `(width, height, data)`.
    pub fn apply(&mut self, rgb: &[u8], w: u32, h: u32) -> Result<(u32, u32, Vec<u8>), String> {
        self.conv.convert_rgb(rgb, w, h)
    }
}

/// Rotates a packed RGB image clockwise by 90/180/270 degrees into `out`.
pub(crate) fn rotate_rgb(src: &[u8], w: u32, h: u32, rotation: u32, out: &mut Vec<u8>) {
    let (w, h) = (w as usize, h as usize);
    out.resize(w * h * 3, 0);
    match rotation {
        90 => {
            // out is h wide, w tall: out(x', y') = src(x = y', y = h-1-x')
            for y in 0..h {
                for x in 0..w {
                    let (ox, oy) = (h - 1 - y, x);
                    let s = (y * w + x) * 3;
                    let d = (oy * h + ox) * 3;
                    out[d..d + 3].copy_from_slice(&src[s..s + 3]);
                }
            }
        }
        180 => {
            for y in 0..h {
                for x in 0..w {
                    let s = (y * w + x) * 3;
                    let d = ((h - 1 - y) * w + (w - 1 - x)) * 3;
                    out[d..d + 3].copy_from_slice(&src[s..s + 3]);
                }
            }
        }
        270 => {
            for y in 0..h {
                for x in 0..w {
                    let (ox, oy) = (y, w - 1 - x);
                    let s = (y * w + x) * 3;
                    let d = (oy * h + ox) * 3;
                    out[d..d + 3].copy_from_slice(&src[s..s + 3]);
                }
            }
        }
        _ => out.copy_from_slice(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_plan_matches_torchvision() {
        // 640x480 -> Resize(256) gives 341x256, CenterCrop(224): left = round(58.5) = 58 (half to even)
        assert_eq!(Resize::IMAGENET.plan(640, 480), ((341, 256), (58, 16, 224, 224)));
        // portrait 131x225 -> 256x439, top = round(107.5) = 108
        assert_eq!(Resize::IMAGENET.plan(131, 225), ((256, 439), (16, 108, 224, 224)));
    }

    #[test]
    fn eval_transform_is_r3m_resize_and_crop() {
        assert_eq!(Resize::eval(224), Resize::ShortSideCrop { short: 256, crop_w: 224, crop_h: 224 });
        // 128-px renders with a 112-px encoder: a pure centre crop, no resampling
        assert_eq!(Resize::eval(112).plan(128, 128), ((128, 128), (8, 8, 112, 112)));
    }

    #[test]
    fn rgb_transform_crops_exactly_and_scales_otherwise() {
        let (w, h) = (16u32, 16u32);
        let img: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        // 16 = 14·8/7: crop the centre 14×14 (offset 1) byte for byte
        let (cw, ch, out) = RgbTransform::new(Resize::eval(14)).apply(&img, w, h).unwrap();
        assert_eq!((cw, ch), (14, 14));
        for y in 0..14usize {
            let src = ((y + 1) * 16 + 1) * 3;
            assert_eq!(&out[y * 42..(y + 1) * 42], &img[src..src + 42], "row {y}");
        }
        // a constant image stays constant through real scaling
        let grey = vec![77u8; 20 * 10 * 3];
        let (cw, ch, out) = RgbTransform::new(Resize::eval(14)).apply(&grey, 20, 10).unwrap();
        assert_eq!((cw, ch), (14, 14));
        assert!(out.iter().all(|&v| v.abs_diff(77) <= 1), "{:?}", &out[..12]);
        assert!(RgbTransform::new(Resize::eval(14)).apply(&grey, 20, 11).is_err());
    }

    #[test]
    fn rotation_moves_corners() {
        // 2x1 image: red, green
        let src = [255, 0, 0, 0, 255, 0];
        let mut out = Vec::new();
        rotate_rgb(&src, 2, 1, 90, &mut out);
        // clockwise: result is 1 wide, 2 tall; red on top
        assert_eq!(out, vec![255, 0, 0, 0, 255, 0]);
        rotate_rgb(&src, 2, 1, 270, &mut out);
        assert_eq!(out, vec![0, 255, 0, 255, 0, 0]);
        rotate_rgb(&src, 2, 1, 180, &mut out);
        assert_eq!(out, vec![0, 255, 0, 255, 0, 0]);
    }
}
