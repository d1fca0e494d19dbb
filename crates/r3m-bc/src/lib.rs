//! # r3m-bc
//!
//! Few-demo behaviour cloning on a frozen encoder, R3M's evaluation protocol: demo loading, frozen
//! features, the BatchNorm → MLP policy, offline metrics, and closed-loop rollouts through an
//! environment trait (Meta-World via a Python subprocess bridge).
//!
//! It does not train encoders (that is `r3m-train`).
//!
//! Status: no code yet; the behaviour-cloning issue fills it.
