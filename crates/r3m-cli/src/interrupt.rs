//! The one stop flag of the process: Ctrl-C (SIGINT), SIGTERM (what Slurm, Kubernetes and
//! `torchrun` send before they kill a job), SIGHUP and SIGUSR1 (what Slurm's `--signal=USR1@SECS`
//! sends ahead of a time limit) set it, and the long jobs (`train`, `embed`, `eval bc`) finish their
//! current piece of work, write what is done (`train`: a checkpoint at the current step) and exit
//! 130.

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
    let flag = STOP.get_or_init(|| flag).clone();
    // SIGUSR1 (ctrlc covers INT, TERM and HUP): a plain handler that sets the same flag
    // SAFETY: a zeroed sigaction with a handler that only does an atomic load and store (both
    // async-signal-safe), installed once
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        anyhow::bail!("installing the SIGUSR1 handler: {}", std::io::Error::last_os_error());
    }
    Ok(flag)
}

extern "C" fn on_usr1(_: libc::c_int) {
    if let Some(f) = STOP.get() {
        f.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
