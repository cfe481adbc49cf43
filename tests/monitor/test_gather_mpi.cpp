// Under mpiexec with 3 ranks: the job file over MPI (gather_mpi.hpp).
//  1. No directory configured: disabled on every rank, nothing written, no error.
//  2. A directory that cannot be created: disabled, rank 0's error() names it, no crash.
//  3. SLUICE_TELEMETRY_DIR and SLURM_JOB_ID (from ctest): 6 synchronous steps (rank 2 three
//     times slower), then rank 1 sleeps past two checkpoint intervals while rank 0 starts a
//     checkpoint and waits in MPI_Barrier (tick() must not block it), then a checkpoint file
//     exists with complete = 0 and 3 ranks; after finish(), complete = 1, rank 2 is the
//     straggler, every rank has its steps and sampler series, no temporary file is left.
// Usage: mon_test_gather_mpi DIR (expects SLURM_JOB_ID=montest in the environment)
#include <sluice/monitor/gather_mpi.hpp>
#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace mon = sluice::monitor;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

int g_rank = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAIL: %s\n", g_rank, what.c_str());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// Ticks every 10 ms for `d` (progress for the non-blocking gather on every rank).
void tick_for(mon::JobTelemetryWriter& tw, std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    tw.tick();
    std::this_thread::sleep_for(10ms);
  }
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  check(argc == 2, "usage: mon_test_gather_mpi DIR");
  check(size == 3, "needs 3 ranks");
  const char* job = std::getenv("SLURM_JOB_ID");
  check(job && std::string(job) == "montest", "SLURM_JOB_ID=montest expected in the environment");
  const fs::path base = argv[1];
  if (g_rank == 0) {
    fs::remove_all(base);
    fs::create_directories(base);
    std::ofstream(base / "a-file") << "x\n";
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // 1. Nothing configured.
  ::unsetenv("SLUICE_TELEMETRY_DIR");
  {
    mon::JobTelemetryWriter off(MPI_COMM_WORLD);
    check(!off.enabled(), "enabled without a directory");
    check(off.tick() && off.finish(), "a disabled writer reported a failure");
    check(off.error().empty() && off.path().empty(), "a disabled writer has an error or a path");
  }
  // 2. A directory that cannot exist (below a regular file: even root cannot create it).
  {
    mon::JobTelemetryOptions o;
    o.dir = (base / "a-file" / "telemetry").string();
    mon::JobTelemetryWriter bad(MPI_COMM_WORLD, o);
    check(!bad.enabled(), "enabled with an impossible directory");
    if (g_rank == 0) check(bad.error().find(o.dir) != std::string::npos, "the error does not name the directory: " + bad.error());
    bad.tick();
    bad.finish();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  check(count_files(base) == 1, "something was written while disabled");

  // 3. The real thing, configured through the environment.
  const fs::path dir = base / "run";
  ::setenv("SLUICE_TELEMETRY_DIR", dir.c_str(), 1);
  mon::Recorder rec;
  mon::Sampler sampler(mon::SamplerOptions{100ms, 1000, ""});
  sampler.start();
  mon::JobTelemetryOptions o;
  o.checkpoint_interval = 300ms;
  o.recorder = &rec;
  o.sampler = &sampler;
  mon::JobTelemetryWriter tw(MPI_COMM_WORLD, o);
  check(tw.enabled(), "not enabled with SLUICE_TELEMETRY_DIR set");
  const fs::path file = dir / "job-montest.h5";
  if (g_rank == 0) check(tw.path() == file.string(), "path " + tw.path() + ", expected " + file.string());

  for (int s = 0; s < 6; ++s) {
    {
      mon::StepScope step(rec);
      std::this_thread::sleep_for(g_rank == 2 ? 30ms : 10ms);
      mon::PhaseScope ar(mon::Phase::allreduce, rec);
      int one = 1, sum = 0;
      MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    }
    check(tw.tick(), "tick failed: " + tw.error());
  }
  // Rank 0 starts a checkpoint (the interval has passed) and waits in a barrier; rank 1 only
  // serves it after sleeping past two intervals.
  if (g_rank == 0) {
    std::this_thread::sleep_for(400ms);
    tw.tick();
  } else if (g_rank == 1) {
    std::this_thread::sleep_for(700ms);
    tick_for(tw, 50ms);
  } else {
    tick_for(tw, 500ms);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  tick_for(tw, 1000ms);
  if (g_rank == 0) {
    check(tw.writes() >= 1, "no checkpoint written before finish()");
    check(fs::exists(file), "no checkpoint file before finish()");
    const mon::JobTelemetry ck = mon::read_job_file(file);
    check(!ck.complete, "a checkpoint is marked complete");
    check(ck.ranks.size() == 3, "checkpoint with " + std::to_string(ck.ranks.size()) + " ranks");
    check(ck.job_id == "montest", "checkpoint job id " + ck.job_id);
    for (const auto& r : ck.ranks) check(r.summary.steps.count == 6, "checkpoint: a rank without its 6 steps");
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // One more step after the checkpoint, then the end.
  {
    mon::StepScope step(rec);
    std::this_thread::sleep_for(g_rank == 2 ? 30ms : 10ms);
    mon::PhaseScope ar(mon::Phase::allreduce, rec);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  sampler.stop();
  check(tw.finish(), "finish failed: " + tw.error());
  check(tw.finish(), "a second finish failed");
  if (g_rank == 0) {
    const mon::JobTelemetry j = mon::read_job_file(file);
    check(j.complete, "not complete after finish()");
    check(j.ranks.size() == 3, "final file with " + std::to_string(j.ranks.size()) + " ranks");
    for (std::uint32_t r = 0; r < 3; ++r) {
      const auto& x = j.ranks[r];
      const std::string who = "rank " + std::to_string(r) + ": ";
      check(x.rank == r, "ranks out of order");
      check(!x.host.empty(), who + "no host");
      check(x.summary.steps.count == 7, who + std::to_string(x.summary.steps.count) + " steps, expected 7");
      check(x.summary.steps.allreduce_fraction > 0, who + "no allreduce share");
      check(!x.samples.empty(), who + "no sampler series");
      const auto& st = x.summary.steps;
      check(st.time_max_ms >= st.time_p95_ms && st.time_p95_ms >= st.time_p50_ms && st.time_p50_ms > 0,
            who + "step time percentiles out of order");
    }
    check(j.totals.steps.count == 21, "totals: " + std::to_string(j.totals.steps.count) + " steps, expected 21");
    check(!j.stragglers.empty() && j.stragglers[0].rank == 2, "rank 2 is not the first straggler");
    check(j.stragglers[0].ratio > 1.3, "rank 2's ratio " + std::to_string(j.stragglers[0].ratio) + " (3 on a quiet machine)");
    check(count_files(dir) == 1, "temporary files left in the telemetry directory");
    std::printf("gather_mpi: PASS (%llu writes, straggler rank %u at %.2fx)\n",
                static_cast<unsigned long long>(tw.writes()), j.stragglers[0].rank, j.stragglers[0].ratio);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
