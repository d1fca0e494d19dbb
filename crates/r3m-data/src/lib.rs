//! # r3m-data
//!
//! Where training and embedding get their frames: dataset sources (a folder of videos, LeRobot
//! v2.1/v3.0 datasets, CSV/Parquet manifests), the R3M 5-frame tuple sampler, augmentation on u8
//! frames, and the bounded prefetch queue that keeps the trainer busy.
//!
//! It is not a decoder (that is `r3m-video`) and knows nothing of tensors or models: batches leave
//! this crate as plain u8 buffers.
//!
//! Status: the seedable RNG, R3M's tuple sampler, the video-folder source (with probe cache and
//! skip-and-count), `rctraj`/per-frame RandomResizedCrop and the prefetching tuple loader (exactly
//! resumable) are here; LeRobot and manifest sources come with the training issue.

pub mod augment;
pub mod loader;
pub mod rng;
pub mod sampler;
pub mod source;

pub use augment::{Augment, Crop};
pub use loader::{Batch, ClipWeighting, Loader, LoaderConfig, LoaderState, LoaderStats};
pub use rng::Rng;
pub use sampler::{Tuple, TupleSampler, MIN_CLIP_FRAMES};
pub use source::{find_videos, scan_videos, Clip, Dataset, ProbeCache, Skipped, SourceError};
