//! r3m-data's tuple loader on videos made by the `ffmpeg` CLI: batch shapes, distinct clips per
//! batch, the same batches whatever the worker count, exact resume, and a clip that fails to
//! decode being dropped and reported.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;

use r3m_data::{scan_videos, Augment, Clip, ClipWeighting, Loader, LoaderConfig, ProbeCache, TupleSampler};
use r3m_suite::make_video;
use r3m_video::{DecodeOptions, Resize};

fn clips(dir: &Path, lengths: &[usize]) -> Vec<Clip> {
    let root = dir.join("v");
    std::fs::create_dir_all(&root).unwrap();
    for (i, &n) in lengths.iter().enumerate() {
        make_video(&root.join(format!("c{i}.mp4")), "64x48", 10, n, &["-c:v", "libx264", "-g", "8"]);
    }
    scan_videos(&root, &mut ProbeCache::default()).unwrap().clips
}

fn cfg(workers: usize, batch: usize, k: usize) -> LoaderConfig {
    LoaderConfig {
        batch,
        tuples_per_clip: k,
        workers,
        decode: DecodeOptions::with_resize(Resize::square(40)),
        augment: Augment::rctraj(32),
        sampler: TupleSampler::default(),
        weighting: ClipWeighting::ByLength,
        seed: 7,
        prefetch_groups: 2,
        mode: r3m_data::LoaderMode::Grouped,
    }
}

#[test]
fn batches_are_shaped_distinct_deterministic_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let cl = clips(dir.path(), &[20, 25, 30, 35, 40]);
    let a: Vec<_> = Loader::new(cl.clone(), cfg(2, 3, 2)).take(6).collect();
    assert_eq!(a.len(), 6);
    for b in &a {
        assert_eq!((b.batch, b.width, b.height), (3, 32, 32));
        assert_eq!(b.data.len(), 3 * 5 * 32 * 32 * 3);
        let mut c = b.clips.clone();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), 3, "a batch holds distinct clips: {:?}", b.clips);
        for (t, &ci) in b.tuples.iter().zip(&b.clips) {
            assert!(t[2] < t[3] && t[3] < t[4] && t[4] < cl[ci].len(), "{t:?}");
        }
    }
    // K = 2: consecutive batches of a group share clips but not frames
    assert_eq!(a[0].clips, a[1].clips);
    assert_ne!(a[0].data, a[1].data);
    // the same batches with one worker
    let b: Vec<_> = Loader::new(cl.clone(), cfg(1, 3, 2)).take(6).collect();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tuples, y.tuples);
        assert!(x.data == y.data, "batches differ between 2 workers and 1");
    }
    // exact resume, mid-group and at a group boundary
    for cut in [3usize, 4] {
        let mut l = Loader::new(cl.clone(), cfg(2, 3, 2));
        for _ in 0..cut {
            l.next().unwrap();
        }
        let st = l.state();
        drop(l);
        let resumed: Vec<_> = Loader::resume(cl.clone(), cfg(2, 3, 2), Some(st)).take(6 - cut).collect();
        for (x, y) in a[cut..].iter().zip(&resumed) {
            assert_eq!(x.tuples, y.tuples, "resumed after {cut}");
            assert!(x.data == y.data, "resumed after {cut}: data differs");
        }
    }
}

/// Garbage in the middle of a clip costs the frames it hit, not the clip: tuples that need one
/// are drawn again around it (counted), the clip keeps appearing in batches, and the batches are
/// still the same for 1 and 2 workers and after a resume.
#[test]
fn tuples_are_drawn_around_undecodable_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cl = clips(dir.path(), &[80, 80]);
    let p = &cl[1].video.path;
    let mut b = std::fs::read(p).unwrap();
    let mid = b.len() / 2;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for byte in &mut b[mid..mid + 3000] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    std::fs::write(p, b).unwrap();
    let run = |workers: usize, state: Option<r3m_data::LoaderState>, n: usize| {
        let mut l = Loader::resume(cl.clone(), cfg(workers, 2, 2), state);
        let batches: Vec<_> = l.by_ref().take(n).collect();
        (batches, l.state(), l.stats().clone())
    };
    let (a, _, stats) = run(1, None, 24);
    assert!(stats.failed.is_empty(), "the damaged clip must not be dropped: {:?}", stats.failed);
    assert!(stats.redrawn > 0, "24 batches of 2 tuples from an 80-frame clip with ~10 bad frames should hit one");
    assert!(a.iter().filter(|b| b.clips.contains(&1)).count() > 12, "the damaged clip keeps being drawn");
    let (b, _, _) = run(2, None, 24);
    assert!(a.iter().zip(&b).all(|(x, y)| x.data == y.data && x.tuples == y.tuples), "1 and 2 workers differ");
    let (_, st, _) = run(1, None, 9);
    let (c, _, _) = run(2, Some(st), 15);
    assert!(a[9..].iter().zip(&c).all(|(x, y)| x.data == y.data && x.tuples == y.tuples), "resume differs");
}

#[test]
fn a_clip_that_fails_to_decode_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cl = clips(dir.path(), &[30, 30]);
    // probed fine, then the file goes bad
    std::fs::write(&cl[1].video.path, b"gone").unwrap();
    let mut l = Loader::new(cl, cfg(2, 2, 1));
    let batches: Vec<_> = l.by_ref().take(3).collect();
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|b| b.clips == vec![0, 0]), "only the good clip is left");
    assert_eq!(l.stats().failed.len(), 1);
    assert!(l.stats().failed[0].1.contains("c1.mp4"), "{:?}", l.stats().failed);
}

fn reservoir(workers: usize, batch: usize, k: usize, slots: usize) -> LoaderConfig {
    LoaderConfig { mode: r3m_data::LoaderMode::Reservoir { slots }, ..cfg(workers, batch, k) }
}

/// The reservoir: batches of distinct clips, every clip's K tuples spread over many batches (not
/// K consecutive ones), the same batches for any worker count, and an exact resume at any batch.
#[test]
fn the_reservoir_is_fresh_deterministic_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let cl = clips(dir.path(), &[20, 25, 30, 35, 40, 22, 27, 33, 38, 24, 29, 31]);
    let (b, k, slots) = (3usize, 4usize, 8usize);
    let a: Vec<_> = Loader::new(cl.clone(), reservoir(2, b, k, slots)).take(24).collect();
    assert_eq!(a.len(), 24);
    let mut served = std::collections::HashMap::<usize, usize>::new();
    for x in &a {
        assert_eq!((x.batch, x.width, x.height), (b, 32, 32));
        assert_eq!(x.data.len(), b * 5 * 32 * 32 * 3);
        let mut c = x.clips.clone();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), b, "a batch holds distinct clips: {:?}", x.clips);
        for (t, &ci) in x.tuples.iter().zip(&x.clips) {
            assert!(t[2] < t[3] && t[3] < t[4] && t[4] < cl[ci].len(), "{t:?}");
            *served.entry(ci).or_default() += 1;
        }
    }
    // unlike grouped mode, consecutive batches are not the same clips
    let same = a.windows(2).filter(|w| w[0].clips == w[1].clips).count();
    assert!(same < 4, "{same} of 23 consecutive batch pairs had the same clips");
    assert!(served.len() >= 10, "24 batches drew from {} of 12 clips", served.len());
    for workers in [1usize, 3] {
        let other: Vec<_> = Loader::new(cl.clone(), reservoir(workers, b, k, slots)).take(24).collect();
        for (x, y) in a.iter().zip(&other) {
            assert_eq!((&x.clips, &x.tuples), (&y.clips, &y.tuples), "{workers} worker(s)");
            assert!(x.data == y.data, "batches differ between 2 workers and {workers}");
        }
    }
    for cut in [1usize, 7, 13] {
        let mut l = Loader::new(cl.clone(), reservoir(2, b, k, slots));
        for _ in 0..cut {
            l.next().unwrap();
        }
        let st = l.state();
        drop(l);
        let resumed: Vec<_> = Loader::resume(cl.clone(), reservoir(1, b, k, slots), Some(st)).take(24 - cut).collect();
        assert_eq!(resumed.len(), 24 - cut);
        for (x, y) in a[cut..].iter().zip(&resumed) {
            assert_eq!((&x.clips, &x.tuples), (&y.clips, &y.tuples), "resumed after {cut}");
            assert!(x.data == y.data, "resumed after {cut}: data differs");
        }
    }
}

/// A clip that fails in the reservoir is replaced in its slot by a substitute, reported once; the
/// batches stay the same for any worker count and after a resume.
#[test]
fn the_reservoir_replaces_a_clip_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cl = clips(dir.path(), &[30, 30, 30, 30, 30]);
    std::fs::write(&cl[2].video.path, b"gone").unwrap();
    let run = |workers: usize, state: Option<r3m_data::LoaderState>, n: usize| {
        let mut l = Loader::resume(cl.clone(), reservoir(workers, 2, 3, 4), state);
        let batches: Vec<_> = l.by_ref().take(n).collect();
        (batches, l.state(), l.stats().clone())
    };
    let (a, _, stats) = run(1, None, 30);
    assert_eq!(a.len(), 30);
    assert!(a.iter().all(|x| !x.clips.contains(&2)), "the bad clip never reaches a batch");
    assert_eq!(stats.failed.len(), 1, "{:?}", stats.failed);
    assert!(stats.failed[0].1.contains("c2.mp4"), "{:?}", stats.failed);
    let (b, _, _) = run(3, None, 30);
    assert!(a.iter().zip(&b).all(|(x, y)| x.data == y.data && x.tuples == y.tuples), "1 and 3 workers differ");
    let (_, st, _) = run(2, None, 11);
    let (c, _, _) = run(1, Some(st), 19);
    assert!(
        a[11..].iter().zip(&c).all(|(x, y)| x.data == y.data && x.tuples == y.tuples && x.clips == y.clips),
        "resume differs"
    );
    // every clip bad: the loader ends instead of spinning
    for c in &cl {
        std::fs::write(&c.video.path, b"gone").unwrap();
    }
    let mut l = Loader::new(cl.clone(), reservoir(2, 2, 3, 4));
    assert!(l.next().is_none());
}

/// R3M's own sampler (`tests/refs/ref_r3m_sampler.py`, written from the reference loader, which
/// numbers frames from 1) and r3m's draw every slot from the same range, as 0-based indices: the
/// first and last frames of the language term (`start`, `end`), `s0` and `s1`. `s2` is the one
/// documented difference: R3M allows `s2 = s1` (the anchor equal to its positive), r3m keeps
/// `s1 < s2`, so its smallest `s2` is one more.
#[test]
fn tuple_ranges_equal_r3ms_sampler() {
    let lengths = [3usize, 4, 5, 10, 57, 300];
    let n = 20_000;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refs/ref_r3m_sampler.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg(n.to_string()).args(lengths.iter().map(ToString::to_string));
    let out = cmd.output().expect("python3 (run scripts/setup.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sampler = r3m_data::TupleSampler::default();
    let mut rng = r3m_data::Rng::new(11);
    for len in lengths {
        let mut range = [[usize::MAX, 0usize]; 5];
        for _ in 0..n {
            let t = sampler.sample(len, 30.0, &mut rng).unwrap();
            for (k, v) in t.iter().enumerate() {
                range[k] = [range[k][0].min(*v), range[k][1].max(*v)];
            }
        }
        let want = |slot: &str| -> [usize; 2] {
            let v = &reference[len.to_string()][slot];
            [v[0].as_u64().unwrap() as usize, v[1].as_u64().unwrap() as usize]
        };
        assert_eq!(range[0], want("start"), "start, {len} frames");
        assert_eq!(range[1], want("end"), "end, {len} frames");
        assert_eq!(range[3], want("s1"), "s1, {len} frames");
        if len <= 10 {
            // the extremes of s0 and s2 are rare in long clips; short ones reach them
            assert_eq!(range[2], want("s0"), "s0, {len} frames");
            let s2 = want("s2");
            assert_eq!(range[4], [s2[0] + 1, s2[1]], "s2, {len} frames");
        }
    }
}
