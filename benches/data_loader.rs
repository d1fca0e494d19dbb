//! R3M tuples per second straight from video (r3m-data's loader, three modes) against R3M's own
//! path, five pre-extracted JPEGs per tuple read by torchvision, measured in the same run; and how
//! diverse each mode's batches are.
//!
//! `bash scripts/bench.sh data_loader` (`-- --lerobot-only`: only the LeRobot table; `-- --many-files
//! N`: only the memory table on N mp4 files). Makes 64 clips of 150 frames (400x224) with the ffmpeg CLI
//! twice: H.264 with x264's defaults (long GOP: one keyframe per clip) and AV1 with a keyframe
//! every 2 frames (libsvtav1 `-g 2`, LeRobot's setting: short GOP); the peer's JPEGs (`-q:v 2`) are
//! extracted from the H.264 clips. Both sides draw R3M tuples (batch 16) and apply one
//! RandomResizedCrop(224, scale 0.2–1) per tuple. Ours runs one decode worker (one FFmpeg thread)
//! and one augmentation thread; the peer is one Python process with one torch thread.
//!
//! Modes: `grouped K=1` (R3M's sampling exactly: a fresh draw of clips every batch, one decode per
//! tuple), `grouped K=16` (16 clips decoded together serve 16 consecutive batches), `reservoir
//! K=16` (a pool of decoded clips sized by a 512 MB budget; every batch draws 16 of them at random,
//! one tuple each; a clip leaves after 16 tuples). Reported per mode: tuples/s of wall time and per
//! CPU-second, the ratio to the JPEG loader per CPU-second, and two diversity figures from the
//! batches themselves: the mean number of distinct clips in a window of 16 consecutive batches and
//! the mean number of clips a batch shares with the previous one.
//!
//! 64 clips are fewer than any real dataset, and a pool that holds most of them is as diverse as
//! R3M's draw by construction. So the diversity figures are also given at 100,000 clips, from
//! the reservoir's own schedule (`r3m_data::reservoir::schedule_clips`, the code the loader runs;
//! nothing is decoded) and from the grouped modes' definition (`batch` distinct clips drawn
//! uniformly per group), for several pool sizes with the memory each costs at 224-px training
//! (frames decoded at 256×256).
//!
//! A third table draws R3M tuples from a LeRobot v3.0 dataset that LeRobot's own writer made from
//! the H.264 clips (its AV1 encoding, episodes sharing mp4 files), with LeRobot's loader as the
//! peer (`LeRobotDataset`'s video path: torchcodec, approximate seeks, its decoder cache), per
//! CPU-second and with each side's RSS growth.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use r3m_data::{
    reservoir, scan_lerobot, scan_videos, Augment, Clip, ClipWeighting, Loader, LoaderConfig, LoaderMode, ProbeCache,
    Rng, TupleSampler,
};
use r3m_suite::lerobot_python;
use r3m_suite::measure::{cpu_seconds, rss_growth_mb, start_rss};
use r3m_video::{DecodeOptions, Resize};

const CLIPS: usize = 64;
const FRAMES: usize = 150;
const BATCH: usize = 16;
const TUPLES: usize = 2400;
const RESERVOIR_MB: usize = 512;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-y", "-hide_banner", "-loglevel", "error"]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| if e.path().is_dir() { dir_size(&e.path()) } else { e.metadata().unwrap().len() })
        .sum()
}

/// Makes `dir` with one mp4 per clip encoded with `codec` (ffmpeg output options), atomically (a
/// finished dir is reused).
fn make_set(dir: &Path, codec: &[&str]) {
    if dir.exists() {
        return;
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for i in 0..CLIPS {
        let src = format!("testsrc2=size=400x224:rate=30,hue=h={}", i * 360 / CLIPS);
        let out = tmp.join(format!("clip{i:02}.mp4"));
        let frames = FRAMES.to_string();
        let mut args = vec!["-f", "lavfi", "-i", &src, "-frames:v", &frames, "-pix_fmt", "yuv420p"];
        args.extend_from_slice(codec);
        args.push(out.to_str().unwrap());
        ffmpeg(&args);
    }
    std::fs::rename(&tmp, dir).unwrap();
}

/// Mean distinct clips in windows of 16 consecutive batches; mean clips shared with the previous batch.
fn diversity(batches: &[Vec<usize>]) -> (f64, f64) {
    let w = 16.min(batches.len());
    let windows: Vec<usize> =
        batches.windows(w).map(|win| win.iter().flatten().collect::<HashSet<_>>().len()).collect();
    let shared: Vec<usize> = batches
        .windows(2)
        .map(|p| {
            let prev: HashSet<_> = p[0].iter().collect();
            p[1].iter().filter(|c| prev.contains(c)).count()
        })
        .collect();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    (mean(&windows), mean(&shared))
}

fn config(k: usize, mode: LoaderMode) -> LoaderConfig {
    LoaderConfig {
        batch: BATCH,
        tuples_per_clip: k,
        workers: 1,
        decode: DecodeOptions { resize: Resize::Native, threads: 1, ..Default::default() },
        augment: Augment::rctraj(224),
        sampler: TupleSampler::default(),
        weighting: ClipWeighting::Uniform,
        seed: 1,
        prefetch_groups: 2,
        mode,
    }
}

/// The grouped modes by definition: `BATCH` distinct clips uniformly per group, K batches each.
fn grouped_clips(n: usize, k: usize, batches: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(batches);
    while out.len() < batches {
        let mut g: Vec<usize> = Vec::with_capacity(BATCH);
        while g.len() < BATCH {
            let c = rng.below(n as u64) as usize;
            if !g.contains(&c) {
                g.push(c);
            }
        }
        for _ in 0..k {
            out.push(g.clone());
        }
    }
    out.truncate(batches);
    out
}

/// R3M tuples from a LeRobot v3.0 dataset that LeRobot's own writer made from the H.264 clips
/// (its AV1 encoding, all episodes in shared mp4s): LeRobot's loader (`_query_videos` with
/// torchcodec and its decoder cache, `benches/peers/bench_lerobot_loader.py`) against r3m-data's
/// loader on the same dataset, with memory.
fn lerobot_table(base: &Path, clips_dir: &Path) {
    let root = base.join("lerobot-v30");
    if !root.exists() {
        let tmp = base.join("lerobot-v30.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/make_lerobot_v30.py");
        let out = Command::new(lerobot_python()).arg(script).arg(clips_dir).arg(&tmp).arg("30").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::rename(&tmp, &root).unwrap();
    }
    let mp4s = dir_size(&root.join("videos"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_lerobot_loader.py");
    let out = Command::new(lerobot_python()).arg(script).arg(&root).arg(TUPLES.to_string()).arg("1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| peer[k].as_f64().unwrap();
    let (peer_wall, peer_cpu) = (f("tuples") / f("seconds"), f("tuples") / f("cpu_seconds"));
    println!(
        "\nR3M tuples from a LeRobot v3.0 dataset written by LeRobot 0.4.4 ({CLIPS} episodes x {FRAMES} frames, 400x224 AV1 g=2 crf 30 in shared mp4s, {:.1} MB), batch {BATCH}, {TUPLES} tuples per row:\n",
        mp4s as f64 / 1e6
    );
    println!("| loader | tuples/s (wall) | tuples per CPU-second | vs LeRobot (per CPU-s) | RSS growth (MB) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| LeRobot 0.4.4 `LeRobotDataset` video path (torchcodec 0.17, approximate seek, decoder cache) + RandomResizedCrop | {peer_wall:.0} | {peer_cpu:.0} | 1.00× | {:.0} |",
        f("rss_growth_mb")
    );
    let clips: Vec<Clip> = scan_lerobot(&root, None, &mut ProbeCache::default()).unwrap().clips;
    let dec = DecodeOptions { resize: Resize::Native, threads: 1, ..Default::default() };
    let slots = reservoir::pool_slots(&clips, &dec, 16, BATCH, RESERVOIR_MB);
    for (label, k, mode) in [
        ("grouped K=1 (R3M's sampling)".to_string(), 1, LoaderMode::Grouped),
        (
            format!("reservoir K=16, {RESERVOIR_MB} MB ({} of {CLIPS} episodes held)", slots.min(CLIPS)),
            16,
            LoaderMode::Reservoir { slots },
        ),
    ] {
        let rss0 = start_rss();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let n = Loader::new(clips.clone(), config(k, mode)).take(TUPLES / BATCH).count() * BATCH;
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        println!(
            "| r3m-data {label} | {:.0} | {:.0} | {:.2}× | {:.0} |",
            n as f64 / wall,
            n as f64 / cpu,
            n as f64 / cpu / peer_cpu,
            rss_growth_mb(rss0)
        );
    }
}

/// Memory on a dataset of `n` mp4 files (hard links to the AV1 clips, one episode each): RSS
/// growth after each tenth of the tuples, r3m-data's loader (grouped K=1) against LeRobot's
/// `decode_video_frames` with its decoder cache.
fn many_files_table(base: &Path, clips_dir: &Path, n: usize) {
    let dir = base.join(format!("many-{n}"));
    if !dir.exists() {
        let tmp = base.join(format!("many-{n}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for i in 0..n {
            let src = clips_dir.join(format!("clip{:02}.mp4", i % CLIPS));
            std::fs::hard_link(&src, tmp.join(format!("episode_{i:06}.mp4"))).unwrap();
        }
        std::fs::rename(&tmp, &dir).unwrap();
    }
    let tuples = 4 * n;
    let clips: Vec<Clip> = scan_videos(&dir, &mut ProbeCache::default()).unwrap().clips;
    let list = base.join(format!("many-{n}.json"));
    let js: Vec<serde_json::Value> = clips.iter().map(|c| serde_json::json!([c.video.path, c.end - c.start])).collect();
    std::fs::write(&list, serde_json::to_string(&js).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_lerobot_loader.py");
    let out = Command::new(lerobot_python())
        .arg(script)
        .args(["--files", list.to_str().unwrap(), &tuples.to_string(), "1", "30"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // ours: the same number of tuples, RSS growth after each tenth
    let rss0 = start_rss();
    let c0 = cpu_seconds();
    let mut ours = Vec::new();
    let mut touched = HashSet::new();
    let per = (tuples / BATCH / 10).max(1);
    for (b, batch) in Loader::new(clips.clone(), config(1, LoaderMode::Grouped)).take(tuples / BATCH).enumerate() {
        touched.extend(batch.clips);
        if (b + 1) % per == 0 {
            ours.push(((b + 1) * BATCH, rss_growth_mb(rss0), touched.len()));
        }
    }
    let cpu = cpu_seconds() - c0;
    println!(
        "\n{n} mp4 files, one episode each ({tuples} R3M tuples): RSS growth (MB) after each tenth of the tuples\n"
    );
    let head: Vec<String> = ours.iter().map(|(t, _, f)| format!("{t} tuples ({f} files)")).collect();
    println!("| loader | tuples per CPU-s | {} |", head.join(" | "));
    println!("| --- | ---: |{}", " ---: |".repeat(head.len()));
    let theirs: Vec<String> = peer["rss_growth_mb_at"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{:.0} ({} files)", v[1].as_f64().unwrap(), v[2]))
        .collect();
    let pc = peer["tuples"].as_f64().unwrap() / peer["cpu_seconds"].as_f64().unwrap();
    println!("| LeRobot 0.4.4 `decode_video_frames` (torchcodec, decoder cache) | {pc:.0} | {} |", theirs.join(" | "));
    let mine: Vec<String> = ours.iter().map(|(_, m, _)| format!("{m:.0}")).collect();
    println!("| r3m-data grouped K=1 | {:.0} | {} |", tuples as f64 / cpu, mine.join(" | "));
}

fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    let base =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench-data-2");
    let (h264, av1, jpegs) = (base.join("h264"), base.join("av1-g2"), base.join("jpeg"));
    make_set(&h264, &["-c:v", "libx264"]);
    make_set(&av1, &["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-preset", "8"]);
    if !jpegs.exists() {
        let tmp = base.join("jpeg.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for i in 0..CLIPS {
            let d = tmp.join(format!("clip{i:02}"));
            std::fs::create_dir_all(&d).unwrap();
            ffmpeg(&[
                "-i",
                h264.join(format!("clip{i:02}.mp4")).to_str().unwrap(),
                "-q:v",
                "2",
                d.join("%06d.jpg").to_str().unwrap(),
            ]);
        }
        std::fs::rename(&tmp, &jpegs).unwrap();
    }

    if let Some(n) = std::env::args().skip_while(|a| a != "--many-files").nth(1) {
        many_files_table(&base, &av1, n.parse().expect("--many-files N"));
        return;
    }
    if std::env::args().any(|a| a == "--lerobot-only") {
        lerobot_table(&base, &h264);
        return;
    }
    // peer: R3M's JPEG loader
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_r3m_jpeg_loader.py");
    let out = Command::new("python3").arg(script).arg(&jpegs).arg(TUPLES.to_string()).arg("1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peer_wall = peer["tuples"].as_f64().unwrap() / peer["seconds"].as_f64().unwrap();
    let peer_cpu = peer["tuples"].as_f64().unwrap() / peer["cpu_seconds"].as_f64().unwrap();

    println!(
        "data loader benchmark: {CLIPS} clips x {FRAMES} frames 400x224 (H.264 {:.1} MB, AV1 -g 2 {:.1} MB, JPEGs {:.1} MB), batch {BATCH}, {TUPLES} tuples per row\n",
        dir_size(&h264) as f64 / 1e6,
        dir_size(&av1) as f64 / 1e6,
        dir_size(&jpegs) as f64 / 1e6
    );
    println!("| source | loader | tuples/s (wall) | tuples per CPU-second | vs JPEG loader (per CPU-s) | distinct clips in 16 batches | clips shared with previous batch |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let jpeg_batches = grouped_clips(CLIPS, 1, TUPLES / BATCH, 1);
    let (d, s) = diversity(&jpeg_batches);
    println!("| JPEG (from H.264) | R3M: 5 JPEGs per tuple, torchvision read_image + RandomResizedCrop | {peer_wall:.0} | {peer_cpu:.0} | 1.00× | {d:.1} | {s:.2} |");
    for (name, dir) in [("H.264, long GOP", &h264), ("AV1, keyframe every 2", &av1)] {
        let clips: Vec<Clip> = scan_videos(dir, &mut ProbeCache::default()).unwrap().clips;
        let dec = DecodeOptions { resize: Resize::Native, threads: 1, ..Default::default() };
        let slots = reservoir::pool_slots(&clips, &dec, 16, BATCH, RESERVOIR_MB);
        for (label, k, mode) in [
            ("grouped K=1 (R3M's sampling)".to_string(), 1, LoaderMode::Grouped),
            ("grouped K=16".to_string(), 16, LoaderMode::Grouped),
            (
                format!("reservoir K=16, {RESERVOIR_MB} MB ({} of {CLIPS} clips held)", slots.min(CLIPS)),
                16,
                LoaderMode::Reservoir { slots },
            ),
        ] {
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let batches: Vec<Vec<usize>> =
                Loader::new(clips.clone(), config(k, mode)).take(TUPLES / BATCH).map(|b| b.clips).collect();
            let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
            let n = (batches.len() * BATCH) as f64;
            let (d, s) = diversity(&batches);
            println!(
                "| {name} | r3m-data {label} | {:.0} | {:.0} | {:.2}× | {d:.1} | {s:.2} |",
                n / wall,
                n / cpu,
                n / cpu / peer_cpu
            );
        }
    }

    lerobot_table(&base, &h264);

    // diversity at a realistic dataset size, from the schedules alone
    let n = 100_000usize;
    let batches = 2000usize;
    let lens = vec![FRAMES; n];
    // memory per resident clip at 224-px training: the union of K tuples' frames (measured on the
    // schedule's own tuples would need the sampler; min(5K, 150) bounds it) at 256×256×3
    let frame_bytes = 256.0 * 256.0 * 3.0;
    println!("\ndiversity at {n} clips of {FRAMES} frames, batch {BATCH}, {batches} batches (schedules only, nothing decoded):\n");
    println!("| loader | decodes per tuple | RAM at 224-px training (≤) | distinct clips in 16 batches | clips shared with previous batch |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, k) in [("grouped K=1 (R3M's sampling)", 1usize), ("grouped K=16", 16)] {
        let (d, s) = diversity(&grouped_clips(n, k, batches, 2));
        println!("| {label} | 1/{k} | – | {d:.1} | {s:.2} |");
    }
    for k in [8usize, 16] {
        for slots in [256usize, 1024, 4096] {
            let cfg = LoaderConfig {
                batch: BATCH,
                tuples_per_clip: k,
                seed: 2,
                ..config(k, LoaderMode::Reservoir { slots })
            };
            let (d, s) = diversity(&reservoir::schedule_clips(&lens, &cfg, slots, batches));
            let gb = slots as f64 * (5 * k).min(FRAMES) as f64 * frame_bytes / 1e9;
            println!("| reservoir K={k}, {slots} clips | 1/{k} | {gb:.1} GB | {d:.1} | {s:.2} |");
        }
    }
}
