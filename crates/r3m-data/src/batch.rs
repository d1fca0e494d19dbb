//! What both loaders share (the grouped [`crate::loader`] and the [`crate::reservoir`]): their
//! configuration and state, the batch they hand out, and the sampling steps every batch goes
//! through (draw a clip by weight, pick a tuple's frames, redraw around undecodable frames). A leaf:
//! neither loader is imported here.

use crate::augment::Augment;
use crate::rng::Rng;
use crate::sampler::{Tuple, TupleSampler};
use crate::source::Clip;
use r3m_video::DecodeOptions;

/// How clips are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipWeighting {
    /// Every clip equally likely.
    Uniform,
    /// Proportional to the clip's frame count.
    ByLength,
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Tuples (clips) per batch.
    pub batch: usize,
    /// Tuples drawn from each decoded clip (K; 1 = R3M's sampling exactly).
    pub tuples_per_clip: usize,
    /// Decode threads.
    pub workers: usize,
    /// How frames are decoded (size before augmentation).
    pub decode: DecodeOptions,
    /// Augmentation applied per tuple.
    pub augment: Augment,
    /// The tuple sampler.
    pub sampler: TupleSampler,
    /// Clip weighting.
    pub weighting: ClipWeighting,
    /// Seed of everything random.
    pub seed: u64,
    /// Groups decoded ahead of the consumer (grouped mode; the reservoir runs ahead by batches).
    pub prefetch_groups: usize,
    /// How tuples are drawn from decoded clips.
    pub mode: LoaderMode,
}

/// How decoded clips are turned into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderMode {
    /// Groups of `batch` clips, K tuples each, in K consecutive batches (see the module docs).
    Grouped,
    /// A pool of `slots` decoded clips; every batch takes `batch` of them at random, one tuple
    /// each; a clip leaves after K tuples ([`crate::reservoir`]).
    Reservoir {
        /// Clips held decoded (see [`crate::reservoir::pool_slots`] to size it from memory).
        slots: usize,
    },
}

impl LoaderMode {
    /// `grouped` or `reservoir`.
    pub fn name(&self) -> &'static str {
        match self {
            LoaderMode::Grouped => "grouped",
            LoaderMode::Reservoir { .. } => "reservoir",
        }
    }
}

/// Where the loader is in its sequence; store it in a checkpoint to resume exactly. (The
/// reservoir counts batches in `group` and replays its schedule from the seed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderState {
    /// State of the group sampler's RNG before the next group to yield.
    pub rng: u64,
    /// Number of groups drawn so far.
    pub group: u64,
    /// Batches of the current group already yielded.
    pub within: usize,
}

/// One batch: u8 RGB frames `[batch, 5, H, W, 3]` in R3M's stack order (start, end, s0, s1, s2).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Packed frames.
    pub data: Vec<u8>,
    /// Tuples in the batch.
    pub batch: usize,
    /// Frame height.
    pub height: u32,
    /// Frame width.
    pub width: u32,
    /// Index (into the loader's clips) of each tuple's clip.
    pub clips: Vec<usize>,
    /// Each tuple's frame indices within its clip.
    pub tuples: Vec<Tuple>,
    /// With [`Augment::RcTrajDeferred`]: each tuple's crop, still to be applied to its 5 frames
    /// (which come whole); empty otherwise.
    pub crops: Vec<crate::Crop>,
}

/// What the producer sends per group: the state before it, its batches, clips that failed, tuples
/// redrawn around undecodable frames.
pub(crate) type GroupMsg = (LoaderState, Vec<Batch>, Vec<(usize, String)>, u64);

/// Attempts at redrawing a tuple around undecodable frames before its clip counts as failed.
const REDRAWS: u64 = 8;

/// Running sums of the clips' draw weights (draw with [`weighted`]); shared by both modes.
pub(crate) fn cumulative(clips: &[Clip], weighting: ClipWeighting) -> Vec<f64> {
    let mut acc = 0.0;
    clips
        .iter()
        .map(|c| {
            acc += match weighting {
                ClipWeighting::Uniform => 1.0,
                ClipWeighting::ByLength => c.len() as f64,
            };
            acc
        })
        .collect()
}

/// A clip index drawn in proportion to its weight (`cum` from [`cumulative`], not empty).
pub(crate) fn weighted(cum: &[f64], rng: &mut Rng) -> usize {
    let x = rng.unit() * cum[cum.len() - 1];
    cum.partition_point(|&c| c <= x).min(cum.len() - 1)
}

/// The packed RGB of each of `tuple`'s frames in `frames` (sorted by index; every frame there).
pub(crate) fn tuple_images<'a>(clip: &Clip, tuple: &Tuple, frames: &'a [r3m_video::Frame]) -> Vec<&'a [u8]> {
    tuple.iter().map(|&f| frames[frames.partition_point(|x| x.index < clip.start + f)].data.as_slice()).collect()
}

/// Makes every tuple of `clip` in `tuples` decodable from `fr` (its frames, decoded lossily,
/// sorted): a tuple that lacks a frame is drawn again from `stream(tuple, attempt)`, its missing
/// frames decoded by `decode` and added, up to [`REDRAWS`] times. The redraws come from streams of
/// their own, so the batches stay a function of the seed and the files. Returns the frames, or
/// why the clip must be dropped.
pub(crate) fn redraw_around_lost(
    clip: &Clip,
    tuples: &mut [Tuple],
    mut fr: Vec<r3m_video::Frame>,
    sampler: &TupleSampler,
    stream: impl Fn(usize, u64) -> Rng,
    mut decode: impl FnMut(Vec<usize>) -> Result<Vec<r3m_video::Frame>, String>,
    redrawn: &mut u64,
) -> Result<Vec<r3m_video::Frame>, String> {
    let has = |fr: &[r3m_video::Frame], t: &Tuple| {
        t.iter().all(|&f| fr.binary_search_by_key(&(clip.start + f), |x| x.index).is_ok())
    };
    for (t, slot) in tuples.iter_mut().enumerate() {
        if has(&fr, slot) {
            continue;
        }
        let mut found = false;
        for attempt in 0..REDRAWS {
            let mut rng = stream(t, attempt);
            let Some(tuple) = sampler.sample(clip.len(), clip.video.fps, &mut rng) else { break };
            let mut ix: Vec<usize> = tuple
                .iter()
                .map(|f| clip.start + f)
                .filter(|i| fr.binary_search_by_key(i, |x| x.index).is_err())
                .collect();
            ix.sort_unstable();
            ix.dedup();
            if !ix.is_empty() {
                fr.extend(decode(ix)?);
                fr.sort_by_key(|x| x.index);
                fr.dedup_by_key(|x| x.index);
            }
            if has(&fr, &tuple) {
                *slot = tuple;
                *redrawn += 1;
                found = true;
                break;
            }
        }
        if !found {
            return Err(format!(
                "{}: frames could not be decoded and {REDRAWS} redrawn tuples hit undecodable frames too",
                clip.video.path.display()
            ));
        }
    }
    Ok(fr)
}
