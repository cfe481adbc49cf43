#include "cuda_staging.hpp"

#include <sluice/collectives/types.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

namespace sluice::coll {
namespace {

const char* at(const void* p, std::size_t off) { return static_cast<const char*>(p) + off; }
char* at(void* p, std::size_t off) { return static_cast<char*>(p) + off; }

// The context to copy in: the buffer's own, else the thread's current one.
cuda::Context context_for(const cuda::Driver& d, const void* device_ptr) {
  if (cuda::Context c = d.context_of(device_ptr)) return c;
  if (cuda::Context c = d.current_context()) return c;
  throw InvalidArgument("allreduce: the CUDA driver names no context for a device buffer and none is current "
                        "on this thread; make the buffer's context current (cuCtxSetCurrent) first");
}

// Waits for a stream on every exit; errors are dropped on unwind (the first error wins).
class SyncOnExit {
 public:
  SyncOnExit(const cuda::Driver& d, cuda::Stream s) : d_(d), s_(s) {}
  ~SyncOnExit() {
    try {
      if (s_) d_.stream_synchronize(s_);
    } catch (const std::exception&) {
    }
  }
  void now() { d_.stream_synchronize(std::exchange(s_, nullptr)); }
  SyncOnExit(const SyncOnExit&) = delete;
  SyncOnExit& operator=(const SyncOnExit&) = delete;

 private:
  const cuda::Driver& d_;
  cuda::Stream s_;
};

}  // namespace

bool cuda_present() noexcept {
  try {
    return cuda::Driver::process() != nullptr;
  } catch (const std::exception&) {  // a library without the functions we need: host only
    return false;
  }
}

CudaStager::~CudaStager() {
  if (!ctx_) return;
  try {
    cuda::ScopedContext scope(*driver_, ctx_);
    copied_in_ = {};
    copied_out_ = {};
    in_stream_.reset();
    out_stream_.reset();
    for (auto& b : buf_) b.reset();
  } catch (const std::exception&) {  // the context is gone (and what it owned with it)
  }
}

void CudaStager::prepare(cuda::Context ctx, std::size_t bytes) {
  const cuda::Driver& d = *driver_;
  if (ctx != ctx_) {  // new context (or first use): streams and events belong to one
    copied_in_ = {};
    copied_out_ = {};
    in_stream_.reset();
    out_stream_.reset();
    in_stream_ = cuda::UniqueStream(d, d.stream_create());
    out_stream_ = cuda::UniqueStream(d, d.stream_create());
    for (auto& e : copied_in_) e = cuda::UniqueEvent(d, d.event_create());
    for (auto& e : copied_out_) e = cuda::UniqueEvent(d, d.event_create());
    ctx_ = ctx;
  }
  if (bytes > bytes_) {  // grows up to one chunk; nothing is in flight between calls
    for (auto& b : buf_) b.reset();
    bytes_ = 0;
    for (auto& b : buf_) b = cuda::PinnedBuffer(d, d.host_alloc(bytes));
    bytes_ = bytes;
  }
}

void CudaStager::run(const void* send, void* recv, std::size_t count, std::size_t esz, std::size_t chunk,
                     bool send_device, bool recv_device, const Reduce& reduce) {
  const cuda::Driver& d = *driver_;
  const cuda::Context ctx = context_for(d, send_device ? send : recv);
  cuda::ScopedContext scope(d, ctx);
  prepare(ctx, std::min(chunk, count) * esz);

  const std::size_t chunks = (count + chunk - 1) / chunk;
  auto elems = [&](std::size_t k) { return std::min(chunk, count - k * chunk); };
  std::array<bool, 3> out_pending{};
  SyncOnExit in_guard(d, in_stream_.get()), out_guard(d, out_stream_.get());

  // Makes buffer k % 3 free (its copy to the device, of chunk k-3, done), then starts
  // copying chunk k of a device send buffer into it.
  auto fetch = [&](std::size_t k) {
    const std::size_t b = k % 3;
    if (out_pending[b]) {
      d.event_synchronize(copied_out_[b].get());
      out_pending[b] = false;
    }
    if (!send_device) return;
    d.copy_to_host_async(buf_[b].get(), at(send, k * chunk * esz), elems(k) * esz, in_stream_.get());
    d.event_record(copied_in_[b].get(), in_stream_.get());
  };

  fetch(0);
  for (std::size_t k = 0; k < chunks; ++k) {
    const std::size_t b = k % 3, off = k * chunk * esz, n = elems(k);
    if (k + 1 < chunks) fetch(k + 1);
    if (send_device) d.event_synchronize(copied_in_[b].get());
    const void* in = send_device ? buf_[b].get() : at(send, off);
    void* out = recv_device ? buf_[b].get() : at(recv, off);
    reduce(in, out, n);
    if (recv_device) {
      d.copy_to_device_async(at(recv, off), buf_[b].get(), n * esz, out_stream_.get());
      d.event_record(copied_out_[b].get(), out_stream_.get());
      out_pending[b] = true;
    }
  }
  out_guard.now();
  in_guard.now();
}

void copy_any(void* dst, const void* src, std::size_t bytes) {
  const bool src_device = cuda::is_device_pointer(src), dst_device = cuda::is_device_pointer(dst);
  if (!src_device && !dst_device) {
    std::memcpy(dst, src, bytes);
    return;
  }
  if (src_device && dst_device)
    throw InvalidArgument("allreduce_async: device-to-device copies are not supported (fusion buffer)");
  const cuda::Driver& d = *cuda::Driver::process();
  cuda::ScopedContext scope(d, context_for(d, src_device ? src : dst));
  cuda::UniqueStream s(d, d.stream_create());
  if (src_device) d.copy_to_host_async(dst, src, bytes, s.get());
  else d.copy_to_device_async(dst, src, bytes, s.get());
  d.stream_synchronize(s.get());
}

}  // namespace sluice::coll
