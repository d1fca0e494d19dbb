//! The tuple loader: clips → R3M tuples → decoded, augmented u8 batches, with decode running ahead
//! of the consumer in a bounded window.
//!
//! Batches are built in **groups**: a group draws `batch` distinct clips (when the dataset has
//! that many) and `tuples_per_clip` (K) tuples from each; every clip's K tuples are decoded in one
//! pass (`VideoReader::read_many`), and the group yields K batches, batch k holding tuple k of
//! every clip. So each batch has `batch` different clips (the cross-clip negatives R3M needs are
//! really other clips), and one decode of a clip serves K tuples.
//!
//! Sampling statistics: with K = 1 this is R3M's sampler exactly (clips i.i.d. per batch slot, up
//! to the distinct-clip rule). With K > 1 the same `batch` clips appear together in K consecutive
//! batches (their frames differ: every tuple is drawn afresh), so negatives repeat across those K
//! steps and consecutive gradient steps are correlated.
//!
//! Everything random comes from the seed: the group sequence from one [`Rng`], augmentation from a
//! stream per (group, clip, tuple). The batches are the same whatever the number of workers, and
//! [`LoaderState`] resumes the sequence exactly.

use std::sync::Arc;

use r3m_video::{DecodePool, Request};
use rayon::prelude::*;

use crate::rng::Rng;
use crate::sampler::Tuple;
use crate::source::Clip;

use crate::batch::{cumulative, redraw_around_lost, tuple_images, weighted, GroupMsg};
pub use crate::batch::{Batch, ClipWeighting, LoaderConfig, LoaderMode, LoaderState};

/// One tuple's augmentation: output size, frames, and a crop still to apply.
type Augmented = (u32, u32, Vec<Vec<u8>>, Option<crate::Crop>);

struct Group {
    clips: Vec<usize>,
    tuples: Vec<Vec<Tuple>>,
    group: u64,
}

/// Stream keys' first field: what the stream is for.
const REDRAW_TAG: u64 = 0x5245_4452_4157; // tuples redrawn around undecodable frames
const AUGMENT_TAG: u64 = 0x4155_474D; // per-tuple augmentation

/// Counters for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Batches yielded.
    pub batches: u64,
    /// Clips dropped because decoding them failed, with the reason (each clip once).
    pub failed: Vec<(usize, String)>,
    /// Tuples that needed a frame that could not be decoded, and were drawn again around it.
    pub redrawn: u64,
    /// The producer thread's panic message, when it panicked (the loader then ends).
    pub panic: Option<String>,
}

/// The sequential part that decides what comes next: runs on the producer thread.
struct Producer {
    clips: Arc<Vec<Clip>>,
    cfg: LoaderConfig,
    rng: Rng,
    group: u64,
    bad: Vec<bool>,
    cum: Vec<f64>,
    pool: DecodePool,
}

/// An endless iterator of batches (see the module docs). A producer thread decodes and augments
/// up to `prefetch_groups` groups ahead; dropping the loader stops it.
pub struct Loader {
    clips: Arc<Vec<Clip>>,
    rx: Option<crossbeam_channel::Receiver<GroupMsg>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pending: std::collections::VecDeque<Batch>,
    state: LoaderState,
    skip_first: usize,
    stats: LoaderStats,
}

impl Loader {
    /// A loader over `clips` (must not be empty; every clip needs ≥ 3 frames).
    pub fn new(clips: Vec<Clip>, cfg: LoaderConfig) -> Self {
        Self::resume(clips, cfg, None)
    }

    /// A loader that continues from `state` (from [`Loader::state`]), yielding exactly the
    /// batches an uninterrupted loader would have yielded next.
    pub fn resume(clips: Vec<Clip>, cfg: LoaderConfig, state: Option<LoaderState>) -> Self {
        assert!(!clips.is_empty(), "Loader needs at least one clip");
        let n = clips.len();
        let st = state.unwrap_or(LoaderState { rng: cfg.seed, group: 0, within: 0 });
        let clips = Arc::new(clips);
        // a group message carries K batches, a reservoir message one
        let cap = cfg.prefetch_groups.max(1) * if cfg.mode == LoaderMode::Grouped { 1 } else { 4 };
        let (tx, rx) = crossbeam_channel::bounded(cap);
        let (st, thread) = match cfg.mode {
            LoaderMode::Grouped => {
                let pool = DecodePool::new(cfg.workers, cfg.decode, 2 * cfg.workers.max(1));
                let cum = cumulative(&clips, cfg.weighting);
                let mut producer = Producer {
                    clips: clips.clone(),
                    rng: Rng::from_state(st.rng),
                    group: st.group,
                    bad: vec![false; n],
                    cum,
                    pool,
                    cfg,
                };
                let thread = std::thread::Builder::new()
                    .name("r3m-loader".into())
                    .spawn(move || {
                        while let Some(msg) = producer.next_group() {
                            if tx.send(msg).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawning the loader thread");
                (st, thread)
            }
            LoaderMode::Reservoir { slots } => {
                // one batch per message: continue at the batch after the last one yielded
                let start = st.group + st.within as u64;
                let c2 = clips.clone();
                let thread = std::thread::Builder::new()
                    .name("r3m-reservoir".into())
                    .spawn(move || {
                        let mut producer = crate::reservoir::Reservoir::new(c2, cfg, slots, start);
                        while let Some(msg) = producer.next_msg() {
                            if tx.send(msg).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawning the loader thread");
                (LoaderState { rng: st.rng, group: start, within: 0 }, thread)
            }
        };
        Loader {
            clips,
            rx: Some(rx),
            thread: Some(thread),
            pending: Default::default(),
            state: st,
            skip_first: st.within,
            stats: LoaderStats::default(),
        }
    }

    /// The state to store for an exact resume: a loader resumed from it yields next exactly the
    /// batch this one would yield next.
    pub fn state(&self) -> LoaderState {
        self.state
    }

    /// Counters so far.
    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    /// The clips.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }
}

impl Loader {
    /// Waits for the producer thread; a panic's message goes to [`LoaderStats::panic`].
    fn join_producer(&mut self) {
        if let Some(t) = self.thread.take() {
            if let Err(p) = t.join() {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(a panic without a message)".into());
                self.stats.panic = Some(msg);
            }
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.rx = None; // the producer's next send fails and it exits
        self.join_producer();
    }
}

impl Producer {
    fn draw_clip(&mut self, taken: &[usize]) -> Option<usize> {
        self.cum.last()?;
        let usable = self.bad.iter().filter(|b| !**b).count();
        let distinct = usable > taken.len();
        for _ in 0..10_000 {
            let i = weighted(&self.cum, &mut self.rng);
            if self.bad[i] || (distinct && taken.contains(&i)) {
                continue;
            }
            return Some(i);
        }
        None
    }

    fn draw_group(&mut self) -> Option<Group> {
        let mut clips = Vec::with_capacity(self.cfg.batch);
        let mut tuples = Vec::with_capacity(self.cfg.batch);
        for _ in 0..self.cfg.batch {
            let c = self.draw_clip(&clips)?;
            let (len, fps) = (self.clips[c].len(), self.clips[c].video.fps);
            let ts: Vec<Tuple> = (0..self.cfg.tuples_per_clip)
                .map(|_| self.cfg.sampler.sample(len, fps, &mut self.rng).expect("clip ≥ 3 frames"))
                .collect();
            clips.push(c);
            tuples.push(ts);
        }
        let g = Group { clips, tuples, group: self.group };
        self.group += 1;
        Some(g)
    }

    /// Draws, decodes (in parallel over its clips) and augments one group. Clips that fail to
    /// decode are marked bad, reported once, and the group is drawn again without them.
    fn next_group(&mut self) -> Option<GroupMsg> {
        let mut failures = Vec::new();
        let mut redrawn = 0u64;
        loop {
            let state_before = LoaderState { rng: self.rng.state(), group: self.group, within: 0 };
            let g = self.draw_group()?;
            let reqs: Vec<Request> = g
                .clips
                .iter()
                .zip(&g.tuples)
                .map(|(&c, ts)| {
                    let clip = &self.clips[c];
                    let mut ix: Vec<usize> = ts.iter().flatten().map(|f| clip.start + f).collect();
                    ix.sort_unstable();
                    ix.dedup();
                    // an undecodable frame is left out, not the request: its tuples are redrawn
                    Request::frames_lossy(clip.video.clone(), ix)
                })
                .collect();
            let results: Vec<_> = self.pool.run(reqs).collect();
            let mut g = g;
            let mut failed = false;
            let mut frames: Vec<Vec<r3m_video::Frame>> = Vec::with_capacity(results.len());
            for (j, r) in results.into_iter().enumerate() {
                let c = g.clips[j];
                let outcome =
                    r.map_err(|e| e.to_string()).and_then(|fr| self.redraw_group_tuples(&mut g, j, fr, &mut redrawn));
                match outcome {
                    Ok(fr) => frames.push(fr),
                    Err(e) => {
                        if !self.bad[c] {
                            self.bad[c] = true;
                            failures.push((c, e));
                        }
                        failed = true;
                    }
                }
            }
            if failed {
                continue;
            }
            return Some((state_before, self.assemble(&g, frames), failures, redrawn));
        }
    }

    /// [`redraw_around_lost`] for clip `j` of `g`, its redraws from streams of (seed, group, clip
    /// slot, tuple, attempt), decoded through the pool.
    fn redraw_group_tuples(
        &self,
        g: &mut Group,
        j: usize,
        fr: Vec<r3m_video::Frame>,
        redrawn: &mut u64,
    ) -> Result<Vec<r3m_video::Frame>, String> {
        let clip = &self.clips[g.clips[j]];
        let (seed, group) = (self.cfg.seed, g.group);
        let stream = |t: usize, attempt: u64| Rng::keyed(seed, &[REDRAW_TAG, group, j as u64, t as u64, attempt]);
        let decode = |ix: Vec<usize>| match self.pool.run(vec![Request::frames_lossy(clip.video.clone(), ix)]).next() {
            Some(r) => r.map_err(|e| e.to_string()),
            None => Err("the decode pool stopped".into()),
        };
        redraw_around_lost(clip, &mut g.tuples[j], fr, &self.cfg.sampler, stream, decode, redrawn)
    }

    fn assemble(&self, g: &Group, frames: Vec<Vec<r3m_video::Frame>>) -> Vec<Batch> {
        let k = self.cfg.tuples_per_clip;
        let b = g.clips.len();
        // every (clip j, tuple t): 5 augmented frames; augmentation in parallel
        let work: Vec<(usize, usize)> = (0..b).flat_map(|j| (0..k).map(move |t| (j, t))).collect();
        let seed = self.cfg.seed;
        let augment = self.cfg.augment;
        let clips = &self.clips;
        let out: Vec<Augmented> = work
            .par_iter()
            .map(|&(j, t)| {
                let clip = &clips[g.clips[j]];
                let tuple = g.tuples[j][t];
                let fr = &frames[j];
                let src = tuple_images(clip, &tuple, fr);
                let (w, h) = (fr[0].width, fr[0].height);
                let mut rng = Rng::keyed(seed, &[AUGMENT_TAG, g.group, j as u64, t as u64]);
                augment.apply_deferring(&src, w, h, &mut rng)
            })
            .collect();
        (0..k)
            .map(|t| {
                let (w, h) = (out[t].0, out[t].1);
                let mut data = Vec::with_capacity(b * 5 * (w * h * 3) as usize);
                let mut tuples = Vec::with_capacity(b);
                let mut crops = Vec::new();
                for j in 0..b {
                    let (_, _, imgs, crop) = &out[j * k + t];
                    for img in imgs {
                        data.extend_from_slice(img);
                    }
                    tuples.push(g.tuples[j][t]);
                    crops.extend(*crop);
                }
                Batch { data, batch: b, height: h, width: w, clips: g.clips.clone(), tuples, crops }
            })
            .collect()
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        while self.pending.is_empty() {
            let Ok((st, batches, failures, redrawn)) = self.rx.as_ref()?.recv() else {
                // the producer ended: out of usable clips, or it panicked (say which)
                self.join_producer();
                return None;
            };
            self.stats.failed.extend(failures);
            self.stats.redrawn += redrawn;
            self.pending = batches.into();
            self.state = st;
            let skip = std::mem::take(&mut self.skip_first).min(self.pending.len());
            self.pending.drain(..skip);
            self.state.within = skip;
        }
        let b = self.pending.pop_front()?;
        self.state.within += 1;
        self.stats.batches += 1;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer thread that panics ends the loader, and the panic's message is kept for the
    /// error the trainer reports (not taken for a loader that ran out of clips).
    #[test]
    fn a_producer_panic_is_reported_not_lost() {
        let (tx, rx) = crossbeam_channel::bounded::<GroupMsg>(1);
        let thread = std::thread::Builder::new()
            .name("r3m-loader-test".into())
            .spawn(move || {
                let _keep = tx;
                panic!("clip 7 has no frames");
            })
            .unwrap();
        let mut loader = Loader {
            clips: Arc::new(Vec::new()),
            rx: Some(rx),
            thread: Some(thread),
            pending: Default::default(),
            state: LoaderState { rng: 0, group: 0, within: 0 },
            skip_first: 0,
            stats: LoaderStats::default(),
        };
        assert!(loader.next().is_none());
        assert_eq!(loader.stats().panic.as_deref(), Some("clip 7 has no frames"));
    }
}
