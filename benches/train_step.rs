//! Training steps/s of r3m (data pipeline included: decode from mp4, augment, batch) against the
//! same R3M step in PyTorch (torchvision ResNet, fp32 NCHW, Adam; data already in memory), same
//! batch, resolution and thread count, in one run. Also reports the share of our step time spent
//! waiting for data.
//!
//! `bash scripts/bench.sh train_step -- --batch 8 --size 224 --steps 6`

use std::path::PathBuf;
use std::process::Command;

use r3m_model::{Arch, R3mObjective};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (batch, size, steps) = (arg("--batch", 8), arg("--size", 224) as u32, arg("--steps", 6) as u64);
    let warmup = 2u64;
    let threads = tch::get_num_threads();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let clips = r3m_data::scan_videos(&root.join("datasets/synthetic"), &mut r3m_data::ProbeCache::default()).unwrap().clips;
    let cfg = r3m_train::TrainConfig {
        arch: Arch::Resnet18,
        size,
        batch,
        tuples_per_clip: 4,
        workers: 1,
        steps: warmup + steps,
        lr: 1e-4,
        seed: 0,
        checkpoint_every: 1_000_000,
        keep_last: 1,
        objective: R3mObjective::default(),
        device: tch::Device::Cpu,
    };
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
    let ours = times.len() as f64 / total;

    let script = root.join("scripts/bench_torch_train_step.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["resnet18", &batch.to_string(), &size.to_string(), &steps.to_string(), &warmup.to_string(), &threads.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peer = v["steps"].as_f64().unwrap() / v["seconds"].as_f64().unwrap();
    println!("train step benchmark: resnet18, batch {batch} clips x 5 frames at {size}px, {threads} threads, {steps} timed steps after {warmup} warm-up\n");
    println!("| trainer | steps/s | images/s | vs PyTorch recipe | data wait |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("| PyTorch: torchvision ResNet18 fp32 NCHW + R3M loss + Adam (data in memory) | {peer:.3} | {:.1} | 1.00× | – |", peer * 5.0 * batch as f64);
    println!("| r3m train fp32 (decode + augment from mp4 included) | {ours:.3} | {:.1} | {:.2}× | {:.1}% |", ours * 5.0 * batch as f64, ours / peer, 100.0 * wait / total);
}
