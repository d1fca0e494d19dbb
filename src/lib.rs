//! Test support for the end-to-end tests in `tests/` and the benchmarks in `benches/`: making
//! fixture videos with the `ffmpeg` CLI and finding the `r3m` binary. No product logic lives here.
// test support: a failure here is a failed test, so unwrap is the right thing
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the `ffmpeg` CLI with `args` (after `-y -loglevel error`), panicking with its stderr if
/// it fails: a test that cannot make its fixture should say so loudly.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("running ffmpeg (install it: scripts/setup.sh)");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a test video at `path` from FFmpeg's `testsrc2` pattern: `frames` frames of `size`
/// (`WxH`) at `fps`, encoded with `codec_args` (for example `["-c:v", "libx264"]`).
pub fn make_video(path: &Path, size: &str, fps: u32, frames: usize, codec_args: &[&str]) {
    let src = format!("testsrc2=size={size}:rate={fps}");
    let n = frames.to_string();
    let p = path.to_str().expect("utf-8 path");
    let mut args = vec!["-f", "lavfi", "-i", &src, "-frames:v", &n, "-pix_fmt", "yuv420p"];
    args.extend_from_slice(codec_args);
    args.push(p);
    ffmpeg(&args);
}

/// What the ffmpeg CLI decodes from `path` through the filter chain `vf`, as packed RGB24 bytes
/// (all frames back to back; `-fps_mode passthrough`, so frames are neither dropped nor repeated).
pub fn cli_rgb(path: &Path, vf: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-vf", vf, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("running ffmpeg (install it: scripts/setup.sh)");
    assert!(out.status.success(), "ffmpeg -vf {vf}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The Python of LeRobot's venv (`$R3M_LEROBOT_PYTHON`, set by `$R3M_CACHE/env.sh`), for the tests
/// and benchmarks whose peer or checker is LeRobot's own code or torchcodec.
pub fn lerobot_python() -> String {
    std::env::var("R3M_LEROBOT_PYTHON")
        .expect("R3M_LEROBOT_PYTHON: LeRobot's venv, made by scripts/setup.sh (source $R3M_CACHE/env.sh)")
}

/// The `r3m` binary built alongside the tests (`target/<profile>/r3m`).
pub fn r3m_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_r3m") {
        return PathBuf::from(p);
    }
    // tests/ are in the root package, which does not own the binary: find it next to the test
    // executable (target/<profile>/deps/<test> -> target/<profile>/r3m)
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("r3m");
    assert!(bin.exists(), "{} not found: build it first (cargo build --release -p r3m-cli)", bin.display());
    bin
}

/// What an `.rrd` holds, read with the `rerun` CLI of the venv's rerun-sdk (`rerun rrd print -vv`):
/// entity path → (rows, timelines other than `log_time`).
pub fn rrd_contents(rrd: &Path) -> std::collections::BTreeMap<String, (usize, std::collections::BTreeSet<String>)> {
    let out =
        Command::new("rerun").args(["rrd", "print", "-vv"]).arg(rrd).output().expect("the rerun CLI from the venv");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map: std::collections::BTreeMap<String, (usize, std::collections::BTreeSet<String>)> =
        std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Chunk(") {
            let rows: usize =
                rest.split(" with ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
            let path = rest.split(" - ").nth(1).unwrap().trim().to_string();
            map.entry(path.clone()).or_default().0 += rows;
            current = Some(path);
        } else if let Some(p) = &current {
            for part in line.split("index_name: ").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name != "log_time" {
                    map.get_mut(p).unwrap().1.insert(name);
                }
            }
        }
    }
    map
}

/// Process CPU time and memory for the benchmarks' per-CPU-second and memory columns, read from
/// `/proc` (Linux).
pub mod measure {
    /// User + system CPU seconds of this process so far, all threads (`/proc/self/stat`, clock
    /// ticks of 1/100 s).
    pub fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }

    fn status_mb(key: &str) -> f64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Resets the peak RSS to the current RSS (`/proc/self/clear_refs`) and returns the current RSS
    /// in MB: [`rss_growth_mb`] after the work is then the work's peak.
    pub fn start_rss() -> f64 {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        status_mb("VmRSS:")
    }

    /// The peak RSS since [`start_rss`] minus the RSS it returned, in MB.
    pub fn rss_growth_mb(start: f64) -> f64 {
        (status_mb("VmHWM:") - start).max(0.0)
    }
}
