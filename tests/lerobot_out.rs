//! `r3m embed --into-dataset`: a LeRobot dataset with r3m features, checked with LeRobot's own code
//! (LeRobot 0.4.4 from `scripts/requirements-lerobot.txt`, in the venv `scripts/setup.sh` makes):
//! the source is written by LeRobot's writer (v3.0, its AV1 encoding), the copy loads in
//! `LeRobotDataset` with every row equal to `r3m embed`'s Parquet export, its statistics are those
//! of the values, and LeRobot's ACT policy trains on the feature alone with a falling loss. A v2.1
//! copy goes through LeRobot's own v2.1 → v3.0 converter and loads the same way. The source is never
//! modified; bad requests are refused before any work.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use r3m_model::{checkpoint, Arch, Encoder};
use r3m_suite::{lerobot_python, r3m_bin};
use tch::{nn, Device};

const FEATURE: &str = "observation.environment_state";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(lerobot_python()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{}", &err[err.len().saturating_sub(4000)..]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn embed(args: &[&str]) -> (bool, String) {
    let out = Command::new(r3m_bin()).arg("embed").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A random-init encoder saved as a checkpoint (the format `r3m train` writes).
fn checkpoint_at(dir: &Path) -> PathBuf {
    let ck = dir.join("ck");
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _enc = Encoder::new(&vs.root(), Arch::Resnet18);
    checkpoint::save(
        &ck,
        &vs,
        &[],
        &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 48, "step": 0}),
    )
    .unwrap();
    ck
}

/// Every file under `root` with its size and modification time.
fn listing(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}

fn losses(stdout: &str) -> Vec<f64> {
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["losses"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn lerobot_loads_the_featured_v30_dataset_and_act_trains_on_it() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("source");
    run_python(&[
        s(&repo().join("tests/refs/make_lerobot_dataset.py")),
        s(&repo().join("datasets/metaworld")),
        s(&src),
        "3",
    ]);
    let before = listing(&src);
    let ck = checkpoint_at(d.path());
    let base = ["--checkpoint", s(&ck), "--lerobot", s(&src), "--device", "cpu", "--precision", "fp32"];
    let reference = d.path().join("ref.parquet");
    let (ok, log) = embed(&[&base[..], &["--out", s(&reference)]].concat());
    assert!(ok, "{log}");

    // features alone: no videos
    let out = d.path().join("featured");
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&out), "--drop-videos"]].concat());
    assert!(ok, "{log}");
    assert!(log.contains("302 rows with 'observation.environment_state' (512-d)"), "{log}");
    assert!(!out.join("videos").exists());
    let stdout =
        run_python(&[s(&repo().join("tests/refs/lerobot_check.py")), s(&out), s(&reference), FEATURE, "--train", "40"]);
    let l = losses(&stdout);
    assert_eq!(l.len(), 40);
    println!("ACT on r3m features, 40 steps: loss {:.3} → {:.3}", l[0], l[39]);

    // with the videos (hard links), in two shards, under another name
    let out2 = d.path().join("featured-videos");
    let shard = |i: &str| {
        embed(&[&base[..], &["--into-dataset", s(&out2), "--feature", "observation.r3m", "--shard", i]].concat())
    };
    let (ok, log) = shard("1/2");
    assert!(ok, "{log}");
    assert!(!out2.exists(), "written before its last part: {log}");
    assert!(log.contains("1 of 2 part(s) still to embed"), "{log}");
    let (ok, log) = shard("0/2");
    assert!(ok, "{log}");
    assert!(log.contains("videos 1 linked"), "{log}");
    run_python(&[
        s(&repo().join("tests/refs/lerobot_check.py")),
        s(&out2),
        s(&reference),
        "observation.r3m",
        "--videos",
    ]);
    assert!(!d.path().join(".featured-videos.r3m-embed").exists(), "the staged parts are removed");

    // refusals, before any work
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&out)]].concat());
    assert!(!ok && log.contains("exists: --overwrite replaces it"), "{log}");
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&src.join("copy"))]].concat());
    assert!(!ok && log.contains("must be outside the source dataset"), "{log}");
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&d.path().join("x")), "--every", "2"]].concat());
    assert!(!ok && log.contains("embeds every frame"), "{log}");
    let (ok, log) = embed(&["--checkpoint", s(&ck), "--videos", s(&src), "--into-dataset", s(&d.path().join("y"))]);
    assert!(!ok && log.contains("--lerobot"), "{log}");
    // a name the dataset already has
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&d.path().join("z")), "--feature", "action"]].concat());
    assert!(!ok && log.contains("already has a feature 'action'"), "{log}");
    assert!(!d.path().join("z").exists(), "nothing left at OUT after a failed write");
    // --overwrite replaces a finished copy
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&out), "--drop-videos", "--overwrite"]].concat());
    assert!(ok, "{log}");
    run_python(&[s(&repo().join("tests/refs/lerobot_check.py")), s(&out), s(&reference), FEATURE]);

    // the guide's other path: the r3m checkpoint as ACT's frozen torchvision backbone, on the images
    let stdout = run_python(&[s(&repo().join("examples/python/lerobot_act_r3m_backbone.py")), s(&ck), s(&src), "12"]);
    let l = losses(&stdout);
    assert!(l.len() == 12 && l[11] < l[0], "ACT with the r3m backbone: {l:?}");

    assert_eq!(listing(&src), before, "the source dataset was modified");
}

#[test]
fn a_featured_v21_copy_converts_with_lerobots_converter() {
    let d = tempfile::tempdir().unwrap();
    let src = repo().join("datasets/metaworld"); // LeRobot v2.1
    let before = listing(&src);
    let ck = checkpoint_at(d.path());
    let base = ["--checkpoint", s(&ck), "--lerobot", s(&src), "--device", "cpu", "--precision", "fp32"];
    let reference = d.path().join("ref.parquet");
    let (ok, log) = embed(&[&base[..], &["--out", s(&reference)]].concat());
    assert!(ok, "{log}");
    let out = d.path().join("featured");
    let (ok, log) = embed(&[&base[..], &["--into-dataset", s(&out)]].concat());
    assert!(ok, "{log}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta/info.json")).unwrap()).unwrap();
    assert_eq!(info["codebase_version"], "v2.1");
    assert_eq!(info["features"][FEATURE]["shape"], serde_json::json!([512]));
    // each episode's statistics line has the feature
    let stats = std::fs::read_to_string(out.join("meta/episodes_stats.jsonl")).unwrap();
    assert_eq!(stats.lines().count(), 50);
    assert!(stats.lines().all(|l| l.contains(FEATURE)));
    run_python(&[
        s(&repo().join("tests/refs/lerobot_check.py")),
        s(&out),
        s(&reference),
        FEATURE,
        "--videos",
        "--convert",
    ]);
    assert_eq!(listing(&src), before, "the source dataset was modified");
}

#[test]
fn the_guides_commands_run_as_written() {
    let guide = std::fs::read_to_string(repo().join("docs/guide/lerobot.md")).unwrap();
    let after = guide.split("## The commands").nth(1).expect("the guide has a 'The commands' section");
    let block = after.split("```bash\n").nth(1).and_then(|b| b.split("```").next()).expect("a bash block");
    assert!(block.contains("--into-dataset") && block.contains("lerobot_train"), "{block}");
    // in a scratch folder that sees the repository's sample data and examples
    let d = tempfile::tempdir().unwrap();
    for name in ["datasets", "examples"] {
        std::os::unix::fs::symlink(repo().join(name), d.path().join(name)).unwrap();
    }
    let before = listing(&repo().join("datasets/metaworld"));
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", block]).current_dir(d.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the guide's commands failed:\n{}", &err[err.len().saturating_sub(6000)..]);
    // LeRobot's training wrote its checkpoint; the backbone example printed its losses
    assert!(d.path().join("runs/lerobot/act-features/checkpoints").is_dir(), "{err}");
    let l = losses(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(l.len(), 20);
    assert_eq!(listing(&repo().join("datasets/metaworld")), before, "the sample dataset was modified");
}
