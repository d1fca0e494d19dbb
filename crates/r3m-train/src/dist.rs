//! Data-parallel training over PyTorch's c10d: a Gloo process group joined through a TCPStore,
//! as `torchrun` (or Slurm with the usual wrapper) describes it in the environment.
//!
//! What each rank does (see `trainer`): it draws its own clips (loader and negatives seeded from
//! the seed and the rank), parameters and buffers are broadcast from rank 0 at the start and on
//! resume, gradients are averaged over ranks in one flat buffer after every backward pass, BatchNorm
//! running statistics are broadcast from rank 0 before every checkpoint, a non-finite loss or a
//! stop on any rank stops every rank (agreed through a collective, never a hang), and only rank 0
//! writes the run directory. The global batch is `--batch` × world size.
//!
//! Two backends ([`Backend`]): Gloo reduces CPU tensors (a CUDA run on Gloo stages its tensors
//! through host memory); NCCL reduces CUDA tensors where they are, without a host round trip, and
//! is what a CUDA run uses when this build has it ([`Backend::for_device`]). Gradients go in buckets
//! of at most [`BUCKET_ELEMENTS`] values, so no buffer the size of the whole model is allocated.

use std::ffi::{c_char, c_void, CStr, CString};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn r3m_dist_init(
        addr: *const c_char,
        port: i32,
        rank: i32,
        world: i32,
        agent_store: i32,
        timeout_s: i32,
        backend: i32,
        device: i32,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    fn r3m_dist_allreduce_sum(group: *mut c_void, t: *mut c_void, err: *mut c_char, len: usize) -> i32;
    fn r3m_dist_broadcast(group: *mut c_void, t: *mut c_void, root: i32, err: *mut c_char, len: usize) -> i32;
    fn r3m_dist_barrier(group: *mut c_void, err: *mut c_char, len: usize) -> i32;
    fn r3m_dist_free(group: *mut c_void);
    fn r3m_dist_available() -> i32;
}

/// Where this process sits in the job, from the environment `torchrun` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// Rank within this node (picks `cuda:LOCAL_RANK`).
    pub local_rank: usize,
    /// The TCPStore's host.
    pub addr: String,
    /// The TCPStore's port.
    pub port: u16,
    /// `torchrun` hosts the store itself (`TORCHELASTIC_USE_AGENT_STORE=True`).
    pub agent_store: bool,
}

impl DistEnv {
    /// `None` when `WORLD_SIZE` is unset or 1; an error naming the variable when one is malformed.
    pub fn from_env() -> Result<Option<DistEnv>> {
        DistEnv::from_env_with(false)
    }

    /// [`DistEnv::from_env`]; with `one_rank`, a launcher's `WORLD_SIZE=1` (torchrun
    /// `--nproc-per-node=1`) is a group of one, joined like any other (to check a backend).
    pub fn from_env_with(one_rank: bool) -> Result<Option<DistEnv>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str| -> Result<Option<usize>> {
            var(k).map(|v| v.trim().parse::<usize>().with_context(|| format!("{k}={v}: not a number"))).transpose()
        };
        let world = num("WORLD_SIZE")?.unwrap_or(1);
        if world == 0 || (world == 1 && !(one_rank && var("WORLD_SIZE").is_some())) {
            return Ok(None);
        }
        let rank = num("RANK")?.with_context(|| format!("WORLD_SIZE={world} but RANK is not set (launch with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)"))?;
        if rank >= world {
            bail!("RANK={rank} but WORLD_SIZE={world}");
        }
        let port = var("MASTER_PORT")
            .map_or(Ok(29500), |p| p.trim().parse::<u16>().with_context(|| format!("MASTER_PORT={p}: not a port")))?;
        Ok(Some(DistEnv {
            rank,
            world,
            local_rank: num("LOCAL_RANK")?.unwrap_or(rank),
            addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            port,
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }))
    }
}

/// Which c10d process group reduces the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors (CUDA tensors are staged through host memory).
    Gloo,
    /// NCCL: CUDA tensors, reduced on the device.
    Nccl,
}

impl Backend {
    /// `gloo` or `nccl`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    /// Whether this build has the backend.
    pub fn built(self) -> bool {
        // SAFETY: no arguments, no state
        let bits = unsafe { r3m_dist_available() };
        bits & match self {
            Backend::Gloo => 1,
            Backend::Nccl => 2,
        } != 0
    }

    /// The backend for training on `device` when none is asked for: NCCL on CUDA where this build
    /// has it, else Gloo.
    pub fn for_device(device: Device) -> Backend {
        if matches!(device, Device::Cuda(_)) && Backend::Nccl.built() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }

    /// Checks that `self` can reduce tensors of `device` in this build: NCCL only CUDA tensors.
    pub fn check(self, device: Device) -> Result<()> {
        if self == Backend::Nccl && !matches!(device, Device::Cuda(_)) {
            bail!("the NCCL backend reduces CUDA tensors: train with --device cuda, or use gloo on the CPU");
        }
        if !self.built() {
            bail!(
                "this r3m was built without {} ({})",
                self.name(),
                match self {
                    Backend::Gloo => "install libgloo-dev and rebuild",
                    Backend::Nccl => "it needs a libtorch with CUDA and the headers scripts/setup.sh installs",
                }
            );
        }
        Ok(())
    }
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => bail!("{other}: expected gloo or nccl"),
        }
    }
}

/// Largest gradient bucket, in values: 2^23 fp32 values are 32 MiB (PyTorch DDP's default bucket
/// is 25 MiB).
pub const BUCKET_ELEMENTS: i64 = 1 << 23;

/// The global batch of a data-parallel loss ([`Dist::gather_global`]).
#[derive(Debug)]
pub struct GlobalBatch {
    /// Every rank's rows in rank order: a leaf without history that the loss reads.
    pub all: Tensor,
    /// This rank's first row in `all`.
    pub offset: i64,
    /// Rows per rank.
    pub rows: i64,
}

/// A joined process group.
pub struct Dist {
    group: *mut c_void,
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// Rank within the node.
    pub local_rank: usize,
    /// The process group's backend.
    pub backend: Backend,
    /// Where the collectives' tensors live: the CUDA device for NCCL, the CPU for Gloo.
    device: Device,
}

// SAFETY: the group may move to another thread with its owner: c10d's Gloo process group is not
// tied to the thread that made it, and it is freed once, in Drop. `Dist` is deliberately not
// `Sync`: collectives must be issued in the same order on every rank, so only the one thread that
// holds the group may issue them (two threads sharing it could interleave their collectives).
unsafe impl Send for Dist {}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dist(rank {} of {})", self.rank, self.world)
    }
}

fn call(what: &str, f: impl FnOnce(*mut c_char, usize) -> i32) -> Result<()> {
    let mut buf = vec![0 as c_char; 1024];
    if f(buf.as_mut_ptr(), buf.len()) != 0 {
        // SAFETY: the shim writes a NUL-terminated message into buf
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
        bail!("{what}: {msg}");
    }
    Ok(())
}

impl Dist {
    /// Whether this build can join a process group (it has Gloo).
    pub fn available() -> bool {
        Backend::Gloo.built()
    }

    /// Joins the group `env` describes with `backend` (NCCL on `cuda:LOCAL_RANK`); `timeout` bounds
    /// the rendezvous and every collective.
    pub fn join(env: &DistEnv, backend: Backend, timeout: Duration) -> Result<Dist> {
        let addr = CString::new(env.addr.clone()).context("MASTER_ADDR contains a NUL byte")?;
        let mut group = std::ptr::null_mut();
        let secs = timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        call(
            &format!(
                "joining the {} process group (rank {} of {} at {}:{})",
                backend.name(),
                env.rank,
                env.world,
                env.addr,
                env.port
            ),
            |e, l| {
                // SAFETY: valid C string, out pointer to our local, error buffer from `call`
                unsafe {
                    r3m_dist_init(
                        addr.as_ptr(),
                        i32::from(env.port),
                        env.rank as i32,
                        env.world as i32,
                        i32::from(env.agent_store),
                        secs,
                        i32::from(backend == Backend::Nccl),
                        env.local_rank as i32,
                        &mut group,
                        e,
                        l,
                    )
                }
            },
        )?;
        let device = match backend {
            Backend::Nccl => Device::Cuda(env.local_rank),
            Backend::Gloo => Device::Cpu,
        };
        Ok(Dist { group, rank: env.rank, world: env.world, local_rank: env.local_rank, backend, device })
    }

    /// Where the collectives' tensors live (the CPU for Gloo, this rank's GPU for NCCL).
    pub fn device(&self) -> Device {
        self.device
    }

    /// In-place sum over ranks of a tensor (any device; moved to the backend's device and back only
    /// when it lives elsewhere: a CUDA tensor under NCCL never leaves the GPU).
    pub fn allreduce_sum(&self, t: &mut Tensor) -> Result<()> {
        if matches!(t.device(), Device::Cuda(_)) && self.device == Device::Cpu {
            // a CUDA tensor staged through host memory for Gloo: the host waits for the GPU
            crate::syncs::note();
        }
        let mut buf = t.to_device(self.device).contiguous();
        call("all-reduce", |e, l| {
            // SAFETY: buf is a live, contiguous tensor on the backend's device (tch's handle is an
            // at::Tensor*)
            unsafe { r3m_dist_allreduce_sum(self.group, buf.as_mut_ptr() as *mut c_void, e, l) }
        })?;
        if t.device() != self.device || !t.is_contiguous() {
            tch::no_grad(|| t.copy_(&buf));
        } else {
            *t = buf;
        }
        Ok(())
    }

    /// In-place broadcast of a tensor from `root`.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<()> {
        let mut buf = t.to_device(self.device).contiguous();
        call("broadcast", |e, l| {
            // SAFETY: as in allreduce_sum
            unsafe { r3m_dist_broadcast(self.group, buf.as_mut_ptr() as *mut c_void, root as i32, e, l) }
        })?;
        tch::no_grad(|| t.copy_(&buf));
        Ok(())
    }

    /// Waits for every rank.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group is live
        call("barrier", |e, l| unsafe { r3m_dist_barrier(self.group, e, l) })
    }

    /// Every rank's `t` (same shape on every rank) concatenated along dim 0 in rank order, without
    /// gradient (one all-reduce of a zero-padded buffer).
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.detach();
        let n = t.size()[0];
        let mut shape = t.size();
        shape[0] = n * self.world as i64;
        let mut buf = Tensor::zeros(&shape, (t.kind(), self.device));
        tch::no_grad(|| buf.narrow(0, self.rank as i64 * n, n).copy_(&t));
        self.allreduce_sum(&mut buf)?;
        Ok(buf.to_device(t.device()))
    }

    /// Every rank's `local` rows (same shape on every rank) in rank order, for a loss over the
    /// global batch: a leaf tensor that collects the loss's gradient for every rank's rows, so that
    /// [`Dist::backward_global`] can hand each rank the gradient of its own rows.
    pub fn gather_global(&self, local: &Tensor) -> Result<GlobalBatch> {
        let rows = local.size()[0];
        let all = self.all_gather(local)?.set_requires_grad(true);
        Ok(GlobalBatch { all, offset: self.rank as i64 * rows, rows })
    }

    /// The backward pass of a loss that used [`GlobalBatch::all`]: this rank's `loss` is
    /// differentiated to the global rows, those gradients are summed over ranks (every rank's
    /// loss depends on every rank's rows), and this rank's slice of the sum goes back through
    /// `local`, the tensor the rows were gathered from, together with the loss's own graph. After
    /// [`Dist::average_grads`] the parameters' gradients equal those of one process that computed
    /// the mean loss over the whole concatenated batch: the all-gather's backward is a
    /// reduce-scatter, as in `torch.distributed.nn.functional.all_gather`.
    pub fn backward_global(&self, loss: &Tensor, local: &Tensor, global: &GlobalBatch) -> Result<()> {
        let grads = Tensor::f_run_backward(&[loss], &[&global.all], true, false)
            .context("the gradient of the global batch (a loss that does not read it has none)")?;
        let grad = grads.into_iter().next().context("the gradient of the global batch")?;
        let mut sum = if grad.defined() { grad.detach().contiguous() } else { global.all.zeros_like() };
        self.allreduce_sum(&mut sum)?;
        let mine = sum.narrow(0, global.offset, global.rows).to_kind(local.kind());
        (loss + (local * mine).sum(Kind::Float)).backward();
        Ok(())
    }

    /// Whether `flag` is set on any rank (one small all-reduce).
    pub fn any(&self, flag: bool) -> Result<bool> {
        let mut t = Tensor::from_slice(&[f64::from(u8::from(flag))]).to_device(self.device);
        self.allreduce_sum(&mut t)?;
        Ok(t.double_value(&[0]) > 0.0)
    }

    /// Whether `a` is set on any rank and whether `b` is (one small all-reduce for both).
    pub fn any2(&self, a: bool, b: bool) -> Result<(bool, bool)> {
        let mut t = Tensor::from_slice(&[f64::from(u8::from(a)), f64::from(u8::from(b))]).to_device(self.device);
        self.allreduce_sum(&mut t)?;
        let v: Vec<f64> = Vec::try_from(t.to_device(Device::Cpu)).context("reading the flags")?;
        crate::syncs::note();
        Ok((v[0] > 0.0, v[1] > 0.0))
    }

    /// Averages the gradients of `params` over ranks, in buckets of at most [`BUCKET_ELEMENTS`]
    /// values (one all-reduce each, on the backend's device). Every parameter must have a gradient
    /// (the trainer adds `0 · Σp` to the loss so that unused ones get zeros), so every rank sends
    /// the same layout.
    pub fn average_grads(&self, params: &[Tensor]) -> Result<()> {
        self.average_grads_bucketed(params, BUCKET_ELEMENTS)
    }

    /// [`Dist::average_grads`] with buckets of at most `limit` values.
    pub fn average_grads_bucketed(&self, params: &[Tensor], limit: i64) -> Result<()> {
        for (i, p) in params.iter().enumerate() {
            if !p.grad().defined() {
                bail!("parameter {i} has no gradient on rank {}: every rank must send every gradient", self.rank);
            }
        }
        for bucket in buckets(params, limit) {
            let grads: Vec<Tensor> = params[bucket.clone()].iter().map(Tensor::grad).collect();
            let flat: Vec<Tensor> = grads.iter().map(|g| g.detach().to_kind(Kind::Float).reshape([-1])).collect();
            let mut buf = Tensor::cat(&flat, 0).to_device(self.device);
            self.allreduce_sum(&mut buf)?;
            let buf = buf / self.world as f64;
            let mut off = 0i64;
            tch::no_grad(|| {
                for mut g in grads {
                    let n = g.numel() as i64;
                    g.copy_(&buf.narrow(0, off, n).view_as(&g).to_device(g.device()).to_kind(g.kind()));
                    off += n;
                }
            });
        }
        Ok(())
    }

    /// Broadcasts every tensor of `vars` (sorted by name) from rank 0.
    pub fn broadcast_all(&self, vars: &mut [(String, Tensor)]) -> Result<()> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars.iter_mut() {
            self.broadcast(t, 0).with_context(|| format!("broadcasting {name}"))?;
        }
        Ok(())
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        // SAFETY: freed once
        unsafe { r3m_dist_free(self.group) }
    }
}

/// `params` split into consecutive runs of at most `limit` values each (a tensor larger than
/// `limit` is a run of its own), in order.
pub fn buckets(params: &[Tensor], limit: i64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0i64);
    for (i, p) in params.iter().enumerate() {
        let n = p.numel() as i64;
        if i > start && size + n > limit {
            out.push(start..i);
            (start, size) = (i, 0);
        }
        size += n;
    }
    if start < params.len() {
        out.push(start..params.len());
    }
    out
}

/// Rank `rank`'s seed for its clip stream and negatives (rank streams are disjoint).
pub fn rank_seed(seed: u64, rank: usize) -> u64 {
    // SplitMix64 of (seed, rank)
    let mut z = seed ^ (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_parameter_in_order_within_the_limit() {
        let sizes = [3i64, 4, 10, 1, 1, 2];
        let params: Vec<Tensor> = sizes.iter().map(|&n| Tensor::zeros([n], (Kind::Float, Device::Cpu))).collect();
        let b = buckets(&params, 5);
        // 3 | 4 | 10 (alone, over the limit) | 1 1 2
        assert_eq!(b, vec![0..1, 1..2, 2..3, 3..6]);
        assert_eq!(buckets(&params, 1000), vec![0..6]);
        assert!(buckets(&[], 5).is_empty());
        for limit in 1..25 {
            let b = buckets(&params, limit);
            assert_eq!(b.first().unwrap().start, 0);
            assert_eq!(b.last().unwrap().end, params.len());
            assert!(b.windows(2).all(|w| w[0].end == w[1].start));
            for r in &b {
                let n: i64 = sizes[r.clone()].iter().sum();
                assert!(n <= limit || r.len() == 1, "{limit}: {r:?}");
            }
        }
    }
}
