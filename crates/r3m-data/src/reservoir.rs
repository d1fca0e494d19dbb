//! The decoded-clip reservoir: R3M's sampling (every batch a fresh draw of clips, one tuple each)
//! at the decode cost of K tuples per decoded clip.
//!
//! A pool of `P` slots holds recently decoded clips. A clip enters the pool with K tuples drawn
//! for it by R3M's sampler, decoded in one pass (only the union of their frames, at the decode
//! size); every batch picks `batch` distinct slots uniformly at random and takes the next tuple of
//! each (augmented afresh); a clip that has served its K tuples leaves and a newly drawn clip takes
//! its slot. So one decode still serves K tuples, as in grouped mode, but a clip's tuples are
//! spread over about K·P/batch batches at random instead of K consecutive ones: consecutive
//! batches share about batch²/P clips, and a window of batches sees about as many distinct clips
//! as R3M's i.i.d. draw (see `benches/data_loader.rs` for both figures, measured).
//!
//! Determinism: which clip enters which slot, its tuples, and which slots each batch takes are a
//! pure function of the seed (the [`Schedule`]); decoding only fills them in. Two copies of the
//! schedule run: one feeds the decode pool its requests ahead of time, the other assembles
//! batches, so the batches are the same for any number of workers. A clip that fails to decode is
//! replaced in its slot by a substitute drawn from a stream of its own (seed, admission, attempt),
//! and a tuple that needs an undecodable frame is drawn again from its own stream, so failures
//! depend on the files only, not on timing. Resume replays the schedule (random draws only, no
//! decoding) to the batch to continue from and decodes the clips resident at that point.
//!
//! Memory: `P` × (frames in the union of K tuples, ≤ min(5K, clip length)) × decode size × 3
//! bytes, plus the decode window; [`pool_slots`] sizes `P` from a budget in MB.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use r3m_video::{DecodeOptions, DecodePool, Frame, Request, VideoReader};
use rayon::prelude::*;

use crate::augment::Augment;
use crate::batch::{
    cumulative, redraw_around_lost, tuple_images, weighted, Batch, GroupMsg, LoaderConfig, LoaderState,
};
use crate::rng::Rng;
use crate::sampler::{Tuple, TupleSampler};
use crate::source::Clip;

const TUPLES_TAG: u64 = 0x5245_5345_5256_5455; // admission tuples
const SUBST_TAG: u64 = 0x5245_5345_5256_5355; // substitutes for clips that fail
const REDRAW_TAG: u64 = 0x5245_5345_5256_5244; // tuples redrawn around undecodable frames
const AUGMENT_TAG: u64 = 0x5245_5345_5256_4147; // per-tuple augmentation

/// Slots for a memory budget of `mb` megabytes: each slot holds the union of K tuples' frames
/// (≤ min(5K, mean clip length)) at the decode size. At least `batch`.
pub fn pool_slots(clips: &[Clip], decode: &DecodeOptions, k: usize, batch: usize, mb: usize) -> usize {
    clip_bytes(clips, decode, k).map_or(batch.max(1), |b| ((mb as f64 * 1e6 / b) as usize).max(batch.max(1)))
}

/// Mean bytes one resident clip takes (`None` for no clips).
pub fn clip_bytes(clips: &[Clip], decode: &DecodeOptions, k: usize) -> Option<f64> {
    if clips.is_empty() {
        return None;
    }
    let n = clips.len() as f64;
    let (mut frames, mut px) = (0.0, 0.0);
    for c in clips {
        let v = &c.video;
        let (w, h) = if v.rotation % 180 == 90 { (v.height, v.width) } else { (v.width, v.height) };
        let (ow, oh) = decode.resize.output_size(w, h);
        frames += c.len().min(5 * k) as f64;
        px += f64::from(ow) * f64::from(oh);
    }
    Some(frames / n * px / n * 3.0)
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    serial: u64,
    clip: usize,
    left: usize,
}

/// A clip entering the pool: its admission number, the clip drawn, its K tuples.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    serial: u64,
    clip: usize,
    tuples: Vec<Tuple>,
}

/// One batch: `(admission, tuple number)` per slot taken, and the admissions that leave after it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    index: u64,
    picks: Vec<(u64, usize)>,
    retire: Vec<u64>,
}

pub(crate) enum Event {
    Admit(Admission),
    Batch(Plan),
}

/// Everything random about the reservoir, as a pure function of the seed (see the module docs).
#[derive(Clone)]
pub(crate) struct Schedule {
    lens: Arc<Vec<(usize, f64)>>,
    cum: Arc<Vec<f64>>,
    seed: u64,
    batch: usize,
    k: usize,
    sampler: TupleSampler,
    rng: Rng,
    slots: Vec<Slot>,
    order: Vec<usize>,
    pending: VecDeque<usize>,
    in_pool: Vec<u32>,
    distinct: bool,
    next_serial: u64,
    next_batch: u64,
}

fn tuples_for(
    seed: u64,
    sampler: &TupleSampler,
    serial: u64,
    attempt: u64,
    len: usize,
    fps: f64,
    k: usize,
) -> Vec<Tuple> {
    let mut rng = Rng::keyed(seed, &[TUPLES_TAG, serial, attempt]);
    (0..k).map(|_| sampler.sample(len, fps, &mut rng).expect("clips have ≥ 3 frames")).collect()
}

impl Schedule {
    pub(crate) fn new(clips: &[Clip], cfg: &LoaderConfig, slots: usize) -> Self {
        let lens = clips.iter().map(|c| (c.len(), c.video.fps)).collect();
        Self::from_lens(lens, cumulative(clips, cfg.weighting), cfg, slots)
    }

    fn from_lens(lens: Vec<(usize, f64)>, cum: Vec<f64>, cfg: &LoaderConfig, slots: usize) -> Self {
        let n = lens.len();
        let p = slots.min(n).max(cfg.batch.max(1));
        Schedule {
            lens: Arc::new(lens),
            cum: Arc::new(cum),
            seed: cfg.seed,
            batch: cfg.batch.max(1),
            k: cfg.tuples_per_clip.max(1),
            sampler: cfg.sampler,
            rng: Rng::new(cfg.seed ^ 0x5245_5345_5256_4f49),
            slots: vec![Slot { serial: 0, clip: 0, left: 0 }; p],
            order: (0..p).collect(),
            pending: (0..p).collect(),
            in_pool: vec![0; n],
            distinct: n >= p,
            next_serial: 0,
            next_batch: 0,
        }
    }

    fn draw_clip(&mut self) -> usize {
        let i = weighted(&self.cum, &mut self.rng);
        if !self.distinct || self.in_pool[i] == 0 {
            return i;
        }
        for _ in 0..64 {
            let j = weighted(&self.cum, &mut self.rng);
            if self.in_pool[j] == 0 {
                return j;
            }
        }
        // nearly every clip is in the pool: the next one not in it, from a random place
        let n = self.in_pool.len();
        (0..n).map(|d| (i + d) % n).find(|&j| self.in_pool[j] == 0).unwrap_or(i)
    }

    pub(crate) fn next_event(&mut self) -> Event {
        if let Some(s) = self.pending.pop_front() {
            let clip = self.draw_clip();
            let serial = self.next_serial;
            self.next_serial += 1;
            self.in_pool[clip] += 1;
            self.slots[s] = Slot { serial, clip, left: self.k };
            let (len, fps) = self.lens[clip];
            let tuples = tuples_for(self.seed, &self.sampler, serial, 0, len, fps, self.k);
            return Event::Admit(Admission { serial, clip, tuples });
        }
        // `batch` distinct slots, uniformly: a partial Fisher–Yates over a persistent order
        let p = self.order.len();
        let mut picks = Vec::with_capacity(self.batch);
        let mut retire = Vec::new();
        for i in 0..self.batch.min(p) {
            let j = i + self.rng.below((p - i) as u64) as usize;
            self.order.swap(i, j);
            let s = self.order[i];
            let slot = &mut self.slots[s];
            picks.push((slot.serial, self.k - slot.left));
            slot.left -= 1;
            if slot.left == 0 {
                retire.push(slot.serial);
                self.in_pool[slot.clip] -= 1;
                self.pending.push_back(s);
            }
        }
        let index = self.next_batch;
        self.next_batch += 1;
        Event::Batch(Plan { index, picks, retire })
    }

    /// Replays the schedule up to (not including) batch `to`; returns the admissions resident at
    /// that point, in admission order.
    pub(crate) fn fast_forward(&mut self, to: u64) -> Vec<Admission> {
        let mut resident: std::collections::BTreeMap<u64, Admission> = Default::default();
        while self.next_batch < to || !self.pending.is_empty() {
            match self.next_event() {
                Event::Admit(a) => {
                    resident.insert(a.serial, a);
                }
                Event::Batch(p) => {
                    for s in p.retire {
                        resident.remove(&s);
                    }
                }
            }
        }
        resident.into_values().collect()
    }
}

/// The clips of the first `batches` batches a reservoir over clips of `lens` frames (uniform
/// weighting, R3M's sampler, `cfg.batch`, `cfg.tuples_per_clip`, `cfg.seed`) would yield, without
/// decoding anything (clips assumed decodable): for measuring diversity at dataset sizes no test
/// machine holds. The same schedule [`crate::Loader`] follows.
pub fn schedule_clips(lens: &[usize], cfg: &LoaderConfig, slots: usize, batches: usize) -> Vec<Vec<usize>> {
    let cum = (1..=lens.len()).map(|i| i as f64).collect();
    let mut s = Schedule::from_lens(lens.iter().map(|&l| (l, 30.0)).collect(), cum, cfg, slots);
    let mut clip_of = HashMap::new();
    let mut out = Vec::with_capacity(batches);
    while out.len() < batches {
        match s.next_event() {
            Event::Admit(a) => {
                clip_of.insert(a.serial, a.clip);
            }
            Event::Batch(p) => {
                out.push(p.picks.iter().map(|(serial, _)| clip_of[serial]).collect());
                for r in p.retire {
                    clip_of.remove(&r);
                }
            }
        }
    }
    out
}

/// One assembled tuple: augmented frames, its clip and frame indices.
struct Assembled {
    width: u32,
    height: u32,
    images: Vec<Vec<u8>>,
    clip: usize,
    tuple: Tuple,
    crop: Option<crate::Crop>,
}

struct Resident {
    clip: usize,
    tuples: Vec<Tuple>,
    frames: Vec<Frame>,
}

/// The reservoir's producer: turns the schedule's events into batches.
pub(crate) struct Reservoir {
    clips: Arc<Vec<Clip>>,
    cfg: LoaderConfig,
    sched: Schedule,
    results: r3m_video::Ordered,
    resident: HashMap<u64, Resident>,
    /// Admissions already decoded (resume) that come before the schedule's own.
    backlog: VecDeque<Admission>,
    bad: Vec<bool>,
    failures: Vec<(usize, String)>,
    redrawn: u64,
}

fn request(clips: &[Clip], a: &Admission) -> Request {
    let clip = &clips[a.clip];
    let mut ix: Vec<usize> = a.tuples.iter().flatten().map(|f| clip.start + f).collect();
    ix.sort_unstable();
    ix.dedup();
    Request::frames_lossy(clip.video.clone(), ix)
}

impl Reservoir {
    /// A producer that yields batch `start` next.
    pub(crate) fn new(clips: Arc<Vec<Clip>>, cfg: LoaderConfig, slots: usize, start: u64) -> Self {
        let mut sched = Schedule::new(&clips, &cfg, slots);
        let backlog: VecDeque<Admission> = if start > 0 { sched.fast_forward(start).into() } else { VecDeque::new() };
        let mut feed = sched.clone();
        let first: Vec<Request> = backlog.iter().map(|a| request(&clips, a)).collect();
        let c2 = clips.clone();
        let rest = std::iter::from_fn(move || loop {
            if let Event::Admit(a) = feed.next_event() {
                return Some(request(&c2, &a));
            }
        });
        let window = (4 * cfg.workers.max(1)).max(8);
        let pool = DecodePool::new(cfg.workers, cfg.decode, window);
        let results = pool.run(first.into_iter().chain(rest));
        let n = clips.len();
        Reservoir {
            clips,
            cfg,
            sched,
            results,
            resident: HashMap::new(),
            backlog,
            bad: vec![false; n],
            failures: Vec::new(),
            redrawn: 0,
        }
    }

    /// Decodes `ix` of `clip` in this thread (substitutes and redraws: rare).
    fn decode_now(&self, clip: usize, ix: Vec<usize>) -> Result<Vec<Frame>, String> {
        let c = &self.clips[clip];
        let mut r = VideoReader::open_probed(c.video.clone(), self.cfg.decode).map_err(|e| e.to_string())?;
        r.read_frames_lossy(&ix).map_err(|e| e.to_string())
    }

    /// [`redraw_around_lost`] for admission `a` (its `attempt`-th clip), redraws from streams of
    /// (seed, admission, tuple, attempt, redraw), decoded in this thread.
    fn complete(&mut self, a: &mut Admission, attempt: u64, fr: Vec<Frame>) -> Result<Vec<Frame>, String> {
        let clip = &self.clips[a.clip];
        let (seed, serial) = (self.cfg.seed, a.serial);
        let stream = |t: usize, r: u64| Rng::keyed(seed, &[REDRAW_TAG, serial, t as u64, attempt, r]);
        let c = a.clip;
        let decode = |ix: Vec<usize>| self.decode_now(c, ix);
        let mut redrawn = 0;
        let out = redraw_around_lost(clip, &mut a.tuples, fr, &self.cfg.sampler, stream, decode, &mut redrawn);
        self.redrawn += redrawn;
        out
    }

    /// Takes admission `a` with its decode result into the pool, substituting clips that fail.
    /// `None` when every clip has failed.
    fn admit(&mut self, mut a: Admission, result: Result<Vec<Frame>, String>) -> Option<()> {
        let mut result = result;
        let n = self.clips.len();
        for attempt in 0u64.. {
            let outcome = result.and_then(|fr| self.complete(&mut a, attempt, fr));
            match outcome {
                Ok(frames) => {
                    self.resident.insert(a.serial, Resident { clip: a.clip, tuples: a.tuples, frames });
                    return Some(());
                }
                Err(e) => {
                    if !self.bad[a.clip] {
                        self.bad[a.clip] = true;
                        self.failures.push((a.clip, e));
                    }
                }
            }
            if self.bad.iter().all(|&b| b) {
                return None;
            }
            // a substitute from the admission's own stream; known-bad clips would fail again
            let mut rng = Rng::keyed(self.cfg.seed, &[SUBST_TAG, a.serial, attempt]);
            let mut c = weighted(&self.sched.cum, &mut rng);
            if self.bad[c] {
                c = (0..n).map(|d| (c + d) % n).find(|&j| !self.bad[j]).expect("a clip not yet failed");
            }
            let (len, fps) = (self.clips[c].len(), self.clips[c].video.fps);
            a.clip = c;
            a.tuples = tuples_for(self.cfg.seed, &self.cfg.sampler, a.serial, attempt + 1, len, fps, a.tuples.len());
            let req = request(&self.clips, &a);
            result = self.decode_now(c, req.indices.unwrap_or_default());
        }
        None
    }

    fn next_result(&mut self) -> Option<Result<Vec<Frame>, String>> {
        self.results.next().map(|r| r.map_err(|e| e.to_string()))
    }

    /// The next batch's message, or `None` when no clip can be decoded (or the pool stopped).
    pub(crate) fn next_msg(&mut self) -> Option<GroupMsg> {
        while let Some(a) = self.backlog.pop_front() {
            let r = self.next_result()?;
            self.admit(a, r)?;
        }
        loop {
            match self.sched.next_event() {
                Event::Admit(a) => {
                    let r = self.next_result()?;
                    self.admit(a, r)?;
                }
                Event::Batch(plan) => {
                    let batch = self.assemble(&plan);
                    for s in &plan.retire {
                        self.resident.remove(s);
                    }
                    let st = LoaderState { rng: self.cfg.seed, group: plan.index, within: 0 };
                    return Some((
                        st,
                        vec![batch],
                        std::mem::take(&mut self.failures),
                        std::mem::take(&mut self.redrawn),
                    ));
                }
            }
        }
    }

    fn assemble(&self, plan: &Plan) -> Batch {
        let seed = self.cfg.seed;
        let augment: Augment = self.cfg.augment;
        let clips = &self.clips;
        let resident = &self.resident;
        let out: Vec<Assembled> = plan
            .picks
            .par_iter()
            .enumerate()
            .map(|(j, &(serial, k))| {
                let r = &resident[&serial];
                let clip = &clips[r.clip];
                let tuple = r.tuples[k];
                let src = tuple_images(clip, &tuple, &r.frames);
                let (w, h) = (r.frames[0].width, r.frames[0].height);
                let mut rng = Rng::keyed(seed, &[AUGMENT_TAG, plan.index, j as u64]);
                let (width, height, images, crop) = augment.apply_deferring(&src, w, h, &mut rng);
                Assembled { width, height, images, clip: r.clip, tuple, crop }
            })
            .collect();
        let (w, h) = (out[0].width, out[0].height);
        let mut data = Vec::with_capacity(out.len() * 5 * (w * h * 3) as usize);
        for a in &out {
            for img in &a.images {
                data.extend_from_slice(img);
            }
        }
        Batch {
            data,
            batch: out.len(),
            height: h,
            width: w,
            clips: out.iter().map(|a| a.clip).collect(),
            tuples: out.iter().map(|a| a.tuple).collect(),
            crops: out.iter().filter_map(|a| a.crop).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(sched: &mut Schedule, n: usize) -> Vec<Plan> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Event::Batch(p) = sched.next_event() {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn every_admission_serves_k_tuples_and_batches_take_distinct_slots() {
        let (p, k, b) = (12usize, 4usize, 5usize);
        let lens = Arc::new(vec![(40usize, 30.0); 30]);
        let cum = Arc::new((1..=30).map(f64::from).collect::<Vec<_>>());
        let mut s = Schedule {
            lens,
            cum,
            seed: 3,
            batch: b,
            k,
            sampler: TupleSampler::default(),
            rng: Rng::new(3),
            slots: vec![Slot { serial: 0, clip: 0, left: 0 }; p],
            order: (0..p).collect(),
            pending: (0..p).collect(),
            in_pool: vec![0; 30],
            distinct: true,
            next_serial: 0,
            next_batch: 0,
        };
        let mut served: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut clip_of: HashMap<u64, usize> = HashMap::new();
        let mut live: HashMap<u64, usize> = HashMap::new();
        for _ in 0..2000 {
            match s.next_event() {
                Event::Admit(a) => {
                    assert_eq!(a.tuples.len(), k);
                    assert!(!live.values().any(|&c| c == a.clip), "a clip entered the pool twice");
                    live.insert(a.serial, a.clip);
                    clip_of.insert(a.serial, a.clip);
                }
                Event::Batch(plan) => {
                    assert_eq!(plan.picks.len(), b);
                    let mut cl: Vec<usize> = plan.picks.iter().map(|(s, _)| clip_of[s]).collect();
                    cl.sort_unstable();
                    cl.dedup();
                    assert_eq!(cl.len(), b, "a batch took one clip twice");
                    for &(serial, t) in &plan.picks {
                        served.entry(serial).or_default().push(t);
                    }
                    for r in plan.retire {
                        assert_eq!(
                            served[&r],
                            (0..k).collect::<Vec<_>>(),
                            "admission {r} served its tuples in order, once each"
                        );
                        live.remove(&r);
                    }
                }
            }
        }
        assert!(served.len() > 2 * p, "clips came and went");
    }

    #[test]
    fn fast_forward_continues_the_same_schedule() {
        let lens = Arc::new(vec![(25usize, 30.0); 50]);
        let cum = Arc::new((1..=50).map(f64::from).collect::<Vec<_>>());
        let s0 = Schedule {
            lens,
            cum,
            seed: 9,
            batch: 4,
            k: 3,
            sampler: TupleSampler::default(),
            rng: Rng::new(9),
            slots: vec![Slot { serial: 0, clip: 0, left: 0 }; 10],
            order: (0..10).collect(),
            pending: (0..10).collect(),
            in_pool: vec![0; 50],
            distinct: true,
            next_serial: 0,
            next_batch: 0,
        };
        let all = plans(&mut s0.clone(), 60);
        let mut s = s0.clone();
        let resident = s.fast_forward(37);
        assert_eq!(resident.len(), 10, "a full pool is resident");
        let rest = plans(&mut s, 23);
        for (a, b) in all[37..].iter().zip(&rest) {
            assert_eq!((a.index, &a.picks, &a.retire), (b.index, &b.picks, &b.retire));
        }
        // every pick after the resume point refers to a resident admission or a later one
        let first_new = resident.iter().map(|a| a.serial).max().unwrap() + 1;
        let known: Vec<u64> = resident.iter().map(|a| a.serial).collect();
        for p in &rest {
            for (serial, _) in &p.picks {
                assert!(known.contains(serial) || *serial >= first_new);
            }
        }
    }
}
