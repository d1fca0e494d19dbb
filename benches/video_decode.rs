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
//!
//! A second table puts r3m-video beside torchcodec (CPU, `seek_mode="approximate"`, decoder-native
//! bilinear resize to 224x224 RGB, as LeRobot uses it; `benches/peers/bench_torchcodec.py` in
//! LeRobot's venv) per CPU-second, with each side's RSS growth and the pixel difference between
//! the two decodes: sequential, R3M tuples one call each, all tuples' frames in one call, and many
//! short LeRobot-encoded AV1 clips (a decoder per clip, one tuple each).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use r3m_suite::lerobot_python;
use r3m_suite::measure::{cpu_seconds, rss_growth_mb, start_rss};
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

/// Decodes every frame of `path` with `opts` (the reader opened inside the work); the frame count.
fn decode_all(path: &Path, opts: DecodeOptions) -> usize {
    let mut r = VideoReader::open(path, opts).unwrap();
    let mut n = 0usize;
    r.for_each_frame(|f| {
        std::hint::black_box(&f.data);
        n += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    n
}

fn ours_seq(path: &Path, threads: usize) -> f64 {
    let opts = DecodeOptions { resize: Resize::square(224), threads, ..Default::default() };
    let t0 = Instant::now();
    let n = decode_all(path, opts);
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

/// One measured run: frames, wall seconds, CPU seconds, RSS growth (MB).
#[derive(Clone, Copy, Default)]
struct Run {
    frames: f64,
    secs: f64,
    cpu: f64,
    rss: f64,
}

impl Run {
    fn per_cpu(&self) -> f64 {
        self.frames / self.cpu.max(1e-9)
    }
    fn per_wall(&self) -> f64 {
        self.frames / self.secs.max(1e-9)
    }
}

/// Runs `f` (returns frames) under the clock, the CPU clock and the RSS high-water mark.
fn measured(f: impl FnOnce() -> usize) -> Run {
    let rss0 = start_rss();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let frames = f() as f64;
    Run { frames, secs: t0.elapsed().as_secs_f64(), cpu: cpu_seconds() - c0, rss: rss_growth_mb(rss0) }
}

/// The best of `runs` by frames per CPU-second.
fn best_run(runs: usize, mut f: impl FnMut() -> Run) -> Run {
    (0..runs).map(|_| f()).max_by(|a, b| a.per_cpu().total_cmp(&b.per_cpu())).unwrap_or_default()
}

fn torchcodec(args: &[&str]) -> Run {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_torchcodec.py");
    let out = Command::new(lerobot_python()).arg(script).args(args).output().expect("LeRobot's python");
    assert!(out.status.success(), "torchcodec: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| v[k].as_f64().unwrap();
    Run { frames: f("frames"), secs: f("seconds"), cpu: f("cpu_seconds"), rss: f("rss_growth_mb") }
}

/// Mean and max |difference| (0-255 levels) between r3m-video's and torchcodec's decodes of the
/// frames `ix` of `path` at 224x224 RGB.
fn pixel_diff(path: &Path, ix: &[usize], scratch: &Path) -> (f64, u8) {
    let opts = DecodeOptions { resize: Resize::square(224), threads: 1, ..Default::default() };
    let ours: Vec<u8> =
        VideoReader::open(path, opts).unwrap().read_frames(ix).unwrap().into_iter().flat_map(|f| f.data).collect();
    let raw = scratch.join("torchcodec-frames.raw");
    let mut args = vec!["dump".to_string(), path.display().to_string(), "224".into(), raw.display().to_string()];
    args.extend(ix.iter().map(usize::to_string));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/bench_torchcodec.py");
    let st = Command::new(lerobot_python()).arg(script).args(&refs).status().unwrap();
    assert!(st.success());
    let theirs = std::fs::read(&raw).unwrap();
    assert_eq!(ours.len(), theirs.len(), "the same frames at the same size");
    let (mut sum, mut max) = (0u64, 0u8);
    for (a, b) in ours.iter().zip(&theirs) {
        let d = a.abs_diff(*b);
        sum += u64::from(d);
        max = max.max(d);
    }
    (sum as f64 / ours.len() as f64, max)
}

/// Short clips encoded LeRobot's way (libsvtav1, GOP 2, CRF 30, yuv420p): `n` of `frames` frames
/// at 400x224, cached under `dir`.
fn lerobot_clips(dir: &Path, n: usize, frames: usize) -> Vec<PathBuf> {
    let set = dir.join(format!("lerobot-av1-{n}x{frames}"));
    if !set.exists() {
        let tmp = set.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for i in 0..n {
            let src = format!("testsrc2=size=400x224:rate=30,hue=h={}", i * 360 / n);
            let p = tmp.join(format!("episode_{i:06}.mp4"));
            r3m_suite::ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                &src,
                "-frames:v",
                &frames.to_string(),
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libsvtav1",
                "-g",
                "2",
                "-crf",
                "30",
                "-preset",
                "8",
                p.to_str().unwrap(),
            ]);
        }
        std::fs::rename(&tmp, &set).unwrap();
    }
    (0..n).map(|i| set.join(format!("episode_{i:06}.mp4"))).collect()
}

/// The torchcodec table: r3m-video and torchcodec on the same work, per CPU-second.
fn torchcodec_table(dir: &Path, threads: usize, runs: usize, only: Option<&String>) -> Vec<serde_json::Value> {
    println!("\nagainst torchcodec (CPU): frames per CPU-second, best of {runs} by that figure; RSS growth during the work\n");
    println!("| video | work | r3m frames/s (wall) | r3m per CPU-s | torchcodec frames/s (wall) | torchcodec per CPU-s | r3m / torchcodec per CPU-s | RSS growth r3m / torchcodec (MB) | pixels vs r3m (mean, max levels) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let t = threads.to_string();
    let mut json = Vec::new();
    let mut row = |video: &str, work: &str, ours: Run, theirs: Run, diff: (f64, u8)| {
        println!(
            "| {video} | {work} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.0} / {:.0} | {:.2}, {} |",
            ours.per_wall(),
            ours.per_cpu(),
            theirs.per_wall(),
            theirs.per_cpu(),
            ours.per_cpu() / theirs.per_cpu(),
            ours.rss,
            theirs.rss,
            diff.0,
            diff.1
        );
        json.push(serde_json::json!({
            "video": video, "work": work, "threads": threads,
            "r3m": {"frames": ours.frames, "seconds": ours.secs, "cpu_seconds": ours.cpu, "rss_growth_mb": ours.rss},
            "torchcodec": {"frames": theirs.frames, "seconds": theirs.secs, "cpu_seconds": theirs.cpu, "rss_growth_mb": theirs.rss},
            "pixel_diff": {"mean": diff.0, "max": diff.1},
        }));
    };
    for v in VIDEOS.iter().filter(|v| only.is_none_or(|o| v.file.contains(o.as_str()))) {
        let path = make(dir, v);
        let p = path.to_str().unwrap();
        let info = probe(&path).unwrap();
        let tuples = r3m_tuples(info.frame_count(), TUPLES, 42);
        let spec = dir.join(format!("{}.tuples.json", v.file));
        std::fs::write(&spec, serde_json::json!({"pts": info.pts, "tuples": tuples}).to_string()).unwrap();
        let diff = pixel_diff(&path, &tuples[0], dir);
        let opts = DecodeOptions { resize: Resize::square(224), threads, ..Default::default() };
        let seq = best_run(runs, || measured(|| decode_all(&path, opts)));
        let tc = best_run(runs, || torchcodec(&["seq", p, &t, "224"]));
        row(v.name, "sequential → 224² RGB", seq, tc, diff);
        let one = best_run(runs, || {
            measured(|| {
                let mut r = VideoReader::open(&path, opts).unwrap();
                tuples.iter().map(|tu| r.read_frames(tu).unwrap().len()).sum()
            })
        });
        let tc = best_run(runs, || torchcodec(&["tuples", p, &t, "224", spec.to_str().unwrap()]));
        row(v.name, &format!("{TUPLES} R3M tuples, one call each (one reader / one decoder)"), one, tc, diff);
        let all = best_run(runs, || {
            measured(|| {
                let mut r = VideoReader::open(&path, opts).unwrap();
                r.read_many(&tuples).unwrap().iter().map(Vec::len).sum()
            })
        });
        let tc = best_run(runs, || torchcodec(&["frames", p, &t, "224", spec.to_str().unwrap()]));
        row(v.name, &format!("{TUPLES} R3M tuples' frames in one call"), all, tc, diff);
    }
    // many short episode files, a decoder each, one R3M tuple each
    if only.is_none_or(|o| "lerobot".contains(o.as_str()) || "av1".contains(o.as_str())) {
        let clips = lerobot_clips(dir, 48, 90);
        let jobs: Vec<(PathBuf, Vec<usize>)> =
            clips.iter().enumerate().map(|(i, c)| (c.clone(), r3m_tuples(90, 1, i as u64).remove(0))).collect();
        let list = dir.join("lerobot-clips.json");
        let js: Vec<serde_json::Value> = jobs.iter().map(|(c, f)| serde_json::json!([c, f])).collect();
        std::fs::write(&list, serde_json::to_string(&js).unwrap()).unwrap();
        let diff = pixel_diff(&jobs[0].0, &jobs[0].1, dir);
        let opts = DecodeOptions { resize: Resize::square(224), threads, ..Default::default() };
        let ours = best_run(runs, || {
            measured(|| {
                jobs.iter().map(|(c, f)| VideoReader::open(c, opts).unwrap().read_frames(f).unwrap().len()).sum()
            })
        });
        let tc = best_run(runs, || torchcodec(&["many", list.to_str().unwrap(), &t, "224"]));
        row(
            "48 clips × 90 frames, 400x224 AV1 g=2 (LeRobot's encoding)",
            "one R3M tuple per clip, a reader / decoder per clip",
            ours,
            tc,
            diff,
        );
    }
    json
}

/// Where the AV1 sequential time goes: r3m-video and torchcodec at 1 and 2 threads, at the native
/// size (decode + conversion to RGB) and resized to 224x224, per CPU-second and per wall-second.
fn av1_breakdown(dir: &Path, runs: usize) {
    let v = VIDEOS.iter().find(|v| v.file.starts_with("av1")).unwrap();
    let path = make(dir, v);
    let p = path.to_str().unwrap();
    println!("\n{}: sequential decode, best of {runs} by frames per CPU-second\n", v.name);
    println!("| threads | output | r3m frames/s (wall) | r3m per CPU-s | torchcodec frames/s (wall) | torchcodec per CPU-s | r3m / torchcodec per CPU-s |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for threads in [1usize, 2] {
        for (label, resize, size) in
            [("native 640x480 RGB", Resize::Native, "0"), ("224x224 RGB", Resize::square(224), "224")]
        {
            let opts = DecodeOptions { resize, threads, ..Default::default() };
            let ours = best_run(runs, || measured(|| decode_all(&path, opts)));
            let tc = best_run(runs, || torchcodec(&["seq", p, &threads.to_string(), size]));
            println!(
                "| {threads} | {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× |",
                ours.per_wall(),
                ours.per_cpu(),
                tc.per_wall(),
                tc.per_cpu(),
                ours.per_cpu() / tc.per_cpu()
            );
        }
    }
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
    if std::env::args().any(|a| a == "--av1-breakdown") {
        av1_breakdown(&dir, runs);
        return;
    }
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let skip_pyav = std::env::args().any(|a| a == "--torchcodec-only");
    for v in VIDEOS.iter().filter(|v| !skip_pyav && only.as_ref().is_none_or(|o| v.file.contains(o.as_str()))) {
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
    let tc = torchcodec_table(&dir, threads, runs, only.as_ref());
    let out = dir.join("video_decode.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::json!({"pyav_cli": json, "torchcodec": tc})).unwrap(),
    )
    .unwrap();
    println!("\nraw numbers: {}", out.display());
}
