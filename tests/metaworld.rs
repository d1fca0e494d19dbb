//! Meta-World end to end: the generator's LeRobot datasets (v2.1 and v3.0) read back by r3m with
//! the right episodes, frames and actions; the bridge reproduces the scripted expert (same actions
//! as the recorded demo, success within the limit); a tiny `r3m eval bc` run writes its table; and
//! a dead or hung bridge is a clear error, not a hang. Needs the venv's metaworld (scripts/setup.sh).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use r3m_bc::{BridgeConfig, Env, MetaWorldBridge};
use r3m_suite::r3m_bin;

const TASK: &str = "reach-v3";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the generator for `TASK` at 64 px into `out` with `episodes` episodes and `extra` flags.
fn run_generator(out: &Path, episodes: usize, extra: &[&str]) {
    let o = Command::new("python3")
        .arg(root().join("python/r3m_tools/metaworld_demos.py"))
        .args([
            "--tasks",
            TASK,
            "--episodes",
            &episodes.to_string(),
            "--seed",
            "0",
            "--size",
            "64",
            "--stop-on-success",
            "3",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .env("MUJOCO_GL", "egl")
        .output()
        .unwrap();
    assert!(o.status.success(), "generator failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn generate(out: &Path, format: &str) {
    run_generator(out, 2, &["--format", format]);
}

fn bridge_cfg(script: PathBuf, timeout: u64) -> BridgeConfig {
    BridgeConfig {
        python: "python3".into(),
        script,
        task: TASK.into(),
        camera: "corner4".into(),
        size: 64,
        max_episode_steps: 200,
        timeout: Duration::from_secs(timeout),
    }
}

#[test]
fn generated_datasets_read_back_and_the_bridge_reproduces_the_expert() {
    let d = tempfile::tempdir().unwrap();
    let (v21, v30) = (d.path().join("v21"), d.path().join("v30"));
    generate(&v21, "v2.1");
    generate(&v30, "v3.0");
    let a = r3m_bc::load_demos(&v21, Some(TASK), None).unwrap();
    let b = r3m_bc::load_demos(&v30, Some(TASK), None).unwrap();
    assert_eq!((a.len(), b.len()), (2, 2));
    let meta = std::fs::read_to_string(v21.join("meta/episodes.jsonl")).unwrap();
    for (i, line) in meta.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let len = v["length"].as_u64().unwrap() as usize;
        assert_eq!((a[i].frames.len(), a[i].actions.len(), a[i].proprio.len()), (len, len, len), "v2.1 episode {i}");
        assert_eq!(b[i].frames.len(), len, "v3.0 episode {i}: frames located by from/to timestamps");
        assert_eq!(a[i].actions, b[i].actions, "same seed, same actions in both layouts");
        assert_eq!((a[i].width, a[i].height), (64, 64));
    }
    let e = r3m_bc::load_demos(&v21, Some("hammer-v3"), None).unwrap_err().to_string();
    assert!(e.contains("no episodes of task hammer-v3") && e.contains(TASK), "{e}");

    // the bridge on the first demo's layout: the expert's actions are the recorded ones, and it succeeds
    let mut env = MetaWorldBridge::start(&bridge_cfg(root().join("python/r3m_tools/metaworld_bridge.py"), 60)).unwrap();
    assert_eq!(env.frame_size(), (64, 64));
    let seed = a[0].layout_seed.unwrap() as u64;
    let obs = env.reset(seed).unwrap();
    assert_eq!(obs.frame.len(), 64 * 64 * 3);
    assert!(obs.frame.iter().any(|&p| p > 20), "frame is not black");
    let mut success = false;
    for t in 0..200 {
        let act = env.expert().unwrap();
        if t < a[0].actions.len() {
            let diff = act.iter().zip(&a[0].actions[t]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-6, "step {t}: expert {act:?} vs recorded {:?}", a[0].actions[t]);
        }
        let o = env.step(&act).unwrap();
        success |= o.success;
        if o.done {
            break;
        }
    }
    assert!(success, "the scripted expert solves {TASK} through the bridge");
    // a bad request is an error that names the bridge, and the server keeps serving
    let e = env.step(&[f32::NAN, 0.0, 0.0, 0.0]).unwrap_err().to_string();
    assert!(e.contains("non-finite"), "{e}");
    assert!(env.reset(seed).is_ok());

    // a killed server: the next call says it exited, at once
    let pid = env.pid();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let e = env.step(&[0.0; 4]).unwrap_err().to_string();
    // (which of the three the client sees first depends on scheduling: a loaded machine may read
    // the closed stdout before it reaps the process)
    assert!(
        e.contains("reach-v3")
            && (e.contains("exited") || e.contains("stdin is closed") || e.contains("stopped answering")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));

    // a tiny closed-loop BC run writes its table and JSON
    let out = d.path().join("bc");
    // an installed copy of the binary, run from another folder, finds its bridge (carried inside
    // it and written to R3M_CACHE), not through the source tree
    let installed = d.path().join("bin/r3m");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(r3m_bin(), &installed).unwrap();
    let cache = d.path().join("cache");
    let o = Command::new(&installed)
        .current_dir(d.path())
        .env("R3M_CACHE", &cache)
        .env_remove("R3M_BRIDGE")
        .args([
            "eval",
            "bc",
            "--task",
            TASK,
            "--encoders",
            "random,random-spatial,random-shallow,scratch-shallow,scratch-shallow-noshift",
            "--demos",
            "1",
            "--num-seeds",
            "1",
            "--policy-steps",
            "20",
        ])
        .args([
            "--eval-every",
            "10",
            "--rollouts",
            "2",
            "--max-episode-steps",
            "15",
            "--envs",
            "2",
            "--size",
            "32",
            "--heldout",
            "1",
        ])
        .args(["--device", "cpu", "--rerun", &format!("save:{}", d.path().join("bc.rrd").display()), "--data"])
        .arg(&v21)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let bridges: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("bridge-"))
        .collect();
    assert_eq!(bridges.len(), 1, "the bridge was written to R3M_CACHE");
    let carried = std::fs::read_to_string(bridges[0].path().join("metaworld_bridge.py")).unwrap();
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/r3m_tools/metaworld_bridge.py"))
            .unwrap();
    assert_eq!(carried, source, "the carried bridge is this tree's");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    for row in ["random", "random-spatial", "random-shallow", "scratch-shallow", "scratch-shallow-noshift"] {
        assert!(md.contains(&format!("| {row} | 1 |")), "row {row} missing: {md}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let cell = &j["cells"][0];
    assert_eq!(cell["evals"].as_array().unwrap().len(), 2, "evaluated at steps 10 and 20");
    assert_eq!(cell["evals"][1]["rollouts"], 2);
    assert!(cell["heldout_mse"].as_f64().unwrap().is_finite());
    // the rollouts in rerun: the first 2 rollouts of each evaluation, one frame per env step
    let c = r3m_suite::rrd_contents(&d.path().join("bc.rrd"));
    for step in [10, 20] {
        for r in 0..2 {
            let base = format!("/eval/random/demos_1/seed_0/step_{step}/rollout_{r}");
            let (frames, tl) = &c[&format!("{base}/frame")];
            assert!(*frames >= 1 && *frames <= 15, "{base}: {frames} frames");
            assert!(tl.contains("env_step"), "{tl:?}");
            assert_eq!(c[&format!("{base}/action/3")].0, *frames);
            assert_eq!(c[&format!("{base}/success")].0, *frames);
        }
    }
}

#[test]
fn a_hung_or_broken_bridge_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    // a server that says hello and then never answers
    let hung = d.path().join("hung.py");
    std::fs::write(
        &hung,
        "import json, sys, time\nprint(json.dumps({'ok': True, 'hello': 'r3m-metaworld-bridge', 'width': 8, 'height': 8}), flush=True)\ntime.sleep(600)\n",
    )
    .unwrap();
    let mut env = MetaWorldBridge::start(&bridge_cfg(hung, 2)).unwrap();
    let t0 = Instant::now();
    let e = env.reset(1_000_000).unwrap_err().to_string();
    assert!(e.contains("did not answer within") && e.contains(TASK), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // a server that dies on start: the error carries its stderr
    let broken = d.path().join("broken.py");
    std::fs::write(&broken, "import sys\nprint('no metaworld here', file=sys.stderr)\nsys.exit(3)\n").unwrap();
    let e = MetaWorldBridge::start(&bridge_cfg(broken, 2)).err().unwrap().to_string();
    assert!(e.contains("no metaworld here"), "{e}");
    let e = MetaWorldBridge::start(&bridge_cfg(d.path().join("missing.py"), 2)).err().unwrap().to_string();
    assert!(e.contains("missing.py") && e.contains("not found"), "{e}");
}

/// Generates a 64-px v2.1 dataset of `TASK` with `episodes` expert episodes (lossless video, the
/// generator's default camera) and returns its camera.
fn generate_eval(out: &Path, episodes: usize) -> String {
    run_generator(out, episodes, &[]);
    r3m_bc::render_info(out).expect("generator metadata").camera
}

#[test]
fn replayed_demo_actions_render_the_demo_pixels_and_embed_equals_eval_bc() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    let camera = generate_eval(&ds, 2);
    let demos = r3m_bc::load_demos(&ds, Some(TASK), None).unwrap();
    let demo = &demos[0];
    assert_eq!(
        demo.state.as_ref().map(|s| (s.len(), s[0].len())),
        Some((demo.actions.len(), 39)),
        "environment_state per frame"
    );

    // demos and rollouts see the same pixels: replay the demo's actions on its layout through the
    // bridge; every rendered frame equals the decoded (lossless) demo frame, byte for byte
    let mut cfg = bridge_cfg(root().join("python/r3m_tools/metaworld_bridge.py"), 60);
    cfg.camera = camera.clone();
    let mut env = MetaWorldBridge::start(&cfg).unwrap();
    let mut obs = env.reset(demo.layout_seed.unwrap() as u64).unwrap();
    let mut compared = 0;
    for (t, action) in demo.actions.iter().enumerate() {
        assert_eq!(obs.frame.len(), demo.frames[t].len());
        let differing = obs.frame.iter().zip(&demo.frames[t]).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "frame {t}: {differing} bytes differ between the rollout and the decoded demo");
        let state_diff =
            obs.state.iter().zip(&demo.state.as_ref().unwrap()[t]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert_eq!(obs.state.len(), 39);
        assert!(state_diff < 1e-6, "frame {t}: state differs by {state_diff}");
        compared += 1;
        // the bridge ends the episode at the first success; the demo keeps a few frames after it
        if obs.done || t + 1 == demo.actions.len() {
            break;
        }
        obs = env.step(action).unwrap();
    }
    assert!(compared > 10 && obs.done && obs.success, "replayed {compared} frames to the expert's success");
    drop(env);

    // one frozen-encoder preprocessing: `r3m embed` rows equal eval bc's embeddings of the same
    // frames (64-px renders, encoder input 56 = 64·7/8: a centre crop in both paths)
    let ck = d.path().join("ck");
    tch::manual_seed(3);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _enc = r3m_model::Encoder::new(&vs.root(), r3m_model::Arch::Resnet18);
    r3m_model::checkpoint::save(
        &ck,
        &vs,
        &[],
        &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 56, "step": 0}),
    )
    .unwrap();
    let emb = d.path().join("e.parquet");
    let o = Command::new(r3m_bin())
        .args(["embed", "--checkpoint"])
        .arg(&ck)
        .arg("--lerobot")
        .arg(&ds)
        .args(["--out"])
        .arg(&emb)
        .args(["--device", "cpu", "--precision", "fp32"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = r3m_export::read_embeddings(&emb).unwrap();
    let frozen = r3m_model::checkpoint::load_encoder(&ck, tch::Device::Cpu).unwrap();
    let mut prepared = demos.clone();
    r3m_bc::prepare_demos(&mut prepared, 56).unwrap();
    let refs: Vec<&[u8]> = prepared[0].frames.iter().map(Vec::as_slice).collect();
    let ours = r3m_bc::embed_prepared(&frozen.encoder, &refs, 56, tch::Device::Cpu, r3m_model::Precision::Fp32);
    let episodes = e.episode_index.as_ref().expect("episode_index column");
    let mut compared = 0;
    #[allow(clippy::needless_range_loop)] // rows of several parallel columns
    for row in 0..e.len() {
        if episodes[row] != demo.episode {
            continue;
        }
        let t = e.frame_index[row];
        let mine = Vec::<f32>::try_from(ours.get(t)).unwrap();
        let diff = mine.iter().zip(e.row(row)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "frame {t}: eval bc and r3m embed differ by {diff}");
        compared += 1;
    }
    assert_eq!(compared, demo.actions.len());
}

fn strip_timing(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("timing");
            m.values_mut().for_each(strip_timing);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_timing),
        _ => {}
    }
}

#[test]
fn state_and_proprio_rows_and_cell_level_resume() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    generate_eval(&ds, 3);
    let eval_rows = |out: &Path, encoders: &str, extra: &[&str]| {
        let mut c = Command::new(r3m_bin());
        c.args([
            "eval",
            "bc",
            "--task",
            TASK,
            "--encoders",
            encoders,
            "--demos",
            "2",
            "--num-seeds",
            "2",
            "--policy-steps",
            "200",
        ])
        .args(["--eval-every", "200", "--rollouts", "3", "--max-episode-steps", "60", "--envs", "2", "--heldout", "1"])
        .args(["--device", "cpu", "--data"])
        .arg(&ds)
        .arg("--out")
        .arg(out)
        .args(extra);
        c
    };
    let eval = |out: &Path, extra: &[&str]| eval_rows(out, "state,proprio,state-objects:0.02", extra);
    // uninterrupted
    let a = d.path().join("a");
    let o = eval(&a, &[]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(md.contains("| state | 2 | 2 |") && md.contains("| proprio | 2 | 2 |"), "{md}");
    assert!(md.contains("| state-objects:0.02 | 2 | 2 |"), "{md}");
    let mut ja: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("results.json")).unwrap()).unwrap();
    assert_eq!(ja["complete"], true);
    assert_eq!(ja["cells"].as_array().unwrap().len(), 6);
    for c in ja["cells"].as_array().unwrap() {
        assert_eq!(c["evals"][0]["outcomes"].as_array().unwrap().len(), 3, "one outcome per layout");
        assert!(c["timing"]["env_steps"].as_u64().unwrap() >= 3);
    }
    let row = &ja["rows"][0];
    assert!(row["final_success"]["lo"].as_f64().unwrap() <= row["final_success"]["mean"].as_f64().unwrap());
    // a second run into the same directory without --resume is refused
    let o = eval(&a, &[]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resume"));

    // killed (-9) once the first cell is written, then resumed: the same results
    let b = d.path().join("b");
    let mut child =
        eval(&b, &[]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while std::fs::read_dir(b.join("cells")).map_or(0, |r| {
        r.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count()
    }) < 1
    {
        assert!(t0.elapsed() < Duration::from_secs(300), "no cell written");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        !b.join("results.json").exists()
            || !std::fs::read_to_string(b.join("results.json")).unwrap().contains("\"complete\": true")
    );
    // a resume with another protocol is refused, naming the field
    let o = eval(&b, &["--resume", "--policy-lr", "0.002"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("lr: 0.001 → 0.002"), "{err}");
    let o = eval(&b, &["--resume"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("resuming"), "{err}");
    let mut jb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("results.json")).unwrap()).unwrap();
    strip_timing(&mut ja);
    strip_timing(&mut jb);
    ja["protocol"]["data"] = serde_json::Value::Null;
    jb["protocol"]["data"] = serde_json::Value::Null;
    assert_eq!(ja, jb, "resumed results equal the uninterrupted run's");

    // --vs pairs every row with another one: a resume that runs no cell rewrites the tables
    let o = eval(&a, &["--resume", "--vs", "nope"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--vs nope: not a row"), "{err}");
    let o = eval(&a, &["--resume", "--vs", "proprio"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(md.contains("| Δ vs random (95% CI) | Δ vs proprio (95% CI) |"), "{md}");
    let jv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("results.json")).unwrap()).unwrap();
    let rows = jv["rows"].as_array().unwrap();
    let mean =
        |name: &str| rows.iter().find(|r| r["encoder"] == name).unwrap()["final_success"]["mean"].as_f64().unwrap();
    let state = rows.iter().find(|r| r["encoder"] == "state").unwrap();
    let diff = state["vs"]["proprio"]["mean"].as_f64().unwrap();
    assert!(
        (diff - (mean("state") - mean("proprio"))).abs() < 1e-9,
        "paired mean = difference of means on shared seeds"
    );
    let (lo, hi) = (state["vs"]["proprio"]["lo"].as_f64().unwrap(), state["vs"]["proprio"]["hi"].as_f64().unwrap());
    assert!(lo <= diff && diff <= hi, "{lo} ≤ {diff} ≤ {hi}");
    let proprio = rows.iter().find(|r| r["encoder"] == "proprio").unwrap();
    assert!(proprio.get("vs").is_none(), "a row is not paired with itself: {proprio}");

    // a resume that lists fewer rows keeps the others (their cells are read back, not re-run),
    // and --vs may name a kept row: the tables equal the full invocation's
    // (a file that only looks like a cell is left out with a warning, not an error)
    std::fs::write(a.join("cells").join("junk.demos-2.seed-9.json"), "{").unwrap();
    let o = eval_rows(&a, "state", &["--resume", "--vs", "proprio"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("keeping 4 other finished cell(s)") && err.contains("0 to run"),
        "{err}"
    );
    assert!(err.contains("left out of the tables") && err.contains("junk.demos-2.seed-9.json"), "{err}");
    let jk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("results.json")).unwrap()).unwrap();
    let names: Vec<&str> = jk["rows"].as_array().unwrap().iter().map(|r| r["encoder"].as_str().unwrap()).collect();
    assert_eq!(names, ["state", "proprio", "state-objects:0.02"], "listed row first, kept rows after, by name");
    assert_eq!(jk["rows"], jv["rows"], "the same rows and statistics as the invocation that listed them all");
    assert_eq!(jk["cells"], jv["cells"], "the same cells, none re-run");
    // --overwrite with a --vs that names no row is refused before anything is deleted
    let o = eval(&a, &["--overwrite", "--vs", "nope"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--vs nope"));
    assert_eq!(std::fs::read_dir(a.join("cells")).unwrap().count(), 7, "6 cells and the junk file, untouched");
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(md.contains("Kept from earlier invocations") && md.contains("| proprio | 2 | 2 |"), "{md}");
    assert_eq!(jk["format"], "r3m-eval-bc-3");
    assert_eq!(jk["intervals"], "r3m-crossed-anova-1");
    // `r3m eval summary` makes the same rows from the cells alone (no environment started); an
    // older results file (format -2, no method) is read and rewritten in the current format
    let mut old = jk.clone();
    old["format"] = "r3m-eval-bc-2".into();
    old.as_object_mut().unwrap().remove("intervals");
    old["rows"][0]["final_success"]["lo"] = 0.0.into();
    std::fs::write(a.join("results.json"), serde_json::to_string(&old).unwrap()).unwrap();
    let o = Command::new(r3m_bin()).args(["eval", "summary"]).arg(&a).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let js: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("results.json")).unwrap()).unwrap();
    assert_eq!((&js["rows"], &js["cells"], &js["format"]), (&jk["rows"], &jk["cells"], &jk["format"]));
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&md[..md.find("\n\n").unwrap()]), "{md}");
    let o = Command::new(r3m_bin()).args(["eval", "summary"]).arg(d.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("results.json"), "{err}");

    // Ctrl-C and SIGTERM (a scheduler's stop): each stops, keeps the finished cells, writes an
    // incomplete table and exits 130
    for signal in ["-INT", "-TERM"] {
        let c = d.path().join(format!("c{signal}"));
        let child =
            eval(&c, &[]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let t0 = Instant::now();
        while !c.join("cells").join("state.demos-2.seed-0.json").exists() {
            assert!(t0.elapsed() < Duration::from_secs(300), "no cell written");
            std::thread::sleep(Duration::from_millis(50));
        }
        Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(c.join("results.json")).unwrap()).unwrap();
        if o.status.code() == Some(130) {
            assert_eq!(j["complete"], false, "{signal}: {err}");
            assert!(err.contains("--resume"), "{signal}: {err}");
            assert!(!j["cells"].as_array().unwrap().is_empty(), "{signal}: the finished cells are kept");
        } else {
            // the run finished before the signal arrived
            assert!(o.status.success() && j["complete"] == true, "{signal}: {err}");
        }
    }
}

/// A paused evaluation carries on: its process group stopped (`kill -STOP -- -PGID`, bridges
/// included) for three times `--timeout`, again and again, then continued; the bridges' timeout
/// counts the time the process ran, so no bridge is declared hung (before, the first pause during
/// the rollouts lost the cell).
#[test]
fn a_paused_eval_bc_carries_on() {
    use std::os::unix::process::CommandExt;
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    generate_eval(&ds, 3);
    let out = d.path().join("out");
    let mut c = Command::new(r3m_bin());
    c.args(["eval", "bc", "--task", TASK, "--encoders", "state", "--demos", "2", "--num-seeds", "1"])
        .args(["--policy-steps", "50", "--eval-every", "50", "--rollouts", "30", "--max-episode-steps", "60"])
        .args(["--envs", "2", "--heldout", "1", "--env-timeout", "1", "--device", "cpu", "--data"])
        .arg(&ds)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = c.spawn().unwrap();
    let group = format!("-{}", child.id());
    let mut pauses = 0;
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        Command::new("kill").args(["-STOP", "--", &group]).status().unwrap();
        std::thread::sleep(Duration::from_millis(3000));
        Command::new("kill").args(["-CONT", "--", &group]).status().unwrap();
        pauses += 1;
        assert!(pauses < 200, "the evaluation does not end");
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "paused {pauses} times: {err}");
    assert!(pauses >= 3, "the evaluation ended before it could be paused a few times");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(j["complete"], true);
    assert_eq!(j["cells"][0]["evals"][0]["outcomes"].as_array().unwrap().len(), 30);
}

/// The Python side's own self-check (`python/r3m_tools/selftest.py`: generator formats, bridge
/// protocol, lossless round trip, lossy codec), run as a module of the package, so the package
/// imports as `r3m_tools` from `python/` and not only file by file.
#[test]
fn the_python_package_selftest_passes_as_a_module() {
    let keep = tempfile::tempdir().unwrap();
    let o = Command::new("python3")
        .args(["-m", "r3m_tools.selftest", "--keep"])
        .arg(keep.path().join("selftest"))
        .current_dir(root())
        .env("PYTHONPATH", root().join("python"))
        .env("MUJOCO_GL", "egl")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "selftest failed:\n{text}");
    assert!(!text.contains("FAIL") && text.contains("all Meta-World checks passed"), "{text}");
    assert!(keep.path().join("selftest").exists(), "--keep DIR holds the generated datasets: {text}");
}
