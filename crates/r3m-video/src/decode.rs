//! `VideoReader`: sequential decode and frame-accurate random access on one open file.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use ffmpeg_next as ff;

use crate::probe::{open_input, read_packet, VideoInfo};
use crate::scale::{Converter, Resize, Scaler};
use crate::{probe, Error, Result};

/// How frames are decoded and shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    /// Output size.
    pub resize: Resize,
    /// swscale interpolation.
    pub scaler: Scaler,
    /// FFmpeg decoder threads for this reader (0: FFmpeg's own choice, one per core). When many
    /// readers run in a pool, give each `cores / workers`.
    pub threads: usize,
    /// Random access decodes forward instead of seeking when the target is at most this many
    /// frames past the next keyframe ahead (a seek flushes the decoder, which costs frames too).
    pub seek_threshold: usize,
    /// Decode the frames random access passes through on the way to a requested frame without
    /// the in-loop deblocking filter (`skip_loop_filter = ALL` on their packets; H.264, HEVC,
    /// VP9). Faster, but the requested frame is predicted from unfiltered references, so its
    /// pixels differ from FFmpeg's; off by default (docs/benchmarks.md, "Decode benchmark", has the cost).
    pub skip_ref_loop_filter: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            resize: Resize::Native,
            scaler: Scaler::Bilinear,
            threads: 1,
            seek_threshold: 4,
            skip_ref_loop_filter: false,
        }
    }
}

impl DecodeOptions {
    /// Options that resize to `resize`, everything else default.
    pub fn with_resize(resize: Resize) -> Self {
        DecodeOptions { resize, ..Default::default() }
    }
}

/// One decoded frame, RGB u8 `[height, width, 3]`, rotation applied.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index in presentation order (0-based).
    pub index: usize,
    /// Presentation timestamp in stream time-base units.
    pub pts: i64,
    /// Presentation time in seconds (pts × time base).
    pub timestamp: f64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Packed RGB bytes, row-major, `width * height * 3` long.
    pub data: Vec<u8>,
}

/// Counters for one reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames the decoder produced (including ones skipped on the way to a target).
    pub decoded: u64,
    /// Frames converted to RGB and returned.
    pub returned: u64,
    /// Seeks performed.
    pub seeks: u64,
    /// Packets or frames that failed to decode and were skipped.
    pub corrupt: u64,
}

/// An open video: demuxer, decoder and scaler, positioned somewhere in the stream.
///
/// Requests for frames ahead of the current position decode forward; others seek to the keyframe
/// at or before the target. Not `Sync`; use one per thread (see [`crate::DecodePool`]).
pub struct VideoReader {
    info: Arc<VideoInfo>,
    opts: DecodeOptions,
    ictx: ff::format::context::Input,
    decoder: ff::decoder::Video,
    conv: Converter,
    frame: ff::frame::Video,
    packet: ff::Packet,
    /// Index of the next frame the decoder will output, when known.
    next_index: Option<usize>,
    /// EOF was sent to the decoder.
    eof_sent: bool,
    /// The frame random access is heading for: packets of earlier frames are decoded with
    /// `skip_frame = NONREF`, so frames nothing depends on are not decoded at all.
    target: Option<usize>,
    /// Whether `skip_frame = NONREF` is set on the decoder now.
    skipping: bool,
    /// Whether `skip_loop_filter = ALL` is set on the decoder now.
    unfiltered: bool,
    /// Whether skipping non-reference frames is safe for this stream: H.264 and VP9 with a
    /// complete pts index (HEVC's sub-layer non-reference pictures can still be referenced).
    can_skip: bool,
    /// `self.packet` was refused with EAGAIN and must be sent again after draining a frame.
    resend: bool,
    stats: DecodeStats,
}

// SAFETY: all FFmpeg objects are owned by the reader and only touched through &mut self; FFmpeg
// contexts may move between threads as long as they are not used concurrently.
unsafe impl Send for VideoReader {}

impl VideoReader {
    /// Probes and opens `path`.
    pub fn open(path: impl AsRef<Path>, opts: DecodeOptions) -> Result<Self> {
        let info = probe(path.as_ref())?;
        Self::open_probed(Arc::new(info), opts)
    }

    /// Opens a file whose [`VideoInfo`] is already known (from a cache or an earlier probe), without
    /// demuxing it again.
    pub fn open_probed(info: Arc<VideoInfo>, opts: DecodeOptions) -> Result<Self> {
        let path = info.path.clone();
        let ictx = open_input(&path)?;
        let si = info.stream_index;
        let stream = ictx.stream(si).ok_or_else(|| Error::NoVideoStream { path: path.clone() })?;
        let tb = stream.time_base();
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::ffmpeg(&path, "reading codec parameters", e))?;
        // SAFETY: ctx is a fresh, unopened codec context.
        unsafe {
            let c = ctx.as_mut_ptr();
            (*c).thread_count = opts.threads as i32;
            (*c).pkt_timebase = tb.into();
        }
        let decoder = ctx.decoder().video().map_err(|e| match e {
            ff::Error::DecoderNotFound => Error::NoDecoder { path: path.clone(), codec: info.codec.clone() },
            e => Error::ffmpeg(&path, "opening decoder", e),
        })?;
        let can_skip = matches!(info.codec.as_str(), "h264" | "vp9") && info.has_complete_index();
        Ok(VideoReader {
            conv: Converter::new(opts.resize, opts.scaler, info.rotation),
            info,
            opts,
            ictx,
            decoder,
            frame: ff::frame::Video::empty(),
            packet: ff::Packet::empty(),
            next_index: Some(0),
            eof_sent: false,
            target: None,
            skipping: false,
            unfiltered: false,
            can_skip,
            resend: false,
            stats: DecodeStats::default(),
        })
    }

    /// What the probe found.
    pub fn info(&self) -> &Arc<VideoInfo> {
        &self.info
    }

    /// Counters since open.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Output frame size `(width, height)`.
    pub fn output_size(&self) -> (u32, u32) {
        self.opts.resize.output_size(self.info.display_width(), self.info.display_height())
    }

    fn path(&self) -> &Path {
        &self.info.path
    }

    /// Pulls the next decoded frame into `self.frame`. `Ok(false)` at end of stream. Packets and
    /// frames that fail to decode are counted in `stats.corrupt` and skipped.
    fn pull(&mut self) -> Result<bool> {
        let si = self.info.stream_index;
        let mut demux_errors = 0u32;
        let mut refused = 0u32;
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    self.stats.decoded += 1;
                    return Ok(true);
                }
                Err(ff::Error::Eof) => return Ok(false),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(_) => {
                    // a frame that failed to decode: skip it and go on
                    self.stats.corrupt += 1;
                    if self.eof_sent {
                        continue;
                    }
                }
            }
            if self.eof_sent {
                return Ok(false);
            }
            if self.resend {
                match self.decoder.send_packet(&self.packet) {
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN && refused < 8 => {
                        refused += 1;
                        continue;
                    }
                    Err(_) => self.stats.corrupt += 1,
                    Ok(()) => {}
                }
                self.resend = false;
                continue;
            }
            // feed one packet of our stream
            loop {
                match read_packet(&mut self.packet, &mut self.ictx) {
                    Ok(()) => {
                        if self.packet.stream() != si {
                            continue;
                        }
                        self.set_skipping();
                        match self.decoder.send_packet(&self.packet) {
                            Ok(()) => {}
                            // the decoder wants a frame taken out first: keep the packet
                            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => self.resend = true,
                            Err(_) => self.stats.corrupt += 1,
                        }
                        break;
                    }
                    Err(ff::Error::Eof) => {
                        let _ = self.decoder.send_eof();
                        self.eof_sent = true;
                        break;
                    }
                    Err(ff::Error::InvalidData) if demux_errors < 1000 => {
                        demux_errors += 1;
                        self.stats.corrupt += 1;
                    }
                    Err(_) => {
                        // truncated or unreadable from here on: finish what the decoder holds
                        self.stats.corrupt += 1;
                        let _ = self.decoder.send_eof();
                        self.eof_sent = true;
                        break;
                    }
                }
            }
        }
    }

    /// Before sending a packet: skip non-reference frames that come before the target, and, with
    /// `skip_ref_loop_filter`, decode the references among them without the loop filter.
    fn set_skipping(&mut self) {
        let before_target = match (self.target, self.packet.pts()) {
            (Some(t), Some(p)) => self.info.index_of_pts(p).is_some_and(|i| i < t),
            _ => false,
        };
        let skip = before_target && self.can_skip;
        if skip != self.skipping {
            self.skipping = skip;
            let discard =
                if skip { ff::ffi::AVDiscard::AVDISCARD_NONREF } else { ff::ffi::AVDiscard::AVDISCARD_DEFAULT };
            // SAFETY: the codec context is open; skip_frame is read per packet by the decoder.
            unsafe { (*self.decoder.as_mut_ptr()).skip_frame = discard };
        }
        let unfiltered = before_target && self.opts.skip_ref_loop_filter && self.info.has_complete_index();
        if unfiltered != self.unfiltered {
            self.unfiltered = unfiltered;
            let discard =
                if unfiltered { ff::ffi::AVDiscard::AVDISCARD_ALL } else { ff::ffi::AVDiscard::AVDISCARD_DEFAULT };
            // SAFETY: as above; the decoders read skip_loop_filter per slice / frame.
            unsafe { (*self.decoder.as_mut_ptr()).skip_loop_filter = discard };
        }
    }

    /// Index of the frame now in `self.frame`, from its pts; falls back to counting when the
    /// stream has no usable timestamps.
    fn current_index(&mut self) -> Option<usize> {
        // the frame's own pts (not best-effort, which may fall back to a reordered dts)
        let pts = self.frame.pts();
        let complete = self.info.has_complete_index();
        let by_pts = if complete { pts.and_then(|p| self.info.index_of_pts(p)) } else { None };
        let idx = by_pts.or(self.next_index);
        self.next_index = idx.map(|i| i + 1);
        idx
    }

    fn convert_current(&mut self, index: usize) -> Result<Frame> {
        let (width, height, data) = self.conv.convert(&self.frame).map_err(|reason| Error::Ffmpeg {
            path: self.path().into(),
            op: "converting frame",
            reason,
        })?;
        self.stats.returned += 1;
        let pts = self.info.pts.get(index).copied().or(self.frame.pts()).unwrap_or(index as i64);
        Ok(Frame { index, pts, timestamp: pts as f64 * self.info.tick_s(), width, height, data })
    }

    /// Seeks so that the next frames out start at or before frame `index`.
    fn seek_to(&mut self, index: usize) -> Result<()> {
        self.stats.seeks += 1;
        let complete = self.info.has_complete_index();
        let (target, index) = if complete && index > 0 {
            (self.info.pts[index], index)
        } else {
            (self.info.pts.first().copied().unwrap_or(0), 0)
        };
        // SAFETY: the format context is open; av_seek_frame takes a stream index and a pts in
        // that stream's time base.
        let ret = unsafe {
            ff::ffi::av_seek_frame(
                self.ictx.as_mut_ptr(),
                self.info.stream_index as i32,
                target,
                ff::ffi::AVSEEK_FLAG_BACKWARD as i32,
            )
        };
        if ret < 0 && index == 0 {
            // some demuxers refuse a backward seek to the very start; byte 0 works there
            // SAFETY: as above.
            let ret2 = unsafe {
                ff::ffi::av_seek_frame(
                    self.ictx.as_mut_ptr(),
                    self.info.stream_index as i32,
                    0,
                    ff::ffi::AVSEEK_FLAG_BYTE as i32,
                )
            };
            if ret2 < 0 {
                return Err(Error::ffmpeg(self.path(), "seeking", ff::Error::from(ret)));
            }
        } else if ret < 0 {
            return Err(Error::ffmpeg(self.path(), "seeking", ff::Error::from(ret)));
        }
        self.decoder.flush();
        self.eof_sent = false;
        self.resend = false;
        self.next_index = if index == 0 { Some(0) } else { None };
        Ok(())
    }

    /// Decodes every frame from the start, calling `f` with each one in order. `f` may stop early
    /// by returning `ControlFlow::Break`. Frames that fail to decode are skipped and counted.
    pub fn for_each_frame(&mut self, mut f: impl FnMut(Frame) -> ControlFlow<()>) -> Result<()> {
        if self.next_index != Some(0) {
            self.seek_to(0)?;
        }
        while self.pull()? {
            let Some(i) = self.current_index() else { continue };
            let frame = self.convert_current(i)?;
            if f(frame).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Decodes every frame into a vector (small videos and tests; prefer [`Self::for_each_frame`]).
    pub fn read_all(&mut self) -> Result<Vec<Frame>> {
        let mut out = Vec::with_capacity(self.info.frame_count());
        self.for_each_frame(|f| {
            out.push(f);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Returns the frames at `indices` (sorted ascending; repeats allowed), seeking to keyframes
    /// only when that is cheaper than decoding forward from the current position.
    pub fn read_frames(&mut self, indices: &[usize]) -> Result<Vec<Frame>> {
        self.read_indices(indices, false)
    }

    /// [`VideoReader::read_frames`], but a frame that cannot be decoded (corrupt data) costs only
    /// that frame: it is left out of the result (the caller sees which from the returned frames'
    /// `index`) and counted in `stats.corrupt`. Other errors (I/O, an index out of range) fail.
    pub fn read_frames_lossy(&mut self, indices: &[usize]) -> Result<Vec<Frame>> {
        self.read_indices(indices, true)
    }

    fn read_indices(&mut self, indices: &[usize], lossy: bool) -> Result<Vec<Frame>> {
        if indices.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Unsorted { path: self.path().into() });
        }
        let count = self.info.frame_count();
        if let Some(&bad) = indices.iter().find(|&&i| i >= count) {
            return Err(Error::OutOfRange { path: self.path().into(), index: bad, count });
        }
        let mut out: Vec<Frame> = Vec::with_capacity(indices.len());
        for &t in indices {
            if let Some(prev) = out.last() {
                if prev.index == t {
                    out.push(prev.clone());
                    continue;
                }
            }
            match self.read_one(t) {
                Ok(f) => out.push(f),
                Err(Error::FrameUndecodable { .. }) if lossy => self.stats.corrupt += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Returns the frames of many index sets at once (each sorted; for example a batch of R3M
    /// 5-frame tuples from one clip), decoding their union in one forward pass: a frame wanted by
    /// several sets is decoded once, and frames between targets are decoded only when no keyframe
    /// lets us skip them. The result has the shape of `sets`.
    pub fn read_many(&mut self, sets: &[Vec<usize>]) -> Result<Vec<Vec<Frame>>> {
        let mut all: Vec<usize> = sets.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        let frames = self.read_frames(&all)?;
        sets.iter()
            .map(|set| {
                set.iter()
                    .map(|i| {
                        let k = all.binary_search(i).map_err(|_| Error::Unsorted { path: self.path().into() })?;
                        Ok(frames[k].clone())
                    })
                    .collect()
            })
            .collect()
    }

    fn read_one(&mut self, t: usize) -> Result<Frame> {
        let kf = self.info.keyframe_before(t);
        let forward = match self.next_index {
            Some(n) if n <= t => kf <= n || kf - n <= self.opts.seek_threshold,
            _ => false,
        };
        if !forward {
            self.seek_to(kf)?;
        }
        self.target = Some(t);
        let res = self.decode_to(t);
        self.target = None;
        res
    }

    fn decode_to(&mut self, t: usize) -> Result<Frame> {
        for attempt in 0..2 {
            while self.pull()? {
                let Some(i) = self.current_index() else { continue };
                if i < t {
                    continue;
                }
                if i == t {
                    return self.convert_current(t);
                }
                break; // overshot: the seek landed late or the target frame was undecodable
            }
            if attempt == 0 {
                // retry from the very start: slow, but correct when an index is imprecise
                self.seek_to(0)?;
            }
        }
        Err(Error::FrameUndecodable { path: self.path().into(), index: t })
    }

    /// Returns the frames nearest to each time in `times_s` (seconds, pts × time base; sorted
    /// ascending), failing when the nearest frame is more than `tolerance_s` away.
    pub fn read_times(&mut self, times_s: &[f64], tolerance_s: f64) -> Result<Vec<Frame>> {
        let mut idx = Vec::with_capacity(times_s.len());
        for &t in times_s {
            match self.info.nearest_frame(t) {
                Some((i, d)) if d <= tolerance_s => idx.push(i),
                _ => {
                    return Err(Error::NoFrameAtTime { path: self.path().into(), time_s: t, tolerance_s });
                }
            }
        }
        if idx.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Unsorted { path: self.path().into() });
        }
        self.read_frames(&idx)
    }
}
