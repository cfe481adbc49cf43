// The dlopen wrapper of the CUDA driver (common/src/cuda_driver.cpp) against the stand-in
// driver (tests/unit/fake_cuda.c): absent or GPU-less drivers are "host only", a library
// without the functions is an error naming one, pointer classification, pinned buffers,
// streams and events (RAII), asynchronous copies, and errors naming the call and the code.
#define BOOST_TEST_MODULE cuda_driver
#include <boost/test/unit_test.hpp>

#include <sluice/common/cuda_driver.hpp>

#include <dlfcn.h>
#include <stdlib.h>

#include <cstring>
#include <string>
#include <vector>

namespace cuda = sluice::cuda;

namespace {
// The fake's own calls, for what the wrapper does not offer (device memory, a context).
struct Fake {
  void* lib = ::dlopen(FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL);
  template <typename F>
  F fn(const char* name) {
    auto f = reinterpret_cast<F>(::dlsym(lib, name));
    BOOST_TEST_REQUIRE(f != nullptr);
    return f;
  }
  void make_current() {
    void* ctx = nullptr;
    BOOST_TEST_REQUIRE(fn<int (*)(void**, int)>("cuDevicePrimaryCtxRetain")(&ctx, 0) == 0);
    BOOST_TEST_REQUIRE(fn<int (*)(void*)>("cuCtxSetCurrent")(ctx) == 0);
  }
  void* device_alloc(std::size_t n) {
    unsigned long long p = 0;
    BOOST_TEST_REQUIRE(fn<int (*)(unsigned long long*, std::size_t)>("cuMemAlloc_v2")(&p, n) == 0);
    return reinterpret_cast<void*>(p);
  }
  long live(const char* what) { return fn<long (*)()>(what)(); }
};
}  // namespace

BOOST_AUTO_TEST_CASE(absent_library_means_host_only) {
  BOOST_TEST(!cuda::Driver::load("libcuda-does-not-exist.so.1").has_value());
}

BOOST_AUTO_TEST_CASE(failing_init_means_host_only) {
  ::setenv("FAKE_CUDA_INIT_FAIL", "1", 1);
  BOOST_TEST(!cuda::Driver::load(FAKE_CUDA_PATH).has_value());
  ::unsetenv("FAKE_CUDA_INIT_FAIL");
}

BOOST_AUTO_TEST_CASE(library_without_the_functions_is_an_error) {
  try {
    cuda::Driver::load(FAKE_NVML_PATH);  // a real library, but not a CUDA driver
    BOOST_FAIL("no error");
  } catch (const cuda::Error& e) {
    BOOST_TEST(std::string(e.what()).find("lacks cuInit") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(classifies_pointers_and_copies) {
  auto d = cuda::Driver::load(FAKE_CUDA_PATH);
  BOOST_TEST_REQUIRE(d.has_value());
  Fake fake;
  fake.make_current();
  std::vector<int> host(1000);
  BOOST_TEST(!d->is_device_pointer(nullptr));
  BOOST_TEST(!d->is_device_pointer(host.data()));
  void* dev = fake.device_alloc(host.size() * sizeof(int));
  BOOST_TEST(d->is_device_pointer(dev));
  BOOST_TEST(d->is_device_pointer(static_cast<char*>(dev) + 100));  // inside the allocation
  BOOST_TEST(d->context_of(dev) == d->current_context());
  const long pinned_before = fake.live("fake_cu_live_pinned");
  {
    cuda::PinnedBuffer pinned(*d, d->host_alloc(host.size() * sizeof(int)));
    BOOST_TEST(!d->is_device_pointer(pinned.get()));  // pinned host memory is host memory
    BOOST_TEST(fake.live("fake_cu_live_pinned") == pinned_before + 1);
    cuda::UniqueStream s(*d, d->stream_create());
    cuda::UniqueEvent e(*d, d->event_create());
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = int(i * 7);
    d->copy_to_device_async(dev, host.data(), host.size() * sizeof(int), s.get());
    d->copy_to_host_async(pinned.get(), dev, host.size() * sizeof(int), s.get());
    d->event_record(e.get(), s.get());
    d->event_synchronize(e.get());
    BOOST_TEST(std::memcmp(pinned.get(), host.data(), host.size() * sizeof(int)) == 0);
    cuda::UniqueStream moved = std::move(s);
    BOOST_TEST(!s);
    BOOST_TEST(static_cast<bool>(moved));
  }
  BOOST_TEST(fake.live("fake_cu_live_pinned") == pinned_before);
  BOOST_TEST(fake.live("fake_cu_live_streams") == 0);
  BOOST_TEST(fake.live("fake_cu_live_events") == 0);
}

BOOST_AUTO_TEST_CASE(errors_name_the_call_and_the_code) {
  auto d = cuda::Driver::load(FAKE_CUDA_PATH);
  BOOST_TEST_REQUIRE(d.has_value());
  Fake fake;
  fake.make_current();
  void* dev = fake.device_alloc(64);
  cuda::UniqueStream s(*d, d->stream_create());
  d->set_current_context(nullptr);  // the fake refuses copies without a current context
  char buf[64];
  try {
    d->copy_to_host_async(buf, dev, sizeof buf, s.get());
    BOOST_FAIL("no error");
  } catch (const cuda::Error& e) {
    const std::string what = e.what();
    BOOST_TEST(what.find("cuMemcpyDtoHAsync") != std::string::npos, what);
    BOOST_TEST(what.find("CUDA_ERROR_INVALID_CONTEXT") != std::string::npos, what);
    BOOST_TEST(e.code() == 201);
  }
  {
    cuda::ScopedContext scope(*d, d->context_of(dev));  // the buffer's context, for the scope
    d->copy_to_host_async(buf, dev, sizeof buf, s.get());
    d->stream_synchronize(s.get());
  }
  BOOST_TEST(d->current_context() == nullptr);  // restored
}
