//! The input options every data-reading command shares: `--videos`, `--lerobot`, `--manifest`,
//! `--camera`, and opening them with the probe cache.

use std::path::PathBuf;

use anyhow::Result;

/// Where frames come from (exactly one of the three).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct SourceArgs {
    /// Folder of videos (searched recursively; each file is one clip). A LeRobot root or a
    /// manifest given here is recognised too. Unreadable or too-short files are skipped and counted.
    #[arg(long, value_name = "DIR", group = "input")]
    pub videos: Option<PathBuf>,
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
            .as_deref()
            .or(self.lerobot.as_deref())
            .or(self.manifest.as_deref())
            .unwrap_or(std::path::Path::new(""))
    }

    /// Opens the source, prints its summary and the first skipped files to stderr.
    pub fn open(&self) -> Result<r3m_data::Dataset> {
        if self.videos.is_none() && self.lerobot.is_none() && self.manifest.is_none() {
            anyhow::bail!("no input: give --videos DIR, --lerobot ROOT or --manifest FILE");
        }
        let mut cache = probe_cache();
        let camera = self.camera.as_deref();
        let ds = if let Some(root) = &self.lerobot {
            r3m_data::scan_lerobot(root, camera, &mut cache)?
        } else if let Some(m) = &self.manifest {
            r3m_data::scan_manifest(m, &mut cache)?
        } else {
            r3m_data::open_source(self.path(), camera, &mut cache)?
        };
        cache.save();
        tracing::info!("{}: {}", self.path().display(), ds.summary());
        for s in ds.skipped.iter().take(10) {
            tracing::warn!("  skipped {}: {}", s.path.display(), s.reason);
        }
        if ds.skipped.len() > 10 {
            tracing::warn!("  ... and {} more", ds.skipped.len() - 10);
        }
        Ok(ds)
    }
}
