// Telemetry without user code: every completed allreduce is one record_allreduce into the
// process-wide default recorder (sluice_monitor), bytes = count x element size, ranks = the
// communicator's size. Synchronous calls: one event each. allreduce_async: one event per
// bucket the progress thread reduces (a fused bucket is one event of its total bytes), so N
// tensors make between 1 and N events and exactly their bytes; the engine's agreement rounds
// are not recorded. A disabled recorder records nothing. Under mpirun.
#include "harness.hpp"

#include <sluice/monitor/recorder.hpp>

#include <chrono>
#include <thread>

using namespace sluice::coll;
using namespace sluice::coll::test;
namespace mon = sluice::monitor;

namespace {
int failures = 0;
int me = 0;
void expect(bool ok, const char* what, std::uint64_t got, std::uint64_t want) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "rank %d: %s: got %llu, expected %llu\n", me, what, static_cast<unsigned long long>(got),
                 static_cast<unsigned long long>(want));
  }
}
// busbw bytes of one call, as the recorder computes them.
std::uint64_t bus(std::uint64_t bytes, int n) { return std::uint64_t(double(bytes) * 2.0 * double(n - 1) / double(n)); }
}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  {
    Communicator comm(MPI_COMM_WORLD);
    const int n = comm.size();
    me = comm.rank();
    mon::Recorder& rec = mon::default_recorder();
    rec.set_enabled(true);

    // 1. Synchronous calls: exactly N events of N x count x 4 bytes.
    constexpr std::uint64_t kCalls = 7, kCount = 1000;
    const auto s0 = rec.snapshot();
    std::vector<float> in(kCount), out(kCount);
    for (std::uint64_t c = 0; c < kCalls; ++c) {
      for (std::size_t i = 0; i < kCount; ++i) in[i] = float(me + int(i % 5));
      comm.allreduce(in.data(), out.data(), kCount, DataType::f32, ReduceOp::sum);
      const float want = float(n * (n - 1) / 2 + n * 2);  // element i = 2 (i % 5 == 2)
      if (out[2] != want) ++failures, std::fprintf(stderr, "rank %d: sync result wrong\n", me);
    }
    const auto s1 = rec.snapshot();
    expect(s1.allreduces - s0.allreduces == kCalls, "sync: allreduce count", s1.allreduces - s0.allreduces, kCalls);
    expect(s1.allreduce_bytes - s0.allreduce_bytes == kCalls * kCount * 4, "sync: allreduce bytes",
           s1.allreduce_bytes - s0.allreduce_bytes, kCalls * kCount * 4);
    expect(s1.allreduce_bus_bytes - s0.allreduce_bus_bytes == kCalls * bus(kCount * 4, n), "sync: bus bytes (ranks)",
           s1.allreduce_bus_bytes - s0.allreduce_bus_bytes, kCalls * bus(kCount * 4, n));
    expect(s1.allreduce_ns > s0.allreduce_ns, "sync: allreduce time grew", s1.allreduce_ns - s0.allreduce_ns, 1);

    // 2. Disabled: nothing recorded.
    rec.set_enabled(false);
    comm.allreduce(in.data(), out.data(), kCount, DataType::f32, ReduceOp::sum);
    rec.set_enabled(true);
    const auto s2 = rec.snapshot();
    expect(s2.allreduces == s1.allreduces, "disabled: allreduce count unchanged", s2.allreduces, s1.allreduces);

    // 3. allreduce_async: M tensors of known sizes; each bucket one event of its total bytes.
    constexpr std::uint64_t kTensors = 20;
    std::vector<std::vector<double>> ts(kTensors), rs(kTensors);
    std::uint64_t bytes = 0;
    std::vector<AllreduceHandle> hs;
    for (std::uint64_t t = 0; t < kTensors; ++t) {
      ts[t].assign(100 + 37 * t, double(me));
      rs[t].assign(ts[t].size(), 0.0);
      bytes += ts[t].size() * sizeof(double);
      hs.push_back(comm.allreduce_async(ts[t].data(), rs[t].data(), ts[t].size(), DataType::f64, ReduceOp::sum));
    }
    for (auto& h : hs) h.wait();
    for (std::uint64_t t = 0; t < kTensors; ++t)
      if (rs[t].back() != double(n * (n - 1) / 2)) ++failures, std::fprintf(stderr, "rank %d: async result wrong\n", me);
    const auto s3 = rec.snapshot();
    const std::uint64_t events = s3.allreduces - s2.allreduces;
    expect(events >= 1 && events <= kTensors, "async: events (1..tensors)", events, kTensors);
    expect(s3.allreduce_bytes - s2.allreduce_bytes == bytes, "async: bytes (each tensor once)",
           s3.allreduce_bytes - s2.allreduce_bytes, bytes);

    // 4. The progress thread's agreement rounds (idle cycles) are not recorded.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto s4 = rec.snapshot();
    expect(s4.allreduces == s3.allreduces, "idle engine: no events", s4.allreduces, s3.allreduces);

    // 5. A synchronous call while the engine runs goes through it: one event, counted once.
    std::int64_t v = me, sum = 0;
    comm.allreduce(&v, &sum, 1, DataType::i64, ReduceOp::sum);
    const auto s5 = rec.snapshot();
    expect(s5.allreduces - s4.allreduces == 1, "sync via engine: one event", s5.allreduces - s4.allreduces, 1);
    expect(s5.allreduce_bytes - s4.allreduce_bytes == 8, "sync via engine: bytes", s5.allreduce_bytes - s4.allreduce_bytes, 8);
  }
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (me == 0) std::printf("%s (%d failures)\n", all ? "FAIL" : "PASS", all);
  MPI_Finalize();
  return all ? 1 : 0;
}
