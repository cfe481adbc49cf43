// CUDA device buffers: allreduce on device memory (staged through pinned host memory in
// chunks) must give the bits the same call gives on host memory, on every rank, in place and
// out of place, with some ranks on host buffers and others on device buffers, sync, async
// (fused) and through the C API. Runs against the stand-in driver (tests/unit/fake_cuda.c:
// device memory the host cannot read, asynchronous copies) or a real GPU.
//
// Usage: mpirun -np N test_cuda --mode fake|real|none
//   fake: SLUICE_CUDA_LIBRARY points at fake_cuda; also checks copy counts and leaks.
//   real: libcuda.so.1 and a GPU (device 0 for every rank).
//   none: no driver (SLUICE_CUDA_LIBRARY names no library): nothing is a device pointer and
//         host calls are not chunked (bits equal a communicator with Options::cuda = false).
//   test_cuda --probe: exit 0 when a driver and a GPU are usable, 77 (ctest: skipped) if not;
//   no MPI.
// SLUICE_COLL_CUDA_CHUNK_BYTES should be small (the tests use 4096) so counts span chunks.
// Exit status 0 only when every rank saw every check pass.
#include "harness.hpp"

#include <sluice/collectives.h>
#include <sluice/common/cuda_driver.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <random>

using namespace sluice::coll;
using namespace sluice::coll::test;

namespace {

// The driver calls the test itself needs (device memory, a context), from the library the
// collectives load.
struct Dev {
  void* lib = nullptr;
  int (*init)(unsigned);
  int (*device_get)(int*, int);
  int (*ctx_retain)(void**, int);
  int (*ctx_set)(void*);
  int (*alloc)(unsigned long long*, std::size_t);
  int (*free)(unsigned long long);
  int (*htod)(unsigned long long, const void*, std::size_t);
  int (*dtoh)(void*, unsigned long long, std::size_t);
  long (*dtoh_copies)() = nullptr;  // the fake's counters (null on a real driver)
  long (*live_pinned)() = nullptr;
  long (*live_streams)() = nullptr;
  long (*live_events)() = nullptr;

  // An empty string when the driver and device 0 are usable, else why not.
  std::string open() {
    const char* env = std::getenv("SLUICE_CUDA_LIBRARY");
    const std::string path = env && *env ? env : "libcuda.so.1";
    lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return "no CUDA driver (" + path + ")";
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      ok = ok && fn;
    };
    sym(init, "cuInit");
    sym(device_get, "cuDeviceGet");
    sym(ctx_retain, "cuDevicePrimaryCtxRetain");
    sym(ctx_set, "cuCtxSetCurrent");
    sym(alloc, "cuMemAlloc_v2");
    sym(free, "cuMemFree_v2");
    sym(htod, "cuMemcpyHtoD_v2");
    sym(dtoh, "cuMemcpyDtoH_v2");
    if (!ok) return path + " lacks a function the test uses";
    int dev = 0;
    void* ctx = nullptr;
    if (init(0) != 0 || device_get(&dev, 0) != 0) return "no GPU (cuInit or cuDeviceGet failed)";
    if (ctx_retain(&ctx, dev) != 0 || ctx_set(ctx) != 0) return "cannot make device 0's primary context current";
    dtoh_copies = reinterpret_cast<long (*)()>(::dlsym(lib, "fake_cu_dtoh_copies"));
    live_pinned = reinterpret_cast<long (*)()>(::dlsym(lib, "fake_cu_live_pinned"));
    live_streams = reinterpret_cast<long (*)()>(::dlsym(lib, "fake_cu_live_streams"));
    live_events = reinterpret_cast<long (*)()>(::dlsym(lib, "fake_cu_live_events"));
    return {};
  }
};

// A device buffer holding `bytes` (plus nothing: a real cuMemAlloc has no guard either).
class DeviceBuffer {
 public:
  DeviceBuffer(const Dev& d, std::size_t bytes) : d_(d), bytes_(bytes) {
    if (d_.alloc(&p_, std::max<std::size_t>(bytes, 1)) != 0) throw std::runtime_error("cuMemAlloc failed");
  }
  ~DeviceBuffer() { d_.free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return reinterpret_cast<void*>(p_); }
  void put(const void* src) const {
    if (bytes_ && d_.htod(p_, src, bytes_) != 0) throw std::runtime_error("cuMemcpyHtoD failed");
  }
  std::vector<char> take() const {
    std::vector<char> out(bytes_);
    if (bytes_ && d_.dtoh(out.data(), p_, bytes_) != 0) throw std::runtime_error("cuMemcpyDtoH failed");
    return out;
  }

 private:
  const Dev& d_;
  std::size_t bytes_;
  unsigned long long p_ = 0;
};

std::vector<char> random_input(DataType type, std::size_t count, unsigned seed) {
  std::vector<char> buf(count * size_of(type));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (std::size_t i = 0; i < count; ++i) {
    const float v = dist(rng);
    switch (type) {
      case DataType::f32: std::memcpy(&buf[i * 4], &v, 4); break;
      case DataType::f64: {
        const double x = double(v) * 1.0000001;
        std::memcpy(&buf[i * 8], &x, 8);
        break;
      }
      case DataType::f16: case DataType::bf16: {
        const std::uint16_t h = type == DataType::f16 ? to_f16(v) : to_bf16(v);
        std::memcpy(&buf[i * 2], &h, 2);
        break;
      }
      case DataType::i32: {
        const std::int32_t x = std::int32_t(v * 1000);
        std::memcpy(&buf[i * 4], &x, 4);
        break;
      }
      case DataType::i64: {
        const std::int64_t x = std::int64_t(v * 1e6);
        std::memcpy(&buf[i * 8], &x, 8);
        break;
      }
    }
  }
  return buf;
}

struct Checker {
  int me;
  int failures = 0;
  std::size_t checks = 0;
  void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
      std::fprintf(stderr, "rank %d: FAILED: %s\n", me, what.c_str());
      ++failures;
    }
  }
};

// Where each rank's buffers live in one case: 'h' host, 'd' device; send then recv.
struct Layout {
  const char* name;
  bool send_dev, recv_dev;  // for the ranks that use device memory
  bool odd_ranks_host;      // mixed: odd ranks keep host buffers
};

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "fake";
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--probe") {
      Dev d;
      const std::string why = d.open();
      if (!why.empty()) std::printf("skipping: %s\n", why.c_str());
      return why.empty() ? 0 : 77;
    }
    if (std::string(argv[i]) == "--mode" && i + 1 < argc) mode = argv[++i];
  }
  int provided = 0;  // allreduce_async across nodes: the progress thread calls MPI
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  Checker ck{me};
  Dev dev;
  const std::string why = mode == "none" ? std::string("none") : dev.open();
  if (mode != "none" && !why.empty()) {
    std::fprintf(stderr, "rank %d: %s\n", me, why.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const bool fake = mode == "fake";
  {
    Options opts = Options::from_environment();
    Options host_only = opts;
    host_only.cuda = false;
    Communicator comm(MPI_COMM_WORLD, opts);
    Communicator plain(MPI_COMM_WORLD, host_only);  // the unchunked host path, for reference
    const std::size_t chunk_bytes = opts.cuda_chunk_bytes;

    if (mode == "none") {
      // No driver: nothing is a device pointer, and host calls above one chunk are not
      // chunked: ring results (whose bits depend on how the vector is cut) equal the plain ones.
      std::vector<float> x(100);
      ck.expect(sluice::cuda::Driver::process() == nullptr, "no driver: Driver::process() is null");
      ck.expect(!sluice::cuda::is_device_pointer(x.data()), "no driver: a host pointer is not a device pointer");
      ck.expect(!sluice::cuda::is_device_pointer(reinterpret_cast<void*>(std::uintptr_t{1} << 40)),
                "no driver: an arbitrary address is not a device pointer");
      for (Algorithm a : {Algorithm::ring, Algorithm::automatic}) {
        const std::size_t count = 50021;
        auto in = random_input(DataType::f32, count, 7u + unsigned(me));
        std::vector<char> a1(in.size()), a2(in.size());
        comm.allreduce(in.data(), a1.data(), count, DataType::f32, ReduceOp::sum, {a});
        plain.allreduce(in.data(), a2.data(), count, DataType::f32, ReduceOp::sum, {a});
        ck.expect(a1 == a2, "no driver: " + std::string(name(a)) + " bits equal the unchunked host path");
      }
    } else {
      ck.expect(sluice::cuda::Driver::process() != nullptr, "the CUDA driver loads");
      DeviceBuffer probe(dev, 64);
      std::vector<float> host(16);
      ck.expect(sluice::cuda::is_device_pointer(probe.get()), "cuMemAlloc memory is a device pointer");
      ck.expect(!sluice::cuda::is_device_pointer(host.data()), "a host vector is not a device pointer");

      const std::size_t f32_chunk = chunk_bytes / 4;
      const std::vector<std::size_t> counts = {0, 1, 7, 1021, f32_chunk - 1, f32_chunk, f32_chunk + 1, 50021};
      const std::vector<Layout> layouts = {{"device in place", true, true, false},
                                           {"device out of place", true, true, false},
                                           {"device send, host recv", true, false, false},
                                           {"host send, device recv", false, true, false},
                                           {"mixed: even ranks device, odd host, in place", true, true, true}};
      std::vector<Algorithm> algos = {Algorithm::automatic, Algorithm::ring, Algorithm::recursive_doubling};
      if (comm.node_count() == 1 && comm.local_size() > 1) algos.push_back(Algorithm::shm);
      struct TypeOp {
        DataType type;
        ReduceOp op;
      };
      const std::vector<TypeOp> types = {{DataType::f32, ReduceOp::sum},
                                         {DataType::bf16, ReduceOp::avg},
                                         {DataType::f64, ReduceOp::max},
                                         {DataType::i32, ReduceOp::sum}};
      for (Algorithm algo : algos) {
        for (const TypeOp& to : types) {
          for (std::size_t count : counts) {
            if (count > 2000 && to.type != DataType::f32 && algo != Algorithm::automatic) continue;  // time
            const std::size_t bytes = count * size_of(to.type);
            const auto in = random_input(to.type, count, 1000u * unsigned(me) + unsigned(count));
            // Reference: the same communicator on host buffers.
            std::vector<char> ref(bytes);
            comm.allreduce(in.data(), ref.data(), count, to.type, to.op, {algo});
            // Chunking must not change the bits of shm and rd (one fold order per element).
            if (algo == Algorithm::shm || algo == Algorithm::recursive_doubling) {
              std::vector<char> unchunked(bytes);
              plain.allreduce(in.data(), unchunked.data(), count, to.type, to.op, {algo});
              ck.expect(unchunked == ref, std::string(name(algo)) + " count " + std::to_string(count) +
                                              ": chunked host bits equal unchunked");
            }
            for (const Layout& lay : layouts) {
              const bool device_rank = !(lay.odd_ranks_host && me % 2 == 1);
              const bool inplace = lay.send_dev == lay.recv_dev && std::string(lay.name).find("in place") !=
                                                                        std::string::npos;
              const bool send_dev = device_rank && lay.send_dev, recv_dev = device_rank && lay.recv_dev;
              const std::string what = std::string(name(algo)) + " " + std::string(name(to.type)) + " " +
                                       std::string(name(to.op)) + " count " + std::to_string(count) + " " +
                                       lay.name;
              DeviceBuffer dsend(dev, bytes), drecv(dev, bytes);
              std::vector<char> hsend = in, hrecv(bytes, char(0x5a));
              std::vector<char> garbage(bytes, char(0x5a));
              if (send_dev) dsend.put(in.data());
              if (recv_dev) drecv.put(inplace ? in.data() : garbage.data());
              if (inplace && !recv_dev) hrecv = in;
              void* recv = recv_dev ? drecv.get() : hrecv.data();
              const void* send = inplace ? recv : send_dev ? dsend.get() : static_cast<const void*>(hsend.data());
              const long copies_before = dev.dtoh_copies ? dev.dtoh_copies() : 0;
              try {
                comm.allreduce(send, recv, count, to.type, to.op, {algo});
              } catch (const std::exception& e) {
                ck.expect(false, what + " threw: " + e.what());
                continue;
              }
              const std::vector<char> got = recv_dev ? drecv.take() : hrecv;
              ck.expect(got == ref, what + ": bits equal the host-buffer result");
              if (send_dev && !inplace) ck.expect(dsend.take() == in, what + ": the send buffer is unchanged");
              if (fake && send_dev && count > 0) {
                const long chunks = long((count + chunk_bytes / size_of(to.type) - 1) / (chunk_bytes / size_of(to.type)));
                ck.expect(dev.dtoh_copies() - copies_before == chunks,
                          what + ": one copy from the device per chunk (" + std::to_string(chunks) + ")");
              }
              std::uint64_t h = fnv(got.data(), got.size()), h0 = h;
              MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
              ck.expect(h == h0, what + ": every rank holds rank 0's bits");
            }
          }
        }
      }

      // allreduce_async: device and host tensors, fused (small) and alone (above the fusion
      // size), driven by the progress thread (no context current there); then the C API.
      {
        Options ao = opts;
        ao.fusion_bytes = 64 * 1024;
        Communicator async(MPI_COMM_WORLD, ao);
        const std::vector<std::size_t> sizes = {3, 1021, 5000, 40000, 17, 0, 9000};
        std::vector<std::vector<char>> inputs, refs;
        std::vector<std::unique_ptr<DeviceBuffer>> bufs;
        std::vector<AllreduceHandle> handles;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
          inputs.push_back(random_input(DataType::f32, sizes[i], 77u * unsigned(me) + unsigned(i)));
          refs.emplace_back(inputs.back().size());
          comm.allreduce(inputs[i].data(), refs[i].data(), sizes[i], DataType::f32, ReduceOp::sum);
        }
        std::vector<std::vector<char>> host_out(sizes.size());
        for (std::size_t i = 0; i < sizes.size(); ++i) {
          const bool on_device = (i + std::size_t(me)) % 2 == 0;  // differs by rank: mixed
          host_out[i] = inputs[i];
          bufs.push_back(on_device ? std::make_unique<DeviceBuffer>(dev, sizes[i] * 4) : nullptr);
          void* p = host_out[i].data();
          if (on_device) {
            bufs.back()->put(inputs[i].data());
            p = bufs.back()->get();
          }
          handles.push_back(async.allreduce_async(p, p, sizes[i], DataType::f32, ReduceOp::sum));
        }
        for (std::size_t i = 0; i < sizes.size(); ++i) {
          try {
            handles[i].wait();
          } catch (const std::exception& e) {
            ck.expect(false, "async tensor " + std::to_string(i) + " threw: " + e.what());
            continue;
          }
          const std::vector<char> got = bufs[i] ? bufs[i]->take() : host_out[i];
          ck.expect(got == refs[i], "async tensor " + std::to_string(i) + " (" + std::to_string(sizes[i]) +
                                        (bufs[i] ? " on device" : " on host") + "): bits equal the sync host result");
        }
      }
      {
        sluice_coll_comm_t c = nullptr;
        ck.expect(sluice_coll_comm_create(MPI_COMM_WORLD, &c) == SLUICE_COLL_OK, "C API: create");
        const std::size_t count = 3001;
        auto in = random_input(DataType::f32, count, 5u + unsigned(me));
        std::vector<char> ref(in.size());
        comm.allreduce(in.data(), ref.data(), count, DataType::f32, ReduceOp::sum);
        DeviceBuffer d(dev, in.size());
        d.put(in.data());
        const int rc = sluice_coll_allreduce(c, d.get(), d.get(), count, SLUICE_COLL_F32, SLUICE_COLL_SUM,
                                             SLUICE_COLL_ALGO_AUTO);
        ck.expect(rc == SLUICE_COLL_OK, std::string("C API: allreduce on a device buffer: ") + sluice_coll_last_error());
        ck.expect(d.take() == ref, "C API: device bits equal the host-buffer result");
        sluice_coll_comm_destroy(c);
      }
    }
  }
  if (fake) {  // every communicator is gone: nothing pinned, no stream or event left
    ck.expect(dev.live_pinned && dev.live_pinned() == 0, "fake: every pinned buffer freed");
    ck.expect(dev.live_streams && dev.live_streams() == 0, "fake: every stream destroyed");
    ck.expect(dev.live_events && dev.live_events() == 0, "fake: every event destroyed");
  }
  const int total = all_failures(ck.failures, MPI_COMM_WORLD);
  if (me == 0) std::printf("cuda (%s): %zu checks per rank, %d failures\n", mode.c_str(), ck.checks, total);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
