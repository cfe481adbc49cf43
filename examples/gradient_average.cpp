// The smallest data-parallel loop on sluice's runtime: every step, each rank makes a
// "gradient", averages it over all ranks with sluice's allreduce, and checks the result;
// the JobSession writes the job's telemetry (sampler, job file, live metrics) from the
// directories the SPANK plugin exports. Run it with srun --mpi=pmix or mpirun.
//   sluice-gradient-average [STEPS]   (default 50)
#include <sluice/collectives/communicator.hpp>
#include <sluice/monitor/job_session.hpp>

#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace coll = sluice::coll;
namespace mon = sluice::monitor;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const long steps = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 50;
  int failures = 0;
  {
    coll::Communicator comm(MPI_COMM_WORLD);  // collective: finds the node's ranks, maps shared memory
    mon::JobSession telemetry(MPI_COMM_WORLD);  // collective: files only where the site configured them
    const int n = comm.size();
    std::vector<float> grad(1 << 16);
    for (long step = 0; step < steps; ++step) {
      {
        mon::StepScope scope;  // the allreduce reports its own share of the step
        for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = float(comm.rank() + 1) * float(i % 7);
        coll::Tensor t{grad.data(), grad.data(), grad.size(), coll::DataType::f32};
        comm.average_gradients({&t, 1});
      }
      // mean of rank+1 over n ranks = (n+1)/2, exact in f32 for these small values
      for (std::size_t i = 0; i < grad.size(); ++i)
        if (std::fabs(grad[i] - float(n + 1) / 2 * float(i % 7)) > 1e-4f) ++failures;
      telemetry.tick();
    }
    telemetry.finish();
    if (comm.rank() == 0)
      std::printf("%s: %ld steps on %d ranks (%d nodes); job file: %s\n", failures ? "FAILED" : "ok", steps, n,
                  comm.node_count(), telemetry.job_file().enabled() ? telemetry.job_file().path().c_str() : "off");
  }
  MPI_Finalize();
  return failures ? 1 : 0;
}
