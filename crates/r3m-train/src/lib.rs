//! # r3m-train
//!
//! The training loop: optimiser, device and precision, checkpoint and exact resume, and metrics
//! sinks (terminal progress, CSV/JSONL). It wires `r3m-data` batches into `r3m-model` encoders and
//! objectives.
//!
//! It is not a model zoo (that is `r3m-model`) and does not parse command lines (that is `r3m-cli`).
//!
//! Status: fp32 training with Adam, metrics, atomic checkpoints and exact resume; CPU bf16, data-wait
//! reporting in the progress bar and the benchmarks come with the rest of the training issue.

pub mod adam;
pub mod trainer;

pub use adam::Adam;
pub use trainer::{latest_checkpoint, train, StepMetrics, TrainConfig, TupleSample};
