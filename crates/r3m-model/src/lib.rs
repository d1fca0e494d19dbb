#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-model
//!
//! Encoders, the R3M objective and its variants, and the checkpoint format, on libtorch through `tch`.
//!
//! The encoders are torchvision's ResNet18/34/50 with torchvision's parameter names
//! (`conv1.weight`, `layer1.0.bn1.running_mean`, `layer2.0.downsample.0.weight`, ...) and the final
//! `fc` removed, so weights move between this crate, torchvision and official R3M checkpoints by
//! renaming only, and DrQ's shallow ConvNet. Inputs are u8 RGB images `[N, 3, H, W]`; the encoder
//! divides by 255 and normalises itself (ImageNet statistics for the ResNets, as R3M does), and
//! [`PixelSpec`] says so to readers outside r3m.
//!
//! What it is not: no data loading, no training loop (that is `r3m-train`), no file formats other
//! than the checkpoint.

pub mod analysis;
pub mod checkpoint;
pub mod losses;
pub mod objective;
pub mod objectives;
pub mod pixels;
pub mod precision;
pub mod resnet;

pub use objective::{Loss, R3mObjective, Similarity};
pub use objectives::{Objective, ObjectiveConfig, ObjectiveInput, ObjectiveKind, Terms};
pub use pixels::PixelSpec;
pub use precision::Precision;
pub use resnet::{Arch, Encoder};

/// The libtorch version this build links against (read from the PyTorch install at build time).
pub fn libtorch_version() -> &'static str {
    option_env!("R3M_LIBTORCH_VERSION").unwrap_or("unknown")
}

/// The directory of the libtorch shared libraries this build links against.
pub fn libtorch_lib_dir() -> &'static str {
    option_env!("R3M_LIBTORCH_LIB").unwrap_or("unknown")
}
