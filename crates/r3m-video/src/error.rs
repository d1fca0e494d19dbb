//! Typed errors; every variant names the file it is about.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a video file. Each variant carries the path, so a message printed on its
/// own tells the user which of thousands of files is at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not exist or cannot be read.
    #[error("{path}: cannot read file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is empty (zero bytes).
    #[error("{path}: file is empty (0 bytes)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// FFmpeg could not open or parse the container: not a video, corrupt or truncated header.
    #[error("{path}: not a readable video container ({reason})")]
    Open {
        /// The file.
        path: PathBuf,
        /// FFmpeg's reason.
        reason: String,
    },
    /// The container has no video stream (audio only, subtitles, data).
    #[error("{path}: no video stream")]
    NoVideoStream {
        /// The file.
        path: PathBuf,
    },
    /// The stream's codec has no decoder in this FFmpeg build.
    #[error("{path}: no decoder for codec '{codec}' in this FFmpeg build")]
    NoDecoder {
        /// The file.
        path: PathBuf,
        /// The codec name.
        codec: String,
    },
    /// The frames are larger than [`crate::MAX_SIDE`] / [`crate::MAX_PIXELS`].
    #[error("{path}: frame size {width}x{height} is too large (limit {max_side} per side, {max_pixels} pixels)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Stream width.
        width: u32,
        /// Stream height.
        height: u32,
        /// Per-side limit.
        max_side: u32,
        /// Area limit.
        max_pixels: u64,
    },
    /// The stream reports a zero or unknown frame size.
    #[error("{path}: video stream has no frame size ({width}x{height})")]
    BadSize {
        /// The file.
        path: PathBuf,
        /// Stream width.
        width: u32,
        /// Stream height.
        height: u32,
    },
    /// The video stream holds no frames at all.
    #[error("{path}: video stream has no frames")]
    NoFrames {
        /// The file.
        path: PathBuf,
    },
    /// A requested frame index is past the end.
    #[error("{path}: frame {index} requested, but the video has {count} frames")]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// The requested index.
        index: usize,
        /// Frames in the video.
        count: usize,
    },
    /// A requested timestamp has no frame within tolerance.
    #[error("{path}: no frame within {tolerance_s}s of t={time_s}s")]
    NoFrameAtTime {
        /// The file.
        path: PathBuf,
        /// Requested time, seconds.
        time_s: f64,
        /// Tolerance, seconds.
        tolerance_s: f64,
    },
    /// Frame indices passed to random access were not sorted ascending.
    #[error("{path}: frame indices must be sorted ascending")]
    Unsorted {
        /// The file.
        path: PathBuf,
    },
    /// A requested frame could not be decoded (corrupt data; the rest of the file may be fine).
    #[error("{path}: frame {index} could not be decoded")]
    FrameUndecodable {
        /// The file.
        path: PathBuf,
        /// The frame index.
        index: usize,
    },
    /// Any other FFmpeg failure, with the operation that failed.
    #[error("{path}: {op}: {reason}")]
    Ffmpeg {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// FFmpeg's reason.
        reason: String,
    },
}

impl Error {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Io { path, .. }
            | Error::Empty { path }
            | Error::Open { path, .. }
            | Error::NoVideoStream { path }
            | Error::NoDecoder { path, .. }
            | Error::TooLarge { path, .. }
            | Error::BadSize { path, .. }
            | Error::NoFrames { path }
            | Error::OutOfRange { path, .. }
            | Error::NoFrameAtTime { path, .. }
            | Error::Unsorted { path }
            | Error::FrameUndecodable { path, .. }
            | Error::Ffmpeg { path, .. } => path,
        }
    }

    pub(crate) fn ffmpeg(path: &std::path::Path, op: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Ffmpeg { path: path.to_path_buf(), op, reason: e.to_string() }
    }
}
