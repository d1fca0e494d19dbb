// PyTorch's c10d process groups for data-parallel `r3m train`: a TCPStore rendezvous and a Gloo
// process group (CPU tensors), with allreduce (sum), broadcast and barrier. Compiled by
// crates/rpath.rs against the headers of the same libtorch the crate links (the c10d code lives
// in libtorch_cpu; the Gloo headers come from Debian's libgloo-dev, declarations only). Built
// without Gloo headers, every function reports that. Exceptions never cross the C boundary: each
// function returns 0 on success, or -1 with the reason in `err`.
#include <cstring>
#include <string>

#include <ATen/ATen.h>

#ifdef R3M_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace {
void set_err(char* err, size_t len, const std::string& msg) {
  if (err && len > 0) {
    std::strncpy(err, msg.c_str(), len - 1);
    err[len - 1] = 0;
  }
}

#ifdef R3M_HAVE_GLOO
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
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
#else
int no_gloo(char* err, size_t len) {
  set_err(err, len, "this r3m was built without Gloo headers (install libgloo-dev and rebuild)");
  return -1;
}
#endif
}  // namespace

extern "C" {

// Joins a Gloo process group of `world` ranks as `rank`, through a TCPStore at addr:port that
// rank 0 hosts unless `agent_store` (torchrun hosts it). `timeout_s` bounds the rendezvous and
// every collective. Returns an opaque group through `out`.
int r3m_dist_init(const char* addr, int port, int rank, int world, int agent_store, int timeout_s, void** out, char* err,
                  size_t err_len) {
#ifdef R3M_HAVE_GLOO
  return guarded(err, err_len, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0 && !agent_store;
    opts.numWorkers = world;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::seconds(timeout_s);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>("r3m", tcp);
    auto o = c10d::ProcessGroupGloo::Options::create();
    o->timeout = std::chrono::milliseconds(1000LL * timeout_s);
    o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o);
    *out = new Group{store, pg};
  });
#else
  return no_gloo(err, err_len);
#endif
}

// In-place sum over ranks of a contiguous CPU tensor.
int r3m_dist_allreduce_sum(void* group, at::Tensor* t, char* err, size_t err_len) {
#ifdef R3M_HAVE_GLOO
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> v{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    g->pg->allreduce(v, o)->wait();
  });
#else
  return no_gloo(err, err_len);
#endif
}

// In-place broadcast of a contiguous CPU tensor from `root`.
int r3m_dist_broadcast(void* group, at::Tensor* t, int root, char* err, size_t err_len) {
#ifdef R3M_HAVE_GLOO
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    g->pg->broadcast(v, o)->wait();
  });
#else
  return no_gloo(err, err_len);
#endif
}

// Waits until every rank arrives.
int r3m_dist_barrier(void* group, char* err, size_t err_len) {
#ifdef R3M_HAVE_GLOO
  return guarded(err, err_len, [&] {
    auto* g = static_cast<Group*>(group);
    g->pg->barrier()->wait();
  });
#else
  return no_gloo(err, err_len);
#endif
}

// Leaves the group.
void r3m_dist_free(void* group) {
#ifdef R3M_HAVE_GLOO
  try {
    delete static_cast<Group*>(group);
  } catch (...) {
  }
#endif
}

// 1 when this build has Gloo.
int r3m_dist_available() {
#ifdef R3M_HAVE_GLOO
  return 1;
#else
  return 0;
#endif
}
}
