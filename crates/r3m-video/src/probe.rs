//! `probe`: what a video is, and an index of its frames by presentation time.

use std::path::{Path, PathBuf};

use ff::media::Type as MediaType;
use ffmpeg_next as ff;

use crate::{Error, Result, MAX_PIXELS, MAX_SIDE};

/// How many frames a video has, and how sure we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameCount {
    /// Frames in the video stream.
    pub count: usize,
    /// `true` when counted from a complete demux of the stream with a timestamp on every packet;
    /// `false` when it is an estimate (packets without timestamps, or the demuxer hit errors).
    pub exact: bool,
}

/// What [`probe`] learns about a video file. Serialisable, so callers can cache it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoInfo {
    /// The file.
    pub path: PathBuf,
    /// Codec short name (`h264`, `hevc`, `vp9`, `av1`, ...).
    pub codec: String,
    /// Name of the decoder FFmpeg will use (`h264`, `libdav1d`, ...).
    pub decoder: String,
    /// Container format name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...).
    pub container: String,
    /// Coded width, before rotation.
    pub width: u32,
    /// Coded height, before rotation.
    pub height: u32,
    /// Clockwise rotation to apply for display, one of 0, 90, 180, 270 (from the display matrix).
    pub rotation: u32,
    /// Frame count from the packet index.
    pub frames: FrameCount,
    /// What the container header claims (`nb_frames`), if anything; may disagree with `frames`.
    pub container_frames: Option<u64>,
    /// Average frame rate (frames/s); for VFR video, frames over duration.
    pub fps: f64,
    /// Duration of the video stream in seconds (first frame start to last frame end).
    pub duration_s: f64,
    /// Mean distance between keyframes in frames, when there are at least two.
    pub keyframe_interval: Option<f64>,
    /// Stream time base as (num, den).
    pub time_base: (i32, i32),
    /// Index of the video stream in the container.
    pub stream_index: usize,
    /// Presentation timestamps of all frames, sorted (time base units). Frame `i` has `pts[i]`.
    pub pts: Vec<i64>,
    /// Frame indices (into `pts`) of keyframes, sorted.
    pub keyframes: Vec<usize>,
}

/// Version of the [`VideoInfo`] layout and of how probe fills it; caches key on it.
pub const PROBE_VERSION: u32 = 2;

impl VideoInfo {
    /// Width after rotation (what frames come out as at native size).
    pub fn display_width(&self) -> u32 {
        if self.rotation % 180 == 90 {
            self.height
        } else {
            self.width
        }
    }

    /// Height after rotation.
    pub fn display_height(&self) -> u32 {
        if self.rotation % 180 == 90 {
            self.width
        } else {
            self.height
        }
    }

    /// Seconds of one time-base tick.
    pub fn tick_s(&self) -> f64 {
        f64::from(self.time_base.0) / f64::from(self.time_base.1)
    }

    /// Timestamp in seconds of frame `i` (pts × time base, as ffprobe's `pts_time` and PyAV give).
    pub fn timestamp(&self, i: usize) -> Option<f64> {
        self.pts.get(i).map(|&p| p as f64 * self.tick_s())
    }

    /// Index of the frame whose pts equals `pts`, if any.
    pub fn index_of_pts(&self, pts: i64) -> Option<usize> {
        self.pts.binary_search(&pts).ok()
    }

    /// The frame nearest to `t` seconds, and its distance from `t` in seconds.
    pub fn nearest_frame(&self, t: f64) -> Option<(usize, f64)> {
        if self.pts.is_empty() {
            return None;
        }
        let target = t / self.tick_s();
        let i = self.pts.partition_point(|&p| (p as f64) < target);
        let candidates = [i.checked_sub(1), (i < self.pts.len()).then_some(i)];
        candidates
            .into_iter()
            .flatten()
            .map(|j| (j, (self.pts[j] as f64 * self.tick_s() - t).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The keyframe at or before frame `i` (frame index), or 0 when none is known.
    pub fn keyframe_before(&self, i: usize) -> usize {
        match self.keyframes.binary_search(&i) {
            Ok(k) => self.keyframes[k],
            Err(0) => 0,
            Err(k) => self.keyframes[k - 1],
        }
    }

    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.frames.count
    }

    /// Whether every frame has a pts in the index (random access can match frames by pts).
    pub fn has_complete_index(&self) -> bool {
        self.pts.len() == self.frames.count
    }
}

pub(crate) fn check_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.into(), source })?;
    if meta.is_dir() {
        return Err(Error::Io { path: path.into(), source: std::io::Error::other("is a directory") });
    }
    if meta.len() == 0 {
        return Err(Error::Empty { path: path.into() });
    }
    Ok(())
}

/// Reads the next packet into `packet`, releasing the one it held first. FFmpeg < 7's
/// `av_read_frame` (Debian 12 ships 5.1) overwrites the packet it is given without releasing its
/// buffer, so reading into the same packet again leaked every packet demuxed; every read in this
/// crate goes through here.
pub(crate) fn read_packet(
    packet: &mut ff::Packet,
    ictx: &mut ff::format::context::Input,
) -> std::result::Result<(), ff::Error> {
    *packet = ff::Packet::empty();
    packet.read(ictx)
}

pub(crate) fn open_input(path: &Path) -> Result<ff::format::context::Input> {
    crate::init();
    check_file(path)?;
    ff::format::input(&path).map_err(|e| Error::Open { path: path.into(), reason: e.to_string() })
}

/// The video stream we decode: the best one that is not an attached picture (cover art).
pub(crate) fn video_stream(path: &Path, ictx: &ff::format::context::Input) -> Result<usize> {
    let is_pic =
        |s: &ff::format::stream::Stream| s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC);
    if let Some(s) = ictx.streams().best(MediaType::Video) {
        if !is_pic(&s) {
            return Ok(s.index());
        }
    }
    ictx.streams()
        .find(|s| s.parameters().medium() == MediaType::Video && !is_pic(s))
        .map(|s| s.index())
        .ok_or_else(|| Error::NoVideoStream { path: path.into() })
}

/// Clockwise display rotation in degrees (0/90/180/270) from the stream's display matrix, the
/// way the ffmpeg CLI's autorotate reads it.
fn rotation(stream: &ff::format::stream::Stream) -> u32 {
    for sd in stream.side_data() {
        if sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && sd.data().len() >= 36 {
            let m: Vec<i32> =
                sd.data().chunks_exact(4).take(9).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
            // SAFETY: av_display_rotation_get reads exactly 9 int32 values.
            let ccw = unsafe { ff::ffi::av_display_rotation_get(m.as_ptr()) };
            if ccw.is_nan() {
                return 0;
            }
            let cw = (-ccw).round() as i64;
            let cw = cw.rem_euclid(360);
            return (((cw + 45) / 90 * 90) % 360) as u32;
        }
    }
    0
}

/// Opens `path`, finds its video stream and demuxes it once (no decoding) to index every frame's
/// presentation timestamp and every keyframe. Costs one read of the file.
///
/// Errors name the file: empty, unreadable, not a video, no video stream, no decoder, absurd size,
/// no frames.
pub fn probe(path: impl AsRef<Path>) -> Result<VideoInfo> {
    let path = path.as_ref();
    let mut ictx = open_input(path)?;
    let si = video_stream(path, &ictx)?;
    let (codec, decoder, width, height, rot, tb, container_frames, avg_rate) = {
        let st = ictx.stream(si).ok_or_else(|| Error::NoVideoStream { path: path.into() })?;
        let par = st.parameters();
        let id = par.id();
        let codec = id.name().to_string();
        let decoder = ff::decoder::find(id)
            .ok_or_else(|| Error::NoDecoder { path: path.into(), codec: codec.clone() })?
            .name()
            .to_string();
        // SAFETY: the parameters pointer is valid while the stream is.
        let (w, h) = unsafe {
            let p = par.as_ptr();
            ((*p).width.max(0) as u32, (*p).height.max(0) as u32)
        };
        let tb = st.time_base();
        let nb = st.frames();
        let rate = st.avg_frame_rate();
        (codec, decoder, w, h, rotation(&st), (tb.numerator(), tb.denominator()), (nb > 0).then_some(nb as u64), rate)
    };
    check_size(path, width, height)?;
    let container = ictx.format().name().to_string();

    let mut pts = Vec::new();
    let mut key_pts = Vec::new();
    let mut last_duration = 0i64;
    let mut missing_ts = 0usize;
    let mut demux_errors = 0usize;
    let mut packet = ff::Packet::empty();
    loop {
        match read_packet(&mut packet, &mut ictx) {
            Ok(()) => {
                if packet.stream() != si {
                    continue;
                }
                // packets the container marks for discard (edit-list pre-roll) never become frames
                // SAFETY: reading a plain field of a packet we own.
                let discard =
                    unsafe { (*ff::packet::Ref::as_ptr(&packet)).flags } & ff::ffi::AV_PKT_FLAG_DISCARD as i32 != 0;
                if discard {
                    continue;
                }
                // frames are matched by their pts; a dts is not a presentation time when frames
                // are reordered, so a packet without pts makes the index incomplete
                match packet.pts() {
                    Some(p) => {
                        pts.push(p);
                        if packet.is_key() {
                            key_pts.push(p);
                        }
                        last_duration = packet.duration();
                    }
                    None => missing_ts += 1,
                }
            }
            Err(ff::Error::Eof) => break,
            Err(ff::Error::InvalidData) => {
                demux_errors += 1;
                if demux_errors > 10_000 {
                    break;
                }
            }
            Err(_) => {
                demux_errors += 1;
                break;
            }
        }
    }
    pts.sort_unstable();
    let before = pts.len();
    pts.dedup();
    let dups = before - pts.len();
    let count = pts.len() + missing_ts;
    if count == 0 {
        return Err(Error::NoFrames { path: path.into() });
    }
    let mut keyframes: Vec<usize> = key_pts.iter().filter_map(|p| pts.binary_search(p).ok()).collect();
    keyframes.sort_unstable();
    keyframes.dedup();
    if keyframes.first() != Some(&0) {
        keyframes.insert(0, 0);
    }
    let tick = f64::from(tb.0) / f64::from(tb.1.max(1));
    let duration_s = match (pts.first(), pts.last()) {
        (Some(&a), Some(&b)) => {
            let step = if last_duration > 0 {
                last_duration
            } else if pts.len() > 1 {
                (b - a) / (pts.len() as i64 - 1)
            } else {
                0
            };
            (b - a + step) as f64 * tick
        }
        _ => 0.0,
    };
    let fps = if avg_rate.numerator() > 0 && avg_rate.denominator() > 0 {
        f64::from(avg_rate)
    } else if duration_s > 0.0 {
        count as f64 / duration_s
    } else {
        0.0
    };
    let keyframe_interval = (keyframes.len() >= 2).then(|| {
        let span = (keyframes[keyframes.len() - 1] - keyframes[0]) as f64;
        span / (keyframes.len() - 1) as f64
    });
    Ok(VideoInfo {
        path: path.into(),
        codec,
        decoder,
        container,
        width,
        height,
        rotation: rot,
        frames: FrameCount { count, exact: missing_ts == 0 && demux_errors == 0 && dups == 0 },
        container_frames,
        fps,
        duration_s,
        keyframe_interval,
        time_base: tb,
        stream_index: si,
        pts,
        keyframes,
    })
}

pub(crate) fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::BadSize { path: path.into(), width, height });
    }
    if !crate::within_limits(width, height) {
        return Err(Error::TooLarge { path: path.into(), width, height, max_side: MAX_SIDE, max_pixels: MAX_PIXELS });
    }
    Ok(())
}
