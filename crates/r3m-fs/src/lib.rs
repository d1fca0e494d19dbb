#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-fs
//!
//! The one way r3m puts a file or a folder under its final name: write under a temporary name in
//! the same folder, fsync the data, rename into place, fsync the folder. A reader (or a run that
//! was killed and resumed) sees the old content or the new one, never a half-written file, and
//! after a power loss the rename is not lost.
//!
//! - [`write`]: a whole file from bytes (`latest`, `config.json`, results, cache entries).
//! - [`TempFile`]: a file written by a streaming writer (Parquet parts); [`TempFile::commit`] puts
//!   it in place, dropping it uncommitted removes it.
//! - [`TempDir`]: a folder filled file by file (checkpoints, `best/`); [`TempDir::commit`] replaces
//!   the target in one step on Linux (`renameat2(RENAME_EXCHANGE)`), elsewhere by two renames whose
//!   gap [`clean_stale`] repairs.
//! - [`OutputLock`]: one writer per output (a run directory, an embeddings file, an evaluation),
//!   an exclusive `flock` on a lock file that names its holder.
//! - [`cache_root`]: the one rule for where caches live.
//! - [`clean_stale`]: removes the temporaries nobody holds any more (a `kill -9` leaves them) and
//!   restores a folder whose replacement was cut between its two renames.
//!
//! Temporary names are `.NAME.tmp-PID-N` (hidden, so folder scans skip them). Their writer holds
//! an exclusive `flock` on each temporary while it lives, and [`clean_stale`] removes only those it
//! can lock itself: a lock dies with its process, so this holds across hosts sharing a folder
//! (NFS) and after PID reuse, where asking whether the PID still runs would not. The PID in the
//! name is for people.
//!
//! It is not a database: two processes writing the same final name both succeed and the last
//! rename wins (fine for the content-addressed entries that share names here).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed filesystem operation: what was done, to which path, and why.
#[derive(Debug)]
pub struct Error {
    /// The operation ("writing", "renaming", ...).
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The operating system's reason.
    pub source: std::io::Error,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error { op, path: path.to_path_buf(), source }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `.NAME.tmp-PID-N` beside `path`.
fn temp_name(path: &Path, kind: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".{name}.{kind}-{}-{n}", std::process::id()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Where r3m keeps its caches (probe results, the bridge script, autotune timings):
/// `$R3M_CACHE`, else `~/.cache/r3m`; `None` when neither is set.
pub fn cache_root() -> Option<PathBuf> {
    std::env::var_os("R3M_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/r3m")))
}

/// fsyncs a folder, so that renames and new entries in it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    // opening a directory read-only and fsyncing it is how POSIX persists its entries; some
    // filesystems refuse fsync on a directory (EINVAL): nothing more can be done there
    let f = File::open(dir).map_err(err("opening folder", dir))?;
    match f.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map_err(err("syncing folder", dir)),
    }
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync the folder).
/// Creates the folder if needed. On failure `path` keeps its old content and no temporary is left.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(err("creating folder", dir))?;
    let mut t = TempFile::new(path)?;
    let mut file = t.file.take().expect("fresh temp file");
    if let Err(e) = file.write_all(bytes) {
        return Err(Error { op: "writing", path: t.tmp.clone(), source: e });
    }
    t.commit(file)
}

/// A file being written under a temporary name beside its final `path` (see the crate docs).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    committed: bool,
    _lock: Lock,
}

impl TempFile {
    /// Creates the temporary file for `path` (its folder must exist).
    pub fn new(path: &Path) -> Result<Self> {
        let tmp = temp_name(path, "tmp");
        let file = File::create(&tmp).map_err(err("creating", &tmp))?;
        let lock = Lock::hold(&tmp)?;
        Ok(TempFile { path: path.to_path_buf(), tmp, file: Some(file), committed: false, _lock: lock })
    }

    /// The open temporary file, for a writer that takes ownership of it (hand it back to
    /// [`TempFile::commit`]).
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// The temporary path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsyncs `file` (the temporary, written), renames it to the final path and fsyncs the folder.
    pub fn commit(mut self, file: File) -> Result<()> {
        file.sync_all().map_err(err("syncing", &self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(err("renaming into place", &self.path))?;
        self.committed = true;
        sync_dir(parent_of(&self.path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A folder being filled under a temporary name beside its final `path` (see the crate docs).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    tmp: PathBuf,
    committed: bool,
    _lock: Lock,
}

impl TempDir {
    /// Creates the temporary folder for `path` (and `path`'s parent if needed).
    pub fn new(path: &Path) -> Result<Self> {
        let parent = parent_of(path);
        std::fs::create_dir_all(parent).map_err(err("creating folder", parent))?;
        let tmp = temp_name(path, "tmp");
        std::fs::create_dir(&tmp).map_err(err("creating folder", &tmp))?;
        let lock = Lock::hold(&tmp)?;
        Ok(TempDir { path: path.to_path_buf(), tmp, committed: false, _lock: lock })
    }

    /// Where to write the folder's files (the temporary folder).
    pub fn staging(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs every file in the temporary folder and the folder itself, then puts it at the final
    /// path, replacing what is there in one step where the OS can (Linux), and fsyncs the parent.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.tmp)?;
        let parent = parent_of(&self.path).to_path_buf();
        if self.path.exists() {
            if exchange(&self.tmp, &self.path).is_ok() {
                // the old content is now under the temporary name
                self.committed = true;
                sync_dir(&parent)?;
                let _ = std::fs::remove_dir_all(&self.tmp);
                return Ok(());
            }
            // no atomic exchange here: move the old one aside, then the new one in; a crash
            // between the two leaves `.NAME.old-*`, which clean_stale puts back
            let old = temp_name(&self.path, "old");
            // held while it is aside, so no cleaner puts it back under this commit
            let _aside = Lock::hold(&self.path)?;
            std::fs::rename(&self.path, &old).map_err(err("moving aside", &self.path))?;
            if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
                let _ = std::fs::rename(&old, &self.path);
                return Err(Error { op: "renaming into place", path: self.path.clone(), source: e });
            }
            self.committed = true;
            sync_dir(&parent)?;
            let _ = std::fs::remove_dir_all(&old);
            return Ok(());
        }
        std::fs::rename(&self.tmp, &self.path).map_err(err("renaming into place", &self.path))?;
        self.committed = true;
        sync_dir(&parent)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(err("reading folder", dir))? {
        let entry = entry.map_err(err("reading folder", dir))?;
        let p = entry.path();
        let t = entry.file_type().map_err(err("reading", &p))?;
        if t.is_dir() {
            sync_tree(&p)?;
        } else if t.is_file() {
            File::open(&p).and_then(|f| f.sync_all()).map_err(err("syncing", &p))?;
        }
    }
    sync_dir(dir)
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// FNV-1a (64 bit), incremental: a stable short name for content-addressed entries (probe-cache
/// files, the carried bridge's folder, the text-embedding table's hash in run configs). Not
/// cryptographic; its users keep the full key beside the entry or only compare equal inputs.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash of `bytes` as 16 hex digits.
    pub fn hex(bytes: &[u8]) -> String {
        format!("{:016x}", Fnv64::default().update(bytes).finish())
    }
}

/// An exclusive `flock` on a file or folder, held until dropped (the open descriptor carries it).
#[derive(Debug)]
struct Lock(#[allow(dead_code, reason = "held for its lock, released on drop")] File);

impl Lock {
    /// Takes the lock, waiting for nobody: a fresh temporary has no other holder. On a filesystem
    /// without `flock` the temporary goes unlocked, and [`clean_stale`], which cannot lock it
    /// either, leaves it alone.
    fn hold(path: &Path) -> Result<Lock> {
        match Lock::try_take(path) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(Error {
                op: "locking",
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::WouldBlock, "held by another process"),
            }),
            Err(e) if e.op == "locking" => Ok(Lock(File::open(path).map_err(err("opening", path))?)),
            Err(e) => Err(e),
        }
    }

    /// The lock if nobody holds it, `None` if somebody does.
    fn try_take(path: &Path) -> Result<Option<Lock>> {
        let f = File::open(path).map_err(err("opening", path))?;
        match try_flock(&f) {
            Ok(true) => Ok(Some(Lock(f))),
            Ok(false) => Ok(None),
            Err(e) => Err(Error { op: "locking", path: path.to_path_buf(), source: e }),
        }
    }
}

/// An exclusive `flock` on `f` without waiting: `true` taken, `false` held by another open file
/// (this process's or another's). Elsewhere than Unix every lock is taken.
fn try_flock(f: &File) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a valid open descriptor; LOCK_NB never blocks
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) };
        }
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(true)
}

/// One writer per output: an exclusive `flock` on a lock file that names its holder (PID and
/// host), held until dropped. A second writer is refused with the holder's name; a lock left by a
/// process that died never blocks (the kernel releases it with the process).
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// [`OutputLock::acquire`] failed: another process writes the output, or the lock file could not
/// be made.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock; its lock file's content (`pid PID host HOST`).
    Held {
        /// The output.
        output: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds it, as its file says.
        holder: String,
    },
    /// The lock file could not be created or locked.
    Io(Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { output, lock, holder } => write!(
                f,
                "{} is being written by another r3m ({}; lock {}): wait for it to finish, stop it, or write elsewhere",
                output.display(),
                if holder.is_empty() { "holder unknown" } else { holder },
                lock.display()
            ),
            LockError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LockError {}

impl OutputLock {
    /// Locks `output` through the lock file `lock` (created if missing; its folder must exist).
    pub fn acquire(output: &Path, lock: &Path) -> std::result::Result<OutputLock, LockError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock)
            .map_err(|e| LockError::Io(Error { op: "opening lock file", path: lock.to_path_buf(), source: e }))?;
        // Err: a filesystem without flock; go on unlocked, as the temporaries do
        if let Ok(false) = try_flock(&file) {
            let holder = std::fs::read_to_string(lock).unwrap_or_default().trim().to_string();
            return Err(LockError::Held { output: output.to_path_buf(), lock: lock.to_path_buf(), holder });
        }
        // say who holds it, for the error another writer gets
        let me = format!("pid {} host {}\n", std::process::id(), hostname());
        let _ = file.set_len(0).and_then(|()| file.write_all(me.as_bytes()));
        Ok(OutputLock { _file: file, path: lock.to_path_buf() })
    }

    /// Locks a folder through `DIR/.r3m.lock`, creating the folder if needed.
    pub fn acquire_dir(dir: &Path) -> std::result::Result<OutputLock, LockError> {
        if dir.exists() && !dir.is_dir() {
            return Err(LockError::Io(Error {
                op: "using as an output folder",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it is a file, not a folder"),
            }));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| LockError::Io(Error { op: "creating folder", path: dir.to_path_buf(), source: e }))?;
        OutputLock::acquire(dir, &dir.join(LOCK_FILE))
    }

    /// Locks a file output through `.NAME.lock` beside it.
    pub fn acquire_file(file: &Path) -> std::result::Result<OutputLock, LockError> {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
        let dir = parent_of(file);
        std::fs::create_dir_all(dir)
            .map_err(|e| LockError::Io(Error { op: "creating folder", path: dir.to_path_buf(), source: e }))?;
        OutputLock::acquire(file, &dir.join(format!(".{name}.lock")))
    }
}

/// The lock file of a folder output ([`OutputLock::acquire_dir`]); folder scans skip it (hidden).
pub const LOCK_FILE: &str = ".r3m.lock";

fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    "unknown".into()
}

/// Parses `.NAME.KIND-PID-N` into (NAME, KIND, PID).
fn parse_temp(file_name: &str) -> Option<(&str, &str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    let (head, _n) = rest.rsplit_once('-')?;
    let (head, pid) = head.rsplit_once('-')?;
    let (name, kind) = head.rsplit_once('.')?;
    if !matches!(kind, "tmp" | "old") || name.is_empty() {
        return None;
    }
    Some((name, kind, pid.parse().ok()?))
}

/// Cleans `dir` (not recursively) after a crash: removes temporaries that no writer holds (their
/// `flock` is free: the process that made them is gone, on this host or another), and puts back a
/// folder whose replacement was cut between its two renames. Returns the number of entries removed
/// or restored. A missing `dir` is clean.
pub fn clean_stale(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut n = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((name, kind, _pid)) = file_name.to_str().and_then(parse_temp) else { continue };
        let p = entry.path();
        // held by a live writer (here or on another host): not ours to touch
        let Ok(Some(_held)) = Lock::try_take(&p) else { continue };
        let target = dir.join(name);
        if kind == "old" && !target.exists() {
            std::fs::rename(&p, &target).map_err(err("restoring", &target))?;
        } else if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(err("removing", &p))?;
        } else {
            std::fs::remove_file(&p).map_err(err("removing", &p))?;
        }
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/latest");
        write(&p, b"step-1").unwrap();
        write(&p, b"step-2").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "step-2");
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("latest")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        write(&p, b"old").unwrap();
        // a path whose parent is a file cannot be written
        let bad = p.join("y");
        let e = write(&bad, b"new").unwrap_err();
        assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
    }

    #[test]
    fn dropped_temporaries_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("part.parquet");
        let t = TempFile::new(&p).unwrap();
        let tmp = t.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(t);
        assert!(!tmp.exists() && !p.exists());
        let t = TempDir::new(&d.path().join("ck")).unwrap();
        let tmp = t.staging().to_path_buf();
        std::fs::write(tmp.join("a"), b"1").unwrap();
        drop(t);
        assert!(!tmp.exists());
    }

    #[test]
    fn dir_commit_replaces_whole_folders() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("best");
        for (i, files) in [vec!["a", "b"], vec!["c"]].into_iter().enumerate() {
            let t = TempDir::new(&p).unwrap();
            for f in &files {
                std::fs::write(t.staging().join(f), i.to_string()).unwrap();
            }
            t.commit().unwrap();
        }
        let mut names: Vec<_> =
            std::fs::read_dir(&p).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec!["c"], "the old folder's files must not survive the replacement");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temporaries left");
    }

    #[test]
    fn clean_stale_removes_dead_temporaries_restores_cut_replacements_and_spares_live_ones() {
        let d = tempfile::tempdir().unwrap();
        // a pid that does not run: spawn a process and wait for it
        let dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        std::fs::create_dir(d.path().join(format!(".step-5.tmp-{dead_pid}-0"))).unwrap();
        std::fs::write(d.path().join(format!(".latest.tmp-{dead_pid}-3")), b"x").unwrap();
        // a temporary this process is writing: locked, spared
        let writing = TempFile::new(&d.path().join("latest")).unwrap();
        let live_name = writing.tmp_path().file_name().unwrap().to_str().unwrap().to_string();
        std::fs::create_dir(d.path().join(format!(".best.old-{dead_pid}-1"))).unwrap();
        std::fs::write(d.path().join(format!(".best.old-{dead_pid}-1/config.json")), b"{}").unwrap();
        std::fs::write(d.path().join("step-4"), b"kept").unwrap();
        assert_eq!(clean_stale(d.path()).unwrap(), 3);
        let mut names: Vec<_> =
            std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec![live_name, "best".into(), "step-4".into()]);
        assert!(d.path().join("best/config.json").exists());
        assert_eq!(clean_stale(&d.path().join("missing")).unwrap(), 0);
        drop(writing);
    }

    /// The lock, not the PID, decides: a temporary named after a running process (PID reuse, or a
    /// process on another host) that nobody holds is removed; one that another process holds
    /// (`flock(1)` here, as a writer elsewhere would) is spared until that process lets go.
    #[test]
    fn clean_stale_goes_by_the_lock_not_the_pid() {
        let d = tempfile::tempdir().unwrap();
        let unheld = d.path().join(format!(".a.tmp-{}-0", std::process::id()));
        std::fs::write(&unheld, b"x").unwrap();
        let held = d.path().join(".b.tmp-1-0");
        std::fs::write(&held, b"x").unwrap();
        use std::os::unix::process::CommandExt;
        let mut holder =
            std::process::Command::new("flock").arg(&held).args(["sleep", "30"]).process_group(0).spawn().unwrap();
        // wait until flock(1) holds it
        let t0 = std::time::Instant::now();
        while Lock::try_take(&held).unwrap().is_some() {
            assert!(t0.elapsed().as_secs() < 10, "flock(1) did not take the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(clean_stale(d.path()).unwrap(), 1);
        assert!(!unheld.exists() && held.exists());
        // flock(1) and the command it runs (which inherits the lock) end together
        // SAFETY: signals the process group this test started
        unsafe { libc::kill(-(holder.id() as libc::pid_t), libc::SIGKILL) };
        holder.wait().unwrap();
        // the command dies a moment later than flock(1) itself
        let t0 = std::time::Instant::now();
        while Lock::try_take(&held).unwrap().is_none() {
            assert!(t0.elapsed().as_secs() < 10, "the lock outlived its holders");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(clean_stale(d.path()).unwrap(), 1);
        assert!(!held.exists());
    }

    /// One writer per output: a second lock is refused naming the first holder's PID and host;
    /// once the first is gone (dropped, as when its process dies) the output is free.
    #[test]
    fn output_locks_admit_one_writer() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        let first = OutputLock::acquire_dir(&run).unwrap();
        let e = OutputLock::acquire_dir(&run).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("host "), "{e}");
        assert!(e.contains(&*run.to_string_lossy()), "{e}");
        drop(first);
        let again = OutputLock::acquire_dir(&run).unwrap();
        assert_eq!(again.path, run.join(LOCK_FILE));
        // a file output locks beside the file
        let out = d.path().join("emb.parquet");
        let l = OutputLock::acquire_file(&out).unwrap();
        assert_eq!(l.path, d.path().join(".emb.parquet.lock"));
        assert!(OutputLock::acquire_file(&out).is_err());
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo): "" and "a"
        assert_eq!(Fnv64::default().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv64::hex(b"a"), "af63dc4c8601ec8c");
        assert_eq!(Fnv64::default().update(b"fo").update(b"o").finish(), Fnv64::default().update(b"foo").finish());
    }

    #[test]
    fn temp_names_parse() {
        assert_eq!(parse_temp(".step-00000003.tmp-123-4"), Some(("step-00000003", "tmp", 123)));
        assert_eq!(parse_temp(".best.old-7-0"), Some(("best", "old", 7)));
        assert_eq!(parse_temp("step-3"), None);
        assert_eq!(parse_temp(".hidden"), None);
    }
}
