//! `r3m embed` end to end: rows read back by our reader and by pyarrow equal the encoder's output
//! for the same frames, the schema and metadata are as documented, a corrupt video is skipped and
//! reported, shards cover every frame once, a finished part is skipped on rerun, and a killed job
//! resumes from its finished pieces to the same result.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use r3m_model::{checkpoint, Arch, Encoder};
use r3m_suite::{make_video, r3m_bin};
use r3m_video::{DecodeOptions, VideoReader};
use tch::{nn, Device, Kind, Tensor};

const SIZE: u32 = 48;

fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let v = dir.join("videos");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    make_video(&v.join("a.mp4"), "80x60", 10, 23, &["-c:v", "libx264", "-g", "6"]);
    make_video(&v.join("sub/b.webm"), "64x64", 10, 17, &["-c:v", "libvpx-vp9", "-deadline", "realtime"]);
    make_video(&v.join("c.mkv"), "96x54", 10, 12, &["-c:v", "libx264"]);
    std::fs::write(v.join("corrupt.mp4"), b"\x00\x00\x00\x18ftypmp42 not a real file").unwrap();
    // a random-init encoder saved as a checkpoint (the format `r3m train` writes)
    let ck = dir.join("ck");
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let _enc = Encoder::new(&vs.root(), Arch::Resnet18);
    checkpoint::save(
        &ck,
        &vs,
        &[],
        &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": SIZE, "step": 0}),
    )
    .unwrap();
    (v, ck)
}

fn embed(args: &[&str]) -> (bool, String) {
    let out = Command::new(r3m_bin()).arg("embed").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The encoder's own embeddings of every frame of `video`, decoded the way `r3m embed` decodes.
fn reference(ck: &Path, video: &Path) -> Vec<Vec<f32>> {
    let frozen = checkpoint::load_encoder(ck, Device::Cpu).unwrap();
    let mut r = VideoReader::open(video, DecodeOptions::with_resize(r3m_export::embed::eval_resize(SIZE))).unwrap();
    let frames = r.read_all().unwrap();
    let n = frames.len() as i64;
    let data: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    let x = Tensor::from_slice(&data).view([n, SIZE as i64, SIZE as i64, 3]).permute([0, 3, 1, 2]).contiguous();
    let e = tch::no_grad(|| frozen.encoder.forward_u8(&x, false)).to_kind(Kind::Float);
    (0..n).map(|i| Vec::<f32>::try_from(e.get(i)).unwrap()).collect()
}

#[test]
fn embeddings_match_the_encoder_and_read_back_everywhere() {
    let d = tempfile::tempdir().unwrap();
    let (v, ck) = fixture(d.path());
    let out = d.path().join("emb.parquet");
    let (ok, log) = embed(&[
        "--checkpoint",
        s(&ck),
        "--videos",
        s(&v),
        "--out",
        s(&out),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--batch-frames",
        "7",
    ]);
    assert!(ok, "{log}");
    assert!(log.contains("3 clips") && log.contains("1 file(s) skipped") && log.contains("corrupt.mp4"), "{log}");
    let e = r3m_export::read_embeddings(&out).unwrap();
    assert_eq!(e.len(), 23 + 17 + 12);
    assert_eq!(e.dim, 512);
    assert_eq!(e.index, (0..52).collect::<Vec<i64>>());
    let want = [("a.mp4", 23), ("c.mkv", 12), ("sub/b.webm", 17)];
    let mut row = 0;
    for (name, n) in want {
        let refs = reference(&ck, &v.join(name));
        assert_eq!(refs.len(), n);
        for (i, r) in refs.iter().enumerate() {
            assert_eq!((e.video[row].as_str(), e.frame_index[row]), (name, i as i64));
            assert!((e.timestamp[row] - i as f64 / 10.0).abs() < 1e-6, "{name} frame {i}: t={}", e.timestamp[row]);
            let diff = r.iter().zip(e.row(row)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{name} frame {i}: differs from the encoder by {diff}");
            row += 1;
        }
    }
    assert_eq!(e.metadata["r3m.arch"], "resnet18");
    assert_eq!(e.metadata["r3m.dim"], "512");
    assert_eq!(e.metadata["r3m.checkpoint_sha256"], r3m_export::sha256_file(&ck.join("model.safetensors")).unwrap());
    // the encoder's pixel spec: ResNet18 wants ImageNet's statistics, frames at 8/7 of SIZE then cropped
    let spec: serde_json::Value = serde_json::from_str(&e.metadata["r3m.preprocess"]).unwrap();
    assert_eq!(spec["format"], "r3m-pixels-1", "{spec}");
    assert_eq!(
        (spec["size"].as_u64(), spec["short_side"].as_u64()),
        (Some(u64::from(SIZE)), Some(u64::from(SIZE * 8 / 7)))
    );
    assert_eq!((spec["mean"][0].as_f64(), spec["std"][2].as_f64()), (Some(0.485), Some(0.225)));
    // the typed reading of the same metadata, checked against the rows
    let meta = r3m_export::EmbedMeta::from_metadata(&out, &e.metadata, Some(e.dim)).unwrap();
    assert_eq!((meta.format.as_str(), meta.dim, meta.arch.as_str()), (r3m_export::EMBED_FORMAT, 512, "resnet18"));
    assert_eq!(meta.preprocess["scale"], 255.0);

    // pyarrow, another reader: schema as documented, zstd, same values
    let py = format!(
        r#"
import json, pyarrow.parquet as pq
f = pq.ParquetFile("{}")
t = f.read()
md = {{k.decode(): v.decode() for k, v in (f.metadata.metadata or {{}}).items()}}
print(json.dumps({{
  "schema": [[x.name, str(x.type)] for x in t.schema],
  "rows": t.num_rows,
  "codec": f.metadata.row_group(0).column(0).compression,
  "keys": sorted(k for k in md if k.startswith("r3m.")),
  "row30": t.column("embedding")[30].as_py(),
  "video30": t.column("video")[30].as_py(),
}}))
"#,
        out.display()
    );
    let o = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["schema"],
        serde_json::json!([
            ["video", "string"],
            ["frame_index", "int64"],
            ["timestamp", "double"],
            ["index", "int64"],
            ["embedding", "fixed_size_list<item: float not null>[512]"]
        ])
    );
    assert_eq!(j["rows"], 52);
    assert_eq!(j["codec"], "ZSTD");
    for k in [
        "r3m.arch",
        "r3m.checkpoint",
        "r3m.checkpoint_sha256",
        "r3m.dim",
        "r3m.precision",
        "r3m.preprocess",
        "r3m.source",
        "r3m.version",
    ] {
        assert!(j["keys"].as_array().unwrap().iter().any(|x| x == k), "missing {k}: {}", j["keys"]);
    }
    let py_row: Vec<f32> = j["row30"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(py_row, e.row(30));
    assert_eq!(j["video30"], e.video[30]);
}

#[test]
fn shards_cover_every_frame_once_and_resume_after_a_kill() {
    let d = tempfile::tempdir().unwrap();
    let (v, ck) = fixture(d.path());
    let base = ["--checkpoint", s(&ck), "--videos", s(&v), "--device", "cpu", "--precision", "fp32"];
    let full = d.path().join("full.parquet");
    let (ok, log) = embed(&[&base[..], &["--out", s(&full), "--every", "2"]].concat());
    assert!(ok, "{log}");
    let all = r3m_export::read_embeddings(&full).unwrap();
    assert_eq!(all.len(), 12 + 9 + 6, "every 2nd frame");
    let parts = d.path().join("parts");
    let mut seen = BTreeSet::new();
    let mut rows = 0;
    for i in 0..2 {
        let shard = format!("{i}/2");
        let (ok, log) = embed(&[&base[..], &["--out", s(&parts), "--every", "2", "--shard", &shard]].concat());
        assert!(ok, "{log}");
        let p = r3m_export::read_embeddings(&parts.join(format!("part-{i}-of-2.parquet"))).unwrap();
        rows += p.len();
        for r in 0..p.len() {
            assert!(seen.insert((p.video[r].clone(), p.frame_index[r])), "frame in two shards");
            let j =
                (0..all.len()).find(|&k| all.video[k] == p.video[r] && all.frame_index[k] == p.frame_index[r]).unwrap();
            assert_eq!(all.row(j), p.row(r));
        }
    }
    assert_eq!(rows, all.len(), "shards together cover every frame");
    let (ok, log) = embed(&[&base[..], &["--out", s(&parts), "--every", "2", "--shard", "1/2"]].concat());
    assert!(ok && log.contains("finished, skipping"), "{log}");
    let (ok, log) = embed(&[&base[..], &["--out", s(&parts), "--shard", "2/2"]].concat());
    assert!(!ok && log.contains("--shard 2/2"), "{log}");

    // kill a job with small pieces once a piece is done, then resume: same rows as uninterrupted
    let out = d.path().join("resumed.parquet");
    let pieces = d.path().join("resumed.parquet.pieces");
    let args =
        [&base[..], &["--out", s(&out), "--piece-frames", "5", "--workers", "1", "--batch-frames", "2"]].concat();
    let mut child = Command::new(r3m_bin()).arg("embed").args(&args).stderr(Stdio::null()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let done = std::fs::read_dir(&pieces)
            .map(|r| r.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("piece-")).count())
            .unwrap_or(0);
        if done >= 2 || t0.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "killed before the end: no final file");
    let (ok, log) = embed(&[&args[..], &["--resume"]].concat());
    assert!(ok, "{log}");
    assert!(log.contains("reused"), "{log}");
    assert!(!pieces.exists(), "pieces are removed once the part is assembled");
    let straight = d.path().join("straight.parquet");
    let (ok, log) = embed(
        &[&base[..], &["--out", s(&straight), "--piece-frames", "5", "--workers", "1", "--batch-frames", "2"]].concat(),
    );
    assert!(ok, "{log}");
    let (a, b) = (r3m_export::read_embeddings(&out).unwrap(), r3m_export::read_embeddings(&straight).unwrap());
    assert_eq!((a.len(), &a.video, &a.frame_index, &a.index), (b.len(), &b.video, &b.frame_index, &b.index));
    assert_eq!(a.values, b.values);

    // SIGTERM and SIGUSR1 (a scheduler's stop) once a piece is done: exit 130, every finished
    // piece whole and readable, no temporary left, no final file; --resume gives the same rows
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGUSR1, "SIGUSR1")] {
        let termed = d.path().join(format!("{name}.parquet"));
        let tpieces = d.path().join(format!("{name}.parquet.pieces"));
        let targs = [&base[..], &["--out", s(&termed), "--piece-frames", "5", "--workers", "1", "--batch-frames", "2"]]
            .concat();
        let child = Command::new(r3m_bin()).arg("embed").args(&targs).stderr(Stdio::piped()).spawn().unwrap();
        let t0 = std::time::Instant::now();
        let pieces_done = || {
            std::fs::read_dir(&tpieces)
                .map(|r| r.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("piece-")).count())
                .unwrap_or(0)
        };
        while pieces_done() < 1 && t0.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: signals the child this test started
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let o = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        if o.status.code() == Some(130) {
            assert!(log.contains("interrupted; finished pieces are kept"), "{name}: {log}");
            assert!(!termed.exists(), "{name}: no final file after a stop");
            for e in std::fs::read_dir(&tpieces).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(!n.contains(".tmp-"), "{name}: a temporary was left: {n}");
                if n.starts_with("piece-") {
                    assert!(
                        r3m_export::read_embeddings(&e.path()).is_ok_and(|p| !p.is_empty()),
                        "{name}: {n} unreadable"
                    );
                }
            }
            eprintln!("{name}: stopped with {} finished piece(s)", pieces_done());
            let (ok, log) = embed(&[&targs[..], &["--resume"]].concat());
            assert!(ok && log.contains("reused"), "{name}: {log}");
        } else {
            // the job finished before the signal arrived
            assert!(o.status.success(), "{name}: {log}");
        }
        let t = r3m_export::read_embeddings(&termed).unwrap();
        assert_eq!((t.len(), &t.video, &t.frame_index), (b.len(), &b.video, &b.frame_index), "{name}");
        assert_eq!(t.values, b.values, "{name}");
    }
}

/// Overwrites `len` bytes of `path` from `at` with seeded noise.
fn scribble(path: &Path, at: usize, len: usize) {
    let mut b = std::fs::read(path).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for byte in &mut b[at..(at + len).min(path.metadata().unwrap().len() as usize)] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    std::fs::write(path, b).unwrap();
}

/// A bad frame costs that frame: garbage in the middle of a video loses only the frames it hit
/// (listed on stderr and in the file metadata), a one-frame video is embedded (embed's rule is
/// one frame, not a tuple), and a job that writes no row fails and leaves no file behind.
#[test]
fn a_bad_frame_costs_that_frame_and_empty_jobs_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ck) = fixture(dir.path());
    let v = dir.path().join("damaged");
    std::fs::create_dir_all(&v).unwrap();
    make_video(&v.join("bad.mp4"), "80x60", 10, 80, &["-c:v", "libx264", "-g", "10"]);
    make_video(&v.join("one.mp4"), "80x60", 10, 1, &["-c:v", "libx264"]);
    let n = std::fs::metadata(v.join("bad.mp4")).unwrap().len() as usize;
    scribble(&v.join("bad.mp4"), n / 2, 3000);
    let out = dir.path().join("damaged.parquet");
    let (ok, log) = embed(&["--checkpoint", s(&ck), "--videos", s(&v), "--out", s(&out), "--device", "cpu"]);
    assert!(ok, "{log}");
    let e = r3m_export::read_embeddings(&out).unwrap();
    let rows = |name: &str| e.video.iter().filter(|x| *x == name).count();
    assert_eq!(rows("one.mp4"), 1, "{log}");
    let lost: Vec<(String, Vec<i64>)> = serde_json::from_str(&e.metadata[r3m_export::embed::LOST_KEY]).unwrap();
    let lost_bad: Vec<i64> = lost.iter().filter(|(n, _)| n == "bad.mp4").flat_map(|(_, l)| l.clone()).collect();
    assert!(
        !lost_bad.is_empty() && lost_bad.len() < 40,
        "the garbage should cost some frames, not the clip: {lost:?}\n{log}"
    );
    assert_eq!(rows("bad.mp4") + lost_bad.len(), 80, "every frame is either a row or listed as lost");
    let have: BTreeSet<i64> =
        e.frame_index.iter().zip(&e.video).filter(|(_, n)| *n == "bad.mp4").map(|(i, _)| *i).collect();
    assert!(lost_bad.iter().all(|i| !have.contains(i)));
    assert!(
        log.contains("could not be decoded") && log.contains(&format!("{} frame(s) lost", lost_bad.len())),
        "{log}"
    );

    // every frame of every video undecodable: non-zero exit, the reason, no file
    let w = dir.path().join("ruined");
    std::fs::create_dir_all(&w).unwrap();
    make_video(&w.join("x.mp4"), "80x60", 10, 30, &["-c:v", "libx264", "-g", "10"]);
    let bytes = std::fs::read(w.join("x.mp4")).unwrap();
    let mdat = bytes.windows(4).position(|b| b == b"mdat").unwrap() + 4;
    let moov = bytes.windows(4).position(|b| b == b"moov").unwrap();
    assert!(moov > mdat, "the test expects the index after the data (ffmpeg's default)");
    scribble(&w.join("x.mp4"), mdat, moov - 4 - mdat);
    let out = dir.path().join("ruined.parquet");
    let (ok, log) = embed(&["--checkpoint", s(&ck), "--videos", s(&w), "--out", s(&out), "--device", "cpu"]);
    assert!(!ok && log.contains("no rows") && !out.exists(), "{log}");

    // two shard jobs at once on one fresh probe cache: both finish, together every row once
    let cache = dir.path().join("shared-cache");
    let ck_v = dir.path().join("videos");
    let jobs: Vec<_> = (0..2)
        .map(|i| {
            Command::new(r3m_bin())
                .args([
                    "embed",
                    "--checkpoint",
                    s(&ck),
                    "--videos",
                    s(&ck_v),
                    "--device",
                    "cpu",
                    "--shard",
                    &format!("{i}/2"),
                    "--out",
                ])
                .arg(dir.path().join("concurrent"))
                .env("R3M_PROBE_CACHE", &cache)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut rows = 0;
    for (i, j) in jobs.into_iter().enumerate() {
        let o = j.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        rows +=
            r3m_export::read_embeddings(&dir.path().join(format!("concurrent/part-{i}-of-2.parquet"))).unwrap().len();
    }
    assert_eq!(rows, 23 + 17 + 12, "every frame of the three readable videos once");
    let entries = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(entries, 3, "one probe cache entry per readable video, none half-written");

    // a GPU that is not there is a clear error, not a panic (this machine has none)
    if !tch::Cuda::is_available() {
        let (ok, log) = embed(&[
            "--checkpoint",
            s(&ck),
            "--videos",
            s(&v),
            "--out",
            s(&dir.path().join("gpu.parquet")),
            "--device",
            "cuda",
        ]);
        assert!(
            !ok && log.contains("--device cuda") && log.contains("no CUDA GPU") && !log.contains("panicked"),
            "{log}"
        );
    }
}

/// Runs `cmd` and returns (success, stderr, its own peak resident memory in kB), measured by
/// `wait4` on that child alone (tests running in parallel start children of their own).
fn run_measured(mut cmd: Command, log: &Path) -> (bool, String, i64) {
    // waited for below with wait4 (for its rusage), which clippy cannot see
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap();
    let mut status = 0;
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and writes into values we own
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut u) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, std::fs::read_to_string(log).unwrap_or_default(), u.ru_maxrss)
}

/// `embed` streams within a clip: a clip twice as long does not raise peak memory by its rows.
/// With 4096-d embeddings (a projection head) 5000 more frames are 82 MB of rows; buffering a clip
/// (or re-reading a piece whole) would add that much, streaming adds next to nothing (the Parquet
/// row group and the encoder batch are bounded and the same in both runs: both clips are longer
/// than a row group of 4096 rows, where the writer's buffers stop growing).
#[test]
fn embed_peak_memory_is_flat_in_clip_length() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let _enc = Encoder::with_head(&vs.root(), Arch::Resnet18, Some(4096));
    checkpoint::save(
        &ck,
        &vs,
        &[],
        &serde_json::json!({"format": "r3m-checkpoint-1", "arch": "resnet18", "size": 32, "proj_dim": 4096, "step": 0}),
    )
    .unwrap();
    let mut peaks = Vec::new();
    for frames in [5000usize, 10000] {
        let v = dir.path().join(format!("v{frames}"));
        std::fs::create_dir_all(&v).unwrap();
        make_video(&v.join("long.mp4"), "36x36", 50, frames, &["-c:v", "libx264", "-g", "50"]);
        let out = dir.path().join(format!("e{frames}.parquet"));
        let mut cmd = Command::new(r3m_bin());
        cmd.args([
            "embed",
            "--checkpoint",
            s(&ck),
            "--videos",
            s(&v),
            "--out",
            s(&out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--workers",
            "1",
        ]);
        let (ok, log, peak) = run_measured(cmd, &dir.path().join("log"));
        assert!(ok, "{log}");
        assert_eq!(r3m_export::read_embeddings_metadata(&out).unwrap().1, frames as u64);
        peaks.push(peak);
    }
    let grew_mb = (peaks[1] - peaks[0]) as f64 / 1024.0;
    eprintln!(
        "peak RSS: 5000 frames {} MB, 10000 frames {} MB (+{grew_mb:.1} MB; buffering would add ~82 MB)",
        peaks[0] / 1024,
        peaks[1] / 1024
    );
    assert!(grew_mb < 30.0, "peak memory grew by {grew_mb:.1} MB with 5000 more frames of a clip");
}

/// One writer per output: while another process holds an output's lock (here `flock(1)` on the
/// lock file, with a holder line as r3m writes it), `r3m embed` to that output is refused and names
/// the holder; once the holder is gone, the same command runs.
#[test]
fn a_second_writer_of_an_embeddings_file_is_refused() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (v, ck) = fixture(dir.path());
    let out = dir.path().join("emb.parquet");
    let lock = dir.path().join(".emb.parquet.lock");
    std::fs::write(&lock, "pid 4242 host elsewhere\n").unwrap();
    let mut holder = Command::new("flock").arg(&lock).args(["sleep", "60"]).process_group(0).spawn().unwrap();
    // until flock(1) holds it: a lock attempt of ours fails
    let t0 = std::time::Instant::now();
    loop {
        let probe = Command::new("flock").args(["-n", "-E", "7"]).arg(&lock).arg("true").status().unwrap();
        if probe.code() == Some(7) {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "flock(1) did not take the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let args = ["--checkpoint", s(&ck), "--videos", s(&v), "--out", s(&out), "--device", "cpu"];
    let (ok, log) = embed(&args);
    assert!(!ok && log.contains("being written by another r3m") && log.contains("pid 4242 host elsewhere"), "{log}");
    assert!(!out.exists());
    // SAFETY: signals the process group this test started
    unsafe { libc::kill(-(holder.id() as libc::pid_t), libc::SIGKILL) };
    holder.wait().unwrap();
    let t0 = std::time::Instant::now();
    let (ok, log) = loop {
        let r = embed(&args);
        if r.0 || t0.elapsed().as_secs() > 10 {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(ok, "{log}");
    assert!(out.exists());
}
