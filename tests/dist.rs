//! Data-parallel `r3m train` over c10d's Gloo process group on this CPU (127.0.0.1, two ranks,
//! every wait bounded): the gradient average equals one process's full-batch gradient, a torchrun
//! launch trains with identical weights on both ranks, a 2-rank run resumes bit-identically (and
//! refuses another world size), and a killed rank makes the other exit with an error.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use r3m_suite::{make_video, r3m_bin};
use r3m_train::{Adam, Dist, DistEnv};
use tch::{Device, Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn env(rank: usize, world: usize, port: u16) -> DistEnv {
    DistEnv { rank, world, local_rank: rank, addr: "127.0.0.1".into(), port, agent_store: false }
}

/// Two ranks, each with half of a batch, average their gradients and take the same Adam step as
/// one process on the whole batch (to 1e-6), and end with identical parameters.
#[test]
fn two_ranks_average_gradients_like_one_process_on_the_whole_batch() {
    if !Dist::available() {
        panic!("this build has no Gloo: install libgloo-dev (scripts/setup.sh does) and rebuild");
    }
    tch::manual_seed(0);
    let x = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([8, 2], (Kind::Float, Device::Cpu));
    let w0 = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
    let loss = |w: &Tensor, x: &Tensor, y: &Tensor| (x.matmul(w) - y).square().mean(Kind::Float);
    // one process, whole batch
    let w = w0.copy().set_requires_grad(true);
    let mut adam = Adam::new(vec![("w".into(), w.shallow_clone())], 1e-2);
    adam.zero_grad();
    loss(&w, &x, &y).backward();
    let g_full = w.grad().copy();
    adam.step();
    let w_full = w.detach().copy();
    // two ranks, half each
    let port = free_port();
    let halves: Vec<(Tensor, Tensor)> =
        (0..2).map(|r| (x.narrow(0, 4 * r, 4).copy(), y.narrow(0, 4 * r, 4).copy())).collect();
    let w0s = [w0.copy(), w0.copy()];
    let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|r| {
                let (xh, yh) = (halves[r].0.shallow_clone(), halves[r].1.shallow_clone());
                let w = w0s[r].shallow_clone().set_requires_grad(true);
                s.spawn(move || {
                    let d =
                        Dist::join(&env(r, 2, port), r3m_train::dist::Backend::Gloo, Duration::from_secs(30)).unwrap();
                    let mut adam = Adam::new(vec![("w".into(), w.shallow_clone())], 1e-2);
                    adam.zero_grad();
                    loss(&w, &xh, &yh).backward();
                    d.average_grads(&[w.shallow_clone()]).unwrap();
                    let g = Vec::<f32>::try_from(w.grad().view([-1])).unwrap();
                    adam.step();
                    (g, Vec::<f32>::try_from(w.detach().view([-1])).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let g_full = Vec::<f32>::try_from(g_full.view([-1])).unwrap();
    let w_full = Vec::<f32>::try_from(w_full.view([-1])).unwrap();
    for (r, (g, w)) in results.iter().enumerate() {
        for (a, b) in g.iter().zip(&g_full) {
            assert!((a - b).abs() < 1e-6, "rank {r}: gradient {a} vs one process {b}");
        }
        for (a, b) in w.iter().zip(&w_full) {
            assert!((a - b).abs() < 1e-6, "rank {r}: weight {a} vs one process {b}");
        }
    }
    assert_eq!(results[0].1, results[1].1, "both ranks hold the same weights");
}

fn videos(dir: &Path) {
    for i in 0..6 {
        make_video(&dir.join(format!("clip{i}.mp4")), "96x72", 10, 20 + 4 * i, &["-c:v", "libx264", "-g", "10"]);
    }
}

/// `torchrun --nproc-per-node=2 ... r3m train` on `videos` into `out` (tiny settings, seed `seed`);
/// panics with the log on failure, returns the log.
fn launch(videos: &Path, out: &Path, steps: u64, seed: u64, extra: &[&str]) -> String {
    let Some(torchrun) = torchrun() else { panic!("torchrun not found in the venv (VIRTUAL_ENV)") };
    let mut c = Command::new(torchrun);
    c.args(["--nproc-per-node=2", "--master-port", &free_port().to_string(), "--no-python"]).arg(r3m_bin());
    c.args(["train", "--videos"]).arg(videos).arg("--out").arg(out);
    c.args(["--steps", &steps.to_string(), "--batch", "2", "--size", "48", "--workers", "1", "--tuples-per-clip", "2"]);
    c.args([
        "--checkpoint-every",
        "2",
        "--seed",
        &seed.to_string(),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--lr",
        "1e-3",
    ]);
    let o = c.args(["--dist-timeout", "60"]).args(extra).output().unwrap();
    let e = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "torchrun failed:\n{e}");
    e
}

fn torchrun() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("VIRTUAL_ENV")?;
    let p = Path::new(&venv).join("bin/torchrun");
    p.exists().then_some(p)
}

/// `torchrun --nproc-per-node=2 --no-python r3m train ...`: both ranks end with the same
/// parameters, rank 0 alone writes the run (world size and both ranks' states in the config);
/// a run stopped after 2 steps and resumed to 4 equals 4 straight steps bit for bit; resuming in
/// one process is refused, naming the world size.
#[test]
fn torchrun_two_ranks_train_resume_exactly_and_refuse_another_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let launch =
        |out: &Path, steps: u64, resume: bool| launch(&v, out, steps, 3, if resume { &["--resume"] } else { &[] });
    let straight = dir.path().join("straight");
    let log = launch(&straight, 4, false);
    let sums: Vec<&str> = log.lines().filter_map(|l| l.split("parameter checksum ").nth(1)).collect();
    assert_eq!(sums.len(), 2, "{log}");
    assert_eq!(sums[0], sums[1], "the ranks' weights differ:\n{log}");
    let metrics = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "rank 0 alone writes metrics: {metrics}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("checkpoints/step-00000004/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["world_size"], 2);
    assert_eq!(cfg["rank_states"].as_array().unwrap().len(), 2);
    assert_ne!(cfg["rank_states"][0], cfg["rank_states"][1], "each rank draws its own clips");

    let split = dir.path().join("split");
    launch(&split, 2, false);
    launch(&split, 4, true);
    let weights = |run: &Path| {
        let mut w = Tensor::read_safetensors(run.join("checkpoints/step-00000004/model.safetensors")).unwrap();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    };
    for ((n, a), (_, b)) in weights(&straight).iter().zip(&weights(&split)) {
        let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[]);
        assert!(d == 0.0, "{n} differs by {d} after a 2-rank resume");
    }
    let losses =
        |m: &str| m.lines().skip(1).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(losses(&metrics), losses(&std::fs::read_to_string(split.join("metrics.csv")).unwrap()));

    let o = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(&v)
        .arg("--out")
        .arg(&split)
        .args([
            "--steps",
            "6",
            "--batch",
            "2",
            "--size",
            "48",
            "--workers",
            "1",
            "--tuples-per-clip",
            "2",
            "--checkpoint-every",
            "2",
        ])
        .args(["--seed", "3", "--device", "cpu", "--precision", "fp32", "--lr", "1e-3", "--resume"])
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("world size") && e.contains("2 → 1"), "{e}");
}

/// A rank killed mid-run: the other exits with an error within the timeout instead of hanging.
#[test]
fn a_killed_rank_makes_the_other_exit_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let port = free_port().to_string();
    let spawn = |rank: usize| {
        Command::new(r3m_bin())
            .args(["train", "--videos"])
            .arg(&v)
            .arg("--out")
            .arg(dir.path().join("run"))
            .args([
                "--steps",
                "200",
                "--batch",
                "2",
                "--size",
                "48",
                "--workers",
                "1",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--dist-timeout",
                "20",
            ])
            .env("WORLD_SIZE", "2")
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let r0 = spawn(0);
    let mut r1 = spawn(1);
    // let them rendezvous and train a few steps
    let metrics = dir.path().join("run/metrics.csv");
    let t0 = Instant::now();
    while std::fs::read_to_string(&metrics).map(|m| m.lines().count() < 3).unwrap_or(true) {
        assert!(t0.elapsed() < Duration::from_secs(120), "the ranks did not start training");
        std::thread::sleep(Duration::from_millis(100));
    }
    r1.kill().unwrap();
    r1.wait().unwrap();
    let t_kill = Instant::now();
    let o = r0.wait_with_output().unwrap();
    let waited = t_kill.elapsed();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "rank 0 must fail when rank 1 dies:\n{e}");
    assert!(waited < Duration::from_secs(60), "rank 0 took {waited:?} to notice");
    assert!(e.contains("error") && !e.contains("panicked"), "{e}");
    eprintln!("rank 0 exited {waited:?} after rank 1 was killed: {}", e.lines().last().unwrap_or(""));
}

/// Data-parallel objectives over the global batch: SimCLR with `--global-negatives` trains with
/// identical weights on both ranks; MoCo enqueues the global batch's keys, so the ranks' queues
/// are identical and a 2-rank MoCo run resumes bit-identically (queue included).
#[test]
fn global_negatives_and_a_global_moco_queue() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let launch = |out: &Path, steps: u64, extra: &[&str]| launch(&v, out, steps, 4, extra);
    let log = launch(&dir.path().join("simclr"), 3, &["--objective", "simclr", "--global-negatives"]);
    let sums: Vec<&str> = log.lines().filter_map(|l| l.split("parameter checksum ").nth(1)).collect();
    assert!(sums.len() == 2 && sums[0] == sums[1], "{log}");
    let moco = ["--objective", "moco", "--queue", "8"];
    launch(&dir.path().join("straight"), 4, &moco);
    let split = dir.path().join("split");
    launch(&split, 2, &moco);
    launch(&split, 4, &[&moco[..], &["--resume"]].concat());
    let state = |run: &Path, file: &str| {
        let mut t = Tensor::read_safetensors(run.join("checkpoints/step-00000004").join(file)).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    for file in ["model.safetensors", "objective.safetensors"] {
        for ((n, a), (_, b)) in state(&dir.path().join("straight"), file).iter().zip(&state(&split, file)) {
            let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[]);
            assert!(d == 0.0, "{file} {n} differs by {d} after a 2-rank MoCo resume");
        }
    }
}

/// An explicit backend under a launcher's `WORLD_SIZE=1` joins a group of one (torchrun
/// `--nproc-per-node=1`, the GPU check's NCCL run); `auto` with `WORLD_SIZE=1` stays one plain
/// process; `--dist-backend nccl` on the CPU is refused before anything is written.
#[test]
fn a_group_of_one_on_request_and_nccl_refused_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    std::fs::create_dir_all(&v).unwrap();
    videos(&v);
    let port = free_port().to_string();
    let run = |out: &str, backend: &str| {
        Command::new(r3m_bin())
            .args(["train", "--videos"])
            .arg(&v)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--steps", "2", "--batch", "2", "--size", "48", "--workers", "1", "--device", "cpu"])
            .args(["--precision", "fp32", "--dist-backend", backend])
            .env("WORLD_SIZE", "1")
            .env("RANK", "0")
            .env("LOCAL_RANK", "0")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .output()
            .unwrap()
    };
    let o = run("one", "gloo");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && e.contains("rank 0 of 1 (local rank 0), gloo backend"), "{e}");
    let o = run("plain", "auto");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !e.contains("rank 0 of 1"), "{e}");
    let o = run("nccl", "nccl");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("the NCCL backend reduces CUDA tensors"), "{e}");
    assert!(!dir.path().join("nccl").exists(), "nothing written");
}
