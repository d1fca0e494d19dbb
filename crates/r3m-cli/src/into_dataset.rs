//! `r3m embed --into-dataset OUT`: where the embedding parts are staged, the checks before any work,
//! and putting the featured LeRobot dataset in place once every part is done
//! ([`r3m_export::lerobot_out`] writes it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The dataset to write and where its embeddings wait.
pub struct Target {
    /// The source LeRobot dataset (only read).
    pub source: PathBuf,
    /// The dataset to write.
    pub dest: PathBuf,
    /// `.OUT.r3m-embed` beside OUT: the embeddings parts (resumable like `--out DIR`).
    pub staging: PathBuf,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Target {
    /// Checks the request before anything is decoded: a LeRobot input (a version r3m reads) without
    /// a feature of that name, every frame, an OUT that does not exist (or `overwrite`) and is
    /// neither the source nor inside it.
    pub fn check(
        dest: &Path,
        source: &crate::source::SourceArgs,
        every: usize,
        fps: Option<f64>,
        overwrite: bool,
        feature: &str,
    ) -> Result<Target> {
        let Some(src) = source.lerobot.clone() else { bail!("--into-dataset needs a --lerobot dataset as input") };
        if every != 1 || fps.is_some() {
            bail!("--into-dataset embeds every frame (each row of the dataset gets its embedding): drop --every/--fps");
        }
        let (s, d) = (absolute(&src), absolute(dest));
        if d == s || d.starts_with(&s) || s.starts_with(&d) {
            bail!(
                "--into-dataset {}: must be outside the source dataset {} (the source is never modified)",
                dest.display(),
                src.display()
            );
        }
        r3m_data::lerobot::read_info(&src)?; // a version r3m reads
        let info_path = src.join("meta/info.json");
        let features: serde_json::Value = std::fs::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| format!("{}: unreadable", info_path.display()))?;
        if features["features"].get(feature).is_some() {
            bail!(
                "{}: the dataset already has a feature '{feature}' (--feature NAME writes the embeddings under another name)",
                info_path.display()
            );
        }
        if dest.exists() && !overwrite {
            bail!("{} exists: --overwrite replaces it (once the new copy is complete)", dest.display());
        }
        let name =
            dest.file_name().map(|n| n.to_string_lossy().into_owned()).context("--into-dataset needs a folder name")?;
        let staging = dest.with_file_name(format!(".{name}.r3m-embed"));
        Ok(Target { source: src, dest: dest.to_path_buf(), staging })
    }

    /// Writes the dataset once all `n` parts are in the staging folder, then removes the staging.
    /// Returns the exit code.
    pub fn assemble_if_complete(&self, n: usize, feature: &str, drop_videos: bool) -> Result<i32> {
        let parts: Vec<PathBuf> = (0..n).map(|i| self.staging.join(format!("part-{i}-of-{n}.parquet"))).collect();
        let missing = parts.iter().filter(|p| !p.exists()).count();
        if missing > 0 {
            tracing::info!(
                "{missing} of {n} part(s) still to embed in {}; {} is written when the last one finishes",
                self.staging.display(),
                self.dest.display()
            );
            return Ok(0);
        }
        // one assembler among shards finishing together
        let _lock = r3m_fs::OutputLock::acquire_file(&self.dest)?;
        if !self.staging.exists() {
            return Ok(0); // another shard assembled it
        }
        let dir = r3m_fs::TempDir::new(&self.dest)?;
        let report =
            r3m_export::lerobot_out::write_featured_dataset(&self.source, &parts, dir.staging(), feature, drop_videos)
                .with_context(|| format!("writing {}", self.dest.display()))?;
        dir.commit()?;
        std::fs::remove_dir_all(&self.staging).with_context(|| format!("removing {}", self.staging.display()))?;
        tracing::info!(
            "wrote {}: {} episodes, {} rows with '{feature}' ({}-d){}; videos {}",
            self.dest.display(),
            report.episodes,
            report.rows,
            report.dim,
            if report.filled > 0 {
                format!(", {} row(s) whose frame did not decode took the nearest frame's embedding", report.filled)
            } else {
                String::new()
            },
            if drop_videos {
                "left out".to_string()
            } else {
                format!("{} linked, {} copied", report.videos_linked, report.videos_copied)
            }
        );
        Ok(0)
    }
}
