//! `r3m eval bc`: few-demo behaviour cloning on Meta-World, closed loop, with baselines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use r3m_bc::{BcConfig, BridgeConfig, CellResult, EncoderKind, Env, MetaWorldBridge};
use r3m_model::{Arch, Precision};

/// `r3m eval` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Behaviour cloning: freeze the encoder, train R3M's policy (BatchNorm → 256 tanh → 256 tanh
    /// → action, MSE, Adam) on N demos, and report closed-loop success in fresh Meta-World layouts
    /// (max over evaluations, as R3M reports, and final), with 95% Wilson intervals, beside
    /// baselines on the same demos and seeds.
    Bc(BcArgs),
}

/// Options for `r3m eval bc`.
#[derive(Debug, clap::Args)]
pub struct BcArgs {
    /// Trained encoder (checkpoint or run directory) for the `pretrained` rows.
    #[arg(long, value_name = "RUN|DIR")]
    checkpoint: Option<PathBuf>,
    /// LeRobot dataset with the task's demonstrations (made by scripts/metaworld_demos.py).
    #[arg(long, value_name = "ROOT", default_value = "datasets/metaworld")]
    data: PathBuf,
    /// Meta-World task, e.g. drawer-open-v3.
    #[arg(long)]
    task: String,
    /// Numbers of demonstrations, comma-separated.
    #[arg(long, default_value = "5,10,25", value_delimiter = ',')]
    demos: Vec<usize>,
    /// Policy seeds per cell.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Encoders to compare: pretrained (needs --checkpoint), random (frozen random init), scratch
    /// (trained end to end on the demos). Default: pretrained,random with --checkpoint, else random.
    #[arg(long, value_delimiter = ',')]
    encoders: Vec<String>,
    /// Policy training steps (R3M: 20000).
    #[arg(long, default_value_t = 20000)]
    steps: u64,
    /// Evaluate every N steps (R3M: 1000) and at the end.
    #[arg(long, default_value_t = 1000)]
    eval_every: u64,
    /// Rollouts per evaluation, each on a fresh layout (evaluation seeds from 1,000,000; the same
    /// layouts for every encoder and seed).
    #[arg(long, default_value_t = 50)]
    rollouts: usize,
    /// Step limit per rollout (Meta-World: 500).
    #[arg(long, default_value_t = 500)]
    max_episode_steps: u64,
    /// Environments stepping in parallel (one Python process each).
    #[arg(long, default_value_t = 2)]
    envs: usize,
    /// Policy batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Policy learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Demos after the training ones kept aside to measure held-out action MSE.
    #[arg(long, default_value_t = 2)]
    heldout: usize,
    /// Encoder input side (frames are resized to it); default: the checkpoint's training size,
    /// else the dataset's render size.
    #[arg(long)]
    size: Option<u32>,
    /// Architecture of the random and scratch encoders (default: the checkpoint's, else resnet18).
    #[arg(long)]
    arch: Option<Arch>,
    /// Camera (default: the one the dataset was rendered with).
    #[arg(long)]
    camera: Option<String>,
    /// Output directory: results.json and results.md.
    #[arg(long, default_value = "runs/eval-bc")]
    out: PathBuf,
    #[command(flatten)]
    compute: crate::device::Compute,
    /// Python with metaworld (default: python3 on PATH, the project venv after env.sh).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The bridge script (default: $R3M_BRIDGE or scripts/metaworld_bridge.py).
    #[arg(long)]
    bridge: Option<PathBuf>,
    /// Log rollouts to rerun: save:PATH.rrd, spawn, or connect[:URL] (frames, actions, success).
    #[arg(long)]
    rerun: Option<r3m_viz::Sink>,
    /// Rollouts per evaluation logged to rerun (the first ones).
    #[arg(long, default_value_t = 2)]
    rerun_rollouts: usize,
    /// Seconds an environment may take to answer before it counts as hung.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub fn run(cmd: EvalCommand) -> Result<i32> {
    let EvalCommand::Bc(args) = cmd;
    let (dev, precision) = args.compute.resolve()?;
    if args.demos.is_empty() || args.demos.contains(&0) {
        bail!("--demos: give positive numbers, e.g. 5,10,25");
    }
    if args.rollouts == 0 || args.envs == 0 || args.steps == 0 || args.seeds == 0 {
        bail!("--rollouts, --envs, --steps and --seeds must be ≥ 1");
    }
    let encoders: Vec<String> = if args.encoders.is_empty() {
        if args.checkpoint.is_some() { vec!["pretrained".into(), "random".into()] } else { vec!["random".into()] }
    } else {
        args.encoders.clone()
    };
    let mut kinds = Vec::new();
    for e in &encoders {
        kinds.push(match e.as_str() {
            "pretrained" => EncoderKind::Pretrained(args.checkpoint.clone().context("--encoders pretrained needs --checkpoint RUN")?),
            "random" => EncoderKind::Random,
            "scratch" => EncoderKind::Scratch,
            other => bail!("--encoders: unknown encoder '{other}' (pretrained, random, scratch)"),
        });
    }
    let ck_cfg = match &args.checkpoint {
        Some(c) => Some(r3m_model::checkpoint::read_config(&r3m_model::checkpoint::resolve(c)?)?),
        None => None,
    };
    let render = r3m_bc::render_info(&args.data);
    let camera = args.camera.clone().or_else(|| render.as_ref().map(|r| r.camera.clone())).unwrap_or_else(|| "corner4".into());
    let render_size = render.as_ref().map_or(224, |r| r.size);
    let size = args.size.or_else(|| ck_cfg.as_ref().and_then(|c| c["size"].as_u64()).map(|s| s as u32)).unwrap_or(render_size);
    let arch = args.arch.or_else(|| ck_cfg.as_ref().and_then(|c| c["arch"].as_str()).and_then(|a| a.parse().ok())).unwrap_or(Arch::Resnet18);
    let eval_seed_base = render.as_ref().map_or(1_000_000, |r| r.eval_seed_min);

    let need = args.demos.iter().max().copied().unwrap_or(0) + args.heldout;
    eprintln!("loading demonstrations of {} from {} ...", args.task, args.data.display());
    let demos = r3m_bc::load_demos(&args.data, Some(&args.task), Some(&format!("observation.images.{camera}")))?;
    if demos.len() < args.demos.iter().max().copied().unwrap_or(0) {
        bail!(
            "{}: {} demonstrations of {}, --demos asks for {} (make more with scripts/metaworld_demos.py --tasks {} --episodes {need})",
            args.data.display(),
            demos.len(),
            args.task,
            args.demos.iter().max().unwrap(),
            args.task
        );
    }
    let bridge = BridgeConfig {
        python: args.python.clone(),
        script: args.bridge.clone().unwrap_or_else(BridgeConfig::default_script),
        task: args.task.clone(),
        camera: camera.clone(),
        size: render_size,
        max_episode_steps: args.max_episode_steps,
        timeout: Duration::from_secs(args.timeout),
    };
    eprintln!("starting {} Meta-World environment(s) ({}, {camera}, {render_size} px) ...", args.envs, args.task);
    let mut envs: Vec<Box<dyn Env>> = Vec::new();
    for _ in 0..args.envs {
        envs.push(Box::new(MetaWorldBridge::start(&bridge)?));
    }
    let cfg = BcConfig {
        steps: args.steps,
        eval_every: args.eval_every,
        rollouts: args.rollouts,
        batch: args.batch,
        lr: args.lr,
        encoder_lr: 1e-4,
        device: dev,
        precision,
        size,
        eval_seed_base,
        arch,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let cells = kinds.len() * args.demos.len() * args.seeds as usize;
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(cells as u64));
    overall.set_style(ProgressStyle::with_template("cells {bar:20} {pos}/{len} [{elapsed_precise}<{eta_precise}]").expect("valid template"));
    let detail = multi.add(ProgressBar::new_spinner());
    let viz = args.rerun.as_ref().map(|s| r3m_viz::Viz::open("r3m_eval_bc", s)).transpose().map_err(anyhow::Error::msg)?;
    let mut results: Vec<CellResult> = Vec::new();
    let t0 = std::time::Instant::now();
    for kind in &kinds {
        for &n in &args.demos {
            let train: Vec<&r3m_bc::Demo> = demos.iter().take(n).collect();
            let heldout: Vec<&r3m_bc::Demo> = demos.iter().skip(n).take(args.heldout).collect();
            for seed in 0..args.seeds {
                detail.set_message(format!("{} × {n} demos × seed {seed}", kind.name()));
                let prefix = format!("{}/demos_{n}/seed_{seed}", kind.name());
                let mut observe = |s: &r3m_bc::RolloutStep| {
                    if let Some(v) = &viz {
                        if s.rollout < args.rerun_rollouts {
                            let side = ((s.frame.len() / 3) as f64).sqrt() as u32;
                            if let Err(e) = v.rollout_step(&prefix, s.eval_step, s.rollout, s.t, s.frame, side, s.action, s.success) {
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
                    &cfg,
                    &mut envs,
                    |m| {
                        detail.set_message(format!("{} × {n} demos × seed {seed}: {m}", kind.name()));
                        detail.tick();
                    },
                    &mut observe,
                )?;
                results.push(r);
                overall.inc(1);
            }
        }
    }
    detail.finish_and_clear();
    overall.finish();
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(v) = viz {
        let evaluations: Vec<String> = results
            .iter()
            .flat_map(|r| r.evals.iter().map(move |e| format!("{}/demos_{}/seed_{}/step_{}", r.encoder, r.demos, r.seed, e.step)))
            .collect();
        v.send_blueprint(r3m_viz::eval_blueprint(&evaluations, args.rerun_rollouts.min(args.rollouts))).map_err(anyhow::Error::msg)?;
        v.finish().map_err(anyhow::Error::msg)?;
    }
    let md = table(&args, &kinds, &results, elapsed, size, precision);
    let json = serde_json::json!({
        "task": args.task, "data": args.data, "checkpoint": args.checkpoint, "demos": args.demos,
        "seeds": args.seeds, "steps": args.steps, "eval_every": args.eval_every, "rollouts": args.rollouts,
        "max_episode_steps": args.max_episode_steps, "size": size, "camera": camera, "render_size": render_size,
        "precision": precision.name(), "eval_seed_base": eval_seed_base, "seconds": elapsed,
        "cells": results,
    });
    let write = |name: &str, text: String| -> Result<()> {
        let p = args.out.join(name);
        let tmp = args.out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    };
    write("results.json", serde_json::to_string_pretty(&json)?)?;
    write("results.md", md.clone())?;
    println!("{md}");
    eprintln!("results in {}", args.out.display());
    Ok(0)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

fn table(args: &BcArgs, kinds: &[EncoderKind], results: &[CellResult], elapsed: f64, size: u32, precision: Precision) -> String {
    let mut s = format!(
        "### {} — behaviour cloning, {} seed(s) × {} rollouts per cell, {} policy steps (eval every {}), encoder input {size} px {precision}\n\n",
        args.task, args.seeds, args.rollouts, args.steps, args.eval_every
    );
    s.push_str("| encoder | demos | final success (95% CI) | max over evals | held-out action MSE | time |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for k in kinds {
        for &n in &args.demos {
            let cell: Vec<&CellResult> = results.iter().filter(|r| r.encoder == k.name() && r.demos == n).collect();
            if cell.is_empty() {
                continue;
            }
            let (ok, tot): (usize, usize) = cell.iter().filter_map(|r| r.evals.last()).fold((0, 0), |a, e| (a.0 + e.successes, a.1 + e.rollouts));
            let (lo, hi) = r3m_bc::wilson(ok, tot);
            let mean_final = cell.iter().map(|r| r.final_rate()).sum::<f64>() / cell.len() as f64;
            let mean_max = cell.iter().map(|r| r.max_rate()).sum::<f64>() / cell.len() as f64;
            let mse: Vec<f64> = cell.iter().filter_map(|r| r.heldout_mse).collect();
            let mse = if mse.is_empty() { "–".into() } else { format!("{:.4}", mse.iter().sum::<f64>() / mse.len() as f64) };
            let secs: f64 = cell.iter().map(|r| r.seconds).sum();
            s.push_str(&format!("| {} | {n} | {} ({}–{}) | {} | {mse} | {:.0} s |\n", k.name(), pct(mean_final), pct(lo), pct(hi), pct(mean_max), secs));
        }
    }
    s.push_str(&format!("\nTotal {:.0} s. Final: success at the last evaluation, mean over seeds; CI: Wilson 95% over all final rollouts pooled. Max: R3M's number, the best evaluation per seed, averaged.\n", elapsed));
    s
}
