//! What a training run is asked to do: [`TrainConfig`].

use r3m_data::{ClipWeighting, TupleSampler};
use r3m_model::{Arch, ObjectiveConfig, Precision};
use tch::Device;

/// Everything that defines a run (stored in every checkpoint's `config.json`).
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Encoder.
    pub arch: Arch,
    /// Side of the square training crops.
    pub size: u32,
    /// Clips per batch.
    pub batch: usize,
    /// Tuples drawn per decoded clip (see `r3m_data::loader`).
    pub tuples_per_clip: usize,
    /// Decode workers.
    pub workers: usize,
    /// Draw batches from a reservoir of decoded clips with this memory budget in MB
    /// (`r3m_data::reservoir`); `None`: grouped batches.
    pub reservoir_mb: Option<usize>,
    /// Total optimisation steps.
    pub steps: u64,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_last: usize,
    /// The objective (R3M's TCN by default) and the language term.
    pub objective: ObjectiveConfig,
    /// How tuples are drawn (R3M's ordering rule, or a positive window / negative gap).
    pub sampler: TupleSampler,
    /// Text → embedding, for the language term (`lang_weight > 0`); clips without a text are
    /// masked out.
    pub text_embeddings: Option<std::collections::BTreeMap<String, Vec<f32>>>,
    /// Where the model runs.
    pub device: Device,
    /// Arithmetic of the forward pass (the loss and the weights stay fp32).
    pub precision: Precision,
    /// Channels-last (NHWC) images and convolution weights.
    pub channels_last: bool,
    /// Optional linear projection head after the trunk.
    pub proj_dim: Option<i64>,
    /// How clips are drawn.
    pub weighting: ClipWeighting,
    /// Hand a sampled tuple to the step callback every this many steps (0: never).
    pub sample_every: u64,
    /// Data-parallel: the process group this rank joined (see [`crate::dist`]); `None`: one process.
    pub dist: Option<std::rc::Rc<crate::dist::Dist>>,
    /// How `precision` and `channels_last` were chosen when `auto` measured them (kept in the
    /// run config); `None`: given, or the static rule.
    pub autotune: Option<crate::modes::Choice>,
    /// Read the step's loss and metrics from the device every this many steps (and before every
    /// checkpoint): the one point where a step waits for a GPU. 1 on the CPU (reads are free), 16
    /// on CUDA. Results do not depend on it; a non-finite loss is seen up to this many steps late.
    pub sync_every: u64,
    /// Cut and resize R3M's crops on `device` ([`crate::device_augment`]) instead of in the decode
    /// workers: the default on CUDA, so the CPU only decodes.
    pub augment_on_device: bool,
}

impl TrainConfig {
    /// R3M's recipe (ResNet50 is R3M's; ResNet18 is the default here for CPU budgets): batch 16,
    /// Adam 1e-4, 224 px, rctraj, the fastest precision for `device`.
    pub fn new(device: Device) -> Self {
        TrainConfig {
            arch: Arch::Resnet18,
            size: 224,
            batch: 16,
            tuples_per_clip: 4,
            workers: 1,
            reservoir_mb: None,
            steps: 1000,
            lr: 1e-4,
            seed: 0,
            checkpoint_every: 500,
            keep_last: 3,
            objective: ObjectiveConfig::default(),
            sampler: TupleSampler::default(),
            text_embeddings: None,
            device,
            precision: Precision::auto(device),
            // measured on a 2-core AMD EPYC (benches/train_step.rs): fp32 channels-last trains
            // 0.88× as fast as NCHW here; it pays with bf16 units and on GPUs
            channels_last: Precision::auto(device) == Precision::Bf16,
            proj_dim: None,
            weighting: ClipWeighting::ByLength,
            sample_every: 0,
            dist: None,
            autotune: None,
            sync_every: if matches!(device, Device::Cuda(_)) { 16 } else { 1 },
            augment_on_device: crate::device_augment::default_on_device(device),
        }
    }
}
