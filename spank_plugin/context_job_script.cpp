// Job script context: slurmd's prolog and epilog helper (`slurmstepd spank prolog|epilog`),
// run as root on every node of the job (PrologFlags=Alloc: at allocation, before any task).
// Staging lives here because it happens once per node and job, and the epilog runs also
// when the job failed, timed out or was cancelled.
#include "job_staging.hpp"
#include "plugin_state.hpp"

#include <sluice/common/error.hpp>

extern "C" {
#include <slurm/slurm.h>
}

#include <cstdlib>

namespace sluice::spank {
namespace {

// slurmd sets the job's identity in the helper's environment; the SPANK_ variables come
// from the job control environment filled at submission.
std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return v ? std::optional<std::string>(v) : std::nullopt;
}

}  // namespace

int job_prolog(spank_t) {
  const PluginConfig& config = state().config;
  const JobIdentity job = job_identity_from_env(process_env);
  JobStaging staging;
  std::string request_error;
  try {
    staging = job_staging_from_env(process_env);
  } catch (const std::exception& e) {
    request_error = e.what();  // recorded below: the job's tasks fail with it
  }
  // A failing prolog drains the node and requeues the job, so even the node's own faults
  // (bb_root unusable) are only logged: a job that asked for staging then fails its tasks
  // (no status record), every other job runs without a burst buffer.
  try {
    prolog_stage(config, job, request_error.empty() ? staging : JobStaging{});
  } catch (const std::exception& e) {
    slurm_error("sluice: job %llu: cannot prepare the burst buffer under %s: %s",
                static_cast<unsigned long long>(job.job_id), config.bb_root.c_str(), e.what());
    return 0;
  }
  if (!request_error.empty()) {
    staging::JobStageStatus s = *staging::load_job_status(staging::job_status_path(config.bb_root, job.job_id));
    s.phase = staging::StagePhase::Failed;
    s.error = "bad staging request: " + request_error;
    staging::save_job_status(config.bb_root, s);
  }
  if (auto s = staging::load_job_status(staging::job_status_path(config.bb_root, job.job_id));
      s && s->phase == staging::StagePhase::Failed)
    slurm_error("sluice: job %llu: %s", static_cast<unsigned long long>(job.job_id), s->error.c_str());
  return 0;
}

int job_epilog(spank_t) {
  const PluginConfig& config = state().config;
  const JobIdentity job = job_identity_from_env(process_env);
  JobStaging staging;
  try {
    staging = job_staging_from_env(process_env);
  } catch (const std::exception& e) {
    slurm_error("sluice: job %llu: bad staging request, nothing staged out: %s",
                static_cast<unsigned long long>(job.job_id), e.what());
  }
  // A failed stage-out keeps the files and is recorded; the node stays in service.
  std::string failure;
  try {
    failure = epilog_stage(config, job, staging);
  } catch (const std::exception& e) {
    failure = std::string("staging at job end: ") + e.what();  // logged, never drains the node
  }
  if (!failure.empty())
    slurm_error("sluice: job %llu: %s", static_cast<unsigned long long>(job.job_id), failure.c_str());
  return 0;
}

}  // namespace sluice::spank
