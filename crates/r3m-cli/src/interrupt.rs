//! The one stop flag of the process: Ctrl-C (SIGINT), SIGTERM (what Slurm, Kubernetes and
//! `torchrun` send before they kill a job) and SIGHUP set it, and the long jobs (`train`, `embed`,
//! `eval bc`) finish their current piece of work, write what is done (`train`: a checkpoint at the
//! current step) and exit 130.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process's stop flag; the first call installs the signal handler that sets it. An error
/// when the handler cannot be installed (a job that could not be stopped cleanly does not start).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    if let Some(flag) = STOP.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || handler_flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    Ok(STOP.get_or_init(|| flag).clone())
}
