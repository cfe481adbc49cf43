// Prints one line per (algorithm, type, op): a hash of the result of an allreduce of random
// data, after checking that every rank holds the same bits. check_determinism.sh runs it
// twice (the second time with other shm step and ring segment sizes, which must not change
// the result) and compares the outputs.
#include "harness.hpp"

#include <random>

using namespace sluice::coll;
using namespace sluice::coll::test;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0;
  {
    Communicator comm(MPI_COMM_WORLD);
    const int me = comm.rank();
    std::vector<Algorithm> algos = {Algorithm::ring, Algorithm::recursive_doubling, Algorithm::rabenseifner};
    if (comm.node_count() == 1 && comm.local_size() > 1) algos.push_back(Algorithm::shm);
    if (comm.uniform_nodes()) algos.push_back(Algorithm::hierarchical);
    const std::size_t count = 150001;  // odd; 1 shm step (1 MiB) vs ~10 (64 KiB) in the second run
    for (Algorithm algo : algos) {
      for (DataType type : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
        for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
          std::mt19937 rng(unsigned(99 + me));
          std::normal_distribution<float> dist(op == ReduceOp::prod ? 1.0f : 0.0f, 0.5f);
          std::vector<char> buf(count * size_of(type));
          for (std::size_t i = 0; i < count; ++i) {
            const float v = dist(rng);
            switch (type) {
              case DataType::f32: std::memcpy(&buf[i * 4], &v, 4); break;
              case DataType::f64: { const double d = double(v) / 3.0; std::memcpy(&buf[i * 8], &d, 8); break; }
              case DataType::f16: { const auto h = to_f16(v); std::memcpy(&buf[i * 2], &h, 2); break; }
              case DataType::bf16: { const auto h = to_bf16(v); std::memcpy(&buf[i * 2], &h, 2); break; }
              default: break;
            }
          }
          comm.allreduce(buf.data(), buf.data(), count, type, op, {algo});
          std::uint64_t h = fnv(buf.data(), buf.size()), h0 = h;
          MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
          if (h != h0) {
            std::fprintf(stderr, "rank %d: %s %s %s differs from rank 0\n", me, name(algo).data(), name(type).data(),
                         name(op).data());
            ++failures;
          }
          if (me == 0)
            std::printf("%s %s %s %016llx\n", name(algo).data(), name(type).data(), name(op).data(),
                        (unsigned long long)h);
        }
      }
    }
    failures = all_failures(failures, MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
