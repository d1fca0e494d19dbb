//! Dataset sources on files made here: LeRobot v2.1 (one mp4 per episode) and v3.0 (episodes in a
//! shared mp4, located by `meta/episodes/*.parquet` timestamps), camera selection, CSV and Parquet
//! manifests, and the `r3m train` flags that take them. Parquet fixtures are written by pyarrow
//! (another reader/writer than ours).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::Command;

use r3m_data::{open_source, scan_lerobot, scan_manifest, ProbeCache};
use r3m_suite::{make_video, r3m_bin};

const FPS: u32 = 10;
const LENGTHS: [usize; 3] = [20, 25, 15];

fn python(code: &str) {
    let out = Command::new("python3").args(["-c", code]).output().expect("python3 from the project venv");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn info_json(version: &str, cameras: &[&str], video_path: &str) -> String {
    let feats: Vec<String> = cameras
        .iter()
        .map(|c| format!("\"observation.images.{c}\": {{\"dtype\": \"video\", \"shape\": [48, 64, 3]}}"))
        .collect();
    format!(
        "{{\"codebase_version\": \"{version}\", \"fps\": {FPS}, \"chunks_size\": 1000, \"video_path\": \"{video_path}\", \
         \"features\": {{{}, \"action\": {{\"dtype\": \"float32\", \"shape\": [4]}}}}}}",
        feats.join(", ")
    )
}

fn lerobot_v21(root: &Path, cameras: &[&str]) {
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let tpl = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4";
    std::fs::write(root.join("meta/info.json"), info_json("v2.1", cameras, tpl)).unwrap();
    let mut eps = String::new();
    for (i, &n) in LENGTHS.iter().enumerate() {
        eps.push_str(&format!("{{\"episode_index\": {i}, \"tasks\": [\"task {i}\"], \"length\": {n}}}\n"));
        for c in cameras {
            let dir = root.join(format!("videos/chunk-000/observation.images.{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            make_video(&dir.join(format!("episode_{i:06}.mp4")), "64x48", FPS, n, &["-c:v", "libx264", "-g", "5"]);
        }
    }
    std::fs::write(root.join("meta/episodes.jsonl"), eps).unwrap();
}

fn lerobot_v30(root: &Path) {
    let total: usize = LENGTHS.iter().sum();
    let dir = root.join("videos/observation.images.top/chunk-000");
    std::fs::create_dir_all(&dir).unwrap();
    make_video(&dir.join("file-000.mp4"), "64x48", FPS, total, &["-c:v", "libx264", "-g", "5"]);
    std::fs::create_dir_all(root.join("meta/episodes/chunk-000")).unwrap();
    let tpl = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
    std::fs::write(root.join("meta/info.json"), info_json("v3.0", &["top"], tpl)).unwrap();
    let lengths = format!("{LENGTHS:?}");
    python(&format!(
        r#"
import pyarrow as pa, pyarrow.parquet as pq
L = {lengths}; fps = {FPS}
starts = [sum(L[:i]) for i in range(len(L))]
k = "videos/observation.images.top/"
pq.write_table(pa.table({{
    "episode_index": pa.array(range(len(L)), pa.int64()),
    "tasks": [["task %d" % i] for i in range(len(L))],
    "length": pa.array(L, pa.int64()),
    k + "chunk_index": [0] * len(L), k + "file_index": [0] * len(L),
    k + "from_timestamp": [s / fps for s in starts],
    k + "to_timestamp": [(s + n) / fps for s, n in zip(starts, L)],
}}), "{}")
"#,
        root.join("meta/episodes/chunk-000/file-000.parquet").display()
    ));
}

#[test]
fn lerobot_v21_and_v30_give_one_clip_per_episode() {
    let d = tempfile::tempdir().unwrap();
    let v21 = d.path().join("v21");
    lerobot_v21(&v21, &["top", "wrist"]);
    // two cameras: the camera must be named, and the error lists them
    let e = scan_lerobot(&v21, None, &mut ProbeCache::default()).unwrap_err().to_string();
    assert!(
        e.contains("--camera") && e.contains("observation.images.top") && e.contains("observation.images.wrist"),
        "{e}"
    );
    let e = scan_lerobot(&v21, Some("side"), &mut ProbeCache::default()).unwrap_err().to_string();
    assert!(e.contains("no camera 'side'"), "{e}");
    let ds = scan_lerobot(&v21, Some("wrist"), &mut ProbeCache::default()).unwrap();
    assert_eq!(ds.clips.len(), 3);
    for (i, c) in ds.clips.iter().enumerate() {
        assert_eq!((c.episode, c.start, c.end), (Some(i as i64), 0, LENGTHS[i]));
        assert_eq!(c.text.as_deref(), Some(format!("task {i}").as_str()));
        assert!(c.video.path.to_string_lossy().contains("observation.images.wrist"));
    }
    // a missing episode video is skipped and counted
    std::fs::remove_file(v21.join("videos/chunk-000/observation.images.top/episode_000001.mp4")).unwrap();
    let ds = open_source(&v21, Some("observation.images.top"), &mut ProbeCache::default()).unwrap();
    assert_eq!(ds.clips.len(), 2);
    assert_eq!(ds.skipped.len(), 1);
    assert!(ds.skipped[0].reason.contains("episode 1"), "{:?}", ds.skipped);

    let v30 = d.path().join("v30");
    lerobot_v30(&v30);
    let ds = open_source(&v30, None, &mut ProbeCache::default()).unwrap();
    assert_eq!(ds.clips.len(), 3);
    let mut start = 0;
    for (i, c) in ds.clips.iter().enumerate() {
        assert_eq!((c.episode, c.start, c.end), (Some(i as i64), start, start + LENGTHS[i]), "episode {i}");
        assert_eq!(c.text.as_deref(), Some(format!("task {i}").as_str()));
        start += LENGTHS[i];
    }
    assert!(std::sync::Arc::ptr_eq(&ds.clips[0].video, &ds.clips[2].video), "the shared file is probed once");
}

#[test]
fn manifests_csv_and_parquet() {
    let d = tempfile::tempdir().unwrap();
    let vids = d.path().join("vids");
    std::fs::create_dir_all(&vids).unwrap();
    make_video(&vids.join("a.mp4"), "64x48", FPS, 40, &["-c:v", "libx264"]);
    make_video(&vids.join("b.webm"), "64x48", FPS, 30, &["-c:v", "libvpx-vp9", "-deadline", "realtime"]);
    let csv = d.path().join("m.csv");
    std::fs::write(
        &csv,
        "path,start,end,text\nvids/a.mp4,1.0,2.5,\"pick up the cup, then place it\"\nvids/b.webm,,,\nvids/a.mp4,3.8,,too short\nvids/missing.mp4,,,\n",
    )
    .unwrap();
    let ds = scan_manifest(&csv, &mut ProbeCache::default()).unwrap().for_tuples().unwrap();
    assert_eq!(ds.clips.len(), 2, "{:?}", ds.skipped);
    assert_eq!((ds.clips[0].start, ds.clips[0].end), (10, 25));
    assert_eq!(ds.clips[0].text.as_deref(), Some("pick up the cup, then place it"));
    assert_eq!((ds.clips[1].start, ds.clips[1].end, ds.clips[1].text.as_deref()), (0, 30, None));
    assert_eq!(ds.skipped.len(), 2);
    assert!(ds.skipped.iter().any(|s| s.path.ends_with("a.mp4") && s.reason.contains("too short")), "{:?}", ds.skipped);
    assert!(
        ds.skipped.iter().any(|s| s.reason.contains("row 5") && s.path.ends_with("missing.mp4")),
        "{:?}",
        ds.skipped
    );

    let pq = d.path().join("m.parquet");
    python(&format!(
        r#"
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({{"path": ["vids/a.mp4", "vids/b.webm"], "start_frame": pa.array([5, None], pa.int32()),
    "end_frame": pa.array([30, 12], pa.int32()), "text": ["x", None]}}), "{}")
"#,
        pq.display()
    ));
    let ds = open_source(&pq, None, &mut ProbeCache::default()).unwrap();
    let spans: Vec<_> = ds.clips.iter().map(|c| (c.start, c.end, c.text.clone())).collect();
    assert_eq!(spans, vec![(5, 30, Some("x".into())), (0, 12, None)]);
}

#[test]
fn train_takes_lerobot_and_manifest_inputs() {
    let d = tempfile::tempdir().unwrap();
    let v30 = d.path().join("v30");
    lerobot_v30(&v30);
    let run = d.path().join("run");
    let out = Command::new(r3m_bin())
        .args(["train", "--lerobot"])
        .arg(&v30)
        .args(["--camera", "top", "--out"])
        .arg(&run)
        .args(["--steps", "2", "--batch", "3", "--size", "32", "--workers", "1", "--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 clips, 60 frames"), "{err}");
    assert!(run.join("checkpoints/step-00000002/model.safetensors").exists());
    // a manifest that names nothing usable is refused, naming the file and the rows
    let m = d.path().join("bad.csv");
    std::fs::write(&m, "path\nnope.mp4\n").unwrap();
    let out = Command::new(r3m_bin())
        .args(["train", "--manifest"])
        .arg(&m)
        .arg("--out")
        .arg(d.path().join("r2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.csv") && err.contains("no usable videos") && err.contains("nope.mp4"), "{err}");
}

/// `--videos` takes single files and several paths, as a new user first tries: `r3m embed` on one
/// clip, `r3m train` on files and a folder together (a glob the shell expanded); a missing path is
/// refused by name.
#[test]
fn videos_takes_files_and_several_paths() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("videos");
    std::fs::create_dir_all(v.join("more")).unwrap();
    for (i, n) in LENGTHS.iter().enumerate() {
        make_video(&v.join(format!("c{i}.mp4")), "64x48", FPS, *n, &["-c:v", "libx264", "-g", "5"]);
    }
    make_video(&v.join("more/d.mp4"), "64x48", FPS, 12, &["-c:v", "libx264", "-g", "5"]);
    // one file: a checkpoint from a 1-step run embeds it
    let run = d.path().join("run");
    let out = Command::new(r3m_bin())
        .args(["train", "--videos"])
        .arg(v.join("c0.mp4"))
        .arg(v.join("c1.mp4"))
        .arg(v.join("more"))
        .arg("--out")
        .arg(&run)
        .args(["--steps", "1", "--batch", "3", "--size", "32", "--workers", "1", "--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 clips, 57 frames"), "two files and a folder's one video: {err}");
    let emb = d.path().join("one.parquet");
    let out = Command::new(r3m_bin())
        .args(["embed", "--checkpoint"])
        .arg(&run)
        .arg("--videos")
        .arg(v.join("c2.mp4"))
        .arg("--out")
        .arg(&emb)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e = r3m_export::read_embeddings(&emb).unwrap();
    assert_eq!(e.frame_index.len(), LENGTHS[2]);
    assert!(e.video.iter().all(|n| n == "c2.mp4"), "{:?}", &e.video[..1]);
    // a path that does not exist is named
    let out = Command::new(r3m_bin())
        .args(["embed", "--checkpoint"])
        .arg(&run)
        .arg("--videos")
        .arg(v.join("c0.mp4"))
        .arg(v.join("missing.mp4"))
        .arg("--out")
        .arg(d.path().join("x.parquet"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing.mp4"), "{err}");
}
