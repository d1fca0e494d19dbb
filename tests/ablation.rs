//! The ablation's Python pieces: `experiments/alignment.py` scores a perfectly monotone embedding
//! trajectory as aligned and a constant one as not, and `experiments/ablation_table.py` turns
//! `r3m eval bc` results into the objective × task table with the right means and intervals.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::Command;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments").join(name)
}

fn run(args: &[&str]) -> String {
    let out = Command::new("python3").args(args).output().expect("python3 (run scripts/setup.sh)");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn alignment_scores_monotone_and_flat_trajectories() {
    let dir = tempfile::tempdir().unwrap();
    let (line, flat) = (dir.path().join("line.parquet"), dir.path().join("flat.parquet"));
    // two clips of 30 frames: embeddings on a straight line (distance grows with time), or constant
    let make = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         rows = [(v, f) for v in ('a.mp4', 'b.mp4') for f in range(30)]\n\
         for path, emb in (('{}', lambda f: [f * 0.1, 1.0]), ('{}', lambda f: [0.5, 0.5])):\n\
         \x20   pq.write_table(pa.table({{'video': [v for v, _ in rows], 'frame_index': [f for _, f in rows],\n\
         \x20       'embedding': pa.array([emb(f) for _, f in rows], pa.list_(pa.float32(), 2))}}), path)",
        line.display(),
        flat.display()
    );
    run(&["-c", &make]);
    let score = |p: &Path| -> serde_json::Value {
        serde_json::from_str(
            run(&[script("alignment.py").to_str().unwrap(), p.to_str().unwrap(), "--tuples", "500"]).trim(),
        )
        .unwrap()
    };
    let (l, f) = (score(&line), score(&flat));
    assert_eq!(l["aligned"], 1.0, "{l}");
    assert!((l["spearman_progress"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{l}");
    assert_eq!(f["aligned"], 0.0, "{f}");
    assert_eq!(l["clips"], 2);
}

#[test]
fn embed_rank_tells_a_collapsed_embedding_from_a_spread_one() {
    let dir = tempfile::tempdir().unwrap();
    let (line, spread) = (dir.path().join("line.parquet"), dir.path().join("spread.parquet"));
    // two clips of 40 frames in 8 dimensions: all on one line through the origin, or i.i.d. normal
    let make = format!(
        "import numpy as np, pyarrow as pa, pyarrow.parquet as pq\n\
         rng = np.random.default_rng(0)\n\
         rows = [(v, f) for v in ('a.mp4', 'b.mp4') for f in range(40)]\n\
         d = rng.normal(size=8)\n\
         for path, emb in (('{}', lambda i: list(d * i * 0.1)), ('{}', lambda i: list(rng.normal(size=8)))):\n\
         \x20   pq.write_table(pa.table({{'video': [v for v, _ in rows], 'frame_index': [f for _, f in rows],\n\
         \x20       'embedding': pa.array([emb(i) for i in range(len(rows))], pa.list_(pa.float32(), 8))}}), path)",
        line.display(),
        spread.display()
    );
    run(&["-c", &make]);
    // "...; all frames: rank R, top PC P; within a clip: rank R, top PC P" -> [R, P, R, P]
    let figures = |p: &Path| -> Vec<f64> {
        let out = run(&[script("embed_rank.py").to_str().unwrap(), p.to_str().unwrap()]);
        assert!(out.contains("80 frames, 8 dims, 2 clips"), "{out}");
        let figures = out.split("all frames:").nth(1).unwrap_or_default();
        figures.split([',', ';']).map(|w| w.split_whitespace().next_back().unwrap().parse().unwrap()).collect()
    };
    let (l, s) = (figures(&line), figures(&spread));
    assert_eq!(l.len(), 4, "{l:?}");
    assert!((l[0] - 1.0).abs() < 0.05 && l[1] > 0.99 && (l[2] - 1.0).abs() < 0.05 && l[3] > 0.99, "{l:?}");
    assert!(s[0] > 6.0 && s[1] < 0.35 && s[2] > 5.0 && s[3] < 0.45, "{s:?}");
    // LeRobot v3.0: one video file holds several episodes; each (video, episode) is a clip
    let eps = dir.path().join("episodes.parquet");
    run(&[
        "-c",
        &format!(
            "import pyarrow as pa, pyarrow.parquet as pq\n\
             emb = [[0.1 * f, 0.0] if e == 0 else [0.0, 0.1 * f] for e in (0, 1) for f in range(40)]\n\
             pq.write_table(pa.table({{'video': ['a.mp4'] * 80, 'episode_index': [e for e in (0, 1) for _ in range(40)],\n\
             \x20   'frame_index': [f for _ in (0, 1) for f in range(40)], 'embedding': pa.array(emb, pa.list_(pa.float32(), 2))}}), '{}')",
            eps.display()
        ),
    ]);
    let out = run(&[script("embed_rank.py").to_str().unwrap(), eps.to_str().unwrap()]);
    assert!(
        out.contains("80 frames, 2 dims, 2 clips") && out.contains("within a clip: rank 1.0, top PC 1.00"),
        "{out}"
    );
    // not a Parquet file: an error that names it, not a traceback
    let out =
        Command::new("python3").args([script("embed_rank.py"), dir.path().join("nope.parquet")]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.parquet: not an r3m embed table"));
}

#[test]
fn ablation_table_reports_means_and_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let cell = |enc: &str, seed: u64, ok: usize| {
        serde_json::json!({"encoder": enc, "demos": 5, "seed": seed,
        "evals": [{"step": 500, "successes": ok + 2, "rollouts": 10}, {"step": 1000, "successes": ok, "rollouts": 10}],
        "heldout_mse": 0.1, "train_mse": 0.01, "seconds": 3.0})
    };
    let write = |name: &str, task: &str, cells: Vec<serde_json::Value>| {
        let d = out.join("bc").join(name).join(task);
        std::fs::create_dir_all(&d).unwrap();
        let r = serde_json::json!({"task": task, "demos": [5], "seeds": 2, "steps": 1000, "eval_every": 500, "rollouts": 10,
            "max_episode_steps": 150, "size": 64, "cells": cells});
        std::fs::write(d.join("results.json"), r.to_string()).unwrap();
    };
    write("baselines", "push-v3", vec![cell("random", 0, 1), cell("random", 1, 3)]);
    write("simclr-b8", "push-v3", vec![cell("pretrained", 0, 6), cell("pretrained", 1, 8)]);
    let pre = out.join("pretrain").join("simclr-b8");
    std::fs::create_dir_all(&pre).unwrap();
    std::fs::write(pre.join("done.json"), r#"{"objective": "simclr", "batch": 8, "steps": 300, "seconds": 120, "train_aligned_last50": 0.7, "train_objective_acc_last50": 0.6}"#).unwrap();
    std::fs::write(pre.join("heldout-alignment.json"), r#"{"aligned": 0.642, "spearman_progress": 0.5}"#).unwrap();
    let md = run(&[script("ablation_table.py").to_str().unwrap(), out.to_str().unwrap()]);
    // simclr: final 60% and 80% → mean 70%, max (8/10, 10/10) → 90%; 14/20 pooled → Wilson 48%–85%
    assert!(md.contains("| simclr-b8 | 2.0 min | – | 0.642 | 70% (48%–85%), max 90% | 70% |"), "{md}");
    // random: 10% and 30% → 20%; max 30%, 50% → 40%; 4/20 → 8%–42%
    assert!(md.contains("| random | – | – | – | 20% (8%–42%), max 40% | 20% |"), "{md}");
    assert!(!md.contains("Batch-size study"), "one batch size is no study: {md}");

    // a second batch size: it joins the batch-size study and, with --batch 8, leaves the main table
    write("simclr-b4", "push-v3", vec![cell("pretrained", 0, 2), cell("pretrained", 1, 4)]);
    let pre4 = out.join("pretrain").join("simclr-b4");
    std::fs::create_dir_all(&pre4).unwrap();
    std::fs::write(pre4.join("done.json"), r#"{"objective": "simclr", "batch": 4, "steps": 300, "seconds": 60, "train_aligned_last50": 0.6, "train_objective_acc_last50": 0.5}"#).unwrap();
    std::fs::write(pre4.join("heldout-alignment.json"), r#"{"aligned": 0.601, "spearman_progress": 0.4}"#).unwrap();
    let md = run(&[script("ablation_table.py").to_str().unwrap(), out.to_str().unwrap(), "--batch", "8"]);
    assert!(!md.contains("| simclr-b4 |"), "{md}");
    assert!(md.contains("| simclr-b8 | 2.0 min |"), "{md}");
    // objective x batch: held-out aligned / mean final success (20%, 40% → 30%)
    assert!(md.contains("| simclr | 0.601 / 30% | 0.642 / 70% |"), "{md}");
    assert!(md.contains("| simclr | 4 | 1.0 min | – | 0.600 | 0.601 | 30% |"), "{md}");
    // every objective's final rollouts pooled per batch size: 6/20 → 15%–52%, 14/20 → 48%–85%
    assert!(md.contains("| all, pooled | 0.601 / 30% (15%–52%, n=20) | 0.642 / 70% (48%–85%, n=20) |"), "{md}");
    assert!(!md.contains("Spearman"), "two encoders are too few for a correlation: {md}");
    // with the random encoder's alignment (0.5, 20%) the order agrees at all three: rho = 1
    let rnd = out.join("pretrain").join("random");
    std::fs::create_dir_all(&rnd).unwrap();
    std::fs::write(rnd.join("heldout-alignment.json"), r#"{"aligned": 0.5, "spearman_progress": 0.1}"#).unwrap();
    let md = run(&[script("ablation_table.py").to_str().unwrap(), out.to_str().unwrap(), "--batch", "8"]);
    assert!(md.contains("over the 3 encoders with both: 1.00"), "{md}");
}

#[test]
fn eval_table_shows_each_task_and_row_with_intervals_and_the_svg_plot() {
    let dir = tempfile::tempdir().unwrap();
    let interval = |m: f64, lo: f64, hi: f64| serde_json::json!({"mean": m, "lo": lo, "hi": hi});
    for (task, complete, state) in [("push-v3", true, 0.7), ("hammer-v3", false, 0.84)] {
        let d = dir.path().join(task);
        std::fs::create_dir_all(&d).unwrap();
        let r = serde_json::json!({
            "format": "r3m-eval-bc-2", "complete": complete, "checkpoints": {}, "cells": [],
            "protocol": {"task": task, "rollouts": 50},
            "rows": [
                {"encoder": "state", "demos": 10, "seeds": [0, 1], "final_success": interval(state, 0.5, 0.9), "vs_random": interval(0.4, 0.2, 0.6),
                 "vs": {"proprio": interval(0.6, 0.45, 0.75)}},
                {"encoder": "random", "demos": 10, "seeds": [0, 1], "final_success": interval(0.3, 0.2, 0.4), "vs_random": null},
                {"encoder": "random", "demos": 5, "seeds": [0], "final_success": interval(0.1, 0.0, 0.2), "vs_random": null},
            ]
        });
        std::fs::write(d.join("results.json"), r.to_string()).unwrap();
    }
    let svg = dir.path().join("s.svg");
    let out = run(&[
        script("eval_table.py").to_str().unwrap(),
        dir.path().to_str().unwrap(),
        "--demos",
        "10",
        "--tasks",
        "push-v3,hammer-v3",
        "--vs",
        "proprio",
        "--rows",
        "random,state,absent",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "| encoder | push-v3 | hammer-v3* |", "{out}");
    assert_eq!(lines[2], "| random | 30% (20%–40%)<br>2×50 | 30% (20%–40%)<br>2×50 |", "--rows order: {out}");
    assert_eq!(
        lines[3],
        "| state | 70% (50%–90%)<br>Δ +40 (+20…+60)<br>Δ proprio +60 (+45…+75)<br>2×50 \
         | 84% (50%–90%)<br>Δ +40 (+20…+60)<br>Δ proprio +60 (+45…+75)<br>2×50 |",
        "{out}"
    );
    assert_eq!(lines.len(), 4, "demos 5 rows filtered out: {out}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<rect x=").count() >= 4 + 2, "{svg}");
}

#[test]
fn budget_curve_reads_each_checkpoints_budget_and_draws_one_curve_per_setting() {
    let dir = tempfile::tempdir().unwrap();
    let interval = |m: f64, lo: f64, hi: f64| serde_json::json!({"mean": m, "lo": lo, "hi": hi});
    // checkpoints of two runs: the budget comes from their config.json, not from the names
    let mut checkpoints = serde_json::Map::new();
    for (name, step) in [("tcn-in-a", 400u64), ("tcn-in-b", 1200), ("tcn-held-a", 400)] {
        let ck = dir.path().join("run").join(name);
        std::fs::create_dir_all(&ck).unwrap();
        let config = serde_json::json!({"step": step, "batch": 16, "size": 112, "rank_states": []});
        std::fs::write(ck.join("config.json"), config.to_string()).unwrap();
        checkpoints.insert(name.into(), ck.to_str().unwrap().into());
    }
    let write = |sub: &str, rows: serde_json::Value| {
        let d = dir.path().join(sub).join("push-v3");
        std::fs::create_dir_all(&d).unwrap();
        let r = serde_json::json!({
            "format": "r3m-eval-bc-2", "complete": true, "checkpoints": checkpoints, "cells": [],
            "protocol": {"task": "push-v3", "rollouts": 50}, "rows": rows,
        });
        std::fs::write(d.join("results.json"), r.to_string()).unwrap();
        dir.path().join(sub)
    };
    let first = write(
        "evals",
        serde_json::json!([
            {"encoder": "tcn-in-b", "demos": 10, "seeds": [0, 1, 2], "final_success": interval(0.4, 0.3, 0.5), "vs_random": interval(0.1, -0.02, 0.2)},
            {"encoder": "tcn-in-a", "demos": 10, "seeds": [0, 1, 2], "final_success": interval(0.3, 0.2, 0.4), "vs_random": interval(0.0, -0.1, 0.1)},
            {"encoder": "random", "demos": 10, "seeds": [0, 1, 2], "final_success": interval(0.3, 0.2, 0.4), "vs_random": null},
            {"encoder": "tcn-other", "demos": 10, "seeds": [0], "final_success": interval(0.9, 0.8, 1.0), "vs_random": null},
        ]),
    );
    // a second directory: its random row is shadowed by the first one's, its held-out point is new
    let second = write(
        "evals-held",
        serde_json::json!([
            {"encoder": "tcn-held-a", "demos": 10, "seeds": [0, 1], "final_success": interval(0.2, 0.1, 0.3), "vs_random": interval(-0.1, -0.2, 0.0)},
            {"encoder": "random", "demos": 10, "seeds": [0, 1], "final_success": interval(0.5, 0.4, 0.6), "vs_random": null},
        ]),
    );
    let svg = dir.path().join("curve.svg");
    let out = run(&[
        script("budget_curve.py").to_str().unwrap(),
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "--prefix",
        "tcn-in-,tcn-held-",
        "--refs",
        "random",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "| pretraining | push-v3 |", "{out}");
    assert_eq!(lines[2], "| tcn-in-* 400 steps, 6400 tuples | 30% (20%–40%), Δ 0 (-10…+10), 3 seeds |", "{out}");
    assert_eq!(lines[3], "| tcn-in-* 1200 steps, 19200 tuples | 40% (30%–50%), Δ +10 (-2…+20), 3 seeds |", "{out}");
    assert_eq!(lines[4], "| tcn-held-* 400 steps, 6400 tuples | 20% (10%–30%), Δ -10 (-20…0), 2 seeds |", "{out}");
    assert_eq!(lines[5], "| random (reference) | 30% (20%–40%), 3 seeds |", "the first directory wins: {out}");
    assert_eq!(lines.len(), 6, "tcn-other is not a checkpoint of a curve: {out}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.matches("<circle").count() == 3
            && svg.matches("<path").count() == 2
            && svg.contains("stroke-dasharray")
            && svg.contains("tcn-held-*"),
        "{svg}"
    );
}
