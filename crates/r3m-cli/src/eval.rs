//! `r3m eval bc`: few-demo behaviour cloning on Meta-World, closed loop, with baselines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use r3m_bc::report::{cell_file, write_atomic, CellFile, Protocol, CELL_FORMAT};
use r3m_bc::{BcConfig, BridgeConfig, EncoderKind, Env, MetaWorldBridge};
use r3m_model::Arch;

/// `r3m eval` subcommands.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum EvalCommand {
    /// Behaviour cloning: freeze the encoder, train R3M's policy (BatchNorm → 256 tanh → 256 tanh
    /// → action, MSE, Adam) on N demos, and report closed-loop success in fresh Meta-World layouts
    /// beside rows that test the evaluation itself (state: ceiling, proprio: floor, random,
    /// scratch, scratch-shallow), every row on the same policy seeds and the same layouts. The
    /// headline is the final evaluation's success with a 95% interval over seeds and
    /// layouts, and each row's paired difference from the frozen random encoder. Each finished
    /// cell (encoder × demos × seed) is written at once to OUT/cells/; --resume skips them, and
    /// Ctrl-C stops after writing what is done.
    Bc(BcArgs),
    /// Recompute the rows, intervals and table of an evaluation from its finished cells
    /// (OUT/results.json → results.json and results.md again), e.g. after an r3m upgrade that
    /// changes how intervals are computed. Runs no cell and needs no Meta-World.
    Summary(SummaryArgs),
}

/// Options for `r3m eval summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// An `r3m eval bc --out` directory (holding results.json).
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

/// Options for `r3m eval bc`.
#[derive(Debug, clap::Args)]
pub struct BcArgs {
    /// Trained encoder (checkpoint or run directory) for the `pretrained` row.
    #[arg(help_heading = "Essentials", long, value_name = "RUN|DIR")]
    checkpoint: Option<PathBuf>,
    /// LeRobot dataset with the task's demonstrations (made by python/r3m_tools/metaworld_demos.py;
    /// the repository ships one in datasets/metaworld).
    #[arg(help_heading = "Essentials", long, value_name = "ROOT")]
    data: PathBuf,
    /// Meta-World task, e.g. drawer-open-v3.
    #[arg(help_heading = "Essentials", long)]
    task: String,
    /// Rows, comma-separated: state (full simulator state, no image: the ceiling), proprio (no
    /// image: the floor), random (frozen random ResNet), random-spatial (the same network without
    /// its average pool: the last feature map flattened, a diagnostic), scratch (ResNet trained on
    /// the demos), scratch-shallow (DrQ's shallow ConvNet trained on the demos with random
    /// shifts), scratch-shallow-noshift (the same without shifts), random-shallow (that ConvNet
    /// frozen at random init), pretrained (--checkpoint), or NAME=CHECKPOINT for any checkpoint
    /// under its own name (`r3m train --arch shallow` checkpoints too), or finetune:NAME=CHECKPOINT
    /// (the checkpoint as the starting encoder, trained end to end on the demos like scratch, or
    /// like scratch-shallow for a shallow checkpoint). Default: pretrained,random with
    /// --checkpoint, else random.
    #[arg(help_heading = "Essentials", long, value_delimiter = ',')]
    encoders: Vec<String>,
    /// Further rows to pair every row with, comma-separated names from --encoders or rows kept in
    /// OUT by --resume (e.g.
    /// random-shallow: a pretrained ConvNet against its own architecture untrained). Each adds a
    /// "Δ vs ROW" column (paired difference on the seeds both rows have); `random` is always paired.
    /// Only the tables change, so `--resume` with a new --vs rewrites them without running a cell.
    #[arg(help_heading = "Essentials", long, value_delimiter = ',', value_name = "ROW")]
    vs: Vec<String>,
    /// Output directory: cells/*.json (one per finished cell), results.json and results.md.
    #[arg(help_heading = "Essentials", long, value_name = "DIR")]
    out: PathBuf,
    /// Continue in OUT: cells already there (made with the same protocol) are not run again, and
    /// rows of earlier invocations that --encoders no longer lists stay in the tables (their
    /// cells are read back, never re-run), so a table can grow a row at a time.
    #[arg(help_heading = "Essentials", long, conflicts_with = "overwrite")]
    resume: bool,
    /// Delete OUT's earlier cells and results first.
    #[arg(help_heading = "Essentials", long)]
    overwrite: bool,
    /// Numbers of demonstrations, comma-separated (5, 10 and 25 are the protocol's).
    #[arg(help_heading = "Protocol", long, default_value = "10", value_delimiter = ',')]
    demos: Vec<usize>,
    /// How many policy seeds per cell: seeds 0..N-1, the same for every encoder.
    #[arg(help_heading = "Protocol", long, value_name = "N", default_value_t = 5)]
    num_seeds: u64,
    /// Evaluate every N steps and at the end (R3M: 1000; each evaluation costs --rollouts episodes).
    #[arg(help_heading = "Protocol", long, default_value_t = 5000)]
    eval_every: u64,
    /// Rollouts per evaluation, each on a fresh layout (evaluation seeds from 1,000,000; the same
    /// layouts for every encoder and seed).
    #[arg(help_heading = "Protocol", long, default_value_t = 50)]
    rollouts: usize,
    /// Step limit per rollout (Meta-World and R3M: 500).
    #[arg(help_heading = "Protocol", long, default_value_t = 500)]
    max_episode_steps: u64,
    /// Demos after the training ones kept aside to measure held-out action MSE.
    #[arg(help_heading = "Protocol", long, default_value_t = 2)]
    heldout: usize,
    /// Encoder input side: frames (demos and rollouts alike) go through the encoder's evaluation
    /// transform, shorter side → 8/7·size, centre crop. Default: the checkpoint's training size,
    /// else 7/8 of the dataset's render size (a pure centre crop: 112 for 128-px renders).
    #[arg(help_heading = "Protocol", long)]
    size: Option<u32>,
    /// Architecture of the random and scratch encoders (default: the first ResNet checkpoint's,
    /// else resnet18; a `shallow` checkpoint's untrained counterpart is the random-shallow row).
    #[arg(help_heading = "Protocol", long)]
    arch: Option<Arch>,
    /// Camera (default: the one the dataset was rendered with).
    #[arg(help_heading = "Protocol", long)]
    camera: Option<String>,
    /// Policy training steps (R3M: 20000). The encoder is trained by `r3m train`, not here.
    #[arg(help_heading = "Policy", long, default_value_t = 5000)]
    policy_steps: u64,
    /// Policy batch size (demo frames per step).
    #[arg(help_heading = "Policy", long, default_value_t = 32)]
    policy_batch: usize,
    /// Policy learning rate (Adam).
    #[arg(help_heading = "Policy", long, default_value_t = 1e-3)]
    policy_lr: f64,
    /// Environments stepping in parallel (one Python process each).
    #[arg(help_heading = "Environments", long, default_value_t = 4)]
    envs: usize,
    /// Python with metaworld (default: python3 on PATH, the project venv after env.sh).
    #[arg(help_heading = "Environments", long, default_value = "python3")]
    python: PathBuf,
    /// The bridge script (default: $R3M_BRIDGE, else the copy carried in this binary, written to
    /// $R3M_CACHE/bridge-HASH/ on first use).
    #[arg(help_heading = "Environments", long)]
    bridge: Option<PathBuf>,
    /// Seconds an environment may take to answer before it counts as hung (time this process
    /// ran: a pause with SIGSTOP, `kill -STOP`, does not count, so a paused evaluation continues).
    #[arg(help_heading = "Environments", long, default_value_t = 60)]
    env_timeout: u64,
    #[command(flatten, next_help_heading = "Performance")]
    compute: crate::device::Compute,
    /// Log rollouts to rerun: save:PATH.rrd, spawn, or connect[:URL] (frames, actions, success).
    #[arg(help_heading = "Output", long)]
    rerun: Option<r3m_viz::Sink>,
    /// Rollouts per evaluation logged to rerun (the first ones).
    #[arg(help_heading = "Output", long, default_value_t = 2)]
    rerun_rollouts: usize,
}

pub fn run(cmd: EvalCommand) -> Result<i32> {
    let args = match cmd {
        EvalCommand::Bc(args) => args,
        EvalCommand::Summary(a) => return summary(&a),
    };
    let (dev, precision) = args.compute.resolve()?;
    check_flags(&args)?;
    let (kinds, vs) = rows_of(&args)?;
    let (mut checkpoints, ck_cfg, ck_arch) = checkpoints_of(&kinds)?;
    let render = r3m_bc::render_info(&args.data);
    let camera =
        args.camera.clone().or_else(|| render.as_ref().map(|r| r.camera.clone())).unwrap_or_else(|| "corner4".into());
    let render_size = render.as_ref().map_or(128, |r| r.size);
    let size = args.size.or_else(|| ck_cfg.as_ref().map(|c| c.size)).unwrap_or((render_size * 7 / 8).max(16));
    // `random` and `scratch` default to the first ResNet checkpoint's architecture; shallow
    // checkpoints leave them ResNet18 (their untrained counterpart is the `random-shallow` row)
    let arch = args.arch.or(ck_arch).unwrap_or(Arch::Resnet18);
    let eval_seed_base = render.as_ref().map_or(1_000_000, |r| r.eval_seed_min);

    let max_demos = args.demos.iter().max().copied().unwrap_or(0);
    tracing::info!("loading demonstrations of {} from {} ...", args.task, args.data.display());
    let frames = kinds.iter().any(EncoderKind::uses_frames).then_some(size);
    let demos = r3m_bc::load_task_demos(&args.data, &args.task, &camera, max_demos, args.heldout, frames)?;
    let longest_demo = demos.iter().map(|d| d.actions.len()).max().unwrap_or(0);
    let protocol = Protocol {
        task: args.task.clone(),
        data: args.data.clone(),
        camera: camera.clone(),
        render_size,
        size,
        arch: arch.name().to_string(),
        max_episode_steps: args.max_episode_steps,
        longest_demo,
        steps: args.policy_steps,
        eval_every: args.eval_every.min(args.policy_steps),
        rollouts: args.rollouts,
        eval_seed_base,
        batch: args.policy_batch,
        lr: args.policy_lr,
        heldout: args.heldout,
        precision: precision.name().to_string(),
    };
    if (args.max_episode_steps as usize) < 3 * longest_demo && args.max_episode_steps < 500 {
        tracing::info!(
            "note: --max-episode-steps {} is under 3× the longest expert demo ({longest_demo} steps) and under R3M's 500: \
             a cloned policy slower than its expert runs out of time",
            args.max_episode_steps
        );
    }

    if !args.resume {
        if let Some(v) = vs.iter().find(|v| !kinds.iter().any(|k| k.name() == v.as_str())) {
            bail!(
                "--vs {v}: not a row of this run (--encoders: {})",
                kinds.iter().map(EncoderKind::name).collect::<Vec<_>>().join(",")
            );
        }
    }
    // the output directory and finished cells; one evaluation writes it at a time
    let _lock = r3m_fs::OutputLock::acquire_dir(&args.out)?;
    let cells_dir = args.out.join("cells");
    let existing = r3m_bc::report::prepare_out(&args.out, args.overwrite, args.resume)?;
    let r3m_bc::report::Plan { mut done, to_run: plan, kept, kept_names, left_out } = r3m_bc::report::plan(
        &args.out,
        &kinds,
        &args.demos,
        args.num_seeds,
        args.resume,
        &protocol,
        &mut checkpoints,
        &existing,
    )?;
    let names: Vec<String> = kinds.iter().map(|k| k.name().to_string()).chain(kept_names.iter().cloned()).collect();
    announce_plan(&vs, &names, &left_out, done.len(), plan.len(), &kept, &kept_names, &cells_dir)?;

    let stop = crate::interrupt::stop_flag()?;
    let mut interrupted = false;
    let t0 = std::time::Instant::now();
    let viz =
        args.rerun.as_ref().map(|s| r3m_viz::Viz::open("r3m_eval_bc", s)).transpose().map_err(anyhow::Error::msg)?;
    if !plan.is_empty() {
        let cfg = BcConfig {
            steps: args.policy_steps,
            eval_every: args.eval_every,
            rollouts: args.rollouts,
            batch: args.policy_batch,
            lr: args.policy_lr,
            encoder_lr: 1e-4,
            device: dev,
            precision,
            size,
            eval_seed_base,
            arch,
            stop: Some(stop.clone()),
        };
        let cells = Cells { args: &args, protocol: &protocol, checkpoints: &checkpoints, cfg: &cfg, viz: viz.as_ref() };
        interrupted = cells.run(&plan, &demos, &mut done)?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(v) = viz {
        finish_viz(v, &done, args.rerun_rollouts.min(args.rollouts))?;
    }
    let complete = !interrupted && done.len() == kinds.len() * args.demos.len() * args.num_seeds as usize;
    let finished = done.len();
    done.extend(kept.into_iter().map(|(c, _)| c));
    let md = r3m_bc::report::write_results(
        &args.out,
        r3m_bc::report::Finished {
            protocol,
            checkpoints,
            names: &names,
            demos: &args.demos,
            vs: &vs,
            kept_names: &kept_names,
            cells: done,
            complete,
            total: format!("Total {elapsed:.0} s this run."),
        },
    )?;
    println!("{md}");
    if interrupted {
        tracing::info!(
            "interrupted: {finished} finished cell(s) of this run kept in {}; continue with the same command and --resume",
            cells_dir.display()
        );
        return Ok(130);
    }
    tracing::info!("results in {}", args.out.display());
    Ok(0)
}

/// `r3m eval summary OUT`: the tables of a finished evaluation, recomputed.
fn summary(a: &SummaryArgs) -> Result<i32> {
    let results = a.out.join("results.json");
    if !results.is_file() {
        bail!("{}: no such file (give the --out folder of an `r3m eval bc` run)", results.display());
    }
    let _lock = r3m_fs::OutputLock::acquire_dir(&a.out)?;
    println!("{}", r3m_bc::report::resummarise(&a.out)?);
    Ok(0)
}

fn check_flags(args: &BcArgs) -> Result<()> {
    if args.demos.is_empty() || args.demos.contains(&0) {
        bail!("--demos: give positive numbers, e.g. 5,10,25");
    }
    if args.rollouts == 0
        || args.envs == 0
        || args.policy_steps == 0
        || args.num_seeds == 0
        || args.policy_batch == 0
        || args.max_episode_steps == 0
    {
        bail!("--rollouts, --envs, --policy-steps, --num-seeds, --policy-batch and --max-episode-steps must be ≥ 1");
    }
    if let Some(s) = args.size {
        if !(16..=1024).contains(&s) {
            bail!("--size {s}: give an encoder input side between 16 and 1024 pixels");
        }
    }
    Ok(())
}

/// The rows to run (`--encoders`, or pretrained + random with a checkpoint) and `--vs`'s rows
/// other than `random`.
fn rows_of(args: &BcArgs) -> Result<(Vec<EncoderKind>, Vec<String>)> {
    let encoders: Vec<String> = if args.encoders.is_empty() {
        if args.checkpoint.is_some() {
            vec!["pretrained".into(), "random".into()]
        } else {
            vec!["random".into()]
        }
    } else {
        args.encoders.clone()
    };
    let mut kinds: Vec<EncoderKind> = Vec::new();
    for e in &encoders {
        let k = EncoderKind::parse(e, args.checkpoint.as_deref())?;
        if kinds.iter().any(|o| o.name() == k.name()) {
            bail!("--encoders: '{}' is listed twice", k.name());
        }
        kinds.push(k);
    }
    Ok((kinds, args.vs.iter().filter(|v| *v != "random").cloned().collect()))
}

/// The checkpoint folder of each pretrained row, the first one's config and the first ResNet
/// architecture among them.
#[allow(clippy::type_complexity)]
fn checkpoints_of(
    kinds: &[EncoderKind],
) -> Result<(std::collections::BTreeMap<String, PathBuf>, Option<r3m_model::checkpoint::EncoderConfig>, Option<Arch>)> {
    let mut checkpoints = std::collections::BTreeMap::new();
    let (mut ck_cfg, mut ck_arch) = (None, None);
    for k in kinds {
        if let EncoderKind::Pretrained { name, path, .. } = k {
            let dir = r3m_model::checkpoint::resolve(path)?;
            let cfg = r3m_model::checkpoint::EncoderConfig::read(&dir)?;
            let arch: Option<Arch> = cfg.architecture().ok();
            if ck_arch.is_none() {
                ck_arch = arch.filter(|a| *a != Arch::Shallow);
            }
            ck_cfg.get_or_insert(cfg);
            checkpoints.insert(name.clone(), dir);
        }
    }
    Ok((checkpoints, ck_cfg, ck_arch))
}

/// Checks `--vs` against the rows and says what is resumed, kept and left out.
#[allow(clippy::too_many_arguments)]
fn announce_plan(
    vs: &[String],
    names: &[String],
    left_out: &[String],
    done: usize,
    to_run: usize,
    kept: &[(r3m_bc::CellResult, Option<PathBuf>)],
    kept_names: &[String],
    cells_dir: &std::path::Path,
) -> Result<()> {
    for v in vs {
        if !names.contains(v) {
            bail!(
                "--vs {v}: not a row of this run (rows: {}{})",
                names.join(","),
                if left_out.is_empty() { String::new() } else { format!("; left out: {}", left_out.join("; ")) }
            );
        }
    }
    if done > 0 || !kept.is_empty() {
        tracing::info!("resuming: {done} finished cell(s) in {}, {to_run} to run", cells_dir.display());
    }
    if !kept.is_empty() {
        tracing::info!(
            "keeping {} other finished cell(s) in {}{}",
            kept.len(),
            cells_dir.display(),
            if kept_names.is_empty() {
                String::new()
            } else {
                format!(", rows not in --encoders: {}", kept_names.join(", "))
            }
        );
    }
    for l in left_out {
        tracing::warn!("left out of the tables: {l}");
    }
    Ok(())
}

/// What running the plan's cells needs.
struct Cells<'a> {
    args: &'a BcArgs,
    protocol: &'a Protocol,
    checkpoints: &'a std::collections::BTreeMap<String, PathBuf>,
    cfg: &'a BcConfig,
    viz: Option<&'a r3m_viz::Viz>,
}

impl Cells<'_> {
    /// Starts the environments and runs `plan`'s cells in order, writing each finished cell's file
    /// and adding it to `done`, with progress bars. Returns whether it was interrupted.
    fn run(
        &self,
        plan: &[(EncoderKind, usize, u64)],
        demos: &[r3m_bc::Demo],
        done: &mut Vec<r3m_bc::CellResult>,
    ) -> Result<bool> {
        let (args, p) = (self.args, self.protocol);
        let bridge = BridgeConfig {
            python: args.python.clone(),
            script: args.bridge.clone().unwrap_or_else(BridgeConfig::default_script),
            task: args.task.clone(),
            camera: p.camera.clone(),
            size: p.render_size,
            max_episode_steps: args.max_episode_steps,
            timeout: Duration::from_secs(args.env_timeout),
        };
        tracing::info!(
            "starting {} Meta-World environment(s) ({}, {}, {} px, encoder input {} px) ...",
            args.envs,
            args.task,
            p.camera,
            p.render_size,
            p.size
        );
        let mut envs: Vec<Box<dyn Env>> = Vec::new();
        for _ in 0..args.envs {
            envs.push(Box::new(MetaWorldBridge::start(&bridge)?));
        }
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(plan.len() as u64));
        overall.set_style(
            ProgressStyle::with_template("cells {bar:20} {pos}/{len} [{elapsed_precise}<{eta_precise}]")
                .expect("valid template"),
        );
        let detail = multi.add(ProgressBar::new_spinner());
        let mut interrupted = false;
        for (kind, n, seed) in plan {
            let (n, seed) = (*n, *seed);
            let train: Vec<&r3m_bc::Demo> = demos.iter().take(n).collect();
            let heldout: Vec<&r3m_bc::Demo> = demos.iter().skip(n).take(args.heldout).collect();
            detail.set_message(format!("{} × {n} demos × seed {seed}", kind.name()));
            let prefix = format!("{}/demos_{n}/seed_{seed}", kind.name());
            let mut observe = |s: &r3m_bc::RolloutStep| {
                if let Some(v) = self.viz {
                    if s.rollout < args.rerun_rollouts && !s.frame.is_empty() {
                        let side = ((s.frame.len() / 3) as f64).sqrt() as u32;
                        if let Err(e) =
                            v.rollout_step(&prefix, s.eval_step, s.rollout, s.t, s.frame, side, s.action, s.success)
                        {
                            detail.println(format!("warning: {e}"));
                        }
                    }
                }
            };
            let r = r3m_bc::run_cell(
                kind,
                &train,
                &heldout,
                seed,
                self.cfg,
                &mut envs,
                |m| {
                    detail.set_message(format!("{} × {n} demos × seed {seed}: {m}", kind.name()));
                    detail.tick();
                },
                &mut observe,
            );
            let r = match r {
                Ok(r3m_bc::CellOutcome::Done(r)) => r,
                Ok(r3m_bc::CellOutcome::Interrupted) => {
                    interrupted = true;
                    break;
                }
                Err(e) => return Err(e.context(format!("cell {} × {n} demos × seed {seed}", kind.name()))),
            };
            let file = CellFile {
                format: CELL_FORMAT.into(),
                protocol: p.clone(),
                checkpoint: self.checkpoints.get(kind.name()).cloned(),
                finetune: matches!(kind, EncoderKind::Pretrained { finetune: true, .. }),
                cell: r.clone(),
            };
            write_atomic(&cell_file(&args.out, kind.name(), n, seed), &serde_json::to_string_pretty(&file)?)?;
            done.push(r);
            overall.inc(1);
        }
        detail.finish_and_clear();
        overall.finish();
        Ok(interrupted)
    }
}

/// Sends the evaluation's blueprint to the rerun recording and closes it.
fn finish_viz(v: r3m_viz::Viz, done: &[r3m_bc::CellResult], rollouts: usize) -> Result<()> {
    let evaluations: Vec<String> = done
        .iter()
        .flat_map(|r| {
            r.evals.iter().map(move |e| format!("{}/demos_{}/seed_{}/step_{}", r.encoder, r.demos, r.seed, e.step))
        })
        .collect();
    v.send_blueprint(r3m_viz::eval_blueprint(&evaluations, rollouts)).map_err(anyhow::Error::msg)?;
    v.finish().map_err(anyhow::Error::msg)
}
