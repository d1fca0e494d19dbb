//! Environments: the [`Env`] trait and the Meta-World bridge, a Python server
//! (`python/r3m_tools/metaworld_bridge.py`) around one Meta-World env spoken to over stdin/stdout (one JSON
//! line per request; a JSON line plus raw RGB bytes per answer; the protocol is in the script's
//! docstring). A reader thread parses the answers, so a dead server is an error at once and a hung
//! one is an error after `timeout`, never a hang. The timeout counts time this process ran: a run
//! paused with SIGSTOP (or a suspended machine) does not find its bridges "hung" when continued.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

/// How long one wait for a bridge's answer lasts before the time spent is charged to the timeout.
const WAIT_SLICE: Duration = Duration::from_secs(1);
/// A wait that returns this much later than it asked was not waiting: the process was paused.
const PAUSED: Duration = Duration::from_secs(1);

/// Time charged against a bridge's timeout for a wait of `asked` that returned after `took`: all
/// of it, unless it overran by more than [`PAUSED`]: then the process was stopped and continued
/// somewhere in that wait, and nothing is charged (charging the slice would let one pause use up
/// a timeout as short as the slice).
fn charged(asked: Duration, took: Duration) -> Duration {
    if took > asked + PAUSED {
        Duration::ZERO
    } else {
        took
    }
}

/// What an environment shows after a reset or a step.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Camera image, RGB u8 `[height, width, 3]` (empty when rendering is off).
    pub frame: Vec<u8>,
    /// `(width, height)` of `frame`.
    pub frame_size: (u32, u32),
    /// The simulator's full observation vector (Meta-World: 39 values; empty when the env does
    /// not send it).
    pub state: Vec<f32>,
    /// Proprioception (Meta-World: hand xyz + gripper).
    pub proprio: Vec<f32>,
    /// Reward of the last step.
    pub reward: f64,
    /// Whether the task is solved now.
    pub success: bool,
    /// Whether the episode is over (success or step limit).
    pub done: bool,
    /// Steps taken.
    pub step: u64,
}

/// A simulated task the policy acts in.
pub trait Env {
    /// Image width and height.
    fn frame_size(&self) -> (u32, u32);
    /// Whether resets and steps render the camera (rows that use no image turn it off).
    fn set_render(&mut self, on: bool);
    /// Starts an episode on the layout of `seed`.
    fn reset(&mut self, seed: u64) -> Result<Observation>;
    /// Sends a reset without waiting (see [`Env::finish`]); for stepping many envs in parallel.
    fn send_reset(&mut self, seed: u64) -> Result<()>;
    /// Sends an action without waiting.
    fn send_step(&mut self, action: &[f32]) -> Result<()>;
    /// Waits for the answer to the last `send_*`.
    fn finish(&mut self) -> Result<Observation>;
    /// Applies `action`.
    fn step(&mut self, action: &[f32]) -> Result<Observation> {
        self.send_step(action)?;
        self.finish()
    }
}

struct Message {
    header: serde_json::Value,
    frame: Vec<u8>,
}

/// One Meta-World environment in a Python subprocess.
pub struct MetaWorldBridge {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Result<Message, String>>,
    stderr: Arc<Mutex<Vec<String>>>,
    timeout: Duration,
    width: u32,
    height: u32,
    task: String,
    render: bool,
}

/// How to start bridges.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Python interpreter (with metaworld installed).
    pub python: PathBuf,
    /// `python/r3m_tools/metaworld_bridge.py`.
    pub script: PathBuf,
    /// Meta-World task, e.g. `drawer-open-v3`.
    pub task: String,
    /// Camera name.
    pub camera: String,
    /// Square render size.
    pub size: u32,
    /// Step limit per episode.
    pub max_episode_steps: u64,
    /// How long an answer may take before the bridge counts as hung.
    pub timeout: Duration,
}

impl BridgeConfig {
    /// The bridge script: `$R3M_BRIDGE` when set, else the copy carried inside this binary
    /// (`python/r3m_tools/metaworld_bridge.py` and `python/r3m_tools/metaworld_env.py` as they were at build time),
    /// written once to `$R3M_CACHE/bridge-HASH/` (default `~/.cache/r3m`, else the temp folder).
    /// So an installed or copied `r3m` finds its bridge wherever it runs.
    pub fn default_script() -> PathBuf {
        if let Some(p) = std::env::var_os("R3M_BRIDGE") {
            return PathBuf::from(p);
        }
        let cache = r3m_fs::cache_root().unwrap_or_else(std::env::temp_dir);
        match install_bridge(&cache).or_else(|_| install_bridge(&std::env::temp_dir().join("r3m"))) {
            Ok(p) => p,
            // start() reports the missing script with this path
            Err(e) => PathBuf::from(format!("(could not write the bridge script: {e})")),
        }
    }
}

/// The bridge's Python files, carried in the binary.
const BRIDGE_FILES: [(&str, &str); 2] = [
    ("metaworld_bridge.py", include_str!("../../../python/r3m_tools/metaworld_bridge.py")),
    ("metaworld_env.py", include_str!("../../../python/r3m_tools/metaworld_env.py")),
];

/// Writes [`BRIDGE_FILES`] to `cache/bridge-HASH/` (content-addressed: a folder that exists holds
/// exactly these files, written atomically) and returns the bridge script's path.
pub fn install_bridge(cache: &Path) -> std::result::Result<PathBuf, r3m_fs::Error> {
    let mut h = r3m_fs::Fnv64::default();
    for (name, text) in BRIDGE_FILES {
        h.update(name.as_bytes()).update(&[0]).update(text.as_bytes());
    }
    let dir = cache.join(format!("bridge-{:016x}", h.finish()));
    for (name, text) in BRIDGE_FILES {
        let p = dir.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
            r3m_fs::write(&p, text.as_bytes())?;
        }
    }
    Ok(dir.join(BRIDGE_FILES[0].0))
}

impl MetaWorldBridge {
    /// Starts a bridge and waits for its hello.
    pub fn start(cfg: &BridgeConfig) -> Result<Self> {
        if !cfg.script.exists() {
            bail!("{}: bridge script not found (set R3M_BRIDGE or --bridge)", cfg.script.display());
        }
        let mut child = Command::new(&cfg.python)
            .arg(&cfg.script)
            .args(["--task", &cfg.task, "--camera", &cfg.camera])
            .args(["--size", &cfg.size.to_string(), "--max-episode-steps", &cfg.max_episode_steps.to_string()])
            .env("MUJOCO_GL", std::env::var("MUJOCO_GL").unwrap_or_else(|_| "egl".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} {}", cfg.python.display(), cfg.script.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr_pipe = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let stderr = stderr.clone();
            let _ = std::thread::Builder::new().name("r3m-bridge-stderr".into()).spawn(move || {
                for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                    let mut s = stderr.lock().expect("not poisoned");
                    s.push(line);
                    if s.len() > 20 {
                        s.remove(0);
                    }
                }
            });
        }
        let (tx, rx) = bounded(4);
        let reader = std::thread::Builder::new().name("r3m-bridge-reader".into()).spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        break;
                    }
                }
                let header: serde_json::Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = tx.send(Err(format!("unparsable answer ({e}): {}", line.trim())));
                        break;
                    }
                };
                let n = header["frame_bytes"].as_u64().unwrap_or(0) as usize;
                let mut frame = vec![0u8; n];
                if let Err(e) = r.read_exact(&mut frame) {
                    let _ = tx.send(Err(format!("frame cut short: {e}")));
                    break;
                }
                if tx.send(Ok(Message { header, frame })).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = reader {
            let _ = child.kill();
            anyhow::bail!("starting the bridge's reader thread: {e}");
        }
        let mut b = MetaWorldBridge {
            child,
            stdin,
            rx,
            stderr,
            timeout: cfg.timeout,
            width: 0,
            height: 0,
            task: cfg.task.clone(),
            render: true,
        };
        // starting Python and MuJoCo takes a few seconds: allow more than one step's timeout
        let hello = b.recv_within(cfg.timeout.max(Duration::from_secs(60)))?;
        if hello.header["hello"] != "r3m-metaworld-bridge" {
            bail!("bridge for {}: unexpected hello {}", cfg.task, hello.header);
        }
        b.width = hello.header["width"].as_u64().unwrap_or(0) as u32;
        b.height = hello.header["height"].as_u64().unwrap_or(0) as u32;
        Ok(b)
    }

    fn died(&mut self, what: &str) -> anyhow::Error {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited with {s}"),
            _ => "stopped answering".to_string(),
        };
        let tail = self.stderr.lock().map(|s| s.join("\n  ")).unwrap_or_default();
        anyhow!("Meta-World bridge for {} {status} {what}; its last stderr lines:\n  {tail}", self.task)
    }

    fn recv_within(&mut self, timeout: Duration) -> Result<Message> {
        // wait in slices; a slice that overran by much more than a scheduler hiccup was a pause
        // of this process (SIGSTOP, suspend) and is not charged
        let mut left = timeout;
        let got = loop {
            let slice = left.min(WAIT_SLICE);
            let t0 = Instant::now();
            match self.rx.recv_timeout(slice) {
                Err(RecvTimeoutError::Timeout) => {
                    left = left.saturating_sub(charged(slice, t0.elapsed()));
                    if left.is_zero() {
                        break Err(RecvTimeoutError::Timeout);
                    }
                }
                r => break r,
            }
        };
        match got {
            Ok(Ok(m)) => {
                if m.header["ok"] != true {
                    bail!("Meta-World bridge for {}: {}", self.task, m.header["error"].as_str().unwrap_or("error"));
                }
                Ok(m)
            }
            Ok(Err(e)) => Err(self.died(&format!("({e})"))),
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50));
                Err(self.died(""))
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                bail!("Meta-World bridge for {} did not answer within {:.0?}: killed it (hung?)", self.task, timeout)
            }
        }
    }

    fn send(&mut self, v: &serde_json::Value) -> Result<()> {
        let line = format!("{v}\n");
        if self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()).is_err() {
            return Err(self.died("(its stdin is closed)"));
        }
        Ok(())
    }

    fn observation(&self, m: Message) -> Observation {
        let h = &m.header;
        let floats = |key: &str| -> Vec<f32> {
            h[key].as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect()).unwrap_or_default()
        };
        Observation {
            frame_size: if m.frame.is_empty() { (0, 0) } else { (self.width, self.height) },
            state: floats("state"),
            proprio: floats("proprio"),
            reward: h["reward"].as_f64().unwrap_or(0.0),
            success: h["success"] == true,
            done: h["done"] == true,
            step: h["step"].as_u64().unwrap_or(0),
            frame: m.frame,
        }
    }

    /// The scripted expert's action for the current state.
    pub fn expert(&mut self) -> Result<Vec<f32>> {
        self.send(&serde_json::json!({"cmd": "expert"}))?;
        let m = self.recv_within(self.timeout)?;
        Ok(m.header["action"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect())
            .unwrap_or_default())
    }

    /// Process id of the server (for tests that kill it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Env for MetaWorldBridge {
    fn frame_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn set_render(&mut self, on: bool) {
        self.render = on;
    }

    fn reset(&mut self, seed: u64) -> Result<Observation> {
        self.send_reset(seed)?;
        self.finish()
    }

    fn send_reset(&mut self, seed: u64) -> Result<()> {
        self.send(&serde_json::json!({"cmd": "reset", "seed": seed, "render": self.render}))
    }

    fn send_step(&mut self, action: &[f32]) -> Result<()> {
        if action.iter().any(|a| !a.is_finite()) {
            bail!("policy produced a non-finite action {action:?}");
        }
        self.send(&serde_json::json!({"cmd": "step", "action": action, "render": self.render}))
    }

    fn finish(&mut self) -> Result<Observation> {
        let m = self.recv_within(self.timeout)?;
        Ok(self.observation(m))
    }
}

impl Drop for MetaWorldBridge {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\":\"close\"}\n");
        let _ = self.stdin.flush();
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_wait_is_not_charged() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // an ordinary wait, late or on time, is charged what it took
        assert_eq!(charged(s(1), s(1)), s(1));
        assert_eq!(charged(s(1), ms(1900)), ms(1900));
        assert_eq!(charged(ms(500), ms(1400)), ms(1400));
        assert_eq!(charged(ms(300), ms(100)), ms(100));
        // one that returned seconds or minutes late was a SIGSTOP: not charged
        assert_eq!(charged(s(1), s(600)), Duration::ZERO);
        assert_eq!(charged(ms(250), s(4)), Duration::ZERO);
        assert_eq!(charged(s(1), ms(2100)), Duration::ZERO);
    }
}
