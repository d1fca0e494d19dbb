//! The evaluation's records and tables: the protocol a cell was made under, finished cells as
//! written to `OUT/cells/`, which cells belong to an evaluation on resume, and the summary rows
//! and Markdown table made from them (with the intervals of [`crate::stats`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::stats::{self, Interval};
use crate::{CellResult, EncoderKind};

/// Everything that decides a cell's outcome besides its encoder, demos and seed. Cells resume
/// only into a run with an equal protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Meta-World task.
    pub task: String,
    /// The demonstrations' LeRobot dataset.
    pub data: PathBuf,
    /// Camera the frames come from.
    pub camera: String,
    /// Rendered frame side, pixels.
    pub render_size: u32,
    /// Encoder input side, pixels.
    pub size: u32,
    /// Architecture of the `random` and `scratch` rows.
    pub arch: String,
    /// Episode length limit.
    pub max_episode_steps: u64,
    /// Length of the longest expert demonstration used.
    pub longest_demo: usize,
    /// Policy training steps.
    pub steps: u64,
    /// Steps between evaluations.
    pub eval_every: u64,
    /// Layouts (rollouts) per evaluation.
    pub rollouts: usize,
    /// First evaluation layout seed.
    pub eval_seed_base: u64,
    /// Policy batch size.
    pub batch: usize,
    /// Policy learning rate.
    pub lr: f64,
    /// Held-out demonstrations for the action MSE.
    pub heldout: usize,
    /// Arithmetic precision.
    pub precision: String,
}

/// Format tag of a cell file.
pub const CELL_FORMAT: &str = "r3m-eval-bc-cell-1";
/// Format tag of results.json.
pub const RESULTS_FORMAT: &str = "r3m-eval-bc-3";

/// One finished cell as written to OUT/cells/.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellFile {
    /// Format tag.
    pub format: String,
    /// The protocol the cells were made under.
    pub protocol: Protocol,
    /// The row's checkpoint, for checkpoint rows.
    pub checkpoint: Option<PathBuf>,
    /// The checkpoint was trained on the demos (`finetune:NAME=PATH`), not frozen.
    #[serde(default)]
    pub finetune: bool,
    /// The outcome.
    pub cell: CellResult,
}

/// A row of the summary: one encoder × number of demos over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Row name.
    pub encoder: String,
    /// Demonstrations.
    pub demos: usize,
    /// Policy seeds with a finished cell.
    pub seeds: Vec<u64>,
    /// Final success: mean over seeds × layouts, 95% interval over both ([`stats::crossed_mean`]).
    pub final_success: Interval,
    /// Paired difference from `random` on the same layouts and the seeds both rows have.
    pub vs_random: Option<Interval>,
    /// Paired differences from the `--vs` rows, by name (the same pairing as `vs_random`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vs: BTreeMap<String, Interval>,
    /// Mean over seeds of the best evaluation (R3M's number; optimistic).
    pub max_over_evals: f64,
    /// Mean held-out action MSE over seeds.
    pub heldout_mse: Option<f64>,
    /// Time and rollout cost of the row's cells.
    pub timing: RowTiming,
}

/// Time and rollout cost of a row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowTiming {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Environment steps.
    pub env_steps: u64,
    /// Environment steps per rollout second.
    pub env_steps_per_s: f64,
}

/// results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Format tag.
    pub format: String,
    /// How the rows' intervals were computed ([`stats::METHOD_ID`]); absent in `r3m-eval-bc-2`
    /// files, whose intervals came from a crossed percentile bootstrap.
    #[serde(default)]
    pub intervals: Option<String>,
    /// The protocol the cells were made under.
    pub protocol: Protocol,
    /// Checkpoint of each checkpoint row.
    pub checkpoints: BTreeMap<String, PathBuf>,
    /// The summary rows.
    pub rows: Vec<Row>,
    /// Every finished cell, with per-layout outcomes.
    pub cells: Vec<CellResult>,
    /// Every planned cell finished.
    pub complete: bool,
}

/// Where the cell of `encoder` × `demos` × `seed` is written in `out`.
pub fn cell_file(out: &Path, encoder: &str, demos: usize, seed: u64) -> PathBuf {
    out.join("cells").join(format!("{encoder}.demos-{demos}.seed-{seed}.json"))
}

/// Writes `text` to `path` atomically and durably (see `r3m_fs`).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    Ok(r3m_fs::write(path, text.as_bytes())?)
}

/// The fields of two protocols that differ, as `name: old → new`.
pub fn protocol_diff(old: &Protocol, new: &Protocol) -> Vec<String> {
    let (a, b) = (serde_json::to_value(old).unwrap_or_default(), serde_json::to_value(new).unwrap_or_default());
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["protocol".into()] };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} → {}", b.get(k).cloned().unwrap_or_default()))
        .collect()
}

/// Reads a finished cell.
pub fn read_cell(path: &Path) -> Result<CellFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a finished cell", path.display()))
}

/// A listed row's checkpoint and whether it is fine-tuned (`finetune:`), as its cells record them.
pub fn row_of<'a>(kind: &EncoderKind, checkpoints: &'a BTreeMap<String, PathBuf>) -> (Option<&'a PathBuf>, bool) {
    (checkpoints.get(kind.name()), matches!(kind, EncoderKind::Pretrained { finetune: true, .. }))
}

/// Why cell `f` does not belong to this evaluation (`protocol`, and for a listed row its
/// checkpoint and finetune mode), or None.
pub fn mismatch(f: &CellFile, protocol: &Protocol, row: Option<(Option<&PathBuf>, bool)>) -> Option<String> {
    if f.format != CELL_FORMAT {
        return Some(format!("cell format {} (this r3m writes {CELL_FORMAT})", f.format));
    }
    if f.protocol != *protocol {
        return Some(format!("made with another protocol ({})", protocol_diff(&f.protocol, protocol).join(", ")));
    }
    let (ck, finetune) = row?;
    let mode = |ft: bool| if ft { "finetune:" } else { "frozen" };
    if f.finetune != finetune {
        return Some(format!("a {} row's cell, now {}", mode(f.finetune), mode(finetune)));
    }
    (f.checkpoint.as_ref() != ck).then(|| format!("made with checkpoint {:?}, now {:?}", f.checkpoint, ck))
}

/// The finished cells in OUT (`existing`) outside this invocation's plan (`have`: their paths),
/// with their checkpoints, and a line for each row left out: a cell is kept unless [`mismatch`]
/// says it belongs to another evaluation (`listed`: the listed rows' checkpoint and finetune
/// mode); files that are not cells (named `ENCODER.demos-N.seed-S.json`, readable) are left out.
pub fn kept_cells(
    existing: &[PathBuf],
    have: &[PathBuf],
    listed: &BTreeMap<&str, (Option<&PathBuf>, bool)>,
    protocol: &Protocol,
) -> (Vec<(CellResult, Option<PathBuf>)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut left_out: BTreeMap<String, String> = BTreeMap::new();
    let mut paths: Vec<&PathBuf> = existing
        .iter()
        .filter(|p| !have.contains(p))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.starts_with('.') && n.contains(".demos-") && n.contains(".seed-") && n.ends_with(".json")
            })
        })
        .collect();
    paths.sort();
    for path in paths {
        match read_cell(path) {
            Err(e) => {
                left_out.insert(path.display().to_string(), format!("{e:#}"));
            }
            Ok(f) => match mismatch(&f, protocol, listed.get(f.cell.encoder.as_str()).copied()) {
                Some(why) => {
                    left_out.entry(f.cell.encoder.clone()).or_insert(why);
                }
                None => kept.push((f.cell, f.checkpoint)),
            },
        }
    }
    (kept, left_out.into_iter().map(|(row, why)| format!("{row}: {why}")).collect())
}

/// The `seeds × layouts` outcome matrix of one encoder × demos at the final evaluation, and its
/// seeds in order.
pub fn final_matrix(cells: &[&CellResult]) -> (Vec<u64>, Vec<Vec<bool>>) {
    let mut rows: Vec<(u64, Vec<bool>)> =
        cells.iter().filter_map(|c| c.evals.last().map(|e| (c.seed, e.outcomes.clone()))).collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().unzip()
}

/// Paired difference of `me` (seeds × layouts) from row `other` at the same demos, on the seeds
/// both have (a row may grow seed by seed over several invocations); None when they share no seed.
fn paired(cells: &[CellResult], other: &str, demos: usize, seeds: &[u64], me: &[Vec<bool>]) -> Option<Interval> {
    let theirs: Vec<&CellResult> =
        cells.iter().filter(|r| r.encoder == other && r.demos == demos && seeds.contains(&r.seed)).collect();
    let (oseeds, om) = final_matrix(&theirs);
    if oseeds.is_empty() {
        return None;
    }
    let mine: Vec<Vec<bool>> =
        seeds.iter().zip(me).filter(|(s, _)| oseeds.contains(s)).map(|(_, r)| r.clone()).collect();
    stats::paired_difference(&stats::as_matrix(&mine), &stats::as_matrix(&om))
}

/// The summary rows of `cells`: one per name in `names` × demos in `demos` that has cells, each
/// paired with `random` and with the `vs` rows on the seeds both have.
pub fn summarise(names: &[String], demos: &[usize], cells: &[CellResult], vs: &[String]) -> Vec<Row> {
    let mut rows = Vec::new();
    for name in names {
        for &n in demos {
            let cell: Vec<&CellResult> = cells.iter().filter(|r| r.encoder == *name && r.demos == n).collect();
            if cell.is_empty() {
                continue;
            }
            let (seeds, m) = final_matrix(&cell);
            let Some(final_success) = stats::crossed_mean(&stats::as_matrix(&m)) else {
                continue;
            };
            let vs_random = (name != "random").then(|| paired(cells, "random", n, &seeds, &m)).flatten();
            let vs = vs
                .iter()
                .filter(|v| *v != name)
                .filter_map(|v| paired(cells, v, n, &seeds, &m).map(|d| (v.clone(), d)))
                .collect();
            let mse: Vec<f64> = cell.iter().filter_map(|r| r.heldout_mse).collect();
            let env_steps: u64 = cell.iter().map(|r| r.timing.env_steps).sum();
            let rollout_s: f64 = cell.iter().map(|r| r.timing.rollout_seconds).sum();
            rows.push(Row {
                encoder: name.clone(),
                demos: n,
                seeds,
                final_success,
                vs_random,
                vs,
                max_over_evals: cell.iter().map(|r| r.max_rate()).sum::<f64>() / cell.len() as f64,
                heldout_mse: (!mse.is_empty()).then(|| mse.iter().sum::<f64>() / mse.len() as f64),
                timing: RowTiming {
                    seconds: cell.iter().map(|r| r.timing.seconds).sum(),
                    env_steps,
                    env_steps_per_s: env_steps as f64 / rollout_s.max(1e-9),
                },
            });
        }
    }
    rows
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

fn signed_pct(x: f64) -> String {
    // a bound that rounds to 0 keeps its sign (+0, -0): whether an interval excludes zero stays visible
    let v = (100.0 * x).round();
    if v == 0.0 {
        match x.partial_cmp(&0.0) {
            Some(std::cmp::Ordering::Greater) => "+0".into(),
            Some(std::cmp::Ordering::Less) => "-0".into(),
            _ => "0".into(),
        }
    } else if v > 0.0 {
        format!("+{v:.0}")
    } else {
        format!("{v:.0}")
    }
}

/// The Markdown table of `rows`; `total` is the sentence on time spent.
pub fn table(
    p: &Protocol,
    rows: &[Row],
    vs: &[String],
    checkpoints: &BTreeMap<String, PathBuf>,
    total: &str,
    complete: bool,
) -> String {
    let mut s = format!(
        "### {} — behaviour cloning: {} policy steps (evaluated every {}), {} layouts per evaluation, {}-step episodes \
         (longest expert demo {}), {} camera at {} px, encoder input {} px ({})\n\n",
        p.task, p.steps, p.eval_every, p.rollouts, p.max_episode_steps, p.longest_demo, p.camera, p.render_size, p.size, p.precision
    );
    if !complete {
        s.push_str("**Incomplete**: some cells have not run yet (continue with --resume).\n\n");
    }
    let extra: String = vs.iter().map(|v| format!(" Δ vs {v} (95% CI) |")).collect();
    s.push_str(&format!("| encoder | demos | seeds | final success (95% CI) | Δ vs random (95% CI) |{extra} max over evals (optimistic) | held-out action MSE | env steps/s | time |\n"));
    s.push_str(&format!(
        "| --- | ---: | ---: | ---: | ---: |{} ---: | ---: | ---: | ---: |\n",
        " ---: |".repeat(vs.len())
    ));
    let diff = |d: Option<&Interval>| {
        d.map_or("–".into(), |d| format!("{} ({}…{})", signed_pct(d.mean), signed_pct(d.lo), signed_pct(d.hi)))
    };
    for r in rows {
        let f = r.final_success;
        let mut d = diff(r.vs_random.as_ref());
        for v in vs {
            d.push_str(" | ");
            d.push_str(&diff(r.vs.get(v)));
        }
        let mse = r.heldout_mse.map_or("–".into(), |m| format!("{m:.4}"));
        s.push_str(&format!(
            "| {} | {} | {} | {} ({}–{}) | {d} | {} | {mse} | {:.0} | {:.0} s |\n",
            r.encoder,
            r.demos,
            r.seeds.len(),
            pct(f.mean),
            pct(f.lo),
            pct(f.hi),
            pct(r.max_over_evals),
            r.timing.env_steps_per_s,
            r.timing.seconds
        ));
    }
    for (name, dir) in checkpoints {
        s.push_str(&format!("\n`{name}`: {}", dir.display()));
    }
    s.push_str(&format!(
        "\n\n{total} Final: success at the last evaluation, mean over seeds × layouts; CI: {}. \
         Δ vs random (and vs each --vs row): paired difference in points on the same seeds and layouts, same interval. \
         Max over evals: R3M's number (best evaluation per seed, averaged), optimistic.\n",
        stats::METHOD
    ));
    s
}

/// Rows in the order a results file lists them (encoders by first row, demos by first row), with
/// the `--vs` rows its rows were paired with.
fn order_of(results: &Results) -> (Vec<String>, Vec<usize>, Vec<String>) {
    let (mut names, mut demos, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    for r in &results.rows {
        if !names.contains(&r.encoder) {
            names.push(r.encoder.clone());
        }
        if !demos.contains(&r.demos) {
            demos.push(r.demos);
        }
        for v in r.vs.keys() {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    for c in &results.cells {
        if !names.contains(&c.encoder) {
            names.push(c.encoder.clone());
        }
        if !demos.contains(&c.demos) {
            demos.push(c.demos);
        }
    }
    (names, demos, vs)
}

/// Recomputes the rows of `OUT/results.json` from its cells with this r3m's intervals and writes
/// `results.json` (format [`RESULTS_FORMAT`]) and `results.md` again; the cells, protocol and
/// checkpoints are kept as they are. Returns the new table.
pub fn resummarise(out: &Path) -> Result<String> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut results: Results = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an `r3m eval bc` results file", path.display()))?;
    if !["r3m-eval-bc-2", RESULTS_FORMAT].contains(&results.format.as_str()) {
        anyhow::bail!(
            "{}: format {} (this r3m reads r3m-eval-bc-2 and {RESULTS_FORMAT})",
            path.display(),
            results.format
        );
    }
    let (names, demos, vs) = order_of(&results);
    results.rows = summarise(&names, &demos, &results.cells, &vs);
    results.format = RESULTS_FORMAT.into();
    results.intervals = Some(stats::METHOD_ID.into());
    let seconds: f64 = results.cells.iter().map(|c| c.timing.seconds).sum();
    let total = format!("Total {seconds:.0} s in the cells (rows recomputed from them by `r3m eval summary`).");
    let md = table(&results.protocol, &results.rows, &vs, &results.checkpoints, &total, results.complete);
    write_atomic(&path, &serde_json::to_string_pretty(&results)?)?;
    write_atomic(&out.join("results.md"), &md)?;
    Ok(md)
}

/// What an evaluation run leaves for its tables: the cells of this run and the kept ones.
pub struct Finished<'a> {
    /// The protocol of every cell.
    pub protocol: Protocol,
    /// Checkpoint of each checkpoint row.
    pub checkpoints: BTreeMap<String, PathBuf>,
    /// Row names: this run's rows in their order, then kept rows.
    pub names: &'a [String],
    /// This run's `--demos`, in order.
    pub demos: &'a [usize],
    /// The `--vs` rows.
    pub vs: &'a [String],
    /// Rows kept from earlier invocations that this run does not list.
    pub kept_names: &'a [String],
    /// Every finished cell (this run's and kept ones), in any order.
    pub cells: Vec<CellResult>,
    /// Every planned cell of this run finished.
    pub complete: bool,
    /// The sentence on time spent.
    pub total: String,
}

/// Writes `OUT/results.json` and `OUT/results.md` for `f` and returns the table: cells in plan order
/// (row, demos, seed; kept rows after), `--demos` first and the kept cells' other demos after,
/// ascending.
pub fn write_results(out: &Path, f: Finished) -> Result<String> {
    let Finished { protocol, checkpoints, names, demos, vs, kept_names, mut cells, complete, total } = f;
    let mut all_demos = demos.to_vec();
    let mut more: Vec<usize> = cells.iter().map(|c| c.demos).filter(|d| !demos.contains(d)).collect();
    more.sort_unstable();
    more.dedup();
    all_demos.extend(more);
    cells.sort_by_key(|c| {
        let k = names.iter().position(|k| *k == c.encoder).unwrap_or(usize::MAX);
        let d = all_demos.iter().position(|&d| d == c.demos).unwrap_or(usize::MAX);
        (k, d, c.seed)
    });
    let rows = summarise(names, &all_demos, &cells, vs);
    let mut md = table(&protocol, &rows, vs, &checkpoints, &total, complete);
    if !kept_names.is_empty() {
        md.push_str(&format!(
            "\nKept from earlier invocations in this directory (not in this run's --encoders): {}.\n",
            kept_names.join(", ")
        ));
    }
    let results = Results {
        format: RESULTS_FORMAT.into(),
        intervals: Some(stats::METHOD_ID.into()),
        protocol,
        checkpoints,
        rows,
        cells,
        complete,
    };
    write_atomic(&out.join("results.json"), &serde_json::to_string_pretty(&results)?)?;
    write_atomic(&out.join("results.md"), &md)?;
    Ok(md)
}

/// What an evaluation invocation finds in its output folder and has to do.
pub struct Plan {
    /// Cells of this invocation's plan already finished (read back on `--resume`).
    pub done: Vec<CellResult>,
    /// Cells to run: row, demos, seed, in plan order.
    pub to_run: Vec<(EncoderKind, usize, u64)>,
    /// Other finished cells in the folder that stay in the tables (rows, demos or seeds this
    /// invocation does not list), with their checkpoints.
    pub kept: Vec<(CellResult, Option<PathBuf>)>,
    /// Rows among `kept` that this invocation does not list, sorted.
    pub kept_names: Vec<String>,
    /// Finished cells left out of the tables, a line each with why.
    pub left_out: Vec<String>,
}

/// The plan of an evaluation of `kinds` × `demos` × `num_seeds` seeds in `out`: which cells are
/// done (with `resume`; a cell of another protocol, checkpoint or fine-tune mode is an error
/// naming it), which to run, and which other finished cells (`existing`: the cell files found)
/// stay in the tables; kept rows' checkpoints are added to `checkpoints`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    out: &Path,
    kinds: &[EncoderKind],
    demos: &[usize],
    num_seeds: u64,
    resume: bool,
    protocol: &Protocol,
    checkpoints: &mut BTreeMap<String, PathBuf>,
    existing: &[PathBuf],
) -> Result<Plan> {
    let mut done = Vec::new();
    let mut to_run = Vec::new();
    for kind in kinds {
        for &n in demos {
            for seed in 0..num_seeds {
                let path = cell_file(out, kind.name(), n, seed);
                if resume && path.exists() {
                    let f = read_cell(&path)?;
                    if let Some(why) = mismatch(&f, protocol, Some(row_of(kind, checkpoints))) {
                        anyhow::bail!(
                            "{}: {why}; use the same flags and rows, another --out, or --overwrite",
                            path.display()
                        );
                    }
                    done.push(f.cell);
                } else {
                    to_run.push((kind.clone(), n, seed));
                }
            }
        }
    }
    // the other finished cells in OUT (rows this invocation does not list, seeds or demos it
    // does not ask for) stay in the tables: a resume that adds or re-runs some rows never drops
    // what is done
    let (kept, left_out) = if resume {
        // the cells of this invocation's plan (read above, or to run) by their file names
        let have: Vec<PathBuf> = kinds
            .iter()
            .flat_map(|k| demos.iter().flat_map(move |&n| (0..num_seeds).map(move |s| (k, n, s))))
            .map(|(k, n, s)| cell_file(out, k.name(), n, s))
            .collect();
        let listed: BTreeMap<&str, (Option<&PathBuf>, bool)> =
            kinds.iter().map(|k| (k.name(), row_of(k, checkpoints))).collect();
        kept_cells(existing, &have, &listed, protocol)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut kept_names: Vec<String> = Vec::new();
    for (c, ck) in &kept {
        if kinds.iter().any(|k| k.name() == c.encoder) {
            continue;
        }
        if !kept_names.contains(&c.encoder) {
            kept_names.push(c.encoder.clone());
        }
        if let Some(ck) = ck {
            checkpoints.insert(c.encoder.clone(), ck.clone());
        }
    }
    kept_names.sort();
    Ok(Plan { done, to_run, kept, kept_names, left_out })
}

/// Prepares the output folder `out` of an evaluation (the caller holds its lock): with `overwrite`
/// removes its cells and results; refuses finished cells without `resume`; creates `out/cells`
/// and removes the temporaries of a killed run. Returns the finished cell files.
pub fn prepare_out(out: &Path, overwrite: bool, resume: bool) -> Result<Vec<PathBuf>> {
    let cells_dir = out.join("cells");
    if overwrite {
        for p in [cells_dir.clone(), out.join("results.json"), out.join("results.md")] {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            } else if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    let existing: Vec<PathBuf> = match std::fs::read_dir(&cells_dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
        }
        Err(_) => Vec::new(),
    };
    if !existing.is_empty() && !resume {
        anyhow::bail!(
            "{} already holds {} finished cell(s): pass --resume to continue that evaluation or --overwrite to start over",
            out.display(),
            existing.len()
        );
    }
    std::fs::create_dir_all(&cells_dir).with_context(|| format!("creating {}", cells_dir.display()))?;
    // temporaries of a killed run (never those of a run still going)
    r3m_fs::clean_stale(&cells_dir)?;
    r3m_fs::clean_stale(out)?;
    Ok(existing)
}
