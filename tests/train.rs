//! `r3m train` end to end on videos made by the `ffmpeg` CLI: it trains, skips a bad file and says
//! so, writes metrics and checkpoints, and an interrupted-then-resumed run ends with the same
//! weights as an uninterrupted one.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::Command;

use r3m_suite::{make_video, r3m_bin};
use tch::Tensor;

/// The tests that train inside this process take turns. Two trainings running at the same time in
/// one process were seen to give a different channels-last fp32 loss at step 1 (4.245 → 4.086 or
/// 4.301; 3 of ~6 full runs), though the initialisation is seeded under one lock and no training op
/// draws random numbers; the cause is not found yet (CONTRIBUTING.md, "Known issues"). The `r3m`
/// binary runs one training per process, so it is not affected.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn videos(dir: &Path) {
    for i in 0..5 {
        make_video(&dir.join(format!("clip{i}.mp4")), "96x72", 10, 20 + 5 * i, &["-c:v", "libx264", "-g", "10"]);
    }
    std::fs::write(dir.join("corrupt.mp4"), b"\x00\x00\x00\x18ftypmp42 but then nothing useful").unwrap();
}

fn train(videos: &Path, out: &Path, steps: u64, resume: bool) -> String {
    train_with(videos, out, steps, resume, &[])
}

fn train_with(videos: &Path, out: &Path, steps: u64, resume: bool, extra: &[&str]) -> String {
    let mut cmd = Command::new(r3m_bin());
    cmd.args(["train", "--videos"]).arg(videos).arg("--out").arg(out).args(extra);
    cmd.args([
        "--steps",
        &steps.to_string(),
        "--batch",
        "3",
        "--size",
        "64",
        "--workers",
        "1",
        "--tuples-per-clip",
        "2",
    ]);
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
    let mut w =
        Tensor::read_safetensors(run.join("checkpoints").join(latest.trim()).join("model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// Two runs' weights (from [`weights`]) are the same tensors, bit for bit.
fn assert_same_weights(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(b) {
        let d = (x.to_kind(tch::Kind::Double) - y.to_kind(tch::Kind::Double)).abs().max().double_value(&[]);
        assert!(d == 0.0, "{n} differs by {d} after resume");
    }
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
    assert_eq!(
        rows[0],
        "step,loss,tcn,l1,l2,aligned,wait_s,step_s,objective,objective_acc,lang,lang_acc,dropped_clips"
    );
    assert_eq!(rows.len(), 5, "{metrics}");
    for r in &rows[1..] {
        let loss: f64 = r.split(',').nth(1).unwrap().parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{r}");
    }
    let mut ckpts: Vec<_> =
        std::fs::read_dir(straight.join("checkpoints")).unwrap().flatten().map(|e| e.file_name()).collect();
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
    let losses =
        |m: &str| m.lines().skip(1).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(losses(&metrics), losses(&resumed_metrics), "losses differ after resume");
    // the budget counts the same steps either way, and the invocations that trained them
    let budget = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("budget.json")).unwrap()).unwrap()
    };
    let (bs, br) = (budget(&straight), budget(&split));
    for b in [&bs, &br] {
        assert_eq!(b["format"], "r3m-budget-2", "{b}");
        assert_eq!(
            (b["steps"].as_u64(), b["tuples"].as_u64(), b["images"].as_u64()),
            (Some(4), Some(4 * 3), Some(4 * 3 * 5)),
            "{b}"
        );
        assert!(b["train_s"].as_f64().unwrap() > 0.0 && b["s_per_step"].as_f64().unwrap() > 0.0, "{b}");
    }
    assert_eq!((bs["invocations"].as_u64(), br["invocations"].as_u64()), (Some(1), Some(2)));
    let (a, b) = (weights(&straight), weights(&split));
    assert_same_weights(&a, &b);
}

/// `--arch shallow` (DrQ's ConvNet, the architecture of `eval bc`'s `scratch-shallow` row)
/// pretrains like a ResNet: resumes bit-exactly, and its checkpoint loads as a 50-d frozen
/// encoder whose weights training moved away from their seeded start.
#[test]
fn shallow_arch_trains_resumes_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let straight = dir.path().join("straight");
    let log = train_with(&v, &straight, 4, false, &["--arch", "shallow"]);
    assert!(log.contains("training shallow"), "{log}");
    let split = dir.path().join("split");
    train_with(&v, &split, 2, false, &["--arch", "shallow"]);
    train_with(&v, &split, 4, true, &["--arch", "shallow"]);
    let (a, b) = (weights(&straight), weights(&split));
    assert!(a.iter().any(|(n, _)| n == "fc.weight") && a.iter().any(|(n, _)| n == "conv3.weight"));
    assert_same_weights(&a, &b);
    let frozen = r3m_model::checkpoint::load_encoder(&straight, tch::Device::Cpu).unwrap();
    assert_eq!(frozen.encoder.arch(), r3m_model::Arch::Shallow);
    assert_eq!((frozen.encoder.dim(), frozen.size), (50, 64));
    let x = Tensor::rand([2, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu)) * 255.0;
    let e = tch::no_grad(|| frozen.encoder.forward_u8(&x, false));
    assert_eq!(e.size(), vec![2, 50]);
    // steps 3-4 moved the convolutions (the gradient reaches through the readout)
    let at2 = Tensor::read_safetensors(straight.join("checkpoints/step-00000002/model.safetensors")).unwrap();
    let moved = at2.iter().filter(|(n, _)| n.starts_with("conv0")).all(|(n, t)| {
        let t4 = &a.iter().find(|(m, _)| m == n).unwrap().1;
        (t.to_kind(tch::Kind::Double) - t4.to_kind(tch::Kind::Double)).abs().max().double_value(&[]) > 0.0
    });
    assert!(moved, "steps 3-4 left the first convolution unchanged");
}

#[test]
fn bad_flags_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(dir.path())
        .args(["--out"])
        .arg(dir.path().join("r"))
        .args(["--batch", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch 1"));
    let out = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(dir.path().join("missing"))
        .args(["--out"])
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("missing") && e.contains("not a directory"), "{e}");
}

/// bf16 autocast tracks fp32: same seed, same batches, R3M's lr, per-step losses within 2% (bf16
/// keeps 8 mantissa bits; weights, BatchNorm statistics and the loss stay fp32); channels-last fp32
/// within 0.2% (only the summation order of the convolutions changes).
#[test]
fn bf16_loss_curve_tracks_fp32() {
    let _turn = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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

/// `sync_every` (metrics read from the device every N steps: on a GPU the step's one wait) changes
/// when the numbers are read, nothing else: the same per-step numbers and weights as reading every
/// step, one host synchronisation per read (counted), and a non-finite loss still stops the run
/// before any checkpoint, naming the step it happened at.
#[test]
fn metrics_read_every_n_steps_change_nothing_but_the_reads() {
    let _turn = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let clips = r3m_data::scan_videos(&v, &mut r3m_data::ProbeCache::default()).unwrap().clips;
    let run_with = |sync_every: u64, lr: f64| {
        let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
        (cfg.size, cfg.batch, cfg.steps, cfg.seed, cfg.checkpoint_every) = (48, 4, 8, 5, 4);
        (cfg.sync_every, cfg.lr) = (sync_every, lr);
        cfg.objective = r3m_model::ObjectiveConfig::new(r3m_model::ObjectiveKind::Moco);
        cfg.objective.queue = 16;
        let run = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        let before = r3m_train::syncs::count();
        let r = r3m_train::train(clips.clone(), &cfg, run.path(), false, |m| {
            seen.push((m.step, m.loss, m.tcn, m.objective, m.objective_acc, m.l1, m.l2, m.aligned));
            true
        });
        (r, seen, r3m_train::syncs::count() - before, run)
    };
    let (r1, every, syncs1, run1) = run_with(1, 1e-4);
    let (r3, grouped, syncs3, run3) = run_with(3, 1e-4);
    assert_eq!((r1.unwrap(), r3.unwrap()), (8, 8));
    assert_eq!(every, grouped, "the same numbers, step for step");
    // reads: every step; and at steps 3, 4 (a checkpoint), 7 and 8 (a checkpoint, the end)
    assert_eq!((syncs1, syncs3), (8, 4));
    for ((n, a), (_, b)) in weights(run1.path()).iter().zip(&weights(run3.path())) {
        assert!(a.equal(b), "{n} differs");
    }
    // lr = NaN: step 1's loss is finite and its update makes the weights NaN, so step 2's loss
    // is not; read at step 4, the run stops there with nothing written past step 0
    let (r, seen, _, run) = run_with(4, f64::NAN);
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("loss became NaN at step 2") && e.contains("2 more step(s) ran and are discarded"), "{e}");
    assert!(e.contains("the last good checkpoint is none"), "{e}");
    assert_eq!(seen.len(), 1, "only the finite step is reported");
    assert!(!run.path().join("checkpoints/step-00000004").exists());
}

/// R3M's crop cut on the training device (the CUDA default) trains like the crop cut in the
/// decode workers: the same crops, pixels within a grey level or two, so the same losses to
/// within a small tolerance; and a resumed device-crop run continues bit for bit.
#[test]
fn crops_on_the_device_train_like_crops_in_the_workers() {
    let _turn = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let clips = r3m_data::scan_videos(&v, &mut r3m_data::ProbeCache::default()).unwrap().clips;
    let run_with = |on_device: bool, run: &Path, steps: u64, resume: bool| {
        let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
        (cfg.size, cfg.batch, cfg.steps, cfg.seed, cfg.checkpoint_every) = (48, 4, steps, 7, 2);
        cfg.precision = r3m_model::Precision::Fp32;
        cfg.augment_on_device = on_device;
        let mut seen = Vec::new();
        r3m_train::train(clips.clone(), &cfg, run, resume, |m| {
            seen.push(m.loss);
            true
        })
        .unwrap();
        seen
    };
    let (a, b, c) = (dir.path().join("workers"), dir.path().join("device"), dir.path().join("split"));
    let workers = run_with(false, &a, 4, false);
    let device = run_with(true, &b, 4, false);
    assert_eq!(workers.len(), 4);
    for (i, (x, y)) in workers.iter().zip(&device).enumerate() {
        assert!(((x - y) / x).abs() < 1e-2, "step {}: workers {x}, device {y}", i + 1);
    }
    assert!(device.iter().all(|l| l.is_finite()));
    run_with(true, &c, 2, false);
    run_with(true, &c, 4, true);
    assert_same_weights(&weights(&b), &weights(&c));
}

/// Every objective trains on the same tuples: finite losses, its own term and accuracy in
/// metrics.csv, and the momentum variants keep their state beside the model.
#[test]
fn every_objective_trains() {
    let _turn = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let clips = r3m_data::scan_videos(&v, &mut r3m_data::ProbeCache::default()).unwrap().clips;
    for kind in r3m_model::ObjectiveKind::ALL {
        let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
        (cfg.size, cfg.batch, cfg.steps, cfg.seed, cfg.checkpoint_every, cfg.tuples_per_clip) = (48, 4, 3, 1, 100, 2);
        cfg.objective = r3m_model::ObjectiveConfig::new(kind);
        cfg.objective.queue = 16;
        cfg.objective.byol_hidden = 64;
        let run = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        r3m_train::train(clips.clone(), &cfg, run.path(), false, |m| {
            seen.push((m.loss, m.objective, m.objective_acc, m.tcn));
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 3, "{kind:?}");
        for (loss, own, acc, tcn) in &seen {
            assert!(
                loss.is_finite() && own.is_finite() && tcn.is_finite() && (0.0..=1.0).contains(acc),
                "{kind:?}: {seen:?}"
            );
        }
        assert!(seen.iter().any(|s| s.1 != 0.0), "{kind:?}: the objective's own term is always 0: {seen:?}");
        let ck = run.path().join("checkpoints/step-00000003");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ck.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["objective"]["name"], kind.name());
        assert_eq!(ck.join("objective.safetensors").exists(), kind.has_target(), "{kind:?}");
        // the embedding side of a checkpoint is the same for every objective
        let frozen = r3m_model::checkpoint::load_encoder(&ck, tch::Device::Cpu).unwrap();
        assert_eq!(frozen.encoder.dim(), 512);
    }
}

/// MoCo's queue and momentum encoder are part of the state: a resumed run matches an
/// uninterrupted one bit for bit, queue included; resuming with another objective is refused.
#[test]
fn moco_resumes_exactly_and_objectives_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let moco = ["--objective", "moco", "--queue", "8"];
    let straight = dir.path().join("straight");
    train_with(&v, &straight, 4, false, &moco);
    let split = dir.path().join("split");
    train_with(&v, &split, 2, false, &moco);
    train_with(&v, &split, 4, true, &moco);
    let state = |run: &Path| {
        let mut t = Tensor::read_safetensors(run.join("checkpoints/step-00000004/objective.safetensors")).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    let (a, b) = (state(&straight), state(&split));
    assert!(
        a.iter().any(|(n, _)| n == "momentum.queue") && a.iter().any(|(n, _)| n.starts_with("momentum.encoder.")),
        "{:?}",
        a.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    for ((n, x), (_, y)) in a.iter().zip(&b).chain(weights(&straight).iter().zip(&weights(&split))) {
        let d = (x.to_kind(tch::Kind::Double) - y.to_kind(tch::Kind::Double)).abs().max().double_value(&[]);
        assert!(d == 0.0, "{n} differs by {d} after resume");
    }
    let out = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(&v)
        .arg("--out")
        .arg(&split)
        .args(["--steps", "6", "--batch", "3", "--size", "64", "--device", "cpu", "--resume", "--objective", "byol"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--objective moco"), "{e}");
}

/// The language term: clips get texts from a manifest, embeddings from a Parquet file; rows
/// without a text are masked; a text with no embedding is refused by name.
#[test]
fn language_term_and_time_windows() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let manifest = dir.path().join("clips.csv");
    std::fs::write(&manifest, "path,text\nvideos/clip0.mp4,open the drawer\nvideos/clip1.mp4,open the drawer\nvideos/clip2.mp4,press the button\nvideos/clip3.mp4,\nvideos/clip4.mp4,press the button\n").unwrap();
    // embeddings for two texts (made here; python/r3m_tools/embed_texts.py writes the same schema)
    let texts = dir.path().join("texts.parquet");
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\npq.write_table(pa.table({{'text': ['open the drawer', 'press the button'], 'embedding': pa.array([[0.1]*384, [-0.2]*384], pa.list_(pa.float32()))}}), '{}')",
        texts.display()
    );
    let ok = Command::new("python3").args(["-c", &script]).status().unwrap();
    assert!(ok.success());
    let run = |out: &str, extra: &[&str]| {
        Command::new(r3m_bin())
            .args(["train", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(dir.path().join(out))
            .args([
                "--steps",
                "3",
                "--batch",
                "4",
                "--size",
                "48",
                "--workers",
                "1",
                "--device",
                "cpu",
                "--lang-hidden",
                "32",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(
        "lang",
        &[
            "--lang-weight",
            "1",
            "--text-embeddings",
            texts.to_str().unwrap(),
            "--positive-window",
            "2",
            "--negative-gap",
            "0.4s",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(dir.path().join("lang/metrics.csv")).unwrap();
    for row in metrics.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').collect();
        let lang: f64 = cols[10].parse().unwrap_or(f64::NAN);
        assert!(lang.is_finite() && lang > 0.0, "language term missing: {row}");
    }
    let config = std::fs::read_to_string(dir.path().join("lang/checkpoints/step-00000003/config.json")).unwrap();
    assert!(
        config.contains("\"positive_window\": \"2f\"") && config.contains("\"negative_gap\": \"0.4s\""),
        "{config}"
    );
    // a text without an embedding
    std::fs::write(&manifest, "path,text\nvideos/clip0.mp4,open the drawer\nvideos/clip1.mp4,close the window\nvideos/clip2.mp4,x\nvideos/clip3.mp4,\n").unwrap();
    let out = run("missing", &["--lang-weight", "1", "--text-embeddings", texts.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("close the window") && e.contains("no embedding"), "{e}");
    // the term without embeddings, and a gap inside the window
    let out = run("noemb", &["--lang-weight", "1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--text-embeddings"));
    let out = run("gap", &["--positive-window", "5", "--negative-gap", "3"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--negative-gap"));
}

fn train_output(videos: &Path, out: &Path, steps: u64, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(r3m_bin());
    cmd.args(["train", "--videos"]).arg(videos).arg("--out").arg(out).args(["--steps", &steps.to_string()]);
    // defaults, each unless `extra` gives it
    let defaults = [
        ("--batch", "3"),
        ("--size", "64"),
        ("--workers", "1"),
        ("--tuples-per-clip", "2"),
        ("--checkpoint-every", "2"),
        ("--seed", "5"),
        ("--device", "cpu"),
        ("--lr", "1e-3"),
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    let out = cmd.args(extra).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A run directory has one owner; `--resume` compares every setting that changes the batches or
/// the model (and the data) and names each difference; flags that would do nothing are refused.
#[test]
fn run_directories_have_one_owner_and_resume_checks_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let run = dir.path().join("run");
    // the reproduction from the issue: 3 steps, keep 2, then 1 step into the same folder
    let (ok, e) = train_output(&v, &run, 3, &["--checkpoint-every", "1", "--keep", "2"]);
    assert!(ok, "{e}");
    let (ok, e) = train_output(&v, &run, 1, &[]);
    assert!(!ok && e.contains("--resume") && e.contains("--overwrite") && e.contains("holds a run"), "{e}");
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        "step-00000003",
        "a refused run must not touch the old one"
    );
    // resume with a changed batch and seed: refused, each difference named
    let (ok, e) = train_output(&v, &run, 4, &["--resume", "--batch", "4", "--seed", "6"]);
    assert!(!ok && e.contains("--batch 3 → 4") && e.contains("--seed 5 → 6"), "{e}");
    // the data changed: refused
    let v2 = dir.path().join("videos2");
    std::fs::create_dir_all(&v2).unwrap();
    for i in 0..4 {
        std::fs::copy(v.join(format!("clip{i}.mp4")), v2.join(format!("clip{i}.mp4"))).unwrap();
    }
    let (ok, e) = train_output(&v2, &run, 4, &["--resume"]);
    assert!(!ok && e.contains("the data differ"), "{e}");
    // --steps, --checkpoint-every and --keep may change, and are reported
    let (ok, e) = train_output(&v, &run, 4, &["--resume", "--checkpoint-every", "1", "--keep", "3"]);
    assert!(ok && e.contains("resume: --steps 3 → 4") && e.contains("resume: --keep 2 → 3"), "{e}");
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap().trim(), "step-00000004");
    // --overwrite starts over
    let (ok, e) = train_output(&v, &run, 1, &["--overwrite"]);
    assert!(ok && e.contains("cleared"), "{e}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    let ckpts: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(ckpts.contains(&"step-00000001".to_string()) && !ckpts.contains(&"step-00000004".to_string()), "{ckpts:?}");
    // --overwrite never deletes a folder that is not a run
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("cat.jpg"), b"x").unwrap();
    let (ok, e) = train_output(&v, &photos, 1, &["--overwrite"]);
    assert!(!ok && e.contains("refusing") && photos.join("cat.jpg").exists(), "{e}");
    // flags that would do nothing
    for (extra, want) in [
        (&["--margin", "0.5"][..], "--margin"),
        (&["--objective", "simclr", "--queue", "8"][..], "--queue"),
        (&["--momentum", "0.9"][..], "--momentum"),
        (&["--text-embeddings", "x.parquet"][..], "--lang-weight"),
        (&["--batch", "6"][..], "--batch 6 is more than the 5 clip(s)"),
    ] {
        let (ok, e) = train_output(&v, &dir.path().join("flags"), 1, extra);
        assert!(!ok && e.contains(want), "{extra:?}: {e}");
    }
}

/// Fault injection: `r3m train` killed with SIGKILL at seeded random moments, then resumed (or
/// restarted when no checkpoint was complete), ends with weights bit-identical to an uninterrupted
/// run; after every kill each checkpoint under a final name is complete and `latest` names one.
/// A checkpoint that cannot be written (file size limit) fails with the file named, and leaves the
/// previous checkpoint, `latest` and no temporary behind.
#[test]
fn kill_9_at_random_points_then_resume_gives_identical_weights() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    const STEPS: u64 = 8;
    let straight = dir.path().join("straight");
    let (ok, e) = train_output(&v, &straight, STEPS, &["--checkpoint-every", "1"]);
    assert!(ok, "{e}");
    let run = dir.path().join("killed");
    let check = |run: &Path| {
        let cks = run.join("checkpoints");
        for e in std::fs::read_dir(&cks).into_iter().flatten().flatten() {
            let name = e.file_name().into_string().unwrap();
            if name.starts_with('.') {
                continue; // a temporary: never read by anyone
            }
            for f in ["model.safetensors", "optimizer.safetensors", "config.json"] {
                assert!(e.path().join(f).exists(), "{name}/{f} missing under a final name");
            }
            let cfg: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.path().join("config.json")).unwrap()).unwrap();
            assert!(cfg["step"].as_u64().is_some(), "{name}: {cfg}");
            Tensor::read_safetensors(e.path().join("model.safetensors")).unwrap();
        }
        if let Ok(latest) = std::fs::read_to_string(run.join("latest")) {
            assert!(
                cks.join(latest.trim()).join("config.json").exists(),
                "latest names {latest}, which is not complete"
            );
        }
    };
    // seeded kill moments (SplitMix-style LCG), between 0.3 s and 4 s after the start
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_delay = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Duration::from_millis(300 + (state >> 33) % 3700)
    };
    let (mut killed, mut tries) = (0, 0);
    loop {
        tries += 1;
        let mut cmd = Command::new(r3m_bin());
        cmd.args(["train", "--videos"]).arg(&v).arg("--out").arg(&run);
        cmd.args([
            "--steps",
            &STEPS.to_string(),
            "--batch",
            "3",
            "--size",
            "64",
            "--workers",
            "1",
            "--tuples-per-clip",
            "2",
        ]);
        cmd.args(["--checkpoint-every", "1", "--seed", "5", "--device", "cpu", "--lr", "1e-3"]);
        if run.join("latest").exists() {
            cmd.arg("--resume");
        } else if run.exists() {
            cmd.arg("--overwrite");
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        if killed < 6 {
            let deadline = Instant::now() + next_delay();
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                check(&run);
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        check(&run);
        if std::fs::read_to_string(run.join("latest")).map(|l| l.trim() == format!("step-{STEPS:08}")).unwrap_or(false)
        {
            break;
        }
        assert!(tries < 30, "no progress after {tries} runs");
    }
    eprintln!("kill -9 points tried and survived: {killed} (runs: {tries})");
    assert!(killed >= 3, "only {killed} kills landed while training ran");
    let (a, b) = (weights(&straight), weights(&run));
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        let d = (x.to_kind(tch::Kind::Double) - y.to_kind(tch::Kind::Double)).abs().max().double_value(&[]);
        assert!(d == 0.0, "{n} differs by {d} after {killed} kills");
    }
    let losses =
        |m: &str| m.lines().skip(1).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(
        losses(&std::fs::read_to_string(straight.join("metrics.csv")).unwrap()),
        losses(&std::fs::read_to_string(run.join("metrics.csv")).unwrap()),
        "metrics.csv must hold each step once, with the same losses"
    );

    // a checkpoint write that fails (files limited to 1 MB; SIGXFSZ ignored so write returns EFBIG)
    let full = dir.path().join("full");
    let (ok, e) = train_output(&v, &full, 2, &[]);
    assert!(ok, "{e}");
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 2048; exec '{}' train --videos '{}' --out '{}' --steps 4 --batch 3 --size 64 --workers 1 --tuples-per-clip 2 --checkpoint-every 2 --seed 5 --device cpu --lr 1e-3 --resume",
        r3m_bin().display(),
        v.display(),
        full.display()
    );
    let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("step-00000004") && e.contains("safetensors"), "the error names the file: {e}");
    assert_eq!(std::fs::read_to_string(full.join("latest")).unwrap().trim(), "step-00000002");
    check(&full);
    let left: Vec<String> = std::fs::read_dir(full.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(left.iter().all(|n| !n.starts_with('.')), "temporaries left: {left:?}");
    // and the run resumes fine afterwards
    let (ok, e) = train_output(&v, &full, 4, &["--resume"]);
    assert!(ok, "{e}");
}

/// `--loader reservoir`: trains, resumes bit for bit, keeps its pool size in the run config
/// (a resume with another `--reservoir-mb` is refused by name), and a reservoir flag without the
/// reservoir is refused.
#[test]
fn the_reservoir_loader_trains_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let res = ["--loader", "reservoir", "--reservoir-mb", "1"];
    let straight = dir.path().join("straight");
    let log = train_with(&v, &straight, 4, false, &res);
    assert!(log.contains("decoded clip(s) held, each serving 2 tuple(s)"), "{log}");
    let split = dir.path().join("split");
    train_with(&v, &split, 2, false, &res);
    train_with(&v, &split, 4, true, &res);
    let losses = |run: &Path| {
        let m = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        m.lines().skip(1).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>()
    };
    assert_eq!(losses(&straight), losses(&split), "losses differ after resume");
    assert_same_weights(&weights(&straight), &weights(&split));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.join("checkpoints/step-00000004/config.json")).unwrap())
            .unwrap();
    assert_eq!((cfg["loader"].as_str(), cfg["reservoir"][0].as_u64()), (Some("reservoir"), Some(1)), "{cfg}");
    let (ok, e) = train_output(&v, &split, 6, &["--resume", "--loader", "reservoir", "--reservoir-mb", "64"]);
    assert!(!ok && e.contains("--reservoir-mb 1 MB"), "{e}");
    let (ok, e) = train_output(&v, &split, 6, &["--resume"]);
    assert!(!ok && e.contains("--loader reservoir → grouped"), "{e}");
    let (ok, e) = train_output(&v, &dir.path().join("x"), 2, &["--reservoir-mb", "64"]);
    assert!(!ok && e.contains("--reservoir-mb does nothing with --loader grouped"), "{e}");
}

#[test]
fn auto_times_the_modes_once_per_machine_and_keeps_the_runs_choice() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let cache = d.path().join("cache");
    let run = |out: &Path, steps: &str, extra: &[&str]| {
        let (policy, extra) = match extra.first() {
            Some(&p) if p.starts_with("R3M_AUTOTUNE=") => (&p["R3M_AUTOTUNE=".len()..], &extra[1..]),
            _ => ("auto", extra),
        };
        let o = Command::new(r3m_bin())
            .env("R3M_CACHE", &cache)
            .env("R3M_AUTOTUNE", policy)
            .args(["train", "--videos"])
            .arg(&v)
            .arg("--out")
            .arg(out)
            .args(["--steps", steps, "--batch", "2", "--size", "32", "--workers", "1", "--tuples-per-clip", "4"])
            .args(["--device", "cpu", "--precision", "fp32", "--memory-format", "auto"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        err
    };
    let config = |out: &Path| -> serde_json::Value {
        let latest = std::fs::read_to_string(out.join("latest")).unwrap();
        let c = out.join("checkpoints").join(latest.trim()).join("config.json");
        serde_json::from_str(&std::fs::read_to_string(c).unwrap()).unwrap()
    };
    // a short run takes the static rule and says so
    let err = run(&d.path().join("short"), "3", &[]);
    assert!(err.contains("static rule") && !err.contains("timing"), "{err}");
    assert!(config(&d.path().join("short")).get("autotune").is_none());
    let err = run(&d.path().join("never"), "3", &["R3M_AUTOTUNE=never"]);
    assert!(err.contains("R3M_AUTOTUNE=never") && !err.contains("timing"), "{err}");
    let o = Command::new(r3m_bin())
        .env("R3M_AUTOTUNE", "sometimes")
        .args(["train", "--videos"])
        .arg(&v)
        .arg("--out")
        .arg(d.path().join("bad"))
        .args(["--steps", "3", "--batch", "2", "--size", "32", "--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("R3M_AUTOTUNE=sometimes: expected auto, always or never"), "{err}");
    // R3M_AUTOTUNE=always: a run (of any length; ≥ 360 steps without it) times fp32 NCHW and
    // channels-last and keeps the faster
    let a = d.path().join("a");
    let err = run(&a, "4", &["R3M_AUTOTUNE=always", "--checkpoint-every", "2"]);
    assert!(err.contains("auto: timing 2 mode(s)") && err.contains("(measured:"), "{err}");
    let c = config(&a);
    let t = c["autotune"]["timings"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    let fastest =
        t.iter().min_by(|x, y| x["step_s"].as_f64().unwrap().total_cmp(&y["step_s"].as_f64().unwrap())).unwrap();
    assert_eq!(c["autotune"]["mode"], fastest["mode"]);
    assert_eq!(c["channels_last"], fastest["mode"]["channels_last"], "the run trains in the chosen mode");
    assert!(cache.join("autotune.json").exists());
    // another run of the same shape on this machine: the cached timings, no measuring
    let b = d.path().join("b");
    let err = run(&b, "4", &["R3M_AUTOTUNE=always"]);
    assert!(err.contains("(cached measurement:") && !err.contains("auto: timing"), "{err}");
    let same_timings = |x: &serde_json::Value, y: &serde_json::Value| {
        let (x, y) = (x["autotune"]["timings"].as_array().unwrap(), y["autotune"]["timings"].as_array().unwrap());
        x.len() == y.len()
            && x.iter().zip(y).all(|(p, q)| {
                let (p_s, q_s) = (p["step_s"].as_f64().unwrap(), q["step_s"].as_f64().unwrap());
                p["mode"] == q["mode"] && (p_s - q_s).abs() <= 1e-12 * q_s
            })
    };
    assert!(same_timings(&config(&b), &c), "{} vs {}", config(&b)["autotune"], c["autotune"]);
    assert_eq!(config(&b)["autotune"]["mode"], c["autotune"]["mode"]);
    // a resume keeps the run's mode without timing again, even with the cache gone
    std::fs::remove_file(cache.join("autotune.json")).unwrap();
    let err = run(&a, "6", &["R3M_AUTOTUNE=always", "--checkpoint-every", "2", "--resume"]);
    assert!(err.contains("the run's own") && !err.contains("auto: timing"), "{err}");
    assert_eq!(config(&a)["channels_last"], c["channels_last"]);
    assert!(same_timings(&config(&a), &c) && config(&a)["autotune"]["mode"] == c["autotune"]["mode"]);
}

/// A run over a 200,000-row manifest keeps its clip list once, in `RUN/clips.txt`, and each
/// checkpoint's `config.json` only the count and a hash: it stays under 64 KB.
#[test]
fn a_large_manifest_keeps_checkpoint_configs_small() {
    let dir = tempfile::tempdir().unwrap();
    make_video(&dir.path().join("long.mp4"), "64x48", 25, 60, &["-c:v", "libx264", "-g", "10"]);
    let mut csv = String::from("path,start_frame,end_frame\n");
    for i in 0..200_000usize {
        let start = i % 50;
        csv.push_str(&format!("long.mp4,{start},{}\n", start + 5 + i % 5));
    }
    let manifest = dir.path().join("clips.csv");
    std::fs::write(&manifest, csv).unwrap();
    let run = dir.path().join("run");
    let out = Command::new(r3m_bin())
        .args(["train", "--manifest"])
        .arg(&manifest)
        .arg("--out")
        .arg(&run)
        .args(["--steps", "1", "--batch", "2", "--size", "32", "--workers", "1", "--device", "cpu", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let config = run.join("checkpoints").join(latest.trim()).join("config.json");
    let size = std::fs::metadata(&config).unwrap().len();
    assert!(size < 64 * 1024, "{} is {size} bytes", config.display());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(v["data"]["clips"], 200_000);
    assert_eq!(std::fs::read_to_string(run.join("clips.txt")).unwrap().lines().count(), 200_000);
}

/// SIGTERM, SIGUSR1 and SIGINT (a scheduler preempting the job, Slurm's `--signal`, Ctrl-C) at
/// seeded random moments: each time `r3m train` writes a checkpoint at the step it reached and
/// exits 130, losing no step; `--resume` then ends with weights bit-identical to an uninterrupted
/// run.
#[test]
fn sigterm_checkpoints_the_current_step_and_resume_is_exact() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    const STEPS: u64 = 14;
    let straight = dir.path().join("straight");
    let (ok, e) = train_output(&v, &straight, STEPS, &["--checkpoint-every", "1000"]);
    assert!(ok, "{e}");
    let run = dir.path().join("termed");
    // seeded moments: after a random number of further steps, plus a random fraction of a step
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next_moment = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (1 + (state >> 33) % 3, Duration::from_millis((state >> 40) % 200))
    };
    let rows = |run: &Path| {
        std::fs::read_to_string(run.join("metrics.csv")).map_or(0, |m| m.lines().count().saturating_sub(1) as u64)
    };
    let (mut termed, mut tries) = (0, 0);
    loop {
        tries += 1;
        assert!(tries < 30, "no progress after {tries} runs");
        let mut cmd = Command::new(r3m_bin());
        cmd.args(["train", "--videos"]).arg(&v).arg("--out").arg(&run);
        cmd.args(["--steps", &STEPS.to_string(), "--batch", "3", "--size", "64", "--workers", "1"]);
        cmd.args(["--tuples-per-clip", "2", "--checkpoint-every", "1000", "--seed", "5", "--device", "cpu"]);
        cmd.args(["--lr", "1e-3"]);
        if run.join("latest").exists() {
            cmd.arg("--resume");
        } else if run.exists() {
            cmd.arg("--overwrite");
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        if termed < 3 {
            let (more, extra) = next_moment();
            let target = rows(&run) + more;
            let t0 = Instant::now();
            while rows(&run) < target && child.try_wait().unwrap().is_none() {
                assert!(t0.elapsed() < Duration::from_secs(120), "no training progress");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(extra);
            if child.try_wait().unwrap().is_none() {
                // SIGTERM (Slurm, Kubernetes, torchrun), SIGUSR1 (Slurm's --signal), SIGINT
                let (sig, name) =
                    [(libc::SIGTERM, "SIGTERM"), (libc::SIGUSR1, "SIGUSR1"), (libc::SIGINT, "SIGINT")][termed];
                // SAFETY: signals the child this test started
                unsafe { libc::kill(child.id() as libc::pid_t, sig) };
                let status = child.wait().unwrap();
                assert_eq!(status.code(), Some(130), "{name} while training: {status}");
                termed += 1;
                // the checkpoint is at the step reached: every step in metrics.csv is in it
                let latest = std::fs::read_to_string(run.join("latest")).unwrap();
                let done = rows(&run);
                assert_eq!(latest.trim(), format!("step-{done:08}"), "{name} after {done} steps");
                continue;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
        if std::fs::read_to_string(run.join("latest")).is_ok_and(|l| l.trim() == format!("step-{STEPS:08}")) {
            break;
        }
    }
    eprintln!("SIGTERM, SIGUSR1 and SIGINT points that stopped training cleanly: {termed} (runs: {tries})");
    assert_eq!(termed, 3, "signals that landed while training ran");
    let (a, b) = (weights(&straight), weights(&run));
    assert_same_weights(&a, &b);
}

/// One writer per run directory: a second `r3m train` on the `--out` a first one is writing is
/// refused, naming the first's PID and host; once the first is killed (its lock dies with it) the
/// run resumes.
#[test]
fn a_second_writer_of_a_run_directory_is_refused() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let run = dir.path().join("run");
    let mut first = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(&v)
        .arg("--out")
        .arg(&run)
        .args(["--steps", "500", "--batch", "3", "--size", "64", "--workers", "1", "--checkpoint-every", "1"])
        // the settings train_output uses, so the run resumes with them below
        .args(["--tuples-per-clip", "2", "--seed", "5", "--lr", "1e-3", "--device", "cpu", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until it trains (a checkpoint exists)
    let t0 = Instant::now();
    while !run.join("latest").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "the first run did not start");
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    for extra in [&["--resume"][..], &["--overwrite"][..]] {
        let (ok, e) = train_output(&v, &run, 4, extra);
        assert!(!ok, "a second writer was let in with {extra:?}");
        assert!(e.contains("being written by another r3m") && e.contains(&format!("pid {}", first.id())), "{e}");
    }
    assert!(first.try_wait().unwrap().is_none(), "the refused writers must not disturb the first");
    first.kill().unwrap(); // SIGKILL: its lock goes with it
    first.wait().unwrap();
    let done = std::fs::read_to_string(run.join("latest")).unwrap();
    let steps: u64 = done.trim().trim_start_matches("step-").parse().unwrap();
    let (ok, e) = train_output(&v, &run, steps + 1, &["--resume"]);
    assert!(ok, "after the writer died the run resumes: {e}");
}
