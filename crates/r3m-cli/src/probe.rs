//! `r3m probe`: what r3m sees in video files.

use std::path::PathBuf;

use anyhow::Result;

/// Options for `r3m probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Video files or folders (folders are searched recursively for mp4/mkv/webm/mov/avi/m4v).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print one JSON object per file instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<i32> {
    let mut files = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            files.extend(r3m_data::find_videos(p));
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut bad = 0;
    if !args.json {
        println!(
            "{:<40} {:>6} {:>9} {:>4} {:>7} {:>7} {:>8} {:>6}",
            "file", "codec", "size", "rot", "frames", "fps", "seconds", "kf/int"
        );
    }
    for f in &files {
        match r3m_video::probe(f) {
            Ok(i) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "path": i.path, "codec": i.codec, "decoder": i.decoder, "container": i.container,
                            "width": i.width, "height": i.height, "rotation": i.rotation,
                            "frames": i.frames.count, "frames_exact": i.frames.exact,
                            "container_frames": i.container_frames, "fps": i.fps, "duration_s": i.duration_s,
                            "keyframe_interval": i.keyframe_interval,
                        })
                    );
                } else {
                    let frames = format!("{}{}", i.frames.count, if i.frames.exact { "" } else { "~" });
                    let kf = i.keyframe_interval.map(|k| format!("{k:.1}")).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<40} {:>6} {:>9} {:>4} {:>7} {:>7.2} {:>8.2} {:>6}",
                        f.display().to_string(),
                        i.codec,
                        format!("{}x{}", i.width, i.height),
                        i.rotation,
                        frames,
                        i.fps,
                        i.duration_s,
                        kf
                    );
                }
            }
            Err(e) => {
                bad += 1;
                tracing::warn!("skipped: {e}");
            }
        }
    }
    if bad > 0 {
        tracing::warn!("{bad} of {} file(s) could not be read", files.len());
    }
    Ok(if files.is_empty() || bad == files.len() { 1 } else { 0 })
}
