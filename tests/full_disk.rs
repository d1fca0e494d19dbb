//! A full disk, made for real: each test mounts a small tmpfs (the suite runs as root, as
//! `scripts/setup.sh` and CI do) and lets `r3m train` and `r3m embed` run out of space on it. Each
//! fails with "No space left on device" naming the file it was writing, keeps every checkpoint or
//! piece already written (and no temporary), and resumes once there is room again.
#![allow(clippy::unwrap_used)] // tests: a failure is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use r3m_model::{checkpoint, Arch, Encoder};
use r3m_suite::{make_video, r3m_bin};
use tch::{nn, Device};

/// A tmpfs mounted on a fresh folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mounting a {size} tmpfs on {} (the full-disk tests need root, as CI has): {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let o = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.') && !n.ends_with(".lock"))
        .collect()
}

#[test]
fn train_on_a_full_disk_keeps_its_checkpoint_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    for i in 0..3 {
        make_video(&v.join(format!("c{i}.mp4")), "64x48", 10, 20, &["-c:v", "libx264", "-g", "5"]);
    }
    // DrQ's ConvNet: a checkpoint is ~45 MB (weights and Adam's two moments); 70 MB holds one
    let fs = Tmpfs::mount(&d.path().join("disk"), "70m");
    let run = fs.0.join("run");
    let train = |extra: &[&str]| {
        Command::new(r3m_bin())
            .args(["train", "--videos"])
            .arg(&v)
            .arg("--out")
            .arg(&run)
            .args(["--arch", "shallow", "--steps", "3", "--batch", "2", "--size", "32", "--workers", "1"])
            .args(["--checkpoint-every", "1", "--keep", "1", "--device", "cpu", "-q"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = train(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("No space left on device") && err.contains(&*run.to_string_lossy()), "{err}");
    // the first checkpoint is whole, `latest` names it, no temporary is left
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap().trim(), "step-00000001");
    for f in ["model.safetensors", "optimizer.safetensors", "config.json"] {
        assert!(run.join("checkpoints/step-00000001").join(f).exists(), "{f}");
    }
    assert!(hidden(&run.join("checkpoints")).is_empty(), "{:?}", hidden(&run.join("checkpoints")));
    // room again: the run resumes and finishes
    fs.resize("300m");
    let o = train(&["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap().trim(), "step-00000003");
}

#[test]
fn embed_on_a_full_disk_keeps_its_pieces_and_resumes_to_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    // pieces hold whole clips: six clips of 100 frames, a piece each
    for i in 0..6 {
        make_video(&v.join(format!("c{i}.mp4")), "64x48", 25, 100, &["-c:v", "libx264", "-g", "25"]);
    }
    let ck = d.path().join("ck");
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::new(&vs.root(), Arch::Resnet18);
    checkpoint::save(&ck, &vs, &[], &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 32}))
        .unwrap();
    let embed = |out: &Path, extra: &[&str]| {
        Command::new(r3m_bin())
            .args(["embed", "--checkpoint"])
            .arg(&ck)
            .arg("--videos")
            .arg(&v)
            .arg("--out")
            .arg(out)
            .args(["--piece-frames", "100", "--device", "cpu", "--precision", "fp32", "-q"])
            .args(extra)
            .output()
            .unwrap()
    };
    let straight = d.path().join("straight.parquet");
    let o = embed(&straight, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // pieces compress less than the joined file (a piece is up to 100 rows of 512 raw floats,
    // ~200 KB); three times the joined file's size holds the first pieces, not all six
    let disk_k = 3 * std::fs::metadata(&straight).unwrap().len() / 1024;
    let fs = Tmpfs::mount(&d.path().join("disk"), &format!("{disk_k}k"));
    let out = fs.0.join("emb.parquet");
    let o = embed(&out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("No space left on device") && err.contains(&*fs.0.to_string_lossy()), "{err}");
    assert!(!out.exists(), "no output under its final name");
    let pieces = fs.0.join("emb.parquet.pieces");
    let kept: Vec<String> = std::fs::read_dir(&pieces)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(!kept.is_empty(), "the finished pieces are kept ({disk_k} KB disk): {err}");
    assert!(hidden(&pieces).is_empty() && hidden(&fs.0).is_empty(), "temporaries left");
    fs.resize(&format!("{}k", 4 * disk_k + 1024));
    let o = embed(&out, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (r3m_export::read_embeddings(&straight).unwrap(), r3m_export::read_embeddings(&out).unwrap());
    assert_eq!(a.frame_index, b.frame_index);
    assert_eq!(a.values, b.values, "the resumed file holds the same rows");
}

/// `eval bc` on a disk that fills up after its cells: the error names the file it could not
/// write, the finished cells stay whole, nothing is left half-written, and once there is room
/// `--resume` writes the tables without running a cell again.
#[test]
fn eval_bc_on_a_full_disk_keeps_its_cells_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    // 3 pages: the lock file and the two cells; results.json finds no room
    let fs = Tmpfs::mount(&d.path().join("disk"), "12k");
    let out = fs.0.join("eval");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/metaworld");
    let eval = |extra: &[&str]| {
        Command::new(r3m_bin())
            .args(["eval", "bc", "--data"])
            .arg(&data)
            .args(["--task", "drawer-open-v3", "--encoders", "proprio", "--demos", "2", "--num-seeds", "2"])
            .args(["--policy-steps", "50", "--eval-every", "50", "--rollouts", "2", "--max-episode-steps", "30"])
            .args(["--envs", "1", "--heldout", "1", "--device", "cpu", "-q", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = eval(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("No space left on device") && err.contains(&*out.to_string_lossy()), "{err}");
    let cells: Vec<_> = std::fs::read_dir(out.join("cells")).unwrap().flatten().map(|e| e.path()).collect();
    let names: Vec<String> = cells.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.iter().filter(|n| !n.starts_with('.')).count(), 2, "both cells kept: {names:?}");
    for c in cells.iter().filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')) {
        assert!(r3m_bc::report::read_cell(c).is_ok(), "{} is whole", c.display());
    }
    assert!(hidden(&out).iter().all(|n| n == ".r3m.lock") && hidden(&out.join("cells")).is_empty(), "temporaries left");
    assert!(!out.join("results.json").exists(), "no half-written results");
    fs.resize("256k");
    let o = eval(&["--resume"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(j["complete"], true);
    assert_eq!(j["cells"].as_array().unwrap().len(), 2);
}
