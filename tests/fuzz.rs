//! Fuzzed inputs: what r3m reads from users, mutated at random from real seeds (a manifest, a
//! LeRobot dataset's `meta/` files, a checkpoint's `config.json`, `budget.json`, an evaluation's
//! cell and results files, an embeddings Parquet file with its metadata, and small real videos),
//! each parsed by the code r3m reads it with. The bar: no panic, no call over 10 s, and the
//! process's memory bounded. A crash is saved under `target/fuzz-crashes/` and fails the test with
//! the target and iteration; the input then becomes a regression test.
//!
//! `R3M_FUZZ_ITERS` sets the iterations per target (default 150 in the suite; more by hand, e.g.
//! `R3M_FUZZ_ITERS=5000 cargo test --release --test fuzz -- --nocapture`).
#![allow(clippy::unwrap_used)] // tests: a failure is a failed test

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use r3m_suite::{make_video, r3m_bin};
use tch::{nn, Device};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn iters() -> usize {
    std::env::var("R3M_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(150)
}

/// r3m's generator, with `below` as `next % n` (0 for an empty range).
struct Rng(r3m_data::Rng);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(r3m_data::Rng::new(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that break parsers: boundaries, huge numbers, odd encodings, structure characters.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"18446744073709551615",
    b"9999999999999999999999",
    b"1e308",
    b"NaN",
    b"null",
    b"\"\"",
    b"[]",
    b"{}",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\x00",
    b"\n",
    b",",
    b"\"",
    b"../../../../etc/passwd",
];

/// One to four mutations of `seed`: bit flips, random bytes, deletions, insertions, duplicated
/// ranges, truncation, interesting values; `window` limits where (a video's header).
fn mutate(seed: &[u8], rng: &mut Rng, window: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let span = v.len().min(window).max(1);
        let at = rng.below(span);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.next() as u8;
            }
            2 if !v.is_empty() => {
                let n = 1 + rng.below(16.min(v.len()));
                let i = at.min(v.len() - n);
                v.drain(i..i + n);
            }
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let i = at.min(v.len());
                v.splice(i..i, bytes);
            }
            4 if !v.is_empty() => {
                let n = 1 + rng.below(64.min(v.len()));
                let i = at.min(v.len() - n);
                let chunk = v[i..i + n].to_vec();
                v.splice(i..i, chunk);
            }
            5 => v.truncate(at),
            _ => {
                let val = INTERESTING[rng.below(INTERESTING.len())];
                let i = at.min(v.len());
                let n = rng.below(8).min(v.len() - i);
                v.splice(i..i + n, val.iter().copied());
            }
        }
    }
    v
}

/// Runs `parse` (true: the input was accepted) on `iters()` mutations of `seed` written to `file`:
/// no panic, each call under 10 s. The seed itself must be accepted (so the harness reaches the
/// parser). Returns the inputs tried and how many were accepted.
fn fuzz(
    name: &str,
    file: &Path,
    seed: &[u8],
    window: usize,
    salt: u64,
    parse: impl Fn(&Path) -> bool,
) -> (usize, usize) {
    let mut rng = Rng::new(0xF022 ^ salt);
    std::fs::write(file, seed).unwrap();
    assert!(parse(file), "{name}: the unmutated seed is rejected");
    let n = iters();
    let mut accepted = 0;
    for i in 0..n {
        let input = mutate(seed, &mut rng, window);
        std::fs::write(file, &input).unwrap();
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| parse(file)));
        let took = t0.elapsed();
        accepted += usize::from(matches!(r, Ok(true)));
        let why = r.as_ref().err().map(|e| r3m_data::table::panic_message(e.as_ref())).unwrap_or_default();
        if r.is_err() || took > Duration::from_secs(10) {
            let dir = root().join("target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let saved = dir.join(format!("{name}-{i}"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "{name}: iteration {i} {} (input saved to {})",
                if r.is_err() { format!("panicked: {why}") } else { "took over 10 s".to_string() },
                saved.display()
            );
        }
    }
    (n, accepted)
}

fn max_rss_mb() -> f64 {
    // SAFETY: getrusage fills the struct we own
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

#[test]
fn user_inputs_survive_mutation() {
    let d = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    // quiet the default hook while panics are caught (a real one still fails the test)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // 1. manifests: CSV (columns path, start, end), read as `--manifest` reads them
        let m = d.path().join("m");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::copy(root().join("datasets/synthetic/clip0.mp4"), m.join("clip0.mp4")).unwrap();
        let csv = b"path,start,end,text\nclip0.mp4,0.0,1.5,open the drawer\nclip0.mp4,1.0,,\"a, quoted\"\n";
        tried.push((
            "manifest.csv",
            fuzz("manifest-csv", &m.join("manifest.csv"), csv, usize::MAX, 1, |p| {
                r3m_data::manifest::read_manifest(p).is_ok()
            }),
        ));

        // ... and a Parquet manifest (written by pyarrow, as users make them)
        let pm = m.join("manifest.parquet");
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, pyarrow as pa, pyarrow.parquet as pq; pq.write_table(pa.table({'path': ['clip0.mp4', \
                 'clip0.mp4'], 'start': [0.0, 1.0], 'end': [1.5, None], 'text': ['open the drawer', None]}), sys.argv[1])",
            ])
            .arg(&pm)
            .output()
            .unwrap();
        assert!(o.status.success(), "pyarrow: {}", String::from_utf8_lossy(&o.stderr));
        let pq_seed = std::fs::read(&pm).unwrap();
        tried.push((
            "manifest.parquet",
            fuzz("manifest-parquet", &pm, &pq_seed, usize::MAX, 9, |p| r3m_data::manifest::read_manifest(p).is_ok()),
        ));

        // 2. a LeRobot dataset's meta/info.json and meta/episodes.jsonl, opened as --lerobot opens
        // them (the data and videos are the shipped sample's)
        let lr = d.path().join("lerobot");
        std::fs::create_dir_all(lr.join("meta")).unwrap();
        for sub in ["data", "videos"] {
            std::os::unix::fs::symlink(root().join("datasets/metaworld").join(sub), lr.join(sub)).unwrap();
        }
        for f in ["info.json", "episodes.jsonl", "tasks.jsonl", "episodes_stats.jsonl"] {
            std::fs::copy(root().join("datasets/metaworld/meta").join(f), lr.join("meta").join(f)).unwrap();
        }
        let open = |root: &Path| {
            let Ok(info) = r3m_data::lerobot::read_info(root) else { return false };
            let Ok(key) = r3m_data::lerobot::resolve_camera(root, &info, None) else { return false };
            r3m_data::lerobot::episodes(root, &info, &key).is_ok()
        };
        let info = std::fs::read(root().join("datasets/metaworld/meta/info.json")).unwrap();
        tried.push((
            "meta/info.json",
            fuzz("lerobot-info", &lr.join("meta/info.json"), &info, usize::MAX, 2, |_| open(&lr)),
        ));
        std::fs::write(lr.join("meta/info.json"), &info).unwrap();
        let eps = std::fs::read(root().join("datasets/metaworld/meta/episodes.jsonl")).unwrap();
        tried.push((
            "meta/episodes.jsonl",
            fuzz("lerobot-episodes", &lr.join("meta/episodes.jsonl"), &eps, usize::MAX, 3, |_| open(&lr)),
        ));

        // 3. a checkpoint's config.json, as embed / eval bc / view read it
        let ck = d.path().join("ck");
        let vs = nn::VarStore::new(Device::Cpu);
        let _enc = r3m_model::Encoder::new(&vs.root(), r3m_model::Arch::Shallow);
        let cfg = serde_json::json!({"format": "r3m-checkpoint-2", "arch": "shallow", "size": 64, "step": 3,
            "proj_dim": null, "precision": "fp32", "channels_last": false});
        r3m_model::checkpoint::save(&ck, &vs, &[], &cfg).unwrap();
        let text = std::fs::read(ck.join("config.json")).unwrap();
        tried.push((
            "config.json",
            fuzz("checkpoint-config", &ck.join("config.json"), &text, usize::MAX, 4, |_| {
                r3m_model::checkpoint::EncoderConfig::read(&ck).is_ok_and(|c| c.architecture().is_ok())
            }),
        ));
        std::fs::write(ck.join("config.json"), &text).unwrap();

        // 4. budget.json (read on resume), from a published run
        let budget = std::fs::read(root().join("docs/results/shallow/pretrain/heldout-budget.json")).unwrap();
        let run = d.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        tried.push((
            "budget.json",
            fuzz("budget", &run.join("budget.json"), &budget, usize::MAX, 5, |_| {
                r3m_train::Budget::read(&run).is_some()
            }),
        ));

        // 5. an evaluation's cell (read on --resume) and results.json (read by `r3m eval summary`)
        let cell =
            std::fs::read(root().join("docs/results/shallow-ft/push-v3/cells/tcn-shallow-ft.demos-10.seed-0.json"))
                .unwrap();
        tried.push((
            "eval cell",
            fuzz("eval-cell", &d.path().join("cell.json"), &cell, usize::MAX, 6, |p| {
                r3m_bc::report::read_cell(p).is_ok()
            }),
        ));
        let ev = d.path().join("eval");
        std::fs::create_dir_all(&ev).unwrap();
        let results = std::fs::read(root().join("docs/results/scratch/push-v3/results.json")).unwrap();
        tried.push((
            "results.json",
            fuzz("eval-results", &ev.join("results.json"), &results, usize::MAX, 7, |_| {
                r3m_bc::report::resummarise(&ev).is_ok()
            }),
        ));

        // 6. an embeddings Parquet file and its metadata, as `r3m view --embeddings` reads them
        let emb = d.path().join("emb.parquet");
        let o = Command::new(r3m_bin())
            .args(["embed", "--checkpoint"])
            .arg(&ck)
            .arg("--videos")
            .arg(m.join("clip0.mp4"))
            .arg("--out")
            .arg(&emb)
            .args(["--every", "10", "--device", "cpu", "-q"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pq = std::fs::read(&emb).unwrap();
        tried.push((
            "embeddings Parquet",
            fuzz("embeddings-parquet", &d.path().join("fuzzed.parquet"), &pq, usize::MAX, 8, |p| {
                let meta_ok = r3m_export::read_embeddings_metadata(p)
                    .is_ok_and(|(meta, _)| r3m_export::EmbedMeta::from_metadata(p, &meta, None).is_ok());
                r3m_export::read_embeddings(p).is_ok() && meta_ok
            }),
        ));

        // 7. videos: mutated headers (the first 4 KiB) and bodies of small real files, probed and
        // decoded as every subcommand does
        let webm = d.path().join("seed.webm");
        make_video(&webm, "64x48", 10, 12, &["-c:v", "libvpx-vp9", "-deadline", "realtime"]);
        let mkv = d.path().join("seed.mkv");
        make_video(&mkv, "64x48", 10, 12, &["-c:v", "libx264", "-g", "4"]);
        let decode = |p: &Path| {
            let Ok(info) = r3m_video::probe(p) else { return false };
            let n = info.frames.count.min(8);
            let Ok(mut r) =
                r3m_video::VideoReader::open_probed(std::sync::Arc::new(info), r3m_video::DecodeOptions::default())
            else {
                return false;
            };
            r.read_frames_lossy(&(0..n).collect::<Vec<_>>()).is_ok_and(|f| !f.is_empty())
        };
        for (i, (name, seed, ext)) in [
            ("mp4 header", root().join("datasets/synthetic/clip0.mp4"), "mp4"),
            ("webm header", webm.clone(), "webm"),
            ("mkv header", mkv.clone(), "mkv"),
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = std::fs::read(&seed).unwrap();
            let file = d.path().join(format!("fuzzed.{ext}"));
            tried.push((name, fuzz(name, &file, &bytes, 4096, 10 + i as u64, decode)));
            let body = format!("{ext} body");
            tried.push(("video body", fuzz(&body, &file, &bytes, usize::MAX, 20 + i as u64, decode)));
        }
    }));
    std::panic::set_hook(hook);
    if let Err(e) = result {
        panic!("{}", r3m_data::table::panic_message(e.as_ref()));
    }
    let rss = max_rss_mb();
    let total: usize = tried.iter().map(|(_, (n, _))| n).sum();
    eprintln!(
        "fuzzed {total} inputs over {} targets (target: tried/accepted: {}), no panic, none over 10 s, peak RSS {rss:.0} MB",
        tried.len(),
        tried.iter().map(|(t, (n, a))| format!("{t} {n}/{a}")).collect::<Vec<_>>().join(", ")
    );
    assert!(rss < 4096.0, "memory grew to {rss:.0} MB");
}

/// Inputs the fuzzer found crashing, kept as regressions: Parquet files whose embedded Arrow
/// schema made the Arrow reader panic ("FloatingPoint type with precision of <UNKNOWN 130> not
/// supported"); now each is an error naming the file.
#[test]
fn corrupt_parquet_files_the_fuzzer_found_are_errors() {
    let dir = root().join("tests/refs/fuzz");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        n += 1;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(|| {
            (
                r3m_export::read_embeddings(&p).err().map(|e| e.to_string()),
                r3m_export::read_embeddings_metadata(&p).is_err(),
            )
        });
        std::panic::set_hook(hook);
        let (err, _) = r.unwrap_or_else(|_| panic!("{} still panics", p.display()));
        let err = err.unwrap_or_else(|| panic!("{} read as a valid file", p.display()));
        assert!(err.contains(&p.display().to_string()), "{err}");
        // r3m-data's reader (manifests, LeRobot tables) takes the same files without panicking
        assert!(std::panic::catch_unwind(|| r3m_data::table::read_parquet(&p)).is_ok_and(|r| r.is_err()));
    }
    assert!(n >= 3, "the regression inputs are missing from {}", dir.display());
}
