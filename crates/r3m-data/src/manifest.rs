//! A manifest as a clip source: a CSV or Parquet table, one clip per row.
//!
//! Columns (header names, any order; others are ignored):
//! * `path` (or `video`): the video file; relative paths are relative to the manifest's folder;
//! * optional span: `start` / `end` in seconds, or `start_frame` / `end_frame` (end exclusive);
//!   a missing or empty bound means the start / end of the video;
//! * optional `text`: a description of the clip (for language alignment).
//!
//! CSV follows RFC 4180 (quoted fields may hold commas, quotes as `""`, newlines). Rows whose video
//! cannot be used, or whose span is empty or too short, are skipped and counted with the row number.

use std::path::{Path, PathBuf};

use crate::source::{make_clip, no_clips, probe_all, Dataset, ProbeCache, Skipped, SourceError};
use crate::table;

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The video (resolved against the manifest's folder).
    pub path: PathBuf,
    /// Span in seconds.
    pub start_s: Option<f64>,
    /// End in seconds (exclusive).
    pub end_s: Option<f64>,
    /// First frame.
    pub start_frame: Option<i64>,
    /// End frame (exclusive).
    pub end_frame: Option<i64>,
    /// Description.
    pub text: Option<String>,
}

fn invalid(path: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// Splits CSV text into records of fields (RFC 4180, by the `csv` crate): quoted fields with
/// commas, doubled quotes and newlines; CRLF; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is
/// not part of the first header; blank lines are skipped; rows may have different lengths.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // the csv crate ends a quoted field at the end of the input; a manifest cut short is an error
    if text.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
        let line = text.lines().count();
        return Err(format!("unterminated quoted field (an odd number of '\"' in {line} line(s))"));
    }
    let mut rd = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = Vec::new();
    for r in rd.records() {
        let r = r.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        })?;
        let fields: Vec<String> = r.iter().map(str::to_string).collect();
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        records.push(fields);
    }
    Ok(records)
}

fn opt_f64(s: &str, what: &str, row: usize) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<f64>().map(Some).map_err(|_| format!("row {row}: {what} '{s}' is not a number"))
}

fn opt_i64(s: &str, what: &str, row: usize) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<i64>().map(Some).map_err(|_| format!("row {row}: {what} '{s}' is not an integer"))
}

/// Reads the rows of a manifest (`.csv` or `.parquet`).
pub fn read_manifest(path: &Path) -> Result<Vec<Row>, SourceError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| {
        let p = PathBuf::from(p.trim());
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };
    let is_parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let mut rows = Vec::new();
    if is_parquet {
        let batches = table::read_parquet(path).map_err(|e| invalid(path, e))?;
        for b in batches {
            let paths = match table::strings(&b, "path").map_err(|e| invalid(path, e))? {
                Some(p) => p,
                None => table::strings(&b, "video")
                    .map_err(|e| invalid(path, e))?
                    .ok_or_else(|| invalid(path, "no 'path' (or 'video') column"))?,
            };
            let (ss, es) = (
                table::f64s(&b, "start").map_err(|e| invalid(path, e))?,
                table::f64s(&b, "end").map_err(|e| invalid(path, e))?,
            );
            let (sf, ef) = (
                table::i64s(&b, "start_frame").map_err(|e| invalid(path, e))?,
                table::i64s(&b, "end_frame").map_err(|e| invalid(path, e))?,
            );
            let text = table::strings(&b, "text").map_err(|e| invalid(path, e))?;
            for (i, p) in paths.into_iter().enumerate() {
                let Some(p) = p else { return Err(invalid(path, format!("row {}: null path", rows.len() + 1))) };
                rows.push(Row {
                    path: resolve(&p),
                    start_s: ss.as_ref().and_then(|v| v[i]),
                    end_s: es.as_ref().and_then(|v| v[i]),
                    start_frame: sf.as_ref().and_then(|v| v[i]),
                    end_frame: ef.as_ref().and_then(|v| v[i]),
                    text: text.as_ref().and_then(|v| v[i].clone()).filter(|t| !t.is_empty()),
                });
            }
        }
        return Ok(rows);
    }
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e.to_string()))?;
    let records = parse_csv(&text).map_err(|e| invalid(path, e))?;
    let Some((header, body)) = records.split_first() else { return Err(invalid(path, "empty manifest")) };
    let col = |names: &[&str]| header.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)));
    let pc = col(&["path", "video"])
        .ok_or_else(|| invalid(path, format!("no 'path' column in the header ({})", header.join(","))))?;
    let (sc, ec, sfc, efc, tc) =
        (col(&["start"]), col(&["end"]), col(&["start_frame"]), col(&["end_frame"]), col(&["text"]));
    for (i, r) in body.iter().enumerate() {
        let row = i + 2; // 1-based, after the header
        let get = |c: Option<usize>| c.and_then(|c| r.get(c)).map(String::as_str).unwrap_or("");
        let p = get(Some(pc));
        if p.trim().is_empty() {
            return Err(invalid(path, format!("row {row}: empty path")));
        }
        rows.push(Row {
            path: resolve(p),
            start_s: opt_f64(get(sc), "start", row).map_err(|e| invalid(path, e))?,
            end_s: opt_f64(get(ec), "end", row).map_err(|e| invalid(path, e))?,
            start_frame: opt_i64(get(sfc), "start_frame", row).map_err(|e| invalid(path, e))?,
            end_frame: opt_i64(get(efc), "end_frame", row).map_err(|e| invalid(path, e))?,
            text: Some(get(tc).to_string()).filter(|t| !t.trim().is_empty()),
        });
    }
    Ok(rows)
}

/// One clip per manifest row (see the module doc).
pub fn scan_manifest(path: &Path, cache: &mut ProbeCache) -> Result<Dataset, SourceError> {
    let rows = read_manifest(path)?;
    let mut files: Vec<PathBuf> = rows.iter().map(|r| r.path.clone()).collect();
    files.sort();
    files.dedup();
    let (probed, cache_hits) = probe_all(&files, cache);
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let skip =
            |reason: String| Skipped { path: r.path.clone(), reason: format!("manifest row {}: {reason}", i + 2) };
        let k = files.binary_search(&r.path).expect("every row's file was probed");
        let info = match &probed[k] {
            Ok(v) => v,
            Err(reason) => {
                skipped.push(skip(reason.clone()));
                continue;
            }
        };
        let n = info.frame_count();
        let frame_at = |t: f64| {
            (0..info.pts.len()).position(|j| info.timestamp(j).is_some_and(|x| x >= t - 1e-6)).unwrap_or(info.pts.len())
        };
        let start = match (r.start_frame, r.start_s) {
            (Some(f), _) => f.clamp(0, n as i64) as usize,
            (None, Some(t)) => frame_at(t),
            _ => 0,
        };
        let end = match (r.end_frame, r.end_s) {
            (Some(f), _) => f.clamp(0, n as i64) as usize,
            (None, Some(t)) => frame_at(t),
            _ => n,
        };
        match make_clip(info, start, end) {
            Ok(mut c) => {
                c.text = r.text.clone();
                clips.push(c);
            }
            Err(reason) => skipped.push(skip(format!("frames {start}..{end}: {reason}"))),
        }
    }
    if clips.is_empty() {
        return Err(no_clips(path, rows.len(), &skipped));
    }
    Ok(Dataset { root: path.into(), clips, skipped, cache_hits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_and_newlines() {
        let r = parse_csv("path,text\r\na.mp4,\"open the drawer, slowly\"\n\"b,c.mp4\",\"say \"\"hi\"\"\nthere\"\n\n")
            .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1], vec!["a.mp4", "open the drawer, slowly"]);
        assert_eq!(r[2], vec!["b,c.mp4", "say \"hi\"\nthere"]);
        assert!(parse_csv("a,\"b\n").is_err());
    }

    /// Excel's "CSV UTF-8" starts with a byte-order mark: the first header is still `path`.
    #[test]
    fn a_manifest_with_a_byte_order_mark_reads() {
        let r = parse_csv("\u{feff}path,text\nclip.mp4,open\n").unwrap();
        assert_eq!(r[0], vec!["path", "text"]);
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.csv");
        std::fs::write(&m, "\u{feff}path,text\r\nclip.mp4,open the drawer\r\n").unwrap();
        let rows = read_manifest(&m).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].path, dir.path().join("clip.mp4"));
        assert_eq!(rows[0].text.as_deref(), Some("open the drawer"));
    }

    #[test]
    fn manifest_errors_name_row_and_column() {
        let d = std::env::temp_dir().join(format!("r3m-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let m = d.join("m.csv");
        std::fs::write(&m, "video,start\nx.mp4,abc\n").unwrap();
        let e = read_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("start") && e.contains("abc"), "{e}");
        std::fs::write(&m, "file\nx.mp4\n").unwrap();
        assert!(read_manifest(&m).unwrap_err().to_string().contains("no 'path' column"));
        std::fs::write(&m, "path,start_frame,end_frame,text\nsub/x.mp4,3,,hello\n").unwrap();
        let rows = read_manifest(&m).unwrap();
        assert_eq!(rows[0].path, d.join("sub/x.mp4"));
        assert_eq!((rows[0].start_frame, rows[0].end_frame, rows[0].text.as_deref()), (Some(3), None, Some("hello")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
