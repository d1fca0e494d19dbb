//! The arithmetic and memory layouts a run can train in, and what `auto` chose among them
//! ([`crate::autotune`] measures; the run config keeps the [`Choice`]).

use r3m_model::Precision;
use serde::{Deserialize, Serialize};

/// One arithmetic and memory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mode {
    /// `fp32` or `bf16`.
    #[serde(with = "precision_name")]
    pub precision: Precision,
    /// Channels-last images and weights.
    pub channels_last: bool,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.precision, if self.channels_last { "channels-last" } else { "NCHW" })
    }
}

/// [`Precision`] as its command-line name.
mod precision_name {
    use r3m_model::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A mode's measured time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The mode.
    pub mode: Mode,
    /// Median seconds per training step (compute only).
    pub step_s: f64,
    /// Steps timed (0 in caches of older r3m, which are not read).
    #[serde(default)]
    pub steps: usize,
    /// Slowest over fastest timed step: how steady the machine was while measuring.
    #[serde(default)]
    pub spread: f64,
}

/// What `auto` chose and why; kept in the run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The fastest mode.
    pub mode: Mode,
    /// Every candidate's time.
    pub timings: Vec<Timing>,
    /// The machine and shape the timings belong to.
    pub key: String,
    /// Whether the timings came from the cache (measured by an earlier run).
    pub cached: bool,
}

impl Choice {
    /// One line for the log: the choice and every candidate's time.
    pub fn summary(&self) -> String {
        let t: Vec<String> = self.timings.iter().map(|t| format!("{} {:.3} s/step", t.mode, t.step_s)).collect();
        let steps = self.timings.first().map_or(0, |t| t.steps);
        format!(
            "auto: {} ({}: {}; median of {steps} steps per mode; {})",
            self.mode,
            if self.cached { "cached measurement" } else { "measured" },
            t.join(", "),
            self.key
        )
    }
}
