//! Demonstrations from a LeRobot dataset: per episode of one task, the camera frames (decoded from
//! the dataset's videos), `observation.state` (proprio) and `action` rows, aligned by frame.

use std::path::Path;

use anyhow::{bail, Context, Result};
use r3m_data::{lerobot, table, Clip, ProbeCache};
use r3m_video::{DecodeOptions, VideoReader};

/// One demonstration.
#[derive(Debug, Clone)]
pub struct Demo {
    /// `episode_index`.
    pub episode: i64,
    /// Layout seed it was recorded on, when the dataset says (Meta-World generator).
    pub layout_seed: Option<i64>,
    /// Frames, RGB u8 `[h, w, 3]` each: the dataset's native size as loaded, the encoder's input
    /// after [`crate::prepare_demos`].
    pub frames: Vec<Vec<u8>>,
    /// Whether `frames` went through [`crate::FramePrep`].
    pub prepared: bool,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Proprioception per frame.
    pub proprio: Vec<Vec<f32>>,
    /// Action per frame.
    pub actions: Vec<Vec<f32>>,
    /// The simulator's full observation per frame (`observation.environment_state`), when the
    /// dataset has it.
    pub state: Option<Vec<Vec<f32>>>,
}

/// What the dataset says about how its frames were made (the generator's `metaworld` block).
#[derive(Debug, Clone)]
pub struct RenderInfo {
    /// Camera.
    pub camera: String,
    /// Square image size.
    pub size: u32,
    /// Evaluation layouts start here.
    pub eval_seed_min: u64,
}

/// Reads the `metaworld` block of `meta/info.json`, if the dataset came from our generator.
pub fn render_info(root: &Path) -> Option<RenderInfo> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("meta/info.json")).ok()?).ok()?;
    let m = &v["metaworld"];
    Some(RenderInfo {
        camera: m["camera"].as_str()?.to_string(),
        size: m["image_size"].as_u64()? as u32,
        eval_seed_min: m["eval_layout_seed_min"].as_u64().unwrap_or(1_000_000),
    })
}

/// Per episode: (task name, layout seed), from `episodes.jsonl` (v2) or the episodes Parquet (v3).
/// Per episode: index, task text, task index.
type EpisodeTasks = Vec<(i64, Option<String>, Option<i64>)>;

fn episode_tasks(root: &Path, info: &lerobot::Info) -> Result<EpisodeTasks> {
    let mut out = Vec::new();
    if info.is_v3() {
        let mut files = Vec::new();
        lerobot::parquet_files(&root.join("meta/episodes"), &mut files);
        for f in files {
            for b in table::read_parquet(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))? {
                let idx = table::i64s(&b, "episode_index").map_err(anyhow::Error::msg)?.context("no episode_index")?;
                let task = table::strings(&b, "metaworld_task").map_err(anyhow::Error::msg)?;
                let seed = table::i64s(&b, "layout_seed").map_err(anyhow::Error::msg)?;
                for r in 0..b.num_rows() {
                    out.push((
                        idx[r].unwrap_or(-1),
                        task.as_ref().and_then(|t| t[r].clone()),
                        seed.as_ref().and_then(|s| s[r]),
                    ));
                }
            }
        }
    } else {
        let p = root.join("meta/episodes.jsonl");
        let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).with_context(|| p.display().to_string())?;
            out.push((
                v["episode_index"].as_i64().unwrap_or(-1),
                v["metaworld_task"].as_str().map(String::from),
                v["layout_seed"].as_i64(),
            ));
        }
    }
    Ok(out)
}

/// Per-frame rows of one episode.
type Rows = (Vec<Vec<f32>>, Vec<Vec<f32>>, Option<Vec<Vec<f32>>>);

/// Per-frame rows of `episode`: (proprio, action, full state if present) from the data Parquet files.
fn episode_rows(root: &Path, info_json: &serde_json::Value, v3: bool, episode: i64) -> Result<Rows> {
    let files = if v3 {
        let mut f = Vec::new();
        lerobot::parquet_files(&root.join("data"), &mut f);
        f
    } else {
        let tpl = info_json["data_path"]
            .as_str()
            .unwrap_or("data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet");
        let chunk = episode / info_json["chunks_size"].as_i64().unwrap_or(1000).max(1);
        let rel = lerobot::fill_template(
            tpl,
            &[("episode_chunk", chunk.to_string()), ("episode_index", episode.to_string())],
        )
        .map_err(anyhow::Error::msg)?;
        vec![root.join(rel)]
    };
    let (mut state, mut action) = (Vec::new(), Vec::new());
    let mut env_state: Option<Vec<Vec<f32>>> = Some(Vec::new());
    for f in files {
        for b in table::read_parquet(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))? {
            let ep = table::i64s(&b, "episode_index").map_err(anyhow::Error::msg)?;
            let s = table::f32_lists(&b, "observation.state")
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                .with_context(|| format!("{}: no observation.state", f.display()))?;
            let a = table::f32_lists(&b, "action")
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                .with_context(|| format!("{}: no action", f.display()))?;
            let full = table::f32_lists(&b, "observation.environment_state")
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            if full.is_none() {
                env_state = None;
            }
            for r in 0..b.num_rows() {
                if ep.as_ref().is_some_and(|e| e[r] != Some(episode)) {
                    continue;
                }
                state.push(s[r].clone());
                action.push(a[r].clone());
                if let (Some(rows), Some(full)) = (env_state.as_mut(), full.as_ref()) {
                    rows.push(full[r].clone());
                }
            }
        }
    }
    Ok((state, action, env_state))
}

/// The demonstrations of `task` (Meta-World name; `None`: every episode) in the LeRobot dataset at
/// `root`, camera `camera`, in episode order. Frames are decoded at native size.
pub fn load_demos(root: &Path, task: Option<&str>, camera: Option<&str>) -> Result<Vec<Demo>> {
    let info = lerobot::read_info(root)?;
    let info_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("meta/info.json"))?)?;
    let tasks = episode_tasks(root, &info)?;
    let wanted: Vec<(i64, Option<i64>)> =
        tasks.iter().filter(|(_, t, _)| task.is_none() || t.as_deref() == task).map(|(e, _, s)| (*e, *s)).collect();
    if wanted.is_empty() {
        let mut names: Vec<&str> = tasks.iter().filter_map(|(_, t, _)| t.as_deref()).collect();
        names.sort();
        names.dedup();
        bail!("{}: no episodes of task {} (tasks here: {})", root.display(), task.unwrap_or("?"), names.join(", "));
    }
    let ds = r3m_data::scan_lerobot(root, camera, &mut ProbeCache::default())?;
    let mut out = Vec::new();
    for (ep, seed) in wanted {
        let clip: &Clip = ds
            .clips
            .iter()
            .find(|c| c.episode == Some(ep))
            .with_context(|| format!("{}: episode {ep} has no usable video", root.display()))?;
        let (proprio, actions, state) = episode_rows(root, &info_json, info.is_v3(), ep)?;
        let mut reader = VideoReader::open_probed(clip.video.clone(), DecodeOptions::default())?;
        let idx: Vec<usize> = (clip.start..clip.end).collect();
        let frames = reader.read_frames(&idx)?;
        if frames.len() != proprio.len() || proprio.len() != actions.len() {
            bail!(
                "{}: episode {ep} has {} video frames but {} state and {} action rows",
                root.display(),
                frames.len(),
                proprio.len(),
                actions.len()
            );
        }
        let (width, height) = (frames[0].width, frames[0].height);
        let frames = frames.into_iter().map(|f| f.data).collect();
        out.push(Demo {
            episode: ep,
            layout_seed: seed,
            frames,
            prepared: false,
            width,
            height,
            proprio,
            actions,
            state,
        });
    }
    Ok(out)
}

/// The first `demos + heldout` demonstrations of Meta-World task `task` from camera `camera` in
/// the LeRobot dataset at `root`, their frames prepared for an encoder of input side `frames` when
/// given ([`crate::prepare_demos`]). Too few is an error that says how to make more.
pub fn load_task_demos(
    root: &Path,
    task: &str,
    camera: &str,
    demos: usize,
    heldout: usize,
    frames: Option<u32>,
) -> Result<Vec<Demo>> {
    let mut all = load_demos(root, Some(task), Some(&format!("observation.images.{camera}")))?;
    if all.len() < demos {
        anyhow::bail!(
            "{}: {} demonstrations of {task}, --demos asks for {demos} (make more with python/r3m_tools/metaworld_demos.py --tasks {task} --episodes {})",
            root.display(),
            all.len(),
            demos + heldout
        );
    }
    all.truncate(demos + heldout);
    if let Some(size) = frames {
        crate::prepare_demos(&mut all, size)?;
    }
    Ok(all)
}
