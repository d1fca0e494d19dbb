//! r3m-data's tuple loader on videos made by the `ffmpeg` CLI: batch shapes, distinct clips per
//! batch, the same batches whatever the worker count, exact resume, and a clip that fails to
//! decode being dropped and reported.

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
