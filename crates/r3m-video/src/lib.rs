#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-video
//!
//! The only crate that talks to FFmpeg (ffmpeg-next 9 over the system's FFmpeg 5.1): probe a video,
//! decode it sequentially or at an arbitrary sorted set of frame indices or timestamps, resize on
//! decode with swscale, apply the container's rotation, and hand out frames as RGB u8 `[H, W, 3]`.
//!
//! Frames are addressed by **presentation order**: [`probe`] demuxes the video stream once
//! (no decoding) and records every packet's pts, so frame `i` is the `i`-th smallest pts. Random
//! access seeks to the keyframe at or before the target pts and decodes forward, matching frames by
//! pts, which is frame-accurate for variable-frame-rate video too.
//!
//! What it is not: it knows nothing of tensors, models or datasets (`r3m-data` builds clips and
//! tuples on top of it). Bad input never panics: every failure is an [`Error`] that names the file.
// bindgen gives FFmpeg's flag constants different integer types in different FFmpeg versions
// (i32 here, u32 elsewhere): the `as i32` casts keep the calls portable
#![allow(clippy::unnecessary_cast)]

mod decode;
mod error;
mod pool;
mod probe;
mod scale;
pub mod synth;

pub use decode::{DecodeOptions, DecodeStats, Frame, VideoReader};
pub use error::{Error, Result};
pub use pool::{DecodePool, Ordered, Request};
pub use probe::{probe, FrameCount, VideoInfo, PROBE_VERSION};
pub use scale::{Resize, RgbTransform, Scaler};

use std::sync::Once;

/// Largest frame side we accept; bigger streams are rejected with [`Error::TooLarge`] before any
/// buffer is allocated.
pub const MAX_SIDE: u32 = 16384;
/// Largest frame area (pixels) we accept.
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// Whether a `width`×`height` frame is within [`MAX_SIDE`] and [`MAX_PIXELS`].
pub(crate) fn within_limits(width: u32, height: u32) -> bool {
    width <= MAX_SIDE && height <= MAX_SIDE && u64::from(width) * u64::from(height) <= MAX_PIXELS
}

/// Initialises FFmpeg once per process and quiets its logging to errors only (our own errors carry
/// the file name and the reason). Every public entry point calls this; calling it again is free.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // ffmpeg_next::init only fails on builds without any device support, which is not an
        // error for us: we never open devices.
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

/// Versions of the FFmpeg libraries this process runs against, as `(name, "major.minor.micro")`.
pub fn library_versions() -> Vec<(&'static str, String)> {
    init();
    let fmt = |v: u32| format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff);
    vec![
        ("libavutil", fmt(ffmpeg_next::util::version())),
        ("libavcodec", fmt(ffmpeg_next::codec::version())),
        ("libavformat", fmt(ffmpeg_next::format::version())),
        ("libswscale", fmt(ffmpeg_next::software::scaling::version())),
    ]
}

/// For each codec users bring (H.264, HEVC, VP9, AV1): the name of the decoder FFmpeg would pick,
/// or `None` when this FFmpeg build cannot decode it.
pub fn decoders() -> Vec<(&'static str, Option<String>)> {
    use ffmpeg_next::codec::Id;
    init();
    [("h264", Id::H264), ("hevc", Id::HEVC), ("vp9", Id::VP9), ("av1", Id::AV1)]
        .into_iter()
        .map(|(name, id)| {
            let found = ffmpeg_next::decoder::find(id).map(|c| c.name().to_string());
            (name, found)
        })
        .collect()
}
