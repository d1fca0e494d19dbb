#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m (the binary)
//!
//! Parses the command line and wires the library crates together; owns no logic of its own.
//! Each subcommand lives in its own module.

#[cfg(test)]
mod cli_docs;
mod device;
mod doctor;
mod embed;
mod eval;
mod interrupt;
mod into_dataset;
mod log;
mod probe;
mod source;
mod train;
mod view;

use clap::{Parser, Subcommand};

/// r3m: learn visual representations for robot manipulation from raw video (R3M-style
/// time-contrastive training on libtorch), export per-frame embeddings, and prove them with
/// few-demo behaviour cloning.
///
/// Start with `r3m doctor` to check that libtorch, FFmpeg and rerun work on this machine.
#[derive(Debug, Parser)]
#[command(name = "r3m", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More messages (-v: debug, -vv: trace). `R3M_LOG` (an EnvFilter directive) overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Warnings and errors only (progress bars stay).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the installation: libtorch (version, CUDA, a real ResNet forward pass), FFmpeg
    /// (library versions, H.264/HEVC/VP9/AV1 decoders, a real encode→decode round trip) and the
    /// rerun SDK. Exits non-zero, naming the part, when something is missing or broken.
    Doctor(doctor::Args),
    /// Show what r3m sees in video files: codec, size, rotation, frame count (`~` marks an
    /// estimate), fps, duration and keyframe interval. Unreadable files are reported and skipped.
    Probe(probe::Args),
    /// Train an encoder with R3M's time-contrastive objective (or --objective triplet, npair,
    /// simclr, moco, byol, proto; plus R3M's language term with --lang-weight) straight from
    /// videos (a folder, a LeRobot dataset or a manifest): 5-frame tuples per clip (nearby frames
    /// are positives, distant frames and other clips are negatives), Adam, metrics in
    /// RUN/metrics.csv, atomic checkpoints, exact --resume. R3M's objective and tuple sampler; the
    /// default loader reuses each decoded clip for 4 tuples (see --loader), where R3M draws fresh
    /// clips for every batch.
    Train(Box<train::Args>),
    /// Write a frozen encoder's per-frame embeddings to Parquet (video / episode_index,
    /// frame_index, timestamp, index, embedding), streaming, resumable, shardable with --shard I/N;
    /// or into a copy of a LeRobot dataset as a feature its policies read (--into-dataset).
    Embed(embed::Args),
    /// Evaluate an encoder: `r3m eval bc` trains few-demo policies on its frozen features and
    /// reports closed-loop success on Meta-World beside baselines.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// A rerun recording of what an encoder sees: per video its frames, the embedding trajectory
    /// in 3-D (PCA), the frame-distance matrix and the distance to the final frame, from a
    /// checkpoint or from an embeddings Parquet.
    View(view::Args),
}

fn main() {
    let cli = Cli::parse();
    log::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Train(args) => train::run(*args),
        Command::Embed(args) => embed::run(args),
        Command::Eval(cmd) => eval::run(cmd),
        Command::View(args) => view::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::error!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
