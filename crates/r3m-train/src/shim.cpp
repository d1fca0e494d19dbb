// PyTorch's c10d process groups for data-parallel `r3m train`: a TCPStore rendezvous and a Gloo
// process group (CPU tensors) or an NCCL one (CUDA tensors, collectives on the device), with
// allreduce (sum), broadcast and barrier. Compiled by crates/rpath.rs against the headers of the
// same libtorch the crate links (the c10d code lives in libtorch_cpu and, for NCCL, libtorch_cuda;
// the Gloo headers come from Debian's libgloo-dev, NCCL's and CUDA's from the Python packages
// beside torch, declarations only). Built without a backend's headers, asking for it reports that.
// Exceptions never cross the C boundary: each function returns 0 on success, or -1 with the reason
// in `err`. R3M_WANTS_NCCL (rpath.rs builds NCCL into shims that name it).
#include <cstring>
#include <string>

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#if defined(R3M_HAVE_GLOO) || defined(R3M_HAVE_NCCL)
#define R3M_HAVE_C10D
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef R3M_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef R3M_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {
void set_err(char* err, size_t len, const std::string& msg) {
  if (err && len > 0) {
    std::strncpy(err, msg.c_str(), len - 1);
    err[len - 1] = 0;
  }
}

#ifdef R3M_HAVE_C10D
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
};

// Runs `f`; 0 when it returns, -1 with the reason in `err` when it throws (nothing crosses the C
// boundary).
template <class F>
int guarded(char* err, size_t len, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, len, e.what());
  } catch (...) {
    set_err(err, len, "unknown error");
  }
  return -1;
}
#endif
int fail(char* err, size_t len, const char* msg) {
  set_err(err, len, msg);
  return -1;
}
}  // namespace

extern "C" {

// Joins a process group of `world` ranks as `rank`, through a TCPStore at addr:port that rank 0
// hosts unless `agent_store` (torchrun hosts it): Gloo (`backend` 0, CPU tensors) or NCCL (1, CUDA
// tensors on device `device`). `timeout_s` bounds the rendezvous and every collective. Returns an
// opaque group through `out`.
int r3m_dist_init(const char* addr, int port, int rank, int world, int agent_store, int timeout_s, int backend,
                  int device, void** out, char* err, size_t err_len) {
  if (backend == 1) {
#ifndef R3M_HAVE_NCCL
    return fail(err, err_len,
                "this r3m was built without NCCL (it needs a libtorch with CUDA and the headers scripts/setup.sh "
                "installs; see `cargo build` warnings)");
#else
    int gpus = at::detail::getCUDAHooks().deviceCount();
    if (gpus <= 0) {
      return fail(err, err_len, "NCCL needs a CUDA device and this machine has none visible (use Gloo on CPU)");
    }
    if (device < 0 || device >= gpus) {
      std::string msg = "NCCL: CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(gpus) +
                        " visible; LOCAL_RANK picks the device)";
      return fail(err, err_len, msg.c_str());
    }
#endif
  } else if (backend != 0) {
    return fail(err, err_len, "unknown backend");
  }
#ifndef R3M_HAVE_GLOO
  if (backend == 0) {
    return fail(err, err_len, "this r3m was built without Gloo headers (install libgloo-dev and rebuild)");
  }
#endif
#ifdef R3M_HAVE_C10D
  return guarded(err, err_len, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0 && !agent_store;
    opts.numWorkers = world;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::seconds(timeout_s);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>("r3m", tcp);
    c10::intrusive_ptr<c10d::Backend> pg;
#ifdef R3M_HAVE_NCCL
    if (backend == 1) {
      at::detail::getCUDAHooks().setCurrentDevice(static_cast<c10::DeviceIndex>(device));
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = std::chrono::milliseconds(1000LL * timeout_s);
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, o);
    }
#endif
#ifdef R3M_HAVE_GLOO
    if (backend == 0) {
      auto o = c10d::ProcessGroupGloo::Options::create();
      o->timeout = std::chrono::milliseconds(1000LL * timeout_s);
      o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o);
    }
#endif
    *out = new Group{store, pg};
  });
#else
  return fail(err, err_len, "this r3m was built without a c10d backend");
#endif
}

// In-place sum over ranks of a contiguous CPU tensor.
int r3m_dist_allreduce_sum(void* group, at::Tensor* t, char* err, size_t err_len) {
#ifdef R3M_HAVE_C10D
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> v{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    g->pg->allreduce(v, o)->wait();
  });
#else
  return fail(err, err_len, "this r3m was built without a c10d backend");
#endif
}

// In-place broadcast of a contiguous CPU tensor from `root`.
int r3m_dist_broadcast(void* group, at::Tensor* t, int root, char* err, size_t err_len) {
#ifdef R3M_HAVE_C10D
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    g->pg->broadcast(v, o)->wait();
  });
#else
  return fail(err, err_len, "this r3m was built without a c10d backend");
#endif
}

// Waits until every rank arrives.
int r3m_dist_barrier(void* group, char* err, size_t err_len) {
#ifdef R3M_HAVE_C10D
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    g->pg->barrier()->wait();
  });
#else
  return fail(err, err_len, "this r3m was built without a c10d backend");
#endif
}

// Leaves the group.
void r3m_dist_free(void* group) {
#ifdef R3M_HAVE_C10D
  try {
    delete static_cast<Group*>(group);
  } catch (...) {
  }
#endif
}

// The backends this build has: bit 0 Gloo, bit 1 NCCL.
int r3m_dist_available() {
  int b = 0;
#ifdef R3M_HAVE_GLOO
  b |= 1;
#endif
#ifdef R3M_HAVE_NCCL
  b |= 2;
#endif
  return b;
}

// One Adam step on every tensor at once: at::_fused_adam_, PyTorch's `fused=True` path (a few
// kernels for all parameters on CUDA, one loop on the CPU). `step` holds the step number after
// this update (bias correction), on the parameters' device; no weight decay, no amsgrad.
int r3m_fused_adam(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs, size_t n,
                   at::Tensor* step, double lr, double beta1, double beta2, double eps, char* err, size_t err_len) {
  try {
    std::vector<at::Tensor> p, g, m, v, steps;
    for (size_t i = 0; i < n; i++) {
      p.push_back(*params[i]);
      g.push_back(*grads[i]);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      steps.push_back(*step);
    }
    at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, 0.0, eps, false, false);
    return 0;
  } catch (const std::exception& e) {
    set_err(err, err_len, e.what());
  } catch (...) {
    set_err(err, err_len, "unknown error");
  }
  return -1;
}
}
