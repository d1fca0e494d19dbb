#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-data
//!
//! Where training and embedding get their frames: dataset sources (a folder of videos, LeRobot
//! v2.1/v3.0 datasets, CSV/Parquet manifests), the R3M 5-frame tuple sampler, augmentation on u8
//! frames, and the bounded prefetch queue that keeps the trainer busy.
//!
//! It is not a decoder (that is `r3m-video`) and knows nothing of tensors or models: batches leave
//! this crate as plain u8 buffers.
//!
//! Sources: a video folder ([`scan_videos`]), a LeRobot v2.x/v3.0 dataset ([`scan_lerobot`]) and a
//! CSV/Parquet manifest ([`scan_manifest`]), all with a probe cache and skip-and-count; [`open_source`]
//! picks by what the path is.

pub mod augment;
pub mod batch;
pub mod lerobot;
pub mod loader;
pub mod manifest;
pub mod reservoir;
pub mod rng;
pub mod sampler;
pub mod source;
pub mod table;

pub use augment::{Augment, Crop};
pub use lerobot::scan_lerobot;
pub use loader::{Batch, ClipWeighting, Loader, LoaderConfig, LoaderMode, LoaderState, LoaderStats};
pub use manifest::scan_manifest;
pub use rng::Rng;
pub use sampler::{Span, Tuple, TupleSampler, MIN_CLIP_FRAMES};
pub use source::{
    find_videos, probe_all, scan_video_paths, scan_videos, Clip, Dataset, ProbeCache, Skipped, SourceError,
};

/// Opens whatever `path` is: a LeRobot dataset root (has `meta/info.json`; `camera` picks the
/// video feature), a manifest (`.csv` / `.parquet` file) or a folder of videos.
pub fn open_source(
    path: &std::path::Path,
    camera: Option<&str>,
    cache: &mut ProbeCache,
) -> Result<Dataset, SourceError> {
    if path.is_file() {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if ext == "csv" || ext == "parquet" {
            return scan_manifest(path, cache);
        }
        return Err(SourceError::NotADirectory {
            path: path.into(),
            reason: "a file that is not a manifest (.csv or .parquet); give a folder of videos, a LeRobot root or a manifest".into(),
        });
    }
    if lerobot::is_lerobot(path) {
        return scan_lerobot(path, camera, cache);
    }
    scan_videos(path, cache)
}
