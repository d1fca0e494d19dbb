//! # r3m-train
//!
//! The training loop: optimiser, device and precision, checkpoint and exact resume, and metrics
//! sinks (terminal progress, CSV/JSONL). It wires `r3m-data` batches into `r3m-model` encoders and
//! objectives.
//!
//! It is not a model zoo (that is `r3m-model`) and does not parse command lines (that is `r3m-cli`).
//!
//! Status: Adam with checkpointable state is here; the loop itself comes with the training issue.

pub mod adam;

pub use adam::Adam;
