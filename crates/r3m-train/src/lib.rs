#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-train
//!
//! The training loop: optimiser, device and precision, checkpoint and exact resume, and metrics
//! sinks (the per-step callback and `metrics.csv`). It wires `r3m-data` batches into `r3m-model`
//! encoders and objectives.
//!
//! It is not a model zoo (that is `r3m-model`) and does not parse command lines (that is `r3m-cli`).
//!
//! Status: fp32 and bf16 training with Adam, metrics, atomic checkpoints (`r3m-fs`), a typed run
//! config ([`run::RunConfig`]) that `--resume` compares field by field, and exact resume.

pub mod adam;
pub mod autotune;
pub mod budget;
pub mod config;
pub mod device_augment;
pub mod dist;
pub mod metrics;
pub mod model;
pub mod modes;
pub mod policy;
pub mod run;
pub mod syncs;
pub mod trainer;

pub use adam::Adam;
pub use budget::Budget;
pub use config::TrainConfig;
pub use dist::{Dist, DistEnv, GlobalBatch};
pub use run::latest_checkpoint;
pub use run::{prepare_run_dir, RunConfig};
pub use trainer::{check_resume, train, StepMetrics, TupleSample};
