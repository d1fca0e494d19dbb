//! Rerun recordings written by `r3m train --rerun` and `r3m view`, read back with the `rerun` CLI
//! that the venv's rerun-sdk==0.36.3 ships (`rerun rrd print -vv`): the entity paths, how many
//! rows each got, and on which timelines.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::Command;

use r3m_suite::{make_video, r3m_bin, rrd_contents as contents};

fn run(args: &[&str]) -> String {
    let out = Command::new(r3m_bin()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "r3m {args:?} failed:\n{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_and_view_recordings_have_the_logged_entities() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    for i in 0..3 {
        make_video(&v.join(format!("clip{i}.mp4")), "64x48", 10, 20 + 4 * i, &["-c:v", "libx264"]);
    }
    let run_dir = d.path().join("run");
    let train_rrd = d.path().join("train.rrd");
    run(&[
        "train",
        "--videos",
        s(&v),
        "--out",
        s(&run_dir),
        "--steps",
        "4",
        "--batch",
        "3",
        "--size",
        "32",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--rerun",
        &format!("save:{}", train_rrd.display()),
        "--rerun-every",
        "2",
    ]);
    let c = contents(&train_rrd);
    for k in ["loss", "tcn", "aligned", "images_per_s", "data_wait_pct"] {
        let (rows, tl) = &c[&format!("/train/{k}")];
        assert_eq!(*rows, 4, "/train/{k}");
        assert!(tl.contains("step"), "/train/{k}: {tl:?}");
    }
    for i in 0..5 {
        assert_eq!(c[&format!("/train/tuple/frame_{i}")].0, 2, "tuples at steps 2 and 4");
    }
    assert_eq!(c["/train/tuple/distances"].0, 2);

    // view from the checkpoint, and from an embeddings file of the same run
    let view_rrd = d.path().join("view.rrd");
    run(&[
        "view",
        "--checkpoint",
        s(&run_dir),
        "--videos",
        s(&v),
        "--max-frames",
        "10",
        "--device",
        "cpu",
        "--rerun",
        &format!("save:{}", view_rrd.display()),
    ]);
    let c = contents(&view_rrd);
    // 20, 24, 28 frames shown every ceil(n/10)-th: 10, 8, 10
    for (i, frames) in [(0, 10), (1, 8), (2, 10)] {
        let base = format!("/videos/clip{i}.mp4");
        assert_eq!(c[&format!("{base}/frame")].0, frames, "{base}");
        assert!(
            c[&format!("{base}/frame")].1.is_superset(&["frame_index".to_string(), "timestamp".to_string()].into()),
            "{:?}",
            c[&format!("{base}/frame")].1
        );
        assert_eq!(c[&format!("{base}/distance_to_final")].0, frames);
        for k in ["embedding/points", "embedding/trajectory", "distance_matrix"] {
            assert_eq!(c[&format!("{base}/{k}")].0, 1, "{base}/{k} is logged once, static");
        }
    }
    let emb = d.path().join("emb.parquet");
    run(&[
        "embed",
        "--checkpoint",
        s(&run_dir),
        "--videos",
        s(&v),
        "--out",
        s(&emb),
        "--every",
        "3",
        "--device",
        "cpu",
    ]);
    let view2 = d.path().join("view2.rrd");
    run(&["view", "--embeddings", s(&emb), "--videos", s(&v), "--rerun", &format!("save:{}", view2.display())]);
    let c = contents(&view2);
    assert_eq!(c["/videos/clip0.mp4/frame"].0, 7, "frames 0,3,..,18: the ones the table has");
    assert_eq!(c["/videos/clip2.mp4/distance_to_final"].0, 10);
}
