//! The run's model: encoder, objective and the parameters Adam updates, built the same way by the
//! training loop and by [`crate::autotune`].

use r3m_model::precision::vars_to_channels_last;
use r3m_model::{Encoder, Objective};
use tch::{nn, Tensor};

use crate::TrainConfig;

/// The run's model on `vs`: the encoder (with its head) and the objective (heads, momentum
/// copies), channels-last when asked, and what Adam updates (the encoder's trainable variables
/// sorted by name, then the objective's). Training and [`crate::autotune`] build it the same way.
pub fn build_model(
    cfg: &TrainConfig,
    vs: &nn::VarStore,
    lang_dim: i64,
    channels_last: bool,
) -> (Encoder, Objective, Vec<(String, Tensor)>) {
    let dim = cfg.proj_dim.unwrap_or(cfg.arch.dim());
    let encoder = Encoder::with_head(&vs.root(), cfg.arch, cfg.proj_dim);
    let objective = Objective::new(cfg.objective, cfg.arch, cfg.proj_dim, dim, lang_dim, vs);
    if channels_last {
        vars_to_channels_last(vs);
        vars_to_channels_last(&objective.momentum);
    }
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params.extend(objective.trainable());
    (encoder, objective, params)
}
