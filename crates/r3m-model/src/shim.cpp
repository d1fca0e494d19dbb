// CPU (and CUDA) autocast switches that tch does not expose: tch's `autocast` only toggles CUDA
// autocast through the deprecated `at::autocast::set_enabled`. Compiled by crates/rpath.rs against
// the headers of the same libtorch the crate links. Exceptions never cross the C boundary.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_of(int device) { return device == 1 ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}

extern "C" {

// Enables bf16 autocast for `device` (0 = CPU, 1 = CUDA) and enters one nesting level.
// Returns the previous enabled state (0/1), or -1 on error; the previous autocast dtype goes to
// `prev_dtype` (a c10::ScalarType), for r3m_autocast_exit to restore.
int r3m_autocast_enter(int device, int* prev_dtype) {
  try {
    auto dev = device_of(device);
    bool prev = at::autocast::is_autocast_enabled(dev);
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::increment_nesting();
    return prev ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Leaves one nesting level (clearing the cast-weight cache when the outermost one ends, as
// torch.autocast does) and restores the previous enabled state and dtype. Returns 0, or -1 on error.
int r3m_autocast_exit(int device, int prev, int prev_dtype) {
  try {
    auto dev = device_of(device);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dev, prev == 1);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(prev_dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

// The autocast dtype for `device` now (a c10::ScalarType), or -1 on error.
int r3m_autocast_dtype(int device) {
  try {
    return static_cast<int>(at::autocast::get_autocast_dtype(device_of(device)));
  } catch (...) {
    return -1;
  }
}

// Sets the autocast dtype for `device` (tests: a caller's own setting to be restored).
int r3m_autocast_set_dtype(int device, int dtype) {
  try {
    at::autocast::set_autocast_dtype(device_of(device), static_cast<at::ScalarType>(dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Whether autocast is on for `device` now (0/1).
int r3m_autocast_enabled(int device) {
  try {
    return at::autocast::is_autocast_enabled(device_of(device)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}
}
