//! Data-parallel objectives over the global batch give the large-batch gradient: two ranks (real
//! c10d Gloo process groups, one thread each, rendezvous over a TCPStore on the loopback) on the two
//! halves of a batch end with the same gradients and the same parameters as one process on the
//! whole batch, for SimCLR and N-pair with global negatives and for MoCo's global queue (two
//! steps, so the second reads the keys the first enqueued from both ranks). The encoder is DrQ's
//! shallow ConvNet, which has no BatchNorm: its embeddings do not depend on how the batch is split.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a failed test

use std::time::Duration;

use r3m_model::{Arch, Encoder, Objective, ObjectiveConfig, ObjectiveInput, ObjectiveKind, Precision};
use r3m_train::{Dist, DistEnv};
use tch::{nn, Device, Kind, Tensor};

/// Clips per rank.
const B: i64 = 3;
const WORLD: usize = 2;
const SIZE: i64 = 40;
const LR: f64 = 0.05;

/// A model: encoder + objective, built from `init` (the same weights in every process).
struct Model {
    vs: nn::VarStore,
    enc: Encoder,
    obj: Objective,
}

fn objective_config(kind: ObjectiveKind, global: bool) -> ObjectiveConfig {
    let mut cfg = ObjectiveConfig::new(kind);
    cfg.global_negatives = global;
    cfg.queue = 16;
    cfg
}

fn model(kind: ObjectiveKind, global: bool, init: &[(String, Tensor)]) -> Model {
    let vs = nn::VarStore::new(Device::Cpu);
    let enc = Encoder::with_head(&vs.root(), Arch::Shallow, None);
    let obj = Objective::new(objective_config(kind, global), Arch::Shallow, None, 50, 384, &vs);
    let mut m = Model { vs, enc, obj };
    tch::no_grad(|| {
        let vars = m.vs.variables();
        for (name, t) in init {
            if let Some(name) = name.strip_prefix("enc.") {
                vars[name].shallow_clone().copy_(t);
            }
        }
    });
    let state: Vec<(String, Tensor)> =
        init.iter().filter_map(|(n, t)| n.strip_prefix("obj.").map(|n| (n.to_string(), t.shallow_clone()))).collect();
    m.obj.load_state(&state).unwrap();
    m
}

fn params(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        m.vs.trainable_variables().into_iter().enumerate().map(|(i, t)| (i.to_string(), t)).collect();
    v.extend(m.obj.trainable());
    v
}

/// One training step of `m` on tuples `x` `[b·5, 3, SIZE, SIZE]` u8 with clip ids `clips`,
/// data-parallel when `dist` is given; returns the gradients (averaged over ranks) and applies SGD.
fn step(m: &mut Model, x: &Tensor, clips: &[i64], dist: Option<&Dist>) -> Vec<Tensor> {
    let b = clips.len() as i64;
    let emb = m.enc.embed(x, true, Precision::Fp32).view([b, 5, -1]);
    let clips = Tensor::from_slice(clips);
    let perms: Vec<Tensor> = (0..3).map(|_| Tensor::arange(b, (Kind::Int64, Device::Cpu))).collect();
    let global = dist.filter(|_| m.obj.cfg.global_negatives).map(|d| {
        let e = emb.to_kind(Kind::Float);
        let g = d.gather_global(&e).unwrap();
        (e, g, d.all_gather(&clips).unwrap())
    });
    let loss = m.obj.loss(&ObjectiveInput {
        emb: &emb,
        images: x,
        clips: &clips,
        perms0: &perms,
        perms2: &perms,
        lang: None,
        precision: Precision::Fp32,
        global: global.as_ref().map(|(_, g, c)| (&g.all, c, g.offset)),
    });
    if let Some(d) = dist {
        m.obj.gather_pending_keys(|k| d.all_gather(k)).unwrap();
    }
    let ps = params(m);
    for (_, p) in &ps {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    match (dist, &global) {
        (Some(d), Some((e, g, _))) => d.backward_global(&loss.total, e, g).unwrap(),
        _ => loss.total.backward(),
    }
    let tensors: Vec<Tensor> = ps.iter().map(|(_, p)| p.shallow_clone()).collect();
    if let Some(d) = dist {
        d.average_grads(&tensors).unwrap();
    }
    let grads: Vec<Tensor> = tensors.iter().map(|p| p.grad().detach().copy()).collect();
    tch::no_grad(|| {
        for p in &tensors {
            let mut p = p.shallow_clone();
            let _ = p.f_sub_(&(p.grad() * LR)).unwrap();
        }
    });
    m.obj.after_step(&m.vs);
    grads
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two batches of `WORLD·B` tuples of random pixels, clip ids all different.
fn batches() -> Vec<(Tensor, Vec<i64>)> {
    tch::manual_seed(7);
    (0..2)
        .map(|s| {
            let n = WORLD as i64 * B;
            let x = Tensor::randint(256, [n * 5, 3, SIZE, SIZE], (Kind::Uint8, Device::Cpu));
            (x, (0..n).map(|i| i + 100 * s).collect())
        })
        .collect()
}

fn compare(kind: ObjectiveKind, global: bool) {
    let init = {
        tch::manual_seed(3);
        let m = {
            let vs = nn::VarStore::new(Device::Cpu);
            let enc = Encoder::with_head(&vs.root(), Arch::Shallow, None);
            let obj = Objective::new(objective_config(kind, global), Arch::Shallow, None, 50, 384, &vs);
            Model { vs, enc, obj }
        };
        let mut v: Vec<(String, Tensor)> =
            m.vs.variables().into_iter().map(|(n, t)| (format!("enc.{n}"), t.detach().copy())).collect();
        v.extend(m.obj.state().into_iter().map(|(n, t)| (format!("obj.{n}"), t.detach().copy())));
        v
    };
    let data = batches();
    let steps = if kind == ObjectiveKind::Moco { 2 } else { 1 };

    // one process, the whole batch
    let mut whole = model(kind, global, &init);
    let mut want = Vec::new();
    for (x, clips) in data.iter().take(steps) {
        want.push(step(&mut whole, x, clips, None));
    }
    let want_params: Vec<Tensor> = params(&whole).into_iter().map(|(_, p)| p.detach().copy()).collect();

    // two ranks, half each
    let port = free_port();
    let share = |t: &[(String, Tensor)]| t.iter().map(|(n, t)| (n.clone(), t.copy())).collect::<Vec<_>>();
    let handles: Vec<_> = (0..WORLD)
        .map(|rank| {
            let init = share(&init);
            let data: Vec<(Tensor, Vec<i64>)> = data
                .iter()
                .map(|(x, c)| {
                    let lo = rank as i64 * B;
                    (x.narrow(0, lo * 5, B * 5).copy(), c[lo as usize..(lo + B) as usize].to_vec())
                })
                .collect();
            std::thread::Builder::new()
                .name(format!("rank-{rank}"))
                .spawn(move || {
                    let env = DistEnv {
                        rank,
                        world: WORLD,
                        local_rank: rank,
                        addr: "127.0.0.1".into(),
                        port,
                        agent_store: false,
                    };
                    let d = Dist::join(&env, r3m_train::dist::Backend::Gloo, Duration::from_secs(60)).unwrap();
                    let mut m = model(kind, global, &init);
                    let grads: Vec<Vec<Tensor>> =
                        data.iter().take(steps).map(|(x, clips)| step(&mut m, x, clips, Some(&d))).collect();
                    let ps: Vec<Tensor> = params(&m).into_iter().map(|(_, p)| p.detach().copy()).collect();
                    (grads, ps)
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (grads, ps) = h.join().unwrap();
        for (s, (g, w)) in grads.iter().zip(&want).enumerate() {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                let scale = w.abs().max().double_value(&[]).max(1e-12);
                let diff = (g - w).abs().max().double_value(&[]) / scale;
                assert!(diff < 1e-5, "{kind:?} step {s}: gradient {i} differs from one process by {diff:e} (relative)");
            }
        }
        for (i, (p, w)) in ps.iter().zip(&want_params).enumerate() {
            let diff = (p - w).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{kind:?}: parameter {i} differs from one process by {diff:e} after {steps} step(s)");
        }
    }
}

/// One lock: libtorch's generator is process-wide, and each comparison seeds it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn simclr_with_global_negatives_equals_one_process() {
    assert!(Dist::available(), "this build has no Gloo (scripts/setup.sh installs libgloo-dev)");
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    compare(ObjectiveKind::SimClr, true);
}

#[test]
fn npair_with_global_negatives_equals_one_process() {
    assert!(Dist::available(), "this build has no Gloo (scripts/setup.sh installs libgloo-dev)");
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    compare(ObjectiveKind::NPair, true);
}

#[test]
fn moco_with_a_global_queue_equals_one_process() {
    assert!(Dist::available(), "this build has no Gloo (scripts/setup.sh installs libgloo-dev)");
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    compare(ObjectiveKind::Moco, false);
}
