//! The input options every data-reading command shares: `--videos`, `--lerobot`, `--manifest`,
//! `--camera`, and opening them with the probe cache.

use std::path::PathBuf;

use anyhow::Result;

/// Where frames come from (exactly one of the three).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct SourceArgs {
    /// Video files and folders of videos (folders are searched recursively; each file is one clip):
    /// one or several, e.g. `--videos clip.mp4`, `--videos a.mp4 b.mp4 more/` or a glob the shell
    /// expands. A single LeRobot root or manifest given here is recognised too. Unreadable or
    /// too-short files are skipped and counted.
    #[arg(long, value_name = "PATH", num_args = 1.., group = "input")]
    pub videos: Vec<PathBuf>,
    /// LeRobot dataset root (v2.0/v2.1: one mp4 per episode; v3.0: episodes in shared mp4s):
    /// one clip per episode.
    #[arg(long, value_name = "ROOT", group = "input")]
    pub lerobot: Option<PathBuf>,
    /// Manifest (.csv or .parquet): columns path, optional start/end (seconds) or
    /// start_frame/end_frame, optional text; one clip per row.
    #[arg(long, value_name = "FILE", group = "input")]
    pub manifest: Option<PathBuf>,
    /// LeRobot camera: a video feature of meta/info.json, in full (observation.images.top) or by
    /// its last part (top). Needed when the dataset has more than one.
    #[arg(long)]
    pub camera: Option<String>,
}

fn is_manifest(p: &std::path::Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("parquet"))
}

/// Where probe results are cached: `$R3M_PROBE_CACHE`, else `$R3M_CACHE/probe/` (default
/// `~/.cache/r3m/probe/`), one small file per video (see [`r3m_data::ProbeCache`]).
pub fn probe_cache() -> r3m_data::ProbeCache {
    let dir = std::env::var_os("R3M_PROBE_CACHE")
        .map(PathBuf::from)
        .or_else(|| r3m_fs::cache_root().map(|c| c.join("probe")));
    r3m_data::ProbeCache::open(dir)
}

impl SourceArgs {
    /// The path given, if any.
    pub fn path(&self) -> &std::path::Path {
        self.videos
            .first()
            .map(PathBuf::as_path)
            .or(self.lerobot.as_deref())
            .or(self.manifest.as_deref())
            .unwrap_or(std::path::Path::new(""))
    }

    /// Every path given, for messages and metadata (`a.mp4, b.mp4` for several videos).
    pub fn describe(&self) -> String {
        if self.videos.len() > 1 {
            self.videos.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        } else {
            self.path().display().to_string()
        }
    }

    /// Opens the source, prints its summary and the first skipped files to stderr.
    pub fn open(&self) -> Result<r3m_data::Dataset> {
        if self.videos.is_empty() && self.lerobot.is_none() && self.manifest.is_none() {
            anyhow::bail!("no input: give --videos PATH..., --lerobot ROOT or --manifest FILE");
        }
        let mut cache = probe_cache();
        let camera = self.camera.as_deref();
        let ds = if let Some(root) = &self.lerobot {
            r3m_data::scan_lerobot(root, camera, &mut cache)?
        } else if let Some(m) = &self.manifest {
            r3m_data::scan_manifest(m, &mut cache)?
        } else if let [one] = self.videos.as_slice() {
            if one.is_file() && !is_manifest(one) {
                r3m_data::scan_video_paths(&self.videos, &mut cache)?
            } else {
                // a folder of videos, or a LeRobot root or manifest given as --videos
                r3m_data::open_source(one, camera, &mut cache)?
            }
        } else {
            r3m_data::scan_video_paths(&self.videos, &mut cache)?
        };
        cache.save();
        tracing::info!("{}: {}", self.describe(), ds.summary());
        for s in ds.skipped.iter().take(10) {
            tracing::warn!("  skipped {}: {}", s.path.display(), s.reason);
        }
        if ds.skipped.len() > 10 {
            tracing::warn!("  ... and {} more", ds.skipped.len() - 10);
        }
        Ok(ds)
    }
}
