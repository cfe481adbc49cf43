// The CUDA driver API (libcuda.so.1), loaded with dlopen at run time: never a link
// dependency, and the build needs no CUDA toolkit (the few declarations are ours; with the
// toolkit, cuda_driver.cpp checks them against cuda.h). No library, or no GPU, means every
// pointer is a host pointer, which is not an error. Only what pinned staging needs is here:
// pointer attributes, pinned host memory, streams, events, asynchronous copies.
#pragma once

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

// cuda.h's opaque handle types (global, so they are the same types as CUcontext & co).
struct CUctx_st;
struct CUstream_st;
struct CUevent_st;

namespace sluice::cuda {

// A CUDA call failed; the message names the call, what it was for, and cuGetErrorString.
class Error : public sluice::Error {
 public:
  Error(const std::string& what, int code) : sluice::Error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

using Context = ::CUctx_st*;
using Stream = ::CUstream_st*;
using Event = ::CUevent_st*;

class Driver {
 public:
  // Loads libcuda (default: libcuda.so.1 from the loader's path) and runs cuInit.
  // std::nullopt when the library is absent or cuInit fails (no driver, no GPU): host only.
  // Throws Error when the library lacks a required function.
  static std::optional<Driver> load(const std::string& path = "libcuda.so.1");

  // The process's driver, loaded once on first use from $SLUICE_CUDA_LIBRARY (tests point it
  // at a stand-in; "" or unset: libcuda.so.1); null when load() found none. Never unloaded.
  static const Driver* process();

  Driver(Driver&&) noexcept;
  Driver& operator=(Driver&&) = delete;
  ~Driver();

  // True for memory the GPU owns (cuPointerGetAttribute says CU_MEMORYTYPE_DEVICE: cuMemAlloc,
  // managed memory); false for host memory, pinned host memory and unknown pointers.
  bool is_device_pointer(const void* p) const noexcept;
  // The context `p` was allocated in; null when the driver does not say (e.g. VMM memory).
  Context context_of(const void* p) const noexcept;
  Context current_context() const;
  void set_current_context(Context c) const;

  void* host_alloc(std::size_t bytes) const;  // pinned, portable (cuMemHostAlloc)
  void host_free(void* p) const noexcept;
  void* device_alloc(std::size_t bytes) const;  // in the current context (cuMemAlloc)
  void device_free(void* p) const noexcept;
  Stream stream_create() const;  // non-blocking
  void stream_destroy(Stream s) const noexcept;
  void stream_synchronize(Stream s) const;
  Event event_create() const;  // no timing
  void event_destroy(Event e) const noexcept;
  void event_record(Event e, Stream s) const;
  void event_synchronize(Event e) const;
  void copy_to_host_async(void* dst, const void* device_src, std::size_t bytes, Stream s) const;
  void copy_to_device_async(void* device_dst, const void* src, std::size_t bytes, Stream s) const;

  // "CUDA_ERROR_INVALID_VALUE (invalid argument)", or the code when the driver has no name.
  std::string error_string(int code) const;

 private:
  struct Api;
  Driver(UniqueDl dl, Api* api);
  void check(int rc, const char* call, const char* what) const;
  UniqueDl dl_;
  Api* api_;
};

// Cheap: false without a driver (one load attempt per process, then a pointer test).
bool is_device_pointer(const void* p) noexcept;

// Makes `c` current on this thread for the scope (when not null and not already current)
// and restores the previous context after.
class ScopedContext {
 public:
  ScopedContext(const Driver& d, Context c);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  const Driver& d_;
  Context previous_ = nullptr;
  bool switched_ = false;
};

// RAII for the driver's objects. Each keeps the driver it came from; move-only.
template <typename T, void (Driver::*Destroy)(T) const noexcept>
class Owned {
 public:
  Owned() = default;
  Owned(const Driver& d, T h) noexcept : d_(&d), h_(h) {}
  Owned(Owned&& o) noexcept : d_(o.d_), h_(std::exchange(o.h_, T{})) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      d_ = o.d_;
      h_ = std::exchange(o.h_, T{});
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  T get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != T{}; }
  void reset() noexcept {
    if (h_ != T{}) (d_->*Destroy)(std::exchange(h_, T{}));
  }

 private:
  const Driver* d_ = nullptr;
  T h_{};
};
using PinnedBuffer = Owned<void*, &Driver::host_free>;
using DeviceBuffer = Owned<void*, &Driver::device_free>;
using UniqueStream = Owned<Stream, &Driver::stream_destroy>;
using UniqueEvent = Owned<Event, &Driver::event_destroy>;

}  // namespace sluice::cuda
