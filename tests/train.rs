//! `r3m train` end to end on videos made by the `ffmpeg` CLI: it trains, skips a bad file and says
//! so, writes metrics and checkpoints, and an interrupted-then-resumed run ends with the same
//! weights as an uninterrupted one.

use std::path::Path;
use std::process::Command;

use r3m_suite::{make_video, r3m_bin};
use tch::Tensor;

fn videos(dir: &Path) {
    for i in 0..5 {
        make_video(&dir.join(format!("clip{i}.mp4")), "96x72", 10, 20 + 5 * i, &["-c:v", "libx264", "-g", "10"]);
    }
    std::fs::write(dir.join("corrupt.mp4"), b"\x00\x00\x00\x18ftypmp42 but then nothing useful").unwrap();
}

fn train(videos: &Path, out: &Path, steps: u64, resume: bool) -> String {
    let mut cmd = Command::new(r3m_bin());
    cmd.args(["train", "--videos"]).arg(videos).arg("--out").arg(out);
    cmd.args(["--steps", &steps.to_string(), "--batch", "3", "--size", "64", "--workers", "1", "--tuples-per-clip", "2"]);
    cmd.args(["--checkpoint-every", "2", "--seed", "5", "--device", "cpu", "--lr", "1e-3"]);
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "r3m train failed:\n{stderr}");
    stderr
}

fn weights(run: &Path) -> Vec<(String, Tensor)> {
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let mut w = Tensor::read_safetensors(run.join("checkpoints").join(latest.trim()).join("model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn trains_skips_bad_files_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);

    let straight = dir.path().join("straight");
    let log = train(&v, &straight, 4, false);
    assert!(log.contains("5 clips") && log.contains("1 file(s) skipped") && log.contains("corrupt.mp4"), "{log}");
    let metrics = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().collect();
    assert_eq!(rows[0], "step,loss,tcn,l1,l2,aligned,wait_s,step_s");
    assert_eq!(rows.len(), 5, "{metrics}");
    for r in &rows[1..] {
        let loss: f64 = r.split(',').nth(1).unwrap().parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{r}");
    }
    let mut ckpts: Vec<_> = std::fs::read_dir(straight.join("checkpoints")).unwrap().flatten().map(|e| e.file_name()).collect();
    ckpts.sort();
    assert_eq!(ckpts, ["best", "step-00000002", "step-00000004"], "checkpoints at steps 2 and 4, and the best");
    // the best is the interval (steps 1-2 or 3-4) with the lower mean loss
    let loss_at = |i: usize| -> f64 { rows[i].split(',').nth(1).unwrap().parse().unwrap() };
    let (m1, m2) = ((loss_at(1) + loss_at(2)) / 2.0, (loss_at(3) + loss_at(4)) / 2.0);
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("checkpoints/best/config.json")).unwrap()).unwrap();
    let (want_step, want_mean) = if m2 < m1 { (4, m2) } else { (2, m1) };
    assert_eq!(best["step"], want_step, "interval means {m1} {m2}");
    assert!((best["interval_mean_loss"].as_f64().unwrap() - want_mean).abs() < 1e-5, "{best}");
    assert_eq!(best["channels_last"], best["precision"] == "bf16", "auto layout: channels-last with bf16 only");

    // the same run interrupted after 2 steps and resumed
    let split = dir.path().join("split");
    train(&v, &split, 2, false);
    train(&v, &split, 4, true);
    let resumed_metrics = std::fs::read_to_string(split.join("metrics.csv")).unwrap();
    let losses = |m: &str| m.lines().skip(1).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(losses(&metrics), losses(&resumed_metrics), "losses differ after resume");
    let (a, b) = (weights(&straight), weights(&split));
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        let d = (x.to_kind(tch::Kind::Double) - y.to_kind(tch::Kind::Double)).abs().max().double_value(&[]);
        assert!(d == 0.0, "{n} differs by {d} after resume");
    }
}

#[test]
fn bad_flags_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(r3m_bin()).args(["train", "--videos"]).arg(dir.path()).args(["--out"]).arg(dir.path().join("r")).args(["--batch", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch 1"));
    let out = Command::new(r3m_bin()).args(["train", "--videos"]).arg(dir.path().join("missing")).args(["--out"]).arg(dir.path().join("r")).output().unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("missing") && e.contains("not a directory"), "{e}");
}

/// bf16 autocast tracks fp32: same seed, same batches, R3M's lr, per-step losses within 2% (bf16
/// keeps 8 mantissa bits; weights, BatchNorm statistics and the loss stay fp32); channels-last fp32
/// within 0.2% (only the summation order of the convolutions changes).
#[test]
fn bf16_loss_curve_tracks_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let clips = r3m_data::scan_videos(&v, &mut r3m_data::ProbeCache::default()).unwrap().clips;
    let curve = |precision: r3m_model::Precision, channels_last: bool| -> Vec<(f64, f64)> {
        let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
        (cfg.size, cfg.batch, cfg.steps, cfg.seed, cfg.checkpoint_every) = (48, 4, 5, 3, 100);
        cfg.precision = precision;
        cfg.channels_last = channels_last;
        let run = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        r3m_train::train(clips.clone(), &cfg, run.path(), false, |m| {
            out.push((m.loss, m.tcn));
            true
        })
        .unwrap();
        out
    };
    let fp32 = curve(r3m_model::Precision::Fp32, false);
    let fp32_cl = curve(r3m_model::Precision::Fp32, true);
    let bf16 = curve(r3m_model::Precision::Bf16, true);
    assert_eq!(fp32.len(), 5);
    for (i, ((a, b), c)) in fp32.iter().zip(&bf16).zip(&fp32_cl).enumerate() {
        let rel = (a.0 - b.0).abs() / a.0;
        eprintln!("step {}: fp32 {:.5} fp32-cl {:.5} bf16 {:.5} (rel {rel:.4})", i + 1, a.0, c.0, b.0);
        assert!(rel < 0.02, "step {}: fp32 loss {} vs bf16 {}", i + 1, a.0, b.0);
        assert!((a.0 - c.0).abs() / a.0 < 2e-3, "step {}: channels-last changes fp32 loss {} → {}", i + 1, a.0, c.0);
    }
    assert_ne!(fp32, bf16, "bf16 ran in fp32 (identical curves)");
}
