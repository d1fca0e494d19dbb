//! Foundation: the real toolchain works end to end: libtorch runs a ResNet, FFmpeg decodes a video
//! the `ffmpeg` CLI made (byte-identical to the CLI's own RGB output), and `r3m doctor` passes.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::process::Command;

use r3m_model::{Arch, Encoder};
use r3m_suite::{make_video, r3m_bin};
use r3m_video::{DecodeOptions, Resize, VideoReader};
use tch::{nn, Device, Kind, Tensor};

#[test]
fn resnet18_forward_on_a_small_batch() {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let enc = Encoder::new(&vs.root(), Arch::Resnet18);
    let x = Tensor::randint(256, [4, 3, 96, 96], (Kind::Uint8, Device::Cpu));
    let y = tch::no_grad(|| enc.forward_u8(&x, false));
    assert_eq!(y.size(), vec![4, 512]);
    assert_eq!(y.isfinite().all().int64_value(&[]), 1);
    // eval mode: an image's embedding does not depend on the rest of the batch
    let y1 = tch::no_grad(|| enc.forward_u8(&x.narrow(0, 2, 1), false));
    let diff = (y.narrow(0, 2, 1) - y1).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "batch-dependent output in eval mode: {diff}");
    // different images give different embeddings (the network is not constant)
    let spread = (y.narrow(0, 0, 1) - y.narrow(0, 1, 1)).abs().max().double_value(&[]);
    assert!(spread > 1e-3, "embeddings of different images are identical");
}

#[test]
fn decodes_a_cli_made_h264_video_like_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    make_video(&path, "160x120", 25, 12, &["-c:v", "libx264", "-g", "5"]);
    let mut reader = VideoReader::open(&path, DecodeOptions::with_resize(Resize::square(64))).unwrap();
    assert_eq!(reader.info().frame_count(), 12);
    assert_eq!(reader.info().codec, "h264");
    let frames = reader.read_all().unwrap();
    assert_eq!(frames.len(), 12);
    let expect = r3m_suite::cli_rgb(&path, "scale=64:64:flags=bilinear");
    let ours: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    assert_eq!(ours.len(), expect.len());
    assert!(ours == expect, "decoded RGB differs from the ffmpeg CLI's");
    // consecutive frames of testsrc2 differ (we did not return one frame twelve times)
    assert_ne!(frames[0].data, frames[1].data);
}

#[test]
fn r3m_help_and_doctor() {
    let help = Command::new(r3m_bin()).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("doctor"), "--help does not list doctor:\n{text}");

    let out = Command::new(r3m_bin()).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "doctor failed:\n{stdout}\n{stderr}");
    for needle in
        ["libtorch", "decoder h264", "decoder av1", "encode→decode", "resnet18 forward cpu", "all checks passed"]
    {
        assert!(stdout.contains(needle), "doctor output lacks '{needle}':\n{stdout}");
    }
    assert!(stdout.contains("2.13.0"), "doctor does not report PyTorch 2.13.0:\n{stdout}");
}

#[test]
fn doctor_rejects_a_missing_device() {
    let out = Command::new(r3m_bin()).args(["doctor", "--device", "cuda:7"]).output().unwrap();
    assert!(!out.status.success(), "doctor passed with a GPU that does not exist");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cuda:7"), "failure does not name the device:\n{stderr}");
}

#[test]
fn r3m_probe_reports_good_files_and_names_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    make_video(&good, "80x60", 20, 30, &["-c:v", "libx264", "-g", "10"]);
    let bad = dir.path().join("bad.mkv");
    std::fs::write(&bad, b"definitely not matroska").unwrap();
    let out = Command::new(r3m_bin()).arg("probe").arg("--json").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["frames"], 30);
    assert_eq!(v["codec"], "h264");
    assert_eq!(v["width"], 80);
    assert!((v["fps"].as_f64().unwrap() - 20.0).abs() < 1e-6);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.mkv") && stderr.contains("1 of 2"), "{stderr}");
}

/// `scripts/gpu_check.sh`, the check to run on a GPU machine, works on the shipped data on any
/// device: here on the CPU with a small matrix (ResNet18 fp32, batch 8 at 64 px, 4 steps: the
/// first is warm-up, 3 are timed), `embed` on every 10th frame and a 1-rank torchrun on Gloo; its
/// table has every row.
#[test]
fn gpu_check_script_runs_on_the_cpu() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/gpu_check.sh"))
        .env("R3M", r3m_bin())
        .envs([("DEVICE", "cpu"), ("STEPS", "4"), ("ARCHS", "resnet18"), ("PRECISIONS", "fp32")])
        .envs([("SIZE", "64"), ("BATCH", "8"), ("EVERY", "10")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gpu_check.sh failed:\n{stdout}\n{stderr}");
    let line = |start: &str| stdout.lines().find(|l| l.starts_with(start)).unwrap_or_default().to_string();
    let train = line("| train resnet18 fp32 | batch 8 × 5 frames at 64 px, 4 steps |");
    let ips: f64 = train.split("| ").nth(3).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap();
    assert!(ips > 0.0 && train.contains("over 3 steps") && train.contains("data wait"), "{stdout}");
    assert!(!line("| doctor | cpu | ok").is_empty(), "{stdout}");
    let embed = line("| embed |");
    assert!(embed.contains("frames/s") && !embed.contains("| 0 frames"), "{stdout}");
    assert!(line("| torchrun, 1 rank | gloo, resnet18 |").contains("images/s"), "{stdout}");
    assert!(line("| decode on NVDEC |").contains("not measured"), "{stdout}");
}
