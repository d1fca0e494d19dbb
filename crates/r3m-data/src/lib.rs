//! # r3m-data
//!
//! Where training and embedding get their frames: dataset sources (a folder of videos, LeRobot
//! v2.1/v3.0 datasets, CSV/Parquet manifests), the R3M 5-frame tuple sampler, augmentation on u8
//! frames, and the bounded prefetch queue that keeps the trainer busy.
//!
//! It is not a decoder (that is `r3m-video`) and knows nothing of tensors or models: batches leave
//! this crate as plain u8 buffers.
//!
//! Status: no code yet; the training issue fills it.
