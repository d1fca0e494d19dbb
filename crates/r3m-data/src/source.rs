//! Dataset sources: where clips come from.
//!
//! A folder of videos, searched recursively, each file one clip ([`scan_videos`]); a LeRobot
//! dataset ([`crate::lerobot`]); a CSV or Parquet manifest ([`crate::manifest`]). Every file is
//! probed in parallel; files that cannot be used (corrupt, not a video, too short) are skipped and
//! counted with their reason, never fatal. Probe results are cached by (path, size, mtime), so a
//! second run over the same data starts at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use r3m_video::VideoInfo;
use rayon::prelude::*;

use crate::sampler::MIN_CLIP_FRAMES;

/// File extensions treated as video (case-insensitive).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mkv", "webm", "mov", "avi", "m4v"];

/// A span of frames of one video that the sampler treats as one clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The probed video.
    pub video: Arc<VideoInfo>,
    /// First frame of the clip (inclusive).
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Optional description (for language alignment).
    pub text: Option<String>,
    /// LeRobot episode index, for clips that come from a LeRobot dataset.
    pub episode: Option<i64>,
}

impl Clip {
    /// Frames in the clip.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the clip has no frames.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// A file that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why (the probe error, or "too short").
    pub reason: String,
}

/// The clips found under a root, and the files that were skipped.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the search started.
    pub root: PathBuf,
    /// Usable clips, sorted by path.
    pub clips: Vec<Clip>,
    /// Files that could not be used.
    pub skipped: Vec<Skipped>,
    /// Probes answered from the cache.
    pub cache_hits: usize,
}

impl Dataset {
    /// The folder that video names are made relative to: the root itself, or the folder of a
    /// manifest file.
    pub fn name_root(&self) -> &Path {
        if self.root.is_file() {
            self.root.parent().unwrap_or(Path::new(""))
        } else {
            &self.root
        }
    }

    /// `clip`'s video named relative to [`Dataset::name_root`].
    pub fn video_name(&self, clip: &Clip) -> String {
        clip.video.path.strip_prefix(self.name_root()).unwrap_or(&clip.video.path).to_string_lossy().into_owned()
    }

    /// Training's length rule: clips shorter than an R3M tuple ([`MIN_CLIP_FRAMES`]) move to
    /// `skipped` ("too short"); an error when no clip is left.
    pub fn for_tuples(mut self) -> Result<Self, SourceError> {
        let (keep, short): (Vec<Clip>, Vec<Clip>) = self.clips.into_iter().partition(|c| c.len() >= MIN_CLIP_FRAMES);
        for c in short {
            let range = if c.start == 0 && c.end == c.video.frame_count() {
                String::new()
            } else {
                format!(" (frames {}..{})", c.start, c.end)
            };
            self.skipped.push(Skipped {
                path: c.video.path.clone(),
                reason: format!("too short{range}: {} frame(s), a tuple needs {MIN_CLIP_FRAMES}", c.len()),
            });
        }
        self.clips = keep;
        if self.clips.is_empty() {
            let found = self.skipped.len();
            return Err(no_clips(&self.root, found, &self.skipped));
        }
        Ok(self)
    }

    /// A one-line summary: clips, frames, skipped files grouped by reason.
    pub fn summary(&self) -> String {
        let frames: usize = self.clips.iter().map(Clip::len).sum();
        let mut s = format!("{} clips, {} frames", self.clips.len(), frames);
        if !self.skipped.is_empty() {
            s.push_str(&format!(", {} file(s) skipped", self.skipped.len()));
        }
        s
    }
}

/// Errors that stop a source from being read at all (a bad file is never one of them).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The root does not exist or is not a directory.
    #[error("{path}: not a directory ({reason})")]
    NotADirectory {
        /// The root.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The dataset's own description is unreadable or inconsistent (LeRobot `meta/`, a manifest).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No usable clip was found.
    #[error("{path}: no usable videos ({found} video file(s) found, {skipped} skipped){detail}")]
    NoClips {
        /// The root.
        path: PathBuf,
        /// Files with a video extension.
        found: usize,
        /// Files skipped.
        skipped: usize,
        /// The first few reasons.
        detail: String,
    },
}

fn is_video(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

/// Every file with a video extension under `root`, recursively, sorted, hidden entries skipped.
/// A link that leads nowhere readable (dangling, a loop) is kept, so that probing it fails and it
/// is skipped and counted with the reason like any broken file, not dropped unseen.
pub fn find_videos(root: &Path) -> Vec<PathBuf> {
    walk(root, is_video, true)
}

/// The files under `root` that `keep` accepts, sorted by path: the one directory walk of this
/// crate (videos, LeRobot's Parquet files). Hidden entries (`.name`) are skipped; symlinked
/// directories are not followed (a link loop would never end), symlinked files are kept; folders
/// that cannot be read are left out.
pub fn walk_files(root: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    walk(root, keep, false)
}

fn walk(root: &Path, keep: impl Fn(&Path) -> bool, broken_links: bool) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_str().is_some_and(|n| n.starts_with('.')))
        .flatten()
        .filter(|e| {
            let p = e.path();
            let broken = broken_links && e.path_is_symlink() && std::fs::metadata(p).is_err();
            !e.file_type().is_dir() && keep(p) && (p.is_file() || broken)
        })
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// Cache key: the file's path, size and modification time.
fn stamp(p: &Path) -> Option<String> {
    let m = std::fs::metadata(p).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some(format!("v{}|{}|{}|{}", r3m_video::PROBE_VERSION, p.display(), m.len(), mtime))
}

/// On-disk probe cache: a folder with one small JSON file per probed video version, named by a
/// hash of its [`stamp`] (path, size, modification time, probe version), holding the stamp and the
/// [`VideoInfo`].
///
/// Per-video entries scale: a run reads only the entries of the videos it scans and writes only
/// the new ones (each with [`r3m_fs::write`], so a reader never sees half an entry), and
/// concurrent `--shard` jobs on the same cache never lose each other's work (two writers of one
/// entry write the same content). Pruning: when the folder holds more than [`ProbeCache::MAX_ENTRIES`]
/// entries, the least recently written are removed down to three quarters of that. A missing,
/// unreadable or foreign entry is a miss (the video is probed again), never an error.
#[derive(Debug, Default)]
pub struct ProbeCache {
    dir: Option<PathBuf>,
    fresh: Vec<(String, VideoInfo)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    stamp: String,
    info: VideoInfo,
}

impl ProbeCache {
    /// Entries kept before pruning.
    pub const MAX_ENTRIES: usize = 100_000;

    /// The cache in folder `dir` (created when the first entry is written; `None`: no cache).
    pub fn open(dir: Option<PathBuf>) -> Self {
        ProbeCache { dir, fresh: Vec::new() }
    }

    fn entry_path(&self, stamp: &str) -> Option<PathBuf> {
        // a stable file name for the stamp (the entry holds the stamp: a collision is a miss)
        self.dir.as_ref().map(|d| d.join(format!("{}.json", r3m_fs::Fnv64::hex(stamp.as_bytes()))))
    }

    /// The cached probe of the video version `stamp`, if any.
    fn get(&self, stamp: &str) -> Option<VideoInfo> {
        let bytes = std::fs::read(self.entry_path(stamp)?).ok()?;
        let e: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        (e.stamp == stamp).then_some(e.info)
    }

    /// Writes the entries probed since opening (each atomically) and prunes the folder. Failure
    /// only costs a re-probe next time; returns the number of entries written.
    pub fn save(&mut self) -> usize {
        let Some(dir) = self.dir.clone() else { return 0 };
        let mut written = 0;
        for (stamp, info) in std::mem::take(&mut self.fresh) {
            let Some(path) = self.entry_path(&stamp) else { continue };
            let Ok(bytes) = serde_json::to_vec(&CacheEntry { stamp, info }) else { continue };
            written += usize::from(r3m_fs::write(&path, &bytes).is_ok());
        }
        if written > 0 {
            let _ = r3m_fs::clean_stale(&dir);
            prune(&dir, Self::MAX_ENTRIES);
        }
        written
    }
}

/// Removes the oldest entries of a cache folder holding more than `max`, down to `max * 3 / 4`.
fn prune(dir: &Path, max: usize) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json") && !n.starts_with('.')))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= max {
        return 0;
    }
    entries.sort();
    let drop = entries.len() - max * 3 / 4;
    entries.iter().take(drop).filter(|(_, p)| std::fs::remove_file(p).is_ok()).count()
}

/// Probes `files` in parallel, answering from `cache` where a file is unchanged (and adding new
/// results to it). Returns, per file in order, the probe result; and the number of cache hits.
pub fn probe_all(files: &[PathBuf], cache: &mut ProbeCache) -> (Vec<Result<Arc<VideoInfo>, String>>, usize) {
    let known = &*cache;
    let results: Vec<(Option<String>, bool, Result<VideoInfo, String>)> = files
        .par_iter()
        .map(|p| {
            let key = stamp(p);
            if let Some(info) = key.as_ref().and_then(|k| known.get(k)) {
                return (key, true, Ok(info));
            }
            (key, false, r3m_video::probe(p).map_err(|e| e.to_string()))
        })
        .collect();
    let mut hits = 0;
    let out = results
        .into_iter()
        .map(|(key, hit, r)| {
            hits += usize::from(hit);
            r.map(|info| {
                if let (Some(k), false) = (key, hit) {
                    cache.fresh.push((k, info.clone()));
                }
                Arc::new(info)
            })
        })
        .collect();
    (out, hits)
}

/// The clip for frames `start..end` of `video`, or why it cannot be one (no frame). The sources
/// apply only this rule; a command that needs more (training: [`Dataset::for_tuples`]) applies its own.
pub(crate) fn make_clip(video: &Arc<VideoInfo>, start: usize, end: usize) -> Result<Clip, String> {
    let n = end.saturating_sub(start);
    if n == 0 {
        return Err("no frames in the range".into());
    }
    Ok(Clip { video: video.clone(), start, end, text: None, episode: None })
}

/// The error for a source that gave no clip.
pub(crate) fn no_clips(root: &Path, found: usize, skipped: &[Skipped]) -> SourceError {
    let detail: Vec<String> =
        skipped.iter().take(3).map(|s| format!("\n  {}: {}", s.path.display(), s.reason)).collect();
    SourceError::NoClips { path: root.into(), found, skipped: skipped.len(), detail: detail.concat() }
}

/// Finds every video under `root` (recursively, hidden entries skipped), probes them in parallel
/// (answering from `cache` where the file is unchanged), and returns one clip per usable file.
pub fn scan_videos(root: &Path, cache: &mut ProbeCache) -> Result<Dataset, SourceError> {
    let meta =
        std::fs::metadata(root).map_err(|e| SourceError::NotADirectory { path: root.into(), reason: e.to_string() })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory { path: root.into(), reason: "is a file".into() });
    }
    whole_videos(root.into(), &find_videos(root), cache)
}

/// One clip per file of `files` (each probed, through `cache`); unreadable ones skipped with the
/// reason. An error when none is usable.
fn whole_videos(root: PathBuf, files: &[PathBuf], cache: &mut ProbeCache) -> Result<Dataset, SourceError> {
    let (probed, cache_hits) = probe_all(files, cache);
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for (path, r) in files.iter().zip(probed) {
        match r.and_then(|info| make_clip(&info, 0, info.frame_count())) {
            Ok(c) => clips.push(c),
            Err(reason) => skipped.push(Skipped { path: path.clone(), reason }),
        }
    }
    if clips.is_empty() {
        return Err(no_clips(&root, files.len(), &skipped));
    }
    Ok(Dataset { root, clips, skipped, cache_hits })
}

/// Clips from video files and folders given one by one (`--videos a.mp4 b.mp4 more/`): each file is
/// one clip, each folder gives its videos as [`scan_videos`] does. The root, against which clips are
/// named, is the deepest folder holding every path given. Files that cannot be read are skipped and
/// counted; a missing path is an error naming it.
pub fn scan_video_paths(paths: &[PathBuf], cache: &mut ProbeCache) -> Result<Dataset, SourceError> {
    let mut files = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).map_err(|e| SourceError::NotADirectory { path: p.clone(), reason: e.to_string() })?;
        if meta.is_dir() {
            files.extend(find_videos(p));
        } else {
            files.push(p.clone());
        }
    }
    whole_videos(common_folder(paths), &files, cache)
}

/// The deepest folder holding every path (a file's folder, a folder itself).
fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let folder =
        |p: &PathBuf| if p.is_dir() { p.clone() } else { p.parent().map(Path::to_path_buf).unwrap_or_default() };
    let mut it = paths.iter().map(folder);
    let Some(mut root) = it.next() else { return PathBuf::new() };
    for f in it {
        while !f.starts_with(&root) {
            match root.parent() {
                Some(p) => root = p.to_path_buf(),
                None => return PathBuf::new(),
            }
        }
    }
    root
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// One walk for every folder: sorted, hidden entries skipped, a symlinked file kept, a
    /// symlink loop not followed (the walk ends).
    #[test]
    fn the_walk_survives_a_symlink_loop() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in ["x.mp4", "sub/y.mp4", ".hidden/z.mp4", "notes.txt"] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), b"").unwrap();
        }
        std::os::unix::fs::symlink(r, r.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(r.join("x.mp4"), r.join("link.mp4")).unwrap();
        let found: Vec<PathBuf> =
            find_videos(r).into_iter().map(|p| p.strip_prefix(r).unwrap().to_path_buf()).collect();
        assert_eq!(found, ["link.mp4", "sub/y.mp4", "x.mp4"].map(PathBuf::from));
        let mut parquet = Vec::new();
        std::fs::write(r.join("sub/t.parquet"), b"").unwrap();
        crate::lerobot::parquet_files(r, &mut parquet);
        assert_eq!(parquet, vec![r.join("sub/t.parquet")]);
    }

    /// Links to nothing readable (dangling, a loop) are skipped and counted with their reason,
    /// like broken files, not dropped unseen; a link to a folder is not a video.
    #[test]
    fn unreadable_videos_are_skipped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/synthetic/clip0.mp4");
        std::fs::copy(&sample, r.join("ok.mp4")).unwrap();
        std::os::unix::fs::symlink(r.join("nowhere/x.mp4"), r.join("dangling.mp4")).unwrap();
        std::os::unix::fs::symlink(r.join("loop.mp4"), r.join("loop.mp4")).unwrap();
        std::fs::create_dir_all(r.join("folder")).unwrap();
        std::os::unix::fs::symlink(r.join("folder"), r.join("folder-link.mp4")).unwrap();
        let ds = scan_videos(r, &mut ProbeCache::default()).unwrap();
        assert_eq!(ds.clips.len(), 1);
        let skipped: Vec<(String, String)> = ds
            .skipped
            .iter()
            .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason.clone()))
            .collect();
        assert_eq!(
            skipped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["dangling.mp4", "loop.mp4"],
            "{skipped:?}"
        );
        assert!(skipped.iter().all(|(_, why)| !why.is_empty()), "{skipped:?}");
    }

    #[test]
    fn prune_keeps_the_newest_three_quarters() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..8 {
            let p = d.path().join(format!("{i:016x}.json"));
            std::fs::write(&p, b"{}").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        }
        assert_eq!(prune(d.path(), 10), 0);
        assert_eq!(prune(d.path(), 4), 5);
        let mut left: Vec<String> =
            std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec![format!("{:016x}.json", 5), format!("{:016x}.json", 6), format!("{:016x}.json", 7)]);
    }
}
