//! Decode throughput of r3m-video against the ffmpeg CLI and PyAV, measured in the same run.
//!
//! `bash scripts/bench.sh video_decode` (or `cargo bench --bench video_decode -- --threads 2
//! --runs 2 --only av1`).
//! Makes three videos with the ffmpeg CLI (cached under the target dir), then for each:
//! - sequential: decode every frame and resize to 224x224 RGB: r3m-video, `ffmpeg -vf scale ...
//!   -pix_fmt rgb24 -f null`, and PyAV `to_ndarray(224, 224, rgb24, BILINEAR)`;
//! - random access: R3M 5-frame tuples from r3m-data's sampler: r3m-video (one reader tuple by
//!   tuple; a pool of `threads` workers; and all tuples of the video in one `read_many` pass, as a sampler drawing several tuples per decoded
//!   clip does), and PyAV seeking to each requested frame.
//!
//! All at the same thread count. Prints a markdown table and writes JSON next to the videos.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use r3m_video::{probe, DecodeOptions, DecodePool, Request, Resize, VideoReader};

struct Video {
    name: &'static str,
    file: &'static str,
    size: &'static str,
    codec: &'static [&'static str],
}

const VIDEOS: &[Video] = &[
    Video {
        name: "224p H.264",
        file: "h264_224p.mp4",
        size: "400x224",
        codec: &["-c:v", "libx264", "-preset", "medium"],
    },
    Video {
        name: "640x480 H.264",
        file: "h264_480p.mp4",
        size: "640x480",
        codec: &["-c:v", "libx264", "-preset", "medium"],
    },
    Video {
        name: "640x480 AV1 g=2",
        file: "av1_480p_g2.mp4",
        size: "640x480",
        codec: &["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-preset", "10"],
    },
];

const FRAMES: usize = 900; // 30 s at 30 fps
const TUPLES: usize = 40;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn make(dir: &Path, v: &Video) -> PathBuf {
    let path = dir.join(v.file);
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!("tmp-{}", v.file));
    let src = format!("testsrc2=size={}:rate=30", v.size);
    let n = FRAMES.to_string();
    let mut args = vec![
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        &src,
        "-frames:v",
        &n,
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(v.codec);
    let tmp_s = tmp.to_str().unwrap().to_string();
    args.push(&tmp_s);
    let out = Command::new("ffmpeg").args(&args).output().expect("ffmpeg");
    assert!(out.status.success(), "making {}: {}", v.file, String::from_utf8_lossy(&out.stderr));
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// R3M tuples drawn by r3m-data's sampler, as sorted frame lists (the order a decoder wants).
fn r3m_tuples(len: usize, n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = r3m_data::Rng::new(seed);
    let sampler = r3m_data::TupleSampler::default();
    (0..n)
        .map(|_| {
            let t = sampler.sample(len, 30.0, &mut rng).expect("bench videos are long");
            r3m_data::TupleSampler::decode_order(&t).0
        })
        .collect()
}

fn ours_seq(path: &Path, threads: usize) -> f64 {
    let opts = DecodeOptions { resize: Resize::square(224), threads, ..Default::default() };
    let mut r = VideoReader::open(path, opts).unwrap();
    let t0 = Instant::now();
    let mut n = 0usize;
    r.for_each_frame(|f| {
        std::hint::black_box(&f.data);
        n += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, FRAMES);
    n as f64 / t0.elapsed().as_secs_f64()
}

fn ffmpeg_seq(path: &Path, threads: usize) -> f64 {
    let t = threads.to_string();
    let t0 = Instant::now();
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-threads", &t, "-i"])
        .arg(path)
        .args(["-filter_threads", "1", "-vf", "scale=224:224:flags=bilinear", "-pix_fmt", "rgb24", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(st.success());
    FRAMES as f64 / t0.elapsed().as_secs_f64()
}

fn pyav(args: &[&str]) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_pyav.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("python3 with av (scripts/setup.sh)");
    assert!(out.status.success(), "pyav: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["frames"].as_f64().unwrap() / v["seconds"].as_f64().unwrap()
}

fn ours_random(path: &Path, tuples: &[Vec<usize>], threads: usize, skip_ref_loop_filter: bool) -> f64 {
    let opts = DecodeOptions { resize: Resize::square(224), threads, skip_ref_loop_filter, ..Default::default() };
    let mut r = VideoReader::open(path, opts).unwrap();
    let t0 = Instant::now();
    let mut n = 0;
    for t in tuples {
        n += r.read_frames(t).unwrap().len();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// What `skip_ref_loop_filter` costs in pixels: every requested frame decoded both ways, compared
/// byte by byte (the exact decode equals the ffmpeg CLI's, tests/video.rs). (mean |diff| in 0-255
/// levels, max |diff|, PSNR in dB, share of frames that differ at all).
fn loop_filter_error(path: &Path, tuples: &[Vec<usize>]) -> (f64, u8, f64, f64) {
    let read = |skip: bool| -> Vec<Vec<u8>> {
        let opts =
            DecodeOptions { resize: Resize::square(224), threads: 1, skip_ref_loop_filter: skip, ..Default::default() };
        let mut r = VideoReader::open(path, opts).unwrap();
        tuples.iter().flat_map(|t| r.read_frames(t).unwrap()).map(|f| f.data).collect()
    };
    let (exact, fast) = (read(false), read(true));
    assert_eq!(exact.len(), fast.len(), "the same frames come back");
    let (mut sum, mut sq, mut n, mut max, mut differ) = (0f64, 0f64, 0usize, 0u8, 0usize);
    for (a, b) in exact.iter().zip(&fast) {
        differ += usize::from(a != b);
        for (x, y) in a.iter().zip(b) {
            let d = x.abs_diff(*y);
            sum += f64::from(d);
            sq += f64::from(d) * f64::from(d);
            max = max.max(d);
        }
        n += a.len();
    }
    let mse = sq / n as f64;
    let psnr = if mse > 0.0 { 10.0 * (255.0f64 * 255.0 / mse).log10() } else { f64::INFINITY };
    (sum / n as f64, max, psnr, differ as f64 / exact.len() as f64)
}

fn ours_batched(path: &Path, tuples: &[Vec<usize>], threads: usize) -> f64 {
    let opts = DecodeOptions { resize: Resize::square(224), threads, ..Default::default() };
    let mut r = VideoReader::open(path, opts).unwrap();
    let t0 = Instant::now();
    let n: usize = r.read_many(tuples).unwrap().iter().map(Vec::len).sum();
    n as f64 / t0.elapsed().as_secs_f64()
}

/// A pool of `workers` single-threaded readers; each request carries `per_request` tuples of the
/// video (their frames merged and sorted, decoded in one pass).
fn ours_pool(path: &Path, tuples: &[Vec<usize>], workers: usize, per_request: usize) -> f64 {
    let info = Arc::new(probe(path).unwrap());
    let opts = DecodeOptions { resize: Resize::square(224), threads: 1, ..Default::default() };
    let pool = DecodePool::new(workers, opts, 4 * workers);
    let reqs: Vec<Request> = tuples
        .chunks(per_request)
        .map(|chunk| {
            let mut ix: Vec<usize> = chunk.iter().flatten().copied().collect();
            ix.sort_unstable();
            Request::frames(info.clone(), ix)
        })
        .collect();
    let t0 = Instant::now();
    let n: usize = pool.run(reqs).map(|r| r.unwrap().len()).sum();
    n as f64 / t0.elapsed().as_secs_f64()
}

fn best<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(0.0, f64::max)
}

fn main() {
    let threads = arg("--threads", 2);
    let runs = arg("--runs", 2);
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench-videos");
    std::fs::create_dir_all(&dir).unwrap();
    println!("decode benchmark: {FRAMES} frames per video, {TUPLES} R3M tuples, threads={threads}, best of {runs}\n");
    println!("| video | work | r3m-video (frames/s) | ffmpeg CLI | PyAV | r3m / CLI | r3m / PyAV |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut json = Vec::new();
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    for v in VIDEOS.iter().filter(|v| only.as_ref().is_none_or(|o| v.file.contains(o.as_str()))) {
        let path = make(&dir, v);
        let p = path.to_str().unwrap();
        let t = threads.to_string();
        let ours = best(runs, || ours_seq(&path, threads));
        let cli = best(runs, || ffmpeg_seq(&path, threads));
        let py = best(runs, || pyav(&["seq", p, &t, "224"]));
        println!(
            "| {} | sequential → 224² RGB | {ours:.0} | {cli:.0} | {py:.0} | {:.2}× | {:.2}× |",
            v.name,
            ours / cli,
            ours / py
        );

        let info = probe(&path).unwrap();
        let tuples = r3m_tuples(info.frame_count(), TUPLES, 42);
        let spec = dir.join(format!("{}.tuples.json", v.file));
        std::fs::write(&spec, serde_json::json!({"pts": info.pts, "tuples": tuples}).to_string()).unwrap();
        let ours_r = best(runs, || ours_random(&path, &tuples, threads, false));
        let ours_f = best(runs, || ours_random(&path, &tuples, threads, true));
        let (mae, max_err, psnr, differ) = loop_filter_error(&path, &tuples);
        let ours_p = best(runs, || ours_pool(&path, &tuples, threads, 1));
        let ours_pm = best(runs, || ours_pool(&path, &tuples, threads, TUPLES / (2 * threads)));
        let ours_b = best(runs, || ours_batched(&path, &tuples, threads));
        let py_r = best(runs, || pyav(&["random", p, &t, "224", spec.to_str().unwrap()]));
        println!(
            "| {} | R3M 5-frame tuples, one reader | {ours_r:.0} | – | {py_r:.0} | – | {:.2}× |",
            v.name,
            ours_r / py_r
        );
        println!(
            "| {} | R3M 5-frame tuples, one reader, references without loop filter ({:.0}% of frames differ: mean {mae:.2}, max {max_err} levels, PSNR {psnr:.1} dB) | {ours_f:.0} | – | {py_r:.0} | – | {:.2}× ({:.2}× exact) |",
            v.name,
            100.0 * differ,
            ours_f / py_r,
            ours_f / ours_r
        );
        println!(
            "| {} | R3M 5-frame tuples, pool of {threads} | {ours_p:.0} | – | {py_r:.0} | – | {:.2}× |",
            v.name,
            ours_p / py_r
        );
        println!(
            "| {} | R3M 5-frame tuples, {TUPLES} per pass (`read_many`) | {ours_b:.0} | – | {py_r:.0} | – | {:.2}× |",
            v.name,
            ours_b / py_r
        );
        println!("| {} | R3M 5-frame tuples, pool of {threads}, {} per request | {ours_pm:.0} | – | {py_r:.0} | – | {:.2}× |", v.name, TUPLES / (2 * threads), ours_pm / py_r);
        json.push(serde_json::json!({
            "video": v.name, "threads": threads, "frames": FRAMES, "tuples": TUPLES,
            "seq": {"r3m": ours, "ffmpeg_cli": cli, "pyav": py},
            "random": {"r3m_reader": ours_r, "r3m_reader_skip_ref_loop_filter": ours_f,
                       "skip_ref_loop_filter_error": {"mean": mae, "max": max_err, "psnr_db": psnr, "frames_differ": differ}, "r3m_pool": ours_p, "r3m_batched": ours_b, "r3m_pool_batched": ours_pm, "pyav_seek": py_r},
        }));
    }
    let out = dir.join("video_decode.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nraw numbers: {}", out.display());
}
