//! Frames/s of the `r3m embed` engine (decode → ResNet18 eval/no-grad → Parquet) against the
//! usual Python pipeline doing the same (PyAV decode → torchvision resize/crop → torchvision
//! ResNet18 eval/no-grad → pyarrow), same videos, crop size, batch and thread count, in one run.
//! Also checks that our embeddings in each precision/layout stay close to our fp32 NCHW ones
//! (min cosine).
//!
//! `bash scripts/bench.sh embed -- --clips 4 --size 224 --batch 32 [--bf16]`
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use r3m_export::{embed_clips, read_embeddings, EmbedConfig};
use r3m_model::{Arch, Encoder, Precision};
use tch::{nn, Device};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (nclips, size, batch) = (arg("--clips", 4), arg("--size", 224) as u32, arg("--batch", 32));
    let with_bf16 = std::env::args().any(|a| a == "--bf16") || r3m_model::precision::cpu_has_bf16_units();
    let threads = tch::get_num_threads();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("datasets/synthetic");
    let clips: Vec<_> = r3m_data::scan_videos(&data, &mut r3m_data::ProbeCache::default())
        .unwrap()
        .clips
        .into_iter()
        .take(nclips)
        .collect();
    let frames: usize = clips.iter().map(|c| c.len()).sum();
    let tmp = tempfile::tempdir().unwrap();

    let peer = |mode: &str| -> f64 {
        let out = Command::new("python3")
            .arg(root.join("benches/peers/bench_py_embed.py"))
            .arg(tmp.path().join(format!("py-{mode}.parquet")))
            .args([size.to_string(), batch.to_string(), threads.to_string(), mode.to_string()])
            .args(clips.iter().map(|c| c.video.path.clone()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["frames"].as_u64().unwrap() as usize, frames);
        frames as f64 / v["seconds"].as_f64().unwrap()
    };
    let ours = |precision: Precision, cl: bool, name: &str| -> (f64, PathBuf) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Encoder::new(&vs.root(), Arch::Resnet18);
        if cl {
            r3m_model::precision::vars_to_channels_last(&vs);
        }
        let cfg = EmbedConfig {
            every: 1,
            fps: None,
            batch,
            workers: 1,
            device: Device::Cpu,
            precision,
            channels_last: cl,
            size,
            piece_frames: 1 << 20,
        };
        let out = tmp.path().join(format!("{name}.parquet"));
        let t0 = Instant::now();
        let rep = embed_clips(&enc, &clips, &data, &cfg, &out, &[], false, |_| true).unwrap();
        let dt = t0.elapsed().as_secs_f64();
        assert_eq!(rep.rows as usize, frames);
        (frames as f64 / dt, out)
    };

    let recipe = peer("fp32");
    let mut rows = vec![("Python: PyAV → torchvision ResNet18 fp32 NCHW → pyarrow".to_string(), recipe, None)];
    rows.push(("Python, channels_last".to_string(), peer("fp32-cl"), None));
    if with_bf16 {
        rows.push(("Python, bf16 autocast + channels_last".to_string(), peer("bf16-cl"), None));
    }
    let (fp32, base) = ours(Precision::Fp32, false, "fp32");
    let reference = read_embeddings(&base).unwrap();
    rows.push(("r3m embed fp32 NCHW".to_string(), fp32, Some(1.0)));
    let mut variants = vec![(Precision::Fp32, true, "fp32 channels-last")];
    if with_bf16 {
        variants.push((Precision::Bf16, true, "bf16 channels-last"));
    }
    for (p, cl, name) in variants {
        let (fps, out) = ours(p, cl, name);
        let e = read_embeddings(&out).unwrap();
        let min_cos = (0..e.len())
            .map(|i| {
                let (a, b) = (e.row(i), reference.row(i));
                let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
                let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                dot / (na * nb)
            })
            .fold(1.0, f64::min);
        rows.push((format!("r3m embed {name}"), fps, Some(min_cos)));
    }
    println!(
        "embed benchmark: resnet18 at {size}px, batch {batch}, {threads} threads, {frames} frames of {} clips",
        clips.len()
    );
    println!("CPU bf16 units (AMX/AVX512-BF16): {with_bf16}\n");
    println!("| pipeline | frames/s | vs Python fp32 | min cosine to r3m fp32 |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, fps, cos) in rows {
        let c = cos.map_or("–".to_string(), |c| format!("{c:.5}"));
        println!("| {name} | {fps:.1} | {:.2}× | {c} |", fps / recipe);
    }
}
