//! `RUN/metrics.csv`, one row per training step, written and read through one definition,
//! [`MetricsRow`]: its fields are the header, the writer serialises them and every reader
//! (the budget, the resume trim) deserialises them by column name.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The file in the run directory.
pub const FILE: &str = "metrics.csv";

/// One step's metrics. Losses are kept to 6 decimals, accuracies and seconds to 4 (the file
/// stays readable; the figures are means over a batch, not exact values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Step number, from 1.
    pub step: u64,
    /// Total loss (everything, weighted).
    pub loss: f64,
    /// R3M's TCN term, unweighted (measured for every objective).
    #[serde(default)]
    pub tcn: f64,
    /// Mean L1 norm of the embeddings.
    #[serde(default)]
    pub l1: f64,
    /// Mean L2 norm of the embeddings.
    #[serde(default)]
    pub l2: f64,
    /// R3M's alignment accuracy under −L2.
    #[serde(default)]
    pub aligned: f64,
    /// Seconds this step waited for the loader.
    pub wait_s: f64,
    /// Seconds the whole step took (the wait included).
    pub step_s: f64,
    /// The objective's own loss.
    #[serde(default)]
    pub objective: f64,
    /// The objective's own accuracy.
    #[serde(default)]
    pub objective_acc: f64,
    /// The language term, when on (empty otherwise).
    #[serde(default)]
    pub lang: Option<f64>,
    /// Its accuracy (empty when off).
    #[serde(default)]
    pub lang_acc: Option<f64>,
    /// Clips dropped so far because they failed to decode.
    #[serde(default)]
    pub dropped_clips: u64,
}

fn round(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    if x.is_finite() {
        (x * k).round() / k
    } else {
        x
    }
}

impl MetricsRow {
    /// The row as written: losses to 6 decimals, accuracies and seconds to 4.
    #[must_use]
    pub fn rounded(&self) -> Self {
        MetricsRow {
            step: self.step,
            loss: round(self.loss, 6),
            tcn: round(self.tcn, 6),
            l1: round(self.l1, 6),
            l2: round(self.l2, 6),
            aligned: round(self.aligned, 4),
            wait_s: round(self.wait_s, 4),
            step_s: round(self.step_s, 4),
            objective: round(self.objective, 6),
            objective_acc: round(self.objective_acc, 4),
            lang: self.lang.map(|v| round(v, 6)),
            lang_acc: self.lang_acc.map(|v| round(v, 4)),
            dropped_clips: self.dropped_clips,
        }
    }
}

/// The rows of a `metrics.csv` text, in file order. A row that does not parse (a line cut by a
/// crash) is skipped. An error when the text is empty or lacks a column every row needs.
pub fn parse(text: &str) -> Result<Vec<MetricsRow>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().context("metrics.csv has no header")?.clone();
    if headers.is_empty() || text.trim().is_empty() {
        bail!("metrics.csv is empty");
    }
    for need in ["step", "loss", "wait_s", "step_s"] {
        if !headers.iter().any(|h| h == need) {
            bail!("metrics.csv has no {need} column (header: {})", headers.iter().collect::<Vec<_>>().join(","));
        }
    }
    Ok(reader.deserialize::<MetricsRow>().filter_map(std::result::Result::ok).collect())
}

/// Appends rows to `RUN/metrics.csv`, one flushed row per step (a crash loses at most the row
/// being written).
pub struct MetricsWriter {
    writer: csv::Writer<File>,
}

impl std::fmt::Debug for MetricsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsWriter")
    }
}

impl MetricsWriter {
    /// Opens `run/metrics.csv` for appending. With `keep_through = Some(step)` (a resume) rows
    /// after `step` (steps a crash lost) are dropped first, in one atomic rewrite, so the file holds
    /// each step once. A new or empty file gets the header.
    pub fn open(run: &Path, keep_through: Option<u64>) -> Result<Self> {
        let path = run.join(FILE);
        if let (Some(step), Ok(text)) = (keep_through, std::fs::read_to_string(&path)) {
            let kept: Vec<MetricsRow> = parse(&text)
                .with_context(|| format!("reading {}", path.display()))?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
            let mut w = csv::Writer::from_writer(Vec::new());
            if kept.is_empty() {
                w.write_record(header())?;
            }
            for r in &kept {
                w.serialize(r)?;
            }
            let bytes = w.into_inner().context("writing the trimmed metrics")?;
            r3m_fs::write(&path, &bytes)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let empty = file.metadata().with_context(|| format!("reading {}", path.display()))?.len() == 0;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if empty {
            writer.write_record(header())?;
            writer.flush().with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(MetricsWriter { writer })
    }

    /// Appends one row (rounded as [`MetricsRow::rounded`]) and flushes it.
    pub fn write(&mut self, row: &MetricsRow) -> Result<()> {
        self.writer.serialize(row.rounded()).context("writing a metrics.csv row")?;
        self.writer.flush().context("writing a metrics.csv row")?;
        Ok(())
    }
}

/// The column names, from [`MetricsRow`]'s fields.
fn header() -> Vec<&'static str> {
    vec![
        "step",
        "loss",
        "tcn",
        "l1",
        "l2",
        "aligned",
        "wait_s",
        "step_s",
        "objective",
        "objective_acc",
        "lang",
        "lang_acc",
        "dropped_clips",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64) -> MetricsRow {
        MetricsRow {
            step,
            loss: 1.0 / 3.0,
            tcn: 2.0,
            l1: 3.0,
            l2: 4.0,
            aligned: 0.123_456,
            wait_s: 0.5,
            step_s: 1.25,
            objective: 1.5,
            objective_acc: 0.25,
            lang: step.is_multiple_of(2).then_some(0.75),
            lang_acc: step.is_multiple_of(2).then_some(0.5),
            dropped_clips: step,
        }
    }

    #[test]
    fn the_header_is_the_struct() {
        // the header written for an empty file names exactly the fields the rows serialise
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row(1)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), header().join(","));
    }

    #[test]
    fn written_rows_read_back_and_a_resume_trims_lost_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::open(dir.path(), None).unwrap();
        for s in 1..=5 {
            w.write(&row(s)).unwrap();
        }
        drop(w);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1], row(2).rounded());
        assert!((rows[0].loss - 0.333_333).abs() < 1e-12 && rows[0].lang.is_none(), "{:?}", rows[0]);
        assert!(text.lines().nth(1).unwrap().starts_with("1,0.333333,2.0,3.0,4.0,0.1235,0.5,1.25,"), "{text}");
        // a crash left a cut line; the resume from step 3 keeps steps 1-3, drops the rest and the cut line
        std::fs::write(dir.path().join(FILE), format!("{text}6,0.1,")).unwrap();
        let mut w = MetricsWriter::open(dir.path(), Some(3)).unwrap();
        w.write(&row(4)).unwrap();
        drop(w);
        let rows = parse(&std::fs::read_to_string(dir.path().join(FILE)).unwrap()).unwrap();
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn older_files_with_fewer_columns_read() {
        let rows = parse("step,loss,tcn,l1,l2,aligned,wait_s,step_s\n1,2.5,2.5,1,1,0.5,0.1,1.0\n").unwrap();
        assert_eq!((rows[0].step, rows[0].step_s, rows[0].objective, rows[0].lang), (1, 1.0, 0.0, None));
        assert!(parse("").is_err());
        assert!(parse("step,loss\n1,2\n").unwrap_err().to_string().contains("wait_s"));
    }
}
