//! Messages go through `tracing`: plain lines on stderr (no time, level or target: they are read
//! by people), filtered by `-q` / `-v` (or `R3M_LOG`, an `EnvFilter` directive, which wins), and
//! copied into a run's log file once the run has one ([`to_file`]); lines written before that are
//! kept and go into the file first. Progress bars and results (stdout) are not messages.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// The crates whose messages are shown at the chosen level (dependencies: warnings only).
const CRATES: [&str; 9] =
    ["r3m", "r3m_cli", "r3m_train", "r3m_data", "r3m_bc", "r3m_export", "r3m_model", "r3m_video", "r3m_viz"];
/// Lines kept before a log file is opened (a run's start-up messages); the rest are dropped.
const EARLY_MAX: usize = 1 << 20;

enum Sink {
    Early(Vec<u8>),
    File(std::fs::File),
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Early(Vec::new()));

struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        if let Ok(mut sink) = SINK.lock() {
            match &mut *sink {
                Sink::Early(v) if v.len() + buf.len() <= EARLY_MAX => v.extend_from_slice(buf),
                Sink::Early(_) => {}
                // a full disk must not stop training: the log is a copy
                Sink::File(f) => {
                    let _ = f.write_all(buf);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the subscriber: `quiet` shows warnings and errors only, `verbose` 1 adds debug, 2+ trace.
pub fn init(verbose: u8, quiet: bool) {
    let level = if quiet {
        "warn"
    } else {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let directives: Vec<String> =
        std::iter::once("warn".to_string()).chain(CRATES.iter().map(|c| format!("{c}={level}"))).collect();
    let filter = EnvFilter::try_from_env("R3M_LOG").unwrap_or_else(|_| EnvFilter::new(directives.join(",")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .with_writer(|| Tee)
        .init();
}

/// From now on messages are appended to `path` too (the lines so far first).
pub fn to_file(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut sink = SINK.lock().map_err(|_| std::io::Error::other("log lock poisoned"))?;
    if let Sink::Early(v) = &*sink {
        f.write_all(v)?;
    }
    *sink = Sink::File(f);
    Ok(())
}
