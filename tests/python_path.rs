//! The Python user's path (docs/guide/python.md): an r3m checkpoint loaded into torchvision's
//! ResNet gives the same embeddings as `r3m embed` for the same frames (with and without a
//! projection head), as does a shallow ConvNet checkpoint prepared as its Parquet metadata says, and `r3m embed`'s output read with pyarrow and DuckDB joins a LeRobot
//! dataset's frame table. The examples run as they are in `examples/python/`.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::{Path, PathBuf};
use std::process::Command;

use r3m_model::{checkpoint, Arch, Encoder};
use r3m_suite::{make_video, r3m_bin};
use tch::{nn, Device};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python(script: &str, dir: &Path) -> String {
    let o = Command::new("python3").current_dir(root()).arg("-c").arg(script).env("TMP_DIR", dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{text}");
    text
}

/// `r3m embed` of checkpoint `ck` over `videos` into `out`, fp32 NCHW on the CPU.
fn embed_fp32(ck: &Path, videos: &Path, out: &Path) {
    let o = Command::new(r3m_bin())
        .args(["embed", "--checkpoint"])
        .arg(ck)
        .arg("--videos")
        .arg(videos)
        .arg("--out")
        .arg(out)
        .args(["--device", "cpu", "--precision", "fp32", "--memory-format", "nchw"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_checkpoint_in_torchvision_embeds_like_r3m_embed() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    make_video(&v.join("a.mp4"), "96x72", 10, 20, &["-c:v", "libx264", "-g", "5"]);
    for (name, proj) in [("plain", None), ("proj", Some(16i64))] {
        let ck = d.path().join(name);
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let _e = Encoder::with_head(&vs.root(), Arch::Resnet18, proj);
        let cfg = serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 48, "proj_dim": proj, "step": 0});
        checkpoint::save(&ck, &vs, &[], &cfg).unwrap();
        let out = d.path().join(format!("{name}.parquet"));
        embed_fp32(&ck, &v, &out);
        let script = format!(
            r#"
import sys, numpy as np, pyarrow.parquet as pq
sys.path.insert(0, "examples/python")
from load_checkpoint import load_r3m, eval_frames, embed
t = pq.read_table("{out}").to_pydict()
net, spec = load_r3m("{ck}")
idx = [0, 7, 19]
ours = embed(net, eval_frames("{video}", idx, spec), spec).numpy()
rows = {{f: np.array(e, dtype=np.float32) for f, e in zip(t["frame_index"], t["embedding"])}}
worst = max(float(np.abs(o - rows[i]).max() / np.abs(rows[i]).max()) for i, o in zip(idx, ours))
print("dim", ours.shape[1], "worst relative difference", worst)
assert worst < 1e-4, worst
"#,
            out = out.display(),
            ck = ck.display(),
            video = v.join("a.mp4").display()
        );
        let text = python(&script, d.path());
        assert!(text.contains(&format!("dim {}", proj.unwrap_or(512))), "{text}");
    }
    // the Python guide shows the loader as it is in the file
    let readme = std::fs::read_to_string(root().join("docs/guide/python.md")).unwrap();
    let file = std::fs::read_to_string(root().join("examples/python/load_checkpoint.py")).unwrap();
    let f = &file[file.find("def load_r3m").unwrap()..file.find("def eval_frames").unwrap()];
    assert!(
        readme.contains(f.trim()),
        "docs/guide/python.md's load_r3m differs from examples/python/load_checkpoint.py"
    );
}

/// A shallow ConvNet checkpoint (DrQ's, which scales pixels as x/255 − 0.5, not with ImageNet's
/// statistics): its embeddings file says so in `r3m.preprocess`, and Python, following that
/// metadata alone, reproduces the file's rows.
#[test]
fn a_shallow_checkpoints_parquet_metadata_reproduces_its_embeddings() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    make_video(&v.join("a.mp4"), "96x72", 10, 20, &["-c:v", "libx264", "-g", "5"]);
    let ck = d.path().join("shallow");
    tch::manual_seed(6);
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::with_head(&vs.root(), Arch::Shallow, None);
    let cfg = serde_json::json!({"format": "r3m-checkpoint-1", "arch": "shallow", "size": 40, "step": 0});
    checkpoint::save(&ck, &vs, &[], &cfg).unwrap();
    let out = d.path().join("shallow.parquet");
    embed_fp32(&ck, &v, &out);
    let script = format!(
        r#"
import json, sys, numpy as np, pyarrow.parquet as pq
sys.path.insert(0, "examples/python")
from load_checkpoint import load_r3m, eval_frames, embed
f = pq.ParquetFile("{out}")
spec = json.loads(f.metadata.metadata[b"r3m.preprocess"])
print("spec", spec["format"], spec["mean"], spec["std"], spec["size"], spec["short_side"])
t = f.read().to_pydict()
net, _ = load_r3m("{ck}")
idx = [0, 9, 19]
ours = embed(net, eval_frames("{video}", idx, spec), spec).numpy()
rows = {{i: np.array(e, dtype=np.float32) for i, e in zip(t["frame_index"], t["embedding"])}}
worst = max(float(np.abs(o - rows[i]).max() / np.abs(rows[i]).max()) for i, o in zip(idx, ours))
print("dim", ours.shape[1], "worst relative difference", worst)
assert worst < 1e-4, worst
"#,
        out = out.display(),
        ck = ck.display(),
        video = v.join("a.mp4").display()
    );
    let text = python(&script, d.path());
    assert!(text.contains("spec r3m-pixels-1 [0.5, 0.5, 0.5] [1.0, 1.0, 1.0] 40 45"), "{text}");
    assert!(text.contains("dim 50"), "{text}");
}

#[test]
fn embeddings_read_with_pyarrow_and_duckdb_join_the_lerobot_frames() {
    let d = tempfile::tempdir().unwrap();
    let ck = d.path().join("ck");
    tch::manual_seed(6);
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::new(&vs.root(), Arch::Resnet18);
    checkpoint::save(
        &ck,
        &vs,
        &[],
        &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 32, "step": 0}),
    )
    .unwrap();
    let data = root().join("datasets/metaworld");
    let out = d.path().join("emb");
    for shard in ["0/2", "1/2"] {
        let o = Command::new(r3m_bin())
            .args(["embed", "--checkpoint"])
            .arg(&ck)
            .arg("--lerobot")
            .arg(&data)
            .args(["--camera", "corner4", "--every", "40", "--shard", shard])
            .arg("--out")
            .arg(&out)
            .args(["--device", "cpu"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new("python3")
        .current_dir(root())
        .arg("examples/python/read_embeddings.py")
        .arg(&out)
        .arg(&data)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{text}");
    assert!(text.contains("512-d") && text.contains("duckdb: 50 episodes of 50"), "{text}");
    // every episode got rows from one of the two shards: frames 0, 40, 80 of ~100
    let embedded: Vec<u32> =
        text.lines().filter_map(|l| l.split(" embedded").next()?.rsplit(' ').next()?.parse().ok()).collect();
    assert_eq!(embedded.len(), 3, "{text}");
    assert!(embedded.iter().all(|&k| (2..=4).contains(&k)), "{text}");
    let guide = std::fs::read_to_string(root().join("docs/guide/python.md")).unwrap();
    assert!(guide.contains("examples/python/read_embeddings.py"), "the Python guide points to the example");
}
