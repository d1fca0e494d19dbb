#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-viz
//!
//! Rerun logging for r3m (rerun SDK =0.36.3): the one place that knows entity paths, timelines and
//! how each thing is shown. Callers hand it plain numbers and images; it computes nothing about
//! models or data.
//!
//! Entity paths (see [`paths`]):
//!
//! | path | what | timeline |
//! | --- | --- | --- |
//! | `train/loss`, `train/tcn`, `train/aligned`, `train/images_per_s`, `train/data_wait_pct` | scalars | `step` |
//! | `train/tuple/frame_0` … `frame_4` | the 5 frames of a sampled tuple after augmentation (start, end, s0, s1, s2) | `step` |
//! | `train/tuple/distances` | their 5×5 embedding distances (tensor) | `step` |
//! | `videos/<name>/frame` | the video's frames | `frame_index`, `timestamp` |
//! | `videos/<name>/distance_to_final` | ‖e_t − e_last‖ (the progress signal) | `frame_index`, `timestamp` |
//! | `videos/<name>/embedding/points`, `.../trajectory` | embedding trajectory in 3-D (PCA), coloured by time | static |
//! | `videos/<name>/distance_matrix` | T×T frame-distance matrix (tensor) | static |
//! | `eval/<encoder>/demos_<n>/seed_<s>/step_<k>/rollout_<r>/frame`, `.../action/0..3`, `.../success` | a behaviour-cloning rollout: what the policy saw, did, and whether the task is solved | `env_step` |

use std::path::PathBuf;

/// Entity paths and timelines.
pub mod paths {
    /// Training step timeline.
    pub const STEP: &str = "step";
    /// Video frame timeline.
    pub const FRAME_INDEX: &str = "frame_index";
    /// Video time timeline (seconds).
    pub const TIMESTAMP: &str = "timestamp";
    /// Training scalars.
    pub const TRAIN: &str = "train";
    /// Sampled tuples.
    pub const TUPLE: &str = "train/tuple";
    /// Per-video views.
    pub const VIDEOS: &str = "videos";
    /// Behaviour-cloning rollouts.
    pub const EVAL: &str = "eval";
    /// Environment step timeline (rollouts).
    pub const ENV_STEP: &str = "env_step";
}

/// Version of the rerun SDK this build links (the `.rrd` files it writes open in the viewer of the
/// same version, PyPI `rerun-sdk`).
pub fn sdk_version() -> String {
    rerun::external::re_build_info::CrateVersion::LOCAL.to_string()
}

/// Where a recording goes: `save:PATH.rrd`, `spawn` (a viewer process), `connect[:URL]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    /// Write an `.rrd` file.
    Save(PathBuf),
    /// Spawn a viewer.
    Spawn,
    /// Stream to a running viewer (default `rerun+http://127.0.0.1:9876/proxy`).
    Connect(Option<String>),
}

impl std::str::FromStr for Sink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("save:") {
            if p.is_empty() {
                return Err("save: needs a path, e.g. save:run.rrd".into());
            }
            return Ok(Sink::Save(PathBuf::from(p)));
        }
        match s {
            "spawn" => Ok(Sink::Spawn),
            "connect" => Ok(Sink::Connect(None)),
            _ => match s.strip_prefix("connect:") {
                Some(url) => Ok(Sink::Connect(Some(url.to_string()))),
                None => Err(format!("--rerun {s}: expected save:PATH.rrd, spawn, or connect[:URL]")),
            },
        }
    }
}

/// An open recording.
pub struct Viz {
    rec: rerun::RecordingStream,
    videos: std::cell::RefCell<Vec<String>>,
}

/// The default layout of a training recording: loss terms, alignment and throughput curves on
/// top; the sampled tuple's 5 frames and their distance matrix below.
pub fn train_blueprint() -> rerun::blueprint::Blueprint {
    use rerun::blueprint::{Blueprint, ContainerLike, Horizontal, Spatial2DView, TensorView, TimeSeriesView, Vertical};
    let frames: Vec<ContainerLike> = ["start", "end", "s0", "s1", "s2"]
        .iter()
        .enumerate()
        .map(|(i, n)| Spatial2DView::new(*n).with_origin(format!("{}/frame_{i}", paths::TUPLE)).into())
        .collect();
    Blueprint::new(Vertical::new([
        Horizontal::new([
            TimeSeriesView::new("loss").with_contents(["/train/loss", "/train/tcn"]).into(),
            TimeSeriesView::new("alignment accuracy").with_contents(["/train/aligned"]).into(),
            TimeSeriesView::new("images/s").with_contents(["/train/images_per_s"]).into(),
            TimeSeriesView::new("data wait %").with_contents(["/train/data_wait_pct"]).into(),
        ])
        .into(),
        Horizontal::new([
            Horizontal::new(frames).into(),
            TensorView::new("tuple distances").with_origin(format!("{}/distances", paths::TUPLE)).into(),
        ])
        .into(),
    ]))
}

/// The default layout of an `eval bc` recording: a tab per logged evaluation
/// (`<encoder>/demos_<n>/seed_<s>/step_<k>`), each with the logged rollouts' frames, actions and
/// success side by side.
pub fn eval_blueprint(evaluations: &[String], rollouts: usize) -> rerun::blueprint::Blueprint {
    use rerun::blueprint::{Blueprint, ContainerLike, Grid, Spatial2DView, Tabs, TimeSeriesView};
    let tabs: Vec<ContainerLike> = evaluations
        .iter()
        .map(|e| {
            let mut views: Vec<ContainerLike> = Vec::new();
            for r in 0..rollouts {
                let base = format!("{}/{e}/rollout_{r}", paths::EVAL);
                views.push(Spatial2DView::new(format!("{e} rollout {r}")).with_origin(format!("{base}/frame")).into());
                views.push(
                    TimeSeriesView::new(format!("rollout {r}: action, success"))
                        .with_contents([format!("{base}/action/**"), format!("{base}/success")])
                        .into(),
                );
            }
            Grid::new(views).into()
        })
        .collect();
    Blueprint::new(Tabs::new(tabs))
}

/// The default layout of a `view` recording: one tab per video with its frames, the 3-D
/// trajectory, the distance matrix and the distance-to-final curve.
pub fn view_blueprint(videos: &[String]) -> rerun::blueprint::Blueprint {
    use rerun::blueprint::{
        Blueprint, ContainerLike, Grid, Spatial2DView, Spatial3DView, Tabs, TensorView, TimeSeriesView,
    };
    let tabs: Vec<ContainerLike> = videos
        .iter()
        .map(|v| {
            let base = format!("{}/{v}", paths::VIDEOS);
            Grid::new([
                Spatial2DView::new(format!("{v}: frames")).with_origin(format!("{base}/frame")).into(),
                Spatial3DView::new(format!("{v}: embedding trajectory (PCA)"))
                    .with_origin(format!("{base}/embedding"))
                    .into(),
                TensorView::new(format!("{v}: frame distances")).with_origin(format!("{base}/distance_matrix")).into(),
                TimeSeriesView::new(format!("{v}: distance to final frame"))
                    .with_contents([format!("{base}/distance_to_final")])
                    .into(),
            ])
            .into()
        })
        .collect();
    Blueprint::new(Tabs::new(tabs))
}

fn err(e: impl std::fmt::Display) -> String {
    format!("rerun: {e}")
}

impl Viz {
    /// Opens a recording named `app` into `sink`.
    pub fn open(app: &'static str, sink: &Sink) -> Result<Viz, String> {
        let b = rerun::RecordingStreamBuilder::new(app);
        let rec = match sink {
            Sink::Save(p) => {
                if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
                }
                b.save(p.clone()).map_err(|e| format!("{}: {e}", p.display()))?
            }
            Sink::Spawn => b.spawn().map_err(err)?,
            Sink::Connect(None) => b.connect_grpc().map_err(err)?,
            Sink::Connect(Some(url)) => b.connect_grpc_opts(url.clone()).map_err(err)?,
        };
        Ok(Viz { rec, videos: Default::default() })
    }

    /// Sends `blueprint` as the recording's active and default layout.
    pub fn send_blueprint(&self, blueprint: rerun::blueprint::Blueprint) -> Result<(), String> {
        blueprint.send(&self.rec, rerun::blueprint::BlueprintActivation::default()).map_err(err)
    }

    /// One training step's numbers on the `step` timeline.
    pub fn train_step(
        &self,
        step: u64,
        loss: f64,
        tcn: f64,
        aligned: f64,
        images_per_s: f64,
        data_wait_pct: f64,
    ) -> Result<(), String> {
        self.rec.set_time_sequence(paths::STEP, step as i64);
        for (name, v) in [
            ("loss", loss),
            ("tcn", tcn),
            ("aligned", aligned),
            ("images_per_s", images_per_s),
            ("data_wait_pct", data_wait_pct),
        ] {
            self.rec.log(format!("{}/{name}", paths::TRAIN), &rerun::Scalars::single(v)).map_err(err)?;
        }
        Ok(())
    }

    /// A sampled tuple: its 5 frames (RGB u8, `w`×`h`) and their 5×5 embedding distances.
    pub fn train_tuple(&self, step: u64, frames: &[Vec<u8>], w: u32, h: u32, distances: &[f32]) -> Result<(), String> {
        self.rec.set_time_sequence(paths::STEP, step as i64);
        for (i, f) in frames.iter().enumerate() {
            self.rec
                .log(format!("{}/frame_{i}", paths::TUPLE), &rerun::Image::from_rgb24(f.clone(), [w, h]))
                .map_err(err)?;
        }
        let n = frames.len() as u64;
        let t = rerun::Tensor::new(rerun::datatypes::TensorData::new(
            vec![n, n],
            rerun::datatypes::TensorBuffer::F32(distances.to_vec().into()),
        ));
        self.rec.log(format!("{}/distances", paths::TUPLE), &t).map_err(err)
    }

    /// One video: frames on the `frame_index`/`timestamp` timelines, distance to the final frame
    /// as a curve, the 3-D trajectory (`points3`, one per frame) coloured from blue (start) to
    /// yellow (end), and the T×T distance matrix (row-major).
    // one entity per argument (frames, trajectory, distances): a struct would only rename them
    #[allow(clippy::too_many_arguments)]
    pub fn video(
        &self,
        name: &str,
        frames: &[(i64, f64, &[u8])],
        w: u32,
        h: u32,
        to_final: &[f32],
        points3: &[[f32; 3]],
        distances: &[f32],
    ) -> Result<(), String> {
        let clean = name.replace(['/', '\\', ' '], "_");
        let base = format!("{}/{clean}", paths::VIDEOS);
        self.videos.borrow_mut().push(clean);
        let n = points3.len().max(1);
        let colors: Vec<rerun::Color> = (0..points3.len())
            .map(|i| {
                let t = i as f32 / (n - 1).max(1) as f32;
                rerun::Color::from_rgb((40.0 + 215.0 * t) as u8, (60.0 + 160.0 * t) as u8, (200.0 * (1.0 - t)) as u8)
            })
            .collect();
        self.rec
            .log_static(
                format!("{base}/embedding/points"),
                &rerun::Points3D::new(points3.to_vec()).with_colors(colors.clone()),
            )
            .map_err(err)?;
        self.rec
            .log_static(format!("{base}/embedding/trajectory"), &rerun::LineStrips3D::new([points3.to_vec()]))
            .map_err(err)?;
        let t = frames.len() as u64;
        let m = rerun::Tensor::new(rerun::datatypes::TensorData::new(
            vec![t, t],
            rerun::datatypes::TensorBuffer::F32(distances.to_vec().into()),
        ));
        self.rec.log_static(format!("{base}/distance_matrix"), &m).map_err(err)?;
        for (k, (fi, ts, rgb)) in frames.iter().enumerate() {
            self.rec.set_time_sequence(paths::FRAME_INDEX, *fi);
            self.rec.set_duration_secs(paths::TIMESTAMP, *ts);
            self.rec.log(format!("{base}/frame"), &rerun::Image::from_rgb24(rgb.to_vec(), [w, h])).map_err(err)?;
            if let Some(d) = to_final.get(k) {
                self.rec
                    .log(format!("{base}/distance_to_final"), &rerun::Scalars::single(f64::from(*d)))
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// One step of a behaviour-cloning rollout under `prefix` (`<encoder>/demos_<n>/seed_<s>`).
    #[allow(clippy::too_many_arguments)]
    pub fn rollout_step(
        &self,
        prefix: &str,
        eval_step: u64,
        rollout: usize,
        t: u64,
        frame: &[u8],
        side: u32,
        action: &[f32],
        success: bool,
    ) -> Result<(), String> {
        let base = format!("{}/{prefix}/step_{eval_step}/rollout_{rollout}", paths::EVAL);
        self.rec.set_time_sequence(paths::ENV_STEP, t as i64);
        if frame.len() == (side * side * 3) as usize {
            self.rec
                .log(format!("{base}/frame"), &rerun::Image::from_rgb24(frame.to_vec(), [side, side]))
                .map_err(err)?;
        }
        for (i, a) in action.iter().enumerate() {
            self.rec.log(format!("{base}/action/{i}"), &rerun::Scalars::single(f64::from(*a))).map_err(err)?;
        }
        self.rec.log(format!("{base}/success"), &rerun::Scalars::single(if success { 1.0 } else { 0.0 })).map_err(err)
    }

    /// Sends the `view` layout when videos were logged, and flushes everything to the sink.
    pub fn finish(self) -> Result<(), String> {
        let videos = self.videos.borrow().clone();
        if !videos.is_empty() {
            self.send_blueprint(view_blueprint(&videos))?;
        }
        self.rec.flush_blocking().map_err(err)
    }
}

/// Logs one scalar into an in-memory recording and checks that it arrived: proof that the SDK
/// links and works, for `r3m doctor`. Returns the number of bytes the recording encoded to.
pub fn self_check() -> Result<usize, String> {
    let (rec, storage) = rerun::RecordingStreamBuilder::new("r3m_doctor")
        .memory()
        .map_err(|e| format!("rerun: cannot create an in-memory recording: {e}"))?;
    rec.set_time_sequence("step", 0);
    rec.log("doctor/scalar", &rerun::Scalars::single(1.0)).map_err(|e| format!("rerun: log failed: {e}"))?;
    rec.flush_blocking().map_err(|e| format!("rerun: flush failed: {e}"))?;
    let bytes = rerun::sink::MemorySinkStorage::concat_memory_sinks_as_bytes(&[&storage])
        .map_err(|e| format!("rerun: encoding the recording failed: {e}"))?;
    if bytes.is_empty() {
        return Err("rerun: the recording is empty after logging one scalar".into());
    }
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse() {
        assert_eq!("save:a/b.rrd".parse::<Sink>().unwrap(), Sink::Save("a/b.rrd".into()));
        assert_eq!("spawn".parse::<Sink>().unwrap(), Sink::Spawn);
        assert_eq!("connect".parse::<Sink>().unwrap(), Sink::Connect(None));
        assert!("save:".parse::<Sink>().is_err());
        assert!("file.rrd".parse::<Sink>().unwrap_err().contains("save:PATH"));
    }
}
