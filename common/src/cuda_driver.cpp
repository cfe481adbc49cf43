#include <sluice/common/cuda_driver.hpp>

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <type_traits>

#if SLUICE_HAVE_CUDA_H
#include <cuda.h>
#endif

namespace sluice::cuda {
namespace {

// The few driver API declarations we use, so the build needs no cuda.h (CUDA driver API
// reference). The exported names are the versioned ones cuda.h maps to (_v2).
using CUresult = int;
using CUdeviceptr = unsigned long long;
constexpr CUresult kSuccess = 0;
constexpr int kAttrContext = 1;        // CU_POINTER_ATTRIBUTE_CONTEXT
constexpr int kAttrMemoryType = 2;     // CU_POINTER_ATTRIBUTE_MEMORY_TYPE
constexpr unsigned kMemoryDevice = 2;  // CU_MEMORYTYPE_DEVICE
constexpr unsigned kHostAllocPortable = 0x01;
constexpr unsigned kStreamNonBlocking = 0x1;
constexpr unsigned kEventDisableTiming = 0x2;

#if SLUICE_HAVE_CUDA_H  // built with the toolkit: our copies must match cuda.h
static_assert(kSuccess == CUDA_SUCCESS);
static_assert(kAttrContext == CU_POINTER_ATTRIBUTE_CONTEXT);
static_assert(kAttrMemoryType == CU_POINTER_ATTRIBUTE_MEMORY_TYPE);
static_assert(kMemoryDevice == CU_MEMORYTYPE_DEVICE);
static_assert(kHostAllocPortable == CU_MEMHOSTALLOC_PORTABLE);
static_assert(kStreamNonBlocking == CU_STREAM_NON_BLOCKING);
static_assert(kEventDisableTiming == CU_EVENT_DISABLE_TIMING);
static_assert(std::is_same_v<CUdeviceptr, ::CUdeviceptr>);
static_assert(std::is_same_v<Context, ::CUcontext> && std::is_same_v<Stream, ::CUstream> &&
              std::is_same_v<Event, ::CUevent>);
#endif

CUdeviceptr dptr(const void* p) { return CUdeviceptr(reinterpret_cast<std::uintptr_t>(p)); }

}  // namespace

struct Driver::Api {
  CUresult (*init)(unsigned);
  CUresult (*error_name)(CUresult, const char**);
  CUresult (*error_string)(CUresult, const char**);
  CUresult (*pointer_attribute)(void*, int, CUdeviceptr);
  CUresult (*ctx_get)(Context*);
  CUresult (*ctx_set)(Context);
  CUresult (*host_alloc)(void**, std::size_t, unsigned);
  CUresult (*host_free)(void*);
  CUresult (*device_alloc)(CUdeviceptr*, std::size_t);
  CUresult (*device_free)(CUdeviceptr);
  CUresult (*stream_create)(Stream*, unsigned);
  CUresult (*stream_destroy)(Stream);
  CUresult (*stream_sync)(Stream);
  CUresult (*event_create)(Event*, unsigned);
  CUresult (*event_destroy)(Event);
  CUresult (*event_record)(Event, Stream);
  CUresult (*event_sync)(Event);
  CUresult (*dtoh_async)(void*, CUdeviceptr, std::size_t, Stream);
  CUresult (*htod_async)(CUdeviceptr, const void*, std::size_t, Stream);
};

std::optional<Driver> Driver::load(const std::string& path) {
  UniqueDl dl(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!dl) return std::nullopt;
  auto* api = new Api{};
  const char* missing = nullptr;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(dl.get(), name));
    if (!fn && !missing) missing = name;
  };
  sym(api->init, "cuInit");
  sym(api->error_name, "cuGetErrorName");
  sym(api->error_string, "cuGetErrorString");
  sym(api->pointer_attribute, "cuPointerGetAttribute");
  sym(api->ctx_get, "cuCtxGetCurrent");
  sym(api->ctx_set, "cuCtxSetCurrent");
  sym(api->host_alloc, "cuMemHostAlloc");
  sym(api->host_free, "cuMemFreeHost");
  sym(api->device_alloc, "cuMemAlloc_v2");
  sym(api->device_free, "cuMemFree_v2");
  sym(api->stream_create, "cuStreamCreate");
  sym(api->stream_destroy, "cuStreamDestroy_v2");
  sym(api->stream_sync, "cuStreamSynchronize");
  sym(api->event_create, "cuEventCreate");
  sym(api->event_destroy, "cuEventDestroy_v2");
  sym(api->event_record, "cuEventRecord");
  sym(api->event_sync, "cuEventSynchronize");
  sym(api->dtoh_async, "cuMemcpyDtoHAsync_v2");
  sym(api->htod_async, "cuMemcpyHtoDAsync_v2");
  if (missing) {
    delete api;
    throw Error("CUDA driver at '" + path + "' lacks " + missing + " (driver older than CUDA 4.0?)", -1);
  }
  if (api->init(0) != kSuccess) {  // library present, no usable driver or no GPU: host only
    delete api;
    return std::nullopt;
  }
  return Driver(std::move(dl), api);
}

const Driver* Driver::process() {
  // Deliberately leaked: pinned memory and streams may be freed from static destructors.
  static const Driver* const driver = []() -> const Driver* {
    const char* env = std::getenv("SLUICE_CUDA_LIBRARY");
    auto d = load(env && *env ? env : "libcuda.so.1");
    return d ? new Driver(std::move(*d)) : nullptr;
  }();
  return driver;
}

bool is_device_pointer(const void* p) noexcept {
  if (p == nullptr) return false;
  try {
    const Driver* d = Driver::process();
    return d && d->is_device_pointer(p);
  } catch (const std::exception&) {  // a broken library (missing symbol): no device memory
    return false;
  }
}

Driver::Driver(UniqueDl dl, Api* api) : dl_(std::move(dl)), api_(api) {}
Driver::Driver(Driver&& o) noexcept : dl_(std::move(o.dl_)), api_(std::exchange(o.api_, nullptr)) {}
Driver::~Driver() { delete api_; }  // the driver has no shutdown call

std::string Driver::error_string(int code) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api_->error_name(code, &name) != kSuccess || !name) return "CUDA error " + std::to_string(code);
  std::string out = name;
  if (api_->error_string(code, &text) == kSuccess && text) out += std::string(" (") + text + ")";
  return out;
}

void Driver::check(int rc, const char* call, const char* what) const {
  if (rc != kSuccess) throw Error(std::string(call) + " (" + what + "): " + error_string(rc), rc);
}

bool Driver::is_device_pointer(const void* p) const noexcept {
  unsigned type = 0;
  // Unknown (plain host) memory is CUDA_ERROR_INVALID_VALUE on older drivers, type 0 on newer.
  return p && api_->pointer_attribute(&type, kAttrMemoryType, dptr(p)) == kSuccess && type == kMemoryDevice;
}

Context Driver::context_of(const void* p) const noexcept {
  Context c = nullptr;
  if (api_->pointer_attribute(&c, kAttrContext, dptr(p)) != kSuccess) return nullptr;
  return c;
}

Context Driver::current_context() const {
  Context c = nullptr;
  check(api_->ctx_get(&c), "cuCtxGetCurrent", "the calling thread's context");
  return c;
}

void Driver::set_current_context(Context c) const {
  check(api_->ctx_set(c), "cuCtxSetCurrent", "the device buffer's context");
}

void* Driver::host_alloc(std::size_t bytes) const {
  void* p = nullptr;
  const std::string what = "pinned staging buffer of " + std::to_string(bytes) + " bytes";
  check(api_->host_alloc(&p, bytes, kHostAllocPortable), "cuMemHostAlloc", what.c_str());
  return p;
}
void Driver::host_free(void* p) const noexcept { api_->host_free(p); }
void* Driver::device_alloc(std::size_t bytes) const {
  CUdeviceptr p = 0;
  const std::string what = "device buffer of " + std::to_string(bytes) + " bytes";
  check(api_->device_alloc(&p, bytes), "cuMemAlloc", what.c_str());
  return reinterpret_cast<void*>(p);
}
void Driver::device_free(void* p) const noexcept { api_->device_free(reinterpret_cast<CUdeviceptr>(p)); }

Stream Driver::stream_create() const {
  Stream s = nullptr;
  check(api_->stream_create(&s, kStreamNonBlocking), "cuStreamCreate", "staging stream");
  return s;
}
void Driver::stream_destroy(Stream s) const noexcept { api_->stream_destroy(s); }
void Driver::stream_synchronize(Stream s) const {
  check(api_->stream_sync(s), "cuStreamSynchronize", "staging stream");
}

Event Driver::event_create() const {
  Event e = nullptr;
  check(api_->event_create(&e, kEventDisableTiming), "cuEventCreate", "staging event");
  return e;
}
void Driver::event_destroy(Event e) const noexcept { api_->event_destroy(e); }
void Driver::event_record(Event e, Stream s) const { check(api_->event_record(e, s), "cuEventRecord", "staging event"); }
void Driver::event_synchronize(Event e) const {
  check(api_->event_sync(e), "cuEventSynchronize", "staged copy");
}

void Driver::copy_to_host_async(void* dst, const void* device_src, std::size_t bytes, Stream s) const {
  check(api_->dtoh_async(dst, dptr(device_src), bytes, s), "cuMemcpyDtoHAsync", "device buffer to pinned staging");
}
void Driver::copy_to_device_async(void* device_dst, const void* src, std::size_t bytes, Stream s) const {
  check(api_->htod_async(dptr(device_dst), src, bytes, s), "cuMemcpyHtoDAsync", "pinned staging to device buffer");
}

ScopedContext::ScopedContext(const Driver& d, Context c) : d_(d) {
  if (!c) return;
  previous_ = d.current_context();
  if (previous_ == c) return;
  d.set_current_context(c);
  switched_ = true;
}

ScopedContext::~ScopedContext() {
  if (!switched_) return;
  try {
    d_.set_current_context(previous_);
  } catch (const std::exception&) {  // the previous context is gone: nothing to restore
  }
}

}  // namespace sluice::cuda
