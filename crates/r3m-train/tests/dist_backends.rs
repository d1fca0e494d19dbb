//! The NCCL process group: built into every build whose libtorch has CUDA, chosen for CUDA runs,
//! and refused with a clear error where it cannot work (no GPU, CPU tensors).

use std::time::Duration;

use r3m_train::dist::Backend;
use r3m_train::{Dist, DistEnv};
use tch::Device;

fn env(port: u16) -> DistEnv {
    DistEnv { rank: 0, world: 1, local_rank: 0, addr: "127.0.0.1".into(), port, agent_store: false }
}

#[test]
fn nccl_is_built_where_libtorch_has_cuda() {
    let cuda = std::path::Path::new(env!("R3M_LIBTORCH_LIB")).join("libtorch_cuda.so").exists();
    assert_eq!(
        Backend::Nccl.built(),
        cuda,
        "libtorch with CUDA: {cuda} (see the build's warnings for what is missing)"
    );
    assert!(Backend::Gloo.built(), "this build has no Gloo (scripts/setup.sh installs libgloo-dev)");
}

#[test]
fn auto_picks_nccl_for_cuda_and_gloo_for_the_cpu() {
    assert_eq!(Backend::for_device(Device::Cpu), Backend::Gloo);
    let want = if Backend::Nccl.built() { Backend::Nccl } else { Backend::Gloo };
    assert_eq!(Backend::for_device(Device::Cuda(0)), want);
    let e = Backend::Nccl.check(Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("NCCL backend reduces CUDA tensors") && e.contains("--device cuda"), "{e}");
    assert!(Backend::Gloo.check(Device::Cpu).is_ok());
    assert!("nccl".parse::<Backend>().unwrap() == Backend::Nccl && "MPI".parse::<Backend>().is_err());
}

#[test]
fn nccl_without_a_gpu_is_a_clear_error() {
    if tch::Cuda::is_available() {
        eprintln!("a GPU is visible: the error path is not reachable here");
        return;
    }
    let t0 = std::time::Instant::now();
    let e = Dist::join(&env(29_731), Backend::Nccl, Duration::from_secs(5)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("joining the nccl process group (rank 0 of 1"), "{msg}");
    if Backend::Nccl.built() {
        assert!(msg.contains("NCCL needs a CUDA device and this machine has none visible"), "{msg}");
    } else {
        assert!(msg.contains("built without NCCL"), "{msg}");
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "refused before any rendezvous");
}
#[test]
fn bucketed_gradient_averaging_equals_one_bucket() {
    // two ranks (threads) over Gloo; rank r's gradient of parameter i is (r + 1) · (i + 1) · arange
    const WORLD: usize = 2;
    let sizes = [5i64, 3, 8, 1, 4];
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let handles: Vec<_> = (0..WORLD)
        .map(|rank| {
            std::thread::Builder::new()
                .name(format!("rank-{rank}"))
                .spawn(move || {
                    let e = DistEnv { rank, world: WORLD, ..env(port) };
                    let d = Dist::join(&e, Backend::Gloo, Duration::from_secs(60)).unwrap();
                    let make = || -> Vec<tch::Tensor> {
                        sizes
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| {
                                let p =
                                    tch::Tensor::zeros([n], (tch::Kind::Float, Device::Cpu)).set_requires_grad(true);
                                let w = tch::Tensor::arange(n, (tch::Kind::Float, Device::Cpu))
                                    * ((rank + 1) * (i + 1)) as f64;
                                (&p * &w).sum(tch::Kind::Float).backward();
                                p
                            })
                            .collect()
                    };
                    let (one, small) = (make(), make());
                    d.average_grads_bucketed(&one, 1 << 20).unwrap();
                    d.average_grads_bucketed(&small, 6).unwrap();
                    (
                        one.iter().map(tch::Tensor::grad).collect::<Vec<_>>(),
                        small.iter().map(tch::Tensor::grad).collect::<Vec<_>>(),
                    )
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (one, small) = h.join().unwrap();
        for (i, (a, b)) in one.iter().zip(&small).enumerate() {
            // the mean over ranks: (1 + 2) / 2 · (i + 1) · arange
            let want = tch::Tensor::arange(sizes[i], (tch::Kind::Float, Device::Cpu)) * 1.5 * (i + 1) as f64;
            assert!(a.allclose(&want, 1e-6, 1e-6, false) && b.allclose(&want, 1e-6, 1e-6, false), "parameter {i}");
        }
    }
}
