// allreduce against a reference, under mpirun with any rank count: every type and op,
// counts 0, 1, primes, counts below the rank count, large; every algorithm this placement
// allows forced in turn (and auto); in place and out of place. Also: on random data, every
// rank ends with bit-identical results (hash allgather).
//
// Usage: mpirun -np N test_allreduce [--algos a,b,...] [--large COUNT] [--transport mpi|ucx]
// (--transport: fail unless SLUICE_COLL_TRANSPORT chose that transport).
// Exit status 0 only when every rank saw every check pass.
#include "harness.hpp"

#include <random>
#include <sstream>

using namespace sluice::coll;
using namespace sluice::coll::test;

namespace {

std::vector<Algorithm> algorithms_for(const Communicator& c, const std::string& only) {
  std::vector<Algorithm> out;
  std::vector<Algorithm> all = {Algorithm::automatic, Algorithm::ring, Algorithm::recursive_doubling,
                                Algorithm::rabenseifner};
  if (c.node_count() == 1 && c.local_size() > 1 && c.options().shm) all.push_back(Algorithm::shm);
  if (c.uniform_nodes()) all.push_back(Algorithm::hierarchical);
  for (Algorithm a : all) {
    if (!only.empty() && ("," + only + ",").find("," + std::string(name(a)) + ",") == std::string::npos) continue;
    out.push_back(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::string only;
  std::string transport;
  std::size_t large = 1 << 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--algos") only = argv[i + 1];
    if (std::string(argv[i]) == "--large") large = std::stoul(argv[i + 1]);
    if (std::string(argv[i]) == "--transport") transport = argv[i + 1];
  }
  int failures = 0;
  {
    Communicator comm(MPI_COMM_WORLD);
    const int n = comm.size(), me = comm.rank();
    if (!transport.empty() && name(comm.options().transport) != transport) {
      std::fprintf(stderr, "rank %d: transport %s, expected %s (SLUICE_COLL_TRANSPORT)\n", me,
                   name(comm.options().transport).data(), transport.c_str());
      ++failures;
    }
    const std::vector<Algorithm> algos = algorithms_for(comm, only);
    // 0, 1, primes (some below the rank count), a count that is not a multiple of the SIMD
    // width or segment, and one spanning several shm steps and ring segments.
    // Above 4 ranks (oversubscribed on the CI machine) a shorter list that still has counts
    // below the rank count, primes and every protocol size class.
    const std::vector<std::size_t> counts =
        n <= 4 ? std::vector<std::size_t>{0, 1, 2, 3, 5, 7, 13, 31, 127, 1021, 4099, 65537, large + 3}
               : std::vector<std::size_t>{0, 1, 3, 7, 13, 1021, 65537, large + 3};
    std::size_t checks = 0;
    for (Algorithm algo : algos) {
      for (int t = 0; t < kDataTypeCount; ++t) {
        for (int o = 0; o < kReduceOpCount; ++o) {
          const auto type = DataType(t);
          const auto op = ReduceOp(o);
          const std::size_t esz = size_of(type);
          for (std::size_t count : counts) {
            // The big count for the common training types only (time budget).
            if (count > 100000 && !training_pair(type, op, n <= 4))
              continue;
            std::vector<char> in(count * esz + 1), out(count * esz + 1), expect(count * esz + 1);
            fill_input(type, op, me, in.data(), count);
            fill_expected(type, op, n, expect.data(), count);
            for (int inplace = 0; inplace < 2; ++inplace) {
              const char* what = inplace ? "in place" : "out of place";
              std::fill(out.begin(), out.end(), char(0x5a));
              out.back() = char(0x77);  // guard byte after the vector
              if (inplace) std::memcpy(out.data(), in.data(), count * esz);
              try {
                comm.allreduce(inplace ? out.data() : in.data(), out.data(), count, type, op, {algo});
              } catch (const std::exception& e) {
                std::fprintf(stderr, "rank %d: %s %s %s count %zu %s threw: %s\n", me, name(algo).data(),
                             name(type).data(), name(op).data(), count, what, e.what());
                ++failures;
                continue;
              }
              ++checks;
              if (out.back() != char(0x77)) {
                std::fprintf(stderr, "rank %d: %s %s %s count %zu %s wrote past the end\n", me, name(algo).data(),
                             name(type).data(), name(op).data(), count, what);
                ++failures;
              }
              if (std::memcmp(out.data(), expect.data(), count * esz) != 0) {
                std::size_t bad = 0;
                while (bad < count && std::memcmp(&out[bad * esz], &expect[bad * esz], esz) == 0) ++bad;
                std::fprintf(stderr, "rank %d/%d: %s %s %s count %zu %s: wrong at element %zu\n", me, n,
                             name(algo).data(), name(type).data(), name(op).data(), count, what, bad);
                ++failures;
              }
            }
          }
        }
      }
      // Random data: results must be bit-identical on every rank.
      for (DataType type : {DataType::f32, DataType::f16, DataType::bf16, DataType::f64}) {
        const std::size_t count = 30011;
        std::vector<std::uint16_t> h16(count);
        std::vector<float> f32(count);
        std::vector<double> f64(count);
        std::mt19937 rng(unsigned(1234 + me));
        std::normal_distribution<float> dist(0.0f, 1.0f);
        void* buf = type == DataType::f32 ? static_cast<void*>(f32.data())
                    : type == DataType::f64 ? static_cast<void*>(f64.data())
                                            : static_cast<void*>(h16.data());
        for (std::size_t i = 0; i < count; ++i) {
          const float v = dist(rng);
          f32[i] = v;
          f64[i] = double(v) * 1.0000001;
          h16[i] = type == DataType::f16 ? to_f16(v) : to_bf16(v);
        }
        comm.allreduce(buf, buf, count, type, ReduceOp::avg, {algo});
        std::uint64_t h = fnv(buf, count * size_of(type)), h0 = h;
        MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
        if (h != h0) {
          std::fprintf(stderr, "rank %d: %s %s random data: result differs from rank 0's\n", me, name(algo).data(),
                       name(type).data());
          ++failures;
        }
        ++checks;
      }
    }
    const int total = all_failures(failures, MPI_COMM_WORLD);
    if (me == 0) {
      std::ostringstream names;
      for (Algorithm a : algos) names << name(a) << ' ';
      std::printf("%d ranks (%d nodes, %d local), transport %s: %zu checks per rank, algorithms [ %s], %d failures\n",
                  n, comm.node_count(), comm.local_size(), name(comm.options().transport).data(), checks,
                  names.str().c_str(), total);
    }
    failures = total;
  }
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
