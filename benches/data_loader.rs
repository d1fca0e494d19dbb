//! R3M tuples per second straight from mp4 (r3m-data's loader) against R3M's own path, five
//! pre-extracted JPEGs per tuple read by torchvision, measured in the same run.
//!
//! `bash scripts/bench.sh data_loader`. Makes 8 clips of 150 frames (400x224 H.264, x264
//! defaults) with the ffmpeg CLI and extracts their frames to JPEG (`-q:v 2`) for the peer. Both
//! sides draw R3M tuples and apply one RandomResizedCrop(224, scale 0.2–1) per tuple. Ours runs
//! one decode worker (one FFmpeg thread) and one augmentation thread; the peer is one Python
//! process with one torch thread. Reported: tuples/s of wall time and per CPU-second.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use r3m_data::{scan_videos, Augment, ClipWeighting, Loader, LoaderConfig, ProbeCache, TupleSampler};
use r3m_video::{DecodeOptions, Resize};

const CLIPS: usize = 8;
const FRAMES: usize = 150;

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

/// user + system CPU seconds of this process so far (from /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    let base = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench-data");
    let (videos, jpegs) = (base.join("mp4"), base.join("jpeg"));
    if !jpegs.exists() {
        std::fs::create_dir_all(&videos).unwrap();
        let tmp = base.join("jpeg.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for i in 0..CLIPS {
            let v = videos.join(format!("clip{i}.mp4"));
            let src = format!("testsrc2=size=400x224:rate=30,hue=h={}", i * 40);
            ffmpeg(&["-f", "lavfi", "-i", &src, "-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuv420p", "-c:v", "libx264", v.to_str().unwrap()]);
            let d = tmp.join(format!("clip{i}"));
            std::fs::create_dir_all(&d).unwrap();
            ffmpeg(&["-i", v.to_str().unwrap(), "-q:v", "2", d.join("%06d.jpg").to_str().unwrap()]);
        }
        std::fs::rename(&tmp, &jpegs).unwrap();
    }
    let (mp4_bytes, jpg_bytes) = (dir_size(&videos), dir_size(&jpegs));
    let tuples = 1200usize;

    // peer: R3M's JPEG loader
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_r3m_jpeg_loader.py");
    let out = Command::new("python3").arg(script).arg(&jpegs).arg(tuples.to_string()).arg("1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peer_wall = peer["tuples"].as_f64().unwrap() / peer["seconds"].as_f64().unwrap();
    let peer_cpu = peer["tuples"].as_f64().unwrap() / peer["cpu_seconds"].as_f64().unwrap();

    let clips = scan_videos(&videos, &mut ProbeCache::default()).unwrap().clips;
    println!("data loader benchmark: {CLIPS} clips x {FRAMES} frames 400x224 H.264 ({:.1} MB mp4, {:.1} MB of JPEGs = {:.1}x), {tuples} tuples\n",
        mp4_bytes as f64 / 1e6, jpg_bytes as f64 / 1e6, jpg_bytes as f64 / mp4_bytes as f64);
    println!("| loader | tuples/s (wall) | tuples per CPU-second | vs R3M JPEG loader (wall) |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| R3M: 5 JPEGs per tuple, torchvision read_image + RandomResizedCrop | {peer_wall:.0} | {peer_cpu:.0} | 1.00× |");
    for k in [1usize, 4, 16] {
        let cfg = LoaderConfig {
            batch: 8,
            tuples_per_clip: k,
            workers: 1,
            decode: DecodeOptions { resize: Resize::Native, threads: 1, ..Default::default() },
            augment: Augment::rctraj(224),
            sampler: TupleSampler::default(),
            weighting: ClipWeighting::Uniform,
            seed: 1,
            prefetch_groups: 2,
        };
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let n: usize = Loader::new(clips.clone(), cfg).take(tuples / 8).map(|b| b.batch).sum();
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        println!("| r3m-data from mp4, 1 decode worker, K={k} tuples per decoded clip | {:.0} | {:.0} | {:.2}× |", n as f64 / wall, n as f64 / cpu, n as f64 / wall / peer_wall);
    }
}
