//! `DecodePool`: many decode requests in parallel, results streamed back in request order through
//! a bounded window.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::{DecodeOptions, Frame, Result, VideoInfo, VideoReader};

/// One unit of work: some frames of one video.
#[derive(Debug, Clone)]
pub struct Request {
    /// The probed video.
    pub video: Arc<VideoInfo>,
    /// Sorted frame indices to return; `None` for every frame in order.
    pub indices: Option<Vec<usize>>,
    /// Leave out frames that cannot be decoded instead of failing the request
    /// ([`VideoReader::read_frames_lossy`]).
    pub lossy: bool,
}

impl Request {
    /// The frames at `indices` (sorted) of `video`.
    pub fn frames(video: Arc<VideoInfo>, indices: Vec<usize>) -> Self {
        Request { video, indices: Some(indices), lossy: false }
    }

    /// The frames at `indices` (sorted) of `video`, leaving out the ones that cannot be decoded
    /// (the result's `index` fields say which arrived).
    pub fn frames_lossy(video: Arc<VideoInfo>, indices: Vec<usize>) -> Self {
        Request { video, indices: Some(indices), lossy: true }
    }

    /// Every frame of `video`.
    pub fn all(video: Arc<VideoInfo>) -> Self {
        Request { video, indices: None, lossy: false }
    }
}

/// A fixed set of decode threads. Each keeps its last few files open, so consecutive requests
/// ahead in the same file decode forward instead of reopening and seeking.
#[derive(Debug, Clone)]
pub struct DecodePool {
    workers: usize,
    opts: DecodeOptions,
    window: usize,
}

/// How many open files each worker keeps.
const OPEN_PER_WORKER: usize = 4;

impl DecodePool {
    /// `workers` decode threads; at most `window` requests are in flight or waiting to be read
    /// (memory stays bounded however slow the consumer is). When `opts.threads` is 0, each reader
    /// gets `max(1, cores / workers)` FFmpeg threads so the pool does not oversubscribe the CPU.
    pub fn new(workers: usize, mut opts: DecodeOptions, window: usize) -> Self {
        let workers = workers.max(1);
        if opts.threads == 0 {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            opts.threads = (cores / workers).max(1);
        }
        DecodePool { workers, opts, window: window.max(workers) }
    }

    /// Number of decode threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Starts decoding `requests` and returns an iterator over their results, in request order.
    /// Dropping the iterator stops the workers.
    pub fn run<I>(&self, requests: I) -> Ordered
    where
        I: IntoIterator<Item = Request>,
        I::IntoIter: Send + 'static,
    {
        let (job_tx, job_rx) = bounded::<(u64, Request)>(self.window);
        // at most `window` requests are dispatched and not yet read (the permits), so results never
        // exceed `window` either
        let (res_tx, res_rx) = bounded::<(u64, Result<Vec<Frame>>)>(self.window);
        let (permit_tx, permit_rx) = bounded::<()>(self.window);
        for _ in 0..self.window {
            let _ = permit_tx.send(());
        }
        let mut threads = Vec::with_capacity(self.workers + 1);
        let requests = requests.into_iter();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f).expect("spawning a decode thread")
        };
        threads.push(spawn(
            "r3m-decode-feed".into(),
            Box::new(move || {
                for (seq, req) in (0u64..).zip(requests) {
                    if permit_rx.recv().is_err() || job_tx.send((seq, req)).is_err() {
                        return;
                    }
                }
            }),
        ));
        for i in 0..self.workers {
            let (job_rx, res_tx, opts) = (job_rx.clone(), res_tx.clone(), self.opts);
            threads.push(spawn(format!("r3m-decode-{i}"), Box::new(move || worker(job_rx, res_tx, opts))));
        }
        Ordered { rx: res_rx, permits: permit_tx, pending: BTreeMap::new(), next: 0, threads }
    }
}

fn worker(jobs: Receiver<(u64, Request)>, results: Sender<(u64, Result<Vec<Frame>>)>, opts: DecodeOptions) {
    let mut open: Vec<(PathBuf, VideoReader)> = Vec::new();
    for (seq, req) in jobs {
        // a panic in one request (a bug, never bad input) must not leave a hole in the ordered
        // stream: it becomes that request's error, and the worker starts over with no open files
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&mut open, &req, opts)))
            .unwrap_or_else(|_| {
                open.clear();
                Err(crate::Error::Ffmpeg {
                    path: req.video.path.clone(),
                    op: "decoding",
                    reason: "the decode worker panicked".into(),
                })
            });
        if results.send((seq, res)).is_err() {
            return;
        }
    }
}

fn decode(open: &mut Vec<(PathBuf, VideoReader)>, req: &Request, opts: DecodeOptions) -> Result<Vec<Frame>> {
    let pos = open.iter().position(|(p, _)| *p == req.video.path);
    let mut reader = match pos {
        Some(i) => open.remove(i).1,
        None => VideoReader::open_probed(req.video.clone(), opts)?,
    };
    let res = match &req.indices {
        Some(ix) if req.lossy => reader.read_frames_lossy(ix),
        Some(ix) => reader.read_frames(ix),
        None => reader.read_all(),
    };
    open.push((req.video.path.clone(), reader));
    if open.len() > OPEN_PER_WORKER {
        open.remove(0);
    }
    res
}

/// Results of [`DecodePool::run`], in the order the requests were given.
pub struct Ordered {
    rx: Receiver<(u64, Result<Vec<Frame>>)>,
    permits: Sender<()>,
    pending: BTreeMap<u64, Result<Vec<Frame>>>,
    next: u64,
    threads: Vec<JoinHandle<()>>,
}

impl Iterator for Ordered {
    type Item = Result<Vec<Frame>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.remove(&self.next) {
                self.next += 1;
                let _ = self.permits.try_send(());
                return Some(r);
            }
            match self.rx.recv() {
                Ok((seq, r)) => {
                    self.pending.insert(seq, r);
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Ordered {
    fn drop(&mut self) {
        // closing our ends makes the dispatcher and workers exit; the permit sender is dropped
        // with self, and workers stop at their next send
        let (dead_tx, _) = bounded(0);
        self.permits = dead_tx;
        let (_, dead_rx) = bounded(0);
        self.rx = dead_rx;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
