// allreduce_async: many tensors of mixed sizes, types and ops submitted in the same order on
// every rank (with rank-dependent pauses, so the ranks' queues differ when the progress
// thread agrees on what is ready), polled with test() and waited; results against the
// reference; average_gradients; a synchronous allreduce while the thread runs. On one node
// with shared memory, fused buckets above the flat limit take the shm direct protocol (the
// fusion buffer is a shared buffer).
// Under mpirun; MPI_THREAD_MULTIPLE (needed when the communicator spans nodes over the MPI
// transport), or with --funneled MPI_THREAD_FUNNELED (enough on one node with shm, or over UCX).
#include "harness.hpp"
#include "shm_group.hpp"

#include <sys/statvfs.h>

#include <chrono>
#include <random>
#include <thread>

using namespace sluice::coll;
using namespace sluice::coll::test;

int main(int argc, char** argv) {
  int provided = 0;
  const bool funneled = argc > 1 && std::string(argv[1]) == "--funneled";
  MPI_Init_thread(&argc, &argv, funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE, &provided);
  int failures = 0;
  {
    Communicator comm(MPI_COMM_WORLD);
    const int n = comm.size(), me = comm.rank();
    struct T {
      DataType type;
      ReduceOp op;
      std::size_t count;
      std::vector<char> in, out, expect;
    };
    std::vector<T> ts;
    std::mt19937 shape(42);  // same on every rank
    const DataType types[] = {DataType::f32, DataType::f32, DataType::f16, DataType::bf16, DataType::i32,
                              DataType::f64, DataType::i64};
    const ReduceOp ops[] = {ReduceOp::avg, ReduceOp::sum, ReduceOp::sum, ReduceOp::max, ReduceOp::prod};
    for (int i = 0; i < 300; ++i) {
      T t;
      t.type = types[shape() % 7];
      t.op = ops[shape() % 5];
      const std::size_t sizes[] = {0, 1, 7, 100, 1000, 4099, 65537, 300007};
      t.count = sizes[shape() % (i % 50 == 0 ? 8 : 7)];
      const std::size_t b = t.count * size_of(t.type);
      t.in.resize(b);
      t.out.assign(b, 0);
      t.expect.resize(b);
      fill_input(t.type, t.op, me, t.in.data(), t.count);
      fill_expected(t.type, t.op, n, t.expect.data(), t.count);
      ts.push_back(std::move(t));
    }
    // A burst of 16 tensors of 16 KiB (each alone at the flat limit) submitted back to back:
    // the thread fuses at least two of them, and on one node such a bucket is reduced in the
    // shared fusion buffer by the direct protocol.
    {
      const std::uint64_t before = ShmGroup::direct_calls();
      std::vector<std::vector<float>> burst(16, std::vector<float>(4096));
      std::vector<AllreduceHandle> bh;
      // A big tensor first keeps the thread busy while the burst is queued behind it, so the
      // next agreement sees many of them at once.
      std::vector<float> big(1 << 21, 1.0f);
      bh.push_back(comm.allreduce_async(big.data(), big.data(), big.size(), DataType::f32, ReduceOp::sum));
      for (std::size_t k = 0; k < burst.size(); ++k) {
        fill_input(DataType::f32, ReduceOp::sum, me, burst[k].data(), burst[k].size());
        bh.push_back(comm.allreduce_async(burst[k].data(), burst[k].data(), burst[k].size(), DataType::f32, ReduceOp::sum));
      }
      std::vector<float> expect(4096);
      fill_expected(DataType::f32, ReduceOp::sum, n, expect.data(), expect.size());
      bh.front().wait();
      for (std::size_t k = 0; k < burst.size(); ++k) {
        bh[k + 1].wait();
        if (burst[k] != expect) ++failures, std::fprintf(stderr, "rank %d: burst tensor %zu wrong\n", me, k);
      }
      const std::uint64_t direct = ShmGroup::direct_calls() - before;
      if (me == 0) std::printf("burst: %llu fused buckets took the direct protocol\n", static_cast<unsigned long long>(direct));
      // The fusion buffer is shared only where /dev/shm can hold every local rank's (else the
      // engine says so on stderr and uses the heap). Its size, not what is free: ours are in it.
      struct statvfs fs {};
      const bool shm_room = ::statvfs("/dev/shm", &fs) == 0 &&
                            double(fs.f_blocks) * double(fs.f_frsize) > 2.0 * comm.local_size() * double(comm.options().fusion_bytes);
      const bool one_shm_node = comm.node_count() == 1 && comm.local_size() > 1 && comm.options().shm;
      if (one_shm_node && !shm_room) {
        if (me == 0) std::printf("burst: /dev/shm too small for shared fusion buffers; not checked\n");
      } else if (one_shm_node != (direct > 0)) {
        std::fprintf(stderr, "rank %d: %llu burst buckets took the direct protocol (expected %s)\n", me,
                     static_cast<unsigned long long>(direct), one_shm_node ? "some" : "none");
        ++failures;
      }
    }
    // Once the progress thread runs, allocate_shared refuses (it would race the thread's calls).
    try {
      (void)comm.allocate_shared(4096);
      ++failures, std::fprintf(stderr, "rank %d: allocate_shared after allreduce_async was not refused\n", me);
    } catch (const sluice::InvalidArgument& e) {
      if (std::string(e.what()).find("allreduce_async") == std::string::npos)
        ++failures, std::fprintf(stderr, "rank %d: allocate_shared refusal does not say why: %s\n", me, e.what());
    }
    std::mt19937 pause{static_cast<unsigned>(me)};
    std::vector<AllreduceHandle> hs;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      T& t = ts[i];
      hs.push_back(comm.allreduce_async(t.in.data(), t.out.data(), t.count, t.type, t.op));
      if (pause() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(pause() % 3000));
      if (i == 150) {  // a synchronous call in the middle goes through the same thread
        std::int64_t v = me, sum = 0;
        comm.allreduce(&v, &sum, 1, DataType::i64, ReduceOp::sum);
        if (sum != std::int64_t(n) * (n - 1) / 2) ++failures, std::fprintf(stderr, "rank %d: sync sum wrong\n", me);
      }
    }
    std::size_t polled = 0;
    while (!hs.back().test()) ++polled;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      hs[i].wait();
      if (std::memcmp(ts[i].out.data(), ts[i].expect.data(), ts[i].out.size()) != 0) {
        std::fprintf(stderr, "rank %d: tensor %zu (%s %s count %zu) wrong\n", me, i, name(ts[i].type).data(),
                     name(ts[i].op).data(), ts[i].count);
        ++failures;
      }
    }
    // average_gradients: in place, mixed types.
    std::vector<float> g1(1000);
    std::vector<double> g2(77);
    for (std::size_t i = 0; i < g1.size(); ++i) g1[i] = float(me + int(i));
    for (std::size_t i = 0; i < g2.size(); ++i) g2[i] = double(2 * me);
    const Tensor grads[] = {{nullptr, g1.data(), g1.size(), DataType::f32}, {g2.data(), g2.data(), g2.size(), DataType::f64}};
    comm.average_gradients(grads);
    for (std::size_t i = 0; i < g1.size(); ++i)
      if (g1[i] != float((n - 1) / 2.0 + double(i))) { ++failures; std::fprintf(stderr, "rank %d: avg f32\n", me); break; }
    for (double v : g2)
      if (v != double(n - 1)) { ++failures; std::fprintf(stderr, "rank %d: avg f64\n", me); break; }
    failures = all_failures(failures, MPI_COMM_WORLD);
    if (me == 0)
      std::printf("%d ranks (%d nodes): %zu async tensors + average_gradients, %d failures (thread level %d)\n", n,
                  comm.node_count(), ts.size(), failures, provided);
  }
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
