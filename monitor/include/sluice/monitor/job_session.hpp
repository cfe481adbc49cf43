// Everything the monitor does for one job, started in one line: the sampler thread, the
// Prometheus textfile writer (when $SLUICE_PROMETHEUS_DIR is set) and the job file writer
// (when $SLUICE_TELEMETRY_DIR is set). The SPANK plugin sets both variables from
// plugstack.conf, so a training code needs no configuration of its own:
//
//   sluice::monitor::JobSession telemetry(MPI_COMM_WORLD);  // collective, after MPI_Init
//   for (...) { { mon::StepScope step; train(); } telemetry.tick(); }
//   telemetry.finish();                                     // collective, before MPI_Finalize
//
// Library sluice_monitor_mpi. Environment read here (docs/telemetry.md):
//   SLUICE_TELEMETRY_CHECKPOINT  seconds between job file checkpoints (default 300; 0: final only)
//   SLUICE_SAMPLE_INTERVAL       seconds between samples (default 10)
#pragma once

#include <sluice/monitor/gather_mpi.hpp>
#include <sluice/monitor/prometheus.hpp>
#include <sluice/monitor/sampler.hpp>

#include <mpi.h>

#include <memory>

namespace sluice::monitor {

struct JobSessionOptions {
  JobTelemetryOptions telemetry;  // its sampler is set to the session's
  SamplerOptions sampler;
  PrometheusOptions prometheus;   // its sampler is set to the session's
  bool from_environment = true;   // apply SLUICE_TELEMETRY_CHECKPOINT and SLUICE_SAMPLE_INTERVAL
};

class JobSession {
 public:
  // Collective over comm. Never throws for telemetry that cannot be written (see the
  // writers' error()); throws InvalidArgument for a malformed environment value, naming it.
  explicit JobSession(MPI_Comm comm, JobSessionOptions opts = {});
  // Stops the sampler and the Prometheus writer (removing its file). Does not communicate:
  // call finish() first, or the job file keeps its last checkpoint (as a killed job's does).
  ~JobSession();
  JobSession(const JobSession&) = delete;
  JobSession& operator=(const JobSession&) = delete;

  // Every rank, regularly (once a step is fine): serves job file checkpoints. Never waits
  // for another rank.
  bool tick() { return writer_->tick(); }
  // Collective: the final job file (complete = 1). Later calls do nothing.
  bool finish() { return writer_->finish(); }

  Sampler& sampler() noexcept { return *sampler_; }
  JobTelemetryWriter& job_file() noexcept { return *writer_; }
  PrometheusWriter& prometheus() noexcept { return *prometheus_; }

 private:
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<PrometheusWriter> prometheus_;
  std::unique_ptr<JobTelemetryWriter> writer_;
};

}  // namespace sluice::monitor
