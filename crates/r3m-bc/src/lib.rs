#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-bc
//!
//! Few-demo behaviour cloning on a frozen encoder, R3M's way: demonstrations from a LeRobot
//! dataset ([`demos`]), the policy ([`policy`]), training and closed-loop evaluation with
//! baselines ([`bc`]), the evaluation's cells, resume rules and tables ([`report`]), and environments behind the [`bridge::Env`] trait, with the Meta-World
//! bridge (a Python subprocess per environment, several stepping in parallel), and the
//! statistics that compare encoders on the same seeds and layouts ([`stats`]).
//!
//! It does not train encoders (that is `r3m-train`; the `scratch` baseline trains one only for
//! the demos at hand) and does not simulate anything itself.

pub mod bc;
pub mod bridge;
pub mod demos;
pub mod policy;
pub mod report;
pub mod shallow;
pub mod stats;

pub use bc::{
    embed_prepared, frames_tensor, prepare_demos, rollouts, run_cell, wilson, BcConfig, CellOutcome, CellResult,
    EncoderKind, EvalPoint, FramePrep, Interrupted, RolloutStep, Timing, BUILTIN_ENCODERS,
};
pub use bridge::{BridgeConfig, Env, MetaWorldBridge, Observation};
pub use demos::{load_demos, load_task_demos, render_info, Demo, RenderInfo};
pub use policy::Policy;
