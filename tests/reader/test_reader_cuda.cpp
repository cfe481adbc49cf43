// copy_to_device against the stand-in CUDA driver (tests/unit/fake_cuda.c, loaded through
// $SLUICE_CUDA_LIBRARY): its device memory is not host-accessible (PROT_NONE), so the reader
// can only fill it with real asynchronous copies from pinned buffers. Every batch's device
// copy must equal its host bytes, over epochs; and the refusals name what is missing.
#define BOOST_TEST_MODULE reader_cuda
#include <boost/test/unit_test.hpp>

#include <sluice/reader.hpp>

#include "scratch_dir.hpp"

#include <dlfcn.h>
#include <hdf5.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace sluice::reader;

namespace {

// The stand-in's own entry points, for what a CUDA program would do itself.
struct Fake {
  void* lib = ::dlopen(FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL);
  template <typename F>
  F fn(const char* name) const {
    auto f = reinterpret_cast<F>(::dlsym(lib, name));
    BOOST_REQUIRE_MESSAGE(f, name);
    return f;
  }
  void make_context_current() const {
    void* ctx = nullptr;
    BOOST_REQUIRE(fn<int (*)(void**, int)>("cuDevicePrimaryCtxRetain")(&ctx, 0) == 0);
    BOOST_REQUIRE(fn<int (*)(void*)>("cuCtxSetCurrent")(ctx) == 0);
  }
  void copy_to_host(void* dst, const void* device, std::size_t n) const {
    BOOST_REQUIRE(fn<int (*)(void*, unsigned long long, std::size_t)>("cuMemcpyDtoH_v2")(
                      dst, static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(device)), n) == 0);
  }
  long counter(const char* name) const { return fn<long (*)()>(name)(); }
};

// N samples: x f32 [N, 5] = id + k/10, y i64 [N] = id; chunks of 16.
std::string make_file(std::uint64_t n) {
  const auto path = (sluice::reader::test::scratch_dir("sluice-reader-cuda") / "d.h5").string();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<float> x(5 * n);
  std::vector<std::int64_t> y(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    y[i] = static_cast<std::int64_t>(i);
    for (int k = 0; k < 5; ++k) x[5 * i + k] = static_cast<float>(i) + static_cast<float>(k) / 10;
  }
  auto write = [&](const char* name, hid_t type, std::vector<hsize_t> dims, const void* data) {
    hid_t sp = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    auto c = dims;
    c[0] = 16;
    H5Pset_chunk(pl, static_cast<int>(c.size()), c.data());
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(sp);
  };
  write("x", H5T_NATIVE_FLOAT, {n, 5}, x.data());
  write("y", H5T_NATIVE_INT64, {n}, y.data());
  H5Fclose(f);
  return path;
}

ReaderOptions options(const std::string& file) {
  ReaderOptions o;
  o.files = {file};
  o.batch_size = 8;
  o.use_staged = false;
  o.prefetch_depth = 3;
  return o;
}

bool no_driver() {
  const char* v = std::getenv("READER_CUDA_EXPECT_NO_DRIVER");
  return v && *v == '1';
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_batch_reaches_the_device) {
  if (no_driver()) return;
  const Fake fake;
  BOOST_REQUIRE(fake.lib);
  fake.make_context_current();
  const std::string file = make_file(100);
  const long copies_before = fake.counter("fake_cu_htod_copies");
  const long pinned_before = fake.counter("fake_cu_live_pinned");
  std::uint64_t batches = 0;
  {
    auto o = options(file);
    o.copy_to_device = true;
    Reader r(o);
    BOOST_TEST(fake.counter("fake_cu_live_pinned") - pinned_before == 5);  // depth 3 + 2 slots
    for (std::uint64_t k = 0; k < 3 * r.steps_per_epoch(); ++k, ++batches) {
      const Batch b = r.next();
      for (std::size_t d = 0; d < 2; ++d) {
        const auto host = b.data(d);
        std::vector<std::byte> back(host.size());
        fake.copy_to_host(back.data(), b.device_data(d), back.size());
        BOOST_REQUIRE(std::memcmp(back.data(), host.data(), host.size()) == 0);
      }
      BOOST_REQUIRE_EQUAL(b.as<std::int64_t>(1)[0], static_cast<std::int64_t>(b.indices()[0]));
    }
  }
  // One copy per batch read (the prefetched ones too), and every buffer freed.
  BOOST_TEST(fake.counter("fake_cu_htod_copies") - copies_before >= static_cast<long>(batches));
  BOOST_TEST(fake.counter("fake_cu_live_pinned") == pinned_before);
  BOOST_TEST(fake.counter("fake_cu_live_device") == 0);
}

BOOST_AUTO_TEST_CASE(refusals_name_what_is_missing) {
  const std::string file = make_file(40);
  auto o = options(file);
  // Without copy_to_device there is no device copy to ask for.
  {
    Reader plain(options(file));
    const Batch b = plain.next();
    BOOST_CHECK_THROW((void)b.device_data(0), sluice::InvalidArgument);
  }
  o.copy_to_device = true;
  std::string message;
  // A thread with no current context (or a process without a driver) is refused.
  std::thread([&] {
    try {
      Reader r(o);
    } catch (const sluice::InvalidArgument& e) {
      message = e.what();
    }
  }).join();
  BOOST_TEST_MESSAGE("refused: " << message);
  BOOST_TEST(message.find(no_driver() ? "no CUDA driver" : "no CUDA context is current") != std::string::npos, message);
}
