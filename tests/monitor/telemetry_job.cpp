// A stand-in training loop for the end-to-end telemetry test (tests/e2e/test_telemetry.sh):
// STEPS steps of STEP_MS each, a quarter of it waiting for data, under a JobSession (sampler,
// Prometheus file, job file from the plugin's environment). STEPS = 0 runs until killed.
// Usage: telemetry_job STEPS STEP_MS
#include <sluice/monitor/job_session.hpp>
#include <sluice/monitor/recorder.hpp>

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace mon = sluice::monitor;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: telemetry_job STEPS STEP_MS\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const long steps = std::strtol(argv[1], nullptr, 10);
  const auto step = std::chrono::milliseconds(std::strtol(argv[2], nullptr, 10));
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  {
    mon::JobSession telemetry(MPI_COMM_WORLD);
    if (rank == 0)
      std::printf("job file %s, metrics %s\n", telemetry.job_file().path().c_str(),
                  telemetry.prometheus().path().c_str());
    std::fflush(stdout);
    for (long i = 0; steps == 0 || i < steps; ++i) {
      {
        mon::StepScope s;
        {
          mon::PhaseScope wait(mon::Phase::data_wait);
          std::this_thread::sleep_for(step / 4);
        }
        std::this_thread::sleep_for(step - step / 4);
      }
      telemetry.tick();
    }
    const bool ok = telemetry.finish();
    if (rank == 0) std::printf("%s: %s\n", ok ? "ok" : "failed", telemetry.job_file().error().c_str());
  }
  MPI_Finalize();
  return 0;
}
