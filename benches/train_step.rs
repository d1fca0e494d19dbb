//! Training steps/s of r3m (data pipeline included: decode from mp4, augment, batch) against the
//! same R3M step in PyTorch (torchvision ResNet, fp32 NCHW, Adam; data already in memory), same
//! batch, resolution and thread count, in one run. Also reports the share of our step time spent
//! waiting for data.
//!
//! Rows: the PyTorch recipe (fp32 NCHW, as R3M trains), PyTorch fp32 channels_last, and ours in
//! fp32 NCHW and fp32 channels-last; with `--bf16` (or on a CPU with bf16 units) also bf16
//! autocast + channels_last on both sides. Last row: `auto` (`r3m_train::autotune`: the modes
//! timed for a few steps, the fastest trained).
//!
//! `bash scripts/bench.sh train_step -- --batch 8 --size 224 --steps 6 [--bf16]`
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::PathBuf;
use std::process::Command;

use r3m_model::Precision;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peer(root: &std::path::Path, batch: usize, size: u32, steps: u64, warmup: u64, threads: i32, mode: &str) -> f64 {
    let out = Command::new("python3")
        .arg(root.join("benches/peers/bench_torch_train_step.py"))
        .args([
            "resnet18",
            &batch.to_string(),
            &size.to_string(),
            &steps.to_string(),
            &warmup.to_string(),
            &threads.to_string(),
            mode,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["steps"].as_f64().unwrap() / v["seconds"].as_f64().unwrap()
}

/// (steps/s, data-wait share) of `r3m train` with this precision and layout.
fn ours(
    root: &std::path::Path,
    batch: usize,
    size: u32,
    steps: u64,
    warmup: u64,
    precision: Precision,
    channels_last: bool,
) -> (f64, f64) {
    let clips =
        r3m_data::scan_videos(&root.join("datasets/synthetic"), &mut r3m_data::ProbeCache::default()).unwrap().clips;
    let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
    cfg.size = size;
    cfg.batch = batch;
    cfg.steps = warmup + steps;
    cfg.checkpoint_every = 1_000_000;
    cfg.keep_last = 1;
    cfg.precision = precision;
    cfg.channels_last = channels_last;
    let run = tempfile::tempdir().unwrap();
    let mut times = Vec::new();
    r3m_train::train(clips, &cfg, run.path(), false, |m| {
        if m.step > warmup {
            times.push((m.step_s, m.wait_s));
        }
        true
    })
    .unwrap();
    let total: f64 = times.iter().map(|t| t.0).sum();
    let wait: f64 = times.iter().map(|t| t.1).sum();
    (times.len() as f64 / total, wait / total)
}

fn main() {
    let (batch, size, steps) = (arg("--batch", 8), arg("--size", 224) as u32, arg("--steps", 6) as u64);
    let with_bf16 = std::env::args().any(|a| a == "--bf16") || r3m_model::precision::cpu_has_bf16_units();
    let warmup = 2u64;
    let threads = tch::get_num_threads();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let recipe = peer(&root, batch, size, steps, warmup, threads, "fp32");
    let mut rows = vec![(
        "PyTorch recipe: torchvision ResNet18 fp32 NCHW + R3M loss + Adam (data in memory)".to_string(),
        recipe,
        None,
    )];
    rows.push((
        "PyTorch fp32 channels_last (data in memory)".to_string(),
        peer(&root, batch, size, steps, warmup, threads, "fp32-cl"),
        None,
    ));
    if with_bf16 {
        rows.push((
            "PyTorch bf16 autocast + channels_last (data in memory)".to_string(),
            peer(&root, batch, size, steps, warmup, threads, "bf16-cl"),
            None,
        ));
    }
    let mut mine = vec![(Precision::Fp32, false), (Precision::Fp32, true)];
    if with_bf16 {
        mine.push((Precision::Bf16, true));
    }
    for (p, cl) in mine {
        let (sps, wait) = ours(&root, batch, size, steps, warmup, p, cl);
        let name =
            format!("r3m train {p} {} (decode + augment from mp4 included)", if cl { "channels-last" } else { "NCHW" });
        rows.push((name, sps, Some(wait)));
    }
    // `auto`: what `r3m train --precision auto --memory-format auto` would pick here (a fresh
    // measurement, no cache), then that mode's training
    let mut cfg = r3m_train::TrainConfig::new(tch::Device::Cpu);
    cfg.size = size;
    cfg.batch = batch;
    let modes = r3m_train::autotune::candidates(tch::Device::Cpu, None, None);
    let t0 = std::time::Instant::now();
    let (choice, _) = r3m_train::autotune::measure_and_store(&cfg, &modes, None).unwrap();
    let tuning = t0.elapsed().as_secs_f64();
    println!("{} [timing took {tuning:.1} s]", choice.summary());
    let (sps, wait) = ours(&root, batch, size, steps, warmup, choice.mode.precision, choice.mode.channels_last);
    rows.push((
        format!("r3m train auto → {} (timing {tuning:.0} s once per machine and shape)", choice.mode),
        sps,
        Some(wait),
    ));
    println!("train step benchmark: resnet18, batch {batch} clips x 5 frames at {size}px, {threads} threads, {steps} timed steps after {warmup} warm-up");
    println!("CPU bf16 units (AMX/AVX512-BF16): {}\n", r3m_model::precision::cpu_has_bf16_units());
    println!("| trainer | steps/s | images/s | vs PyTorch recipe | data wait |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, sps, wait) in rows {
        let w = wait.map_or("–".to_string(), |w| format!("{:.1}%", 100.0 * w));
        println!("| {name} | {sps:.3} | {:.1} | {:.2}× | {w} |", sps * 5.0 * batch as f64, sps / recipe);
    }
}
