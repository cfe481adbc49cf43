// Job script context: slurmd's prolog and epilog helper (`slurmstepd spank prolog|epilog`),
// run as root on every node of the job (PrologFlags=Alloc: at allocation, before any task).
// Staging lives here because it happens once per node and job, and the epilog runs also
// when the job failed, timed out or was cancelled.
#include "job_record.hpp"
#include "job_staging.hpp"
#include "plugin_state.hpp"

#include <sluice/common/error.hpp>

#include <optional>

extern "C" {
#include <slurm/slurm.h>
}

#include <chrono>
#include <cstdlib>

namespace sluice::spank {
namespace {

// slurmd sets the job's identity in the helper's environment; the SPANK_ variables come
// from the job control environment filled at submission.
std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return v ? std::optional<std::string>(v) : std::nullopt;
}

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::optional<staging::JobStageStatus> stage_status(const PluginConfig& config, std::uint64_t job_id) {
  try {
    return staging::load_job_state(config.bb_root, job_id);  // root's own, never the user's view
  } catch (const std::exception&) {
    return std::nullopt;  // already reported by the staging code
  }
}

// The job record is for the reports: a failure to write it is logged, never fatal.
void write_record(const PluginConfig& config, const monitor::NodeJobRecord& r, const char* when) {
  try {
    write_job_record(config, r);
  } catch (const std::exception& e) {
    slurm_error("sluice: job %llu: cannot write the job record at %s: %s", static_cast<unsigned long long>(r.job_id),
                when, escape_text(e.what()).c_str());
  }
}

}  // namespace

int job_prolog(spank_t) {
  const PluginConfig& config = state().config;
  const std::int64_t started = now_unix_ms();
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
  bool bb_ready = true;
  try {
    prolog_stage(config, job, request_error.empty() ? staging : JobStaging{});
  } catch (const std::exception& e) {
    slurm_error("sluice: job %llu: cannot prepare the burst buffer under %s: %s",
                static_cast<unsigned long long>(job.job_id), config.bb_root.c_str(), escape_text(e.what()).c_str());
    bb_ready = false;
  }
  if (bb_ready && !request_error.empty()) {
    // The tasks read this status and fail with the reason; a status that cannot be written
    // is the node's fault, logged like the others above.
    try {
      std::optional<staging::JobStageStatus> s = staging::load_job_state(config.bb_root, job.job_id);
      if (!s) throw Error("the staging state record is missing");
      s->phase = staging::StagePhase::Failed;
      s->error = "bad staging request: " + request_error;
      staging::save_job_state(config.bb_root, *s);
    } catch (const std::exception& e) {
      slurm_error("sluice: job %llu: cannot record its bad staging request (%s): %s",
                  static_cast<unsigned long long>(job.job_id), escape_text(request_error).c_str(), escape_text(e.what()).c_str());
    }
  }
  const auto status = bb_ready ? stage_status(config, job.job_id) : std::nullopt;
  if (status && status->phase == staging::StagePhase::Failed)
    slurm_error("sluice: job %llu: %s", static_cast<unsigned long long>(job.job_id), escape_text(status->error).c_str());
  monitor::NodeJobRecord record = node_record_from_env(process_env, job, started);
  if (status) add_stage_in(record, *status);
  write_record(config, record, "its start");
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
                static_cast<unsigned long long>(job.job_id), escape_text(e.what()).c_str());
  }
  monitor::NodeJobRecord record =
      load_start_record(config, job, node_record_from_env(process_env, job, now_unix_ms()));
  if (const auto before = stage_status(config, job.job_id)) add_stage_in(record, *before);
  // A failed stage-out keeps the files and is recorded; the node stays in service.
  std::string failure;
  try {
    failure = epilog_stage(config, job, staging);
  } catch (const std::exception& e) {
    failure = std::string("staging at job end: ") + e.what();  // logged, never drains the node
  }
  if (!failure.empty())
    slurm_error("sluice: job %llu: %s", static_cast<unsigned long long>(job.job_id), escape_text(failure).c_str());
  if (const auto after = stage_status(config, job.job_id)) add_stage_out(record, *after);
  add_job_end(record, process_env, now_unix_ms());
  write_record(config, record, "its end");
  // A killed job's processes never removed their live-metrics files.
  try {
    if (const std::size_t n = remove_job_metrics(config, job.job_id, job.uid))
      slurm_debug("sluice: job %llu: removed %zu Prometheus file(s) left behind", static_cast<unsigned long long>(job.job_id), n);
  } catch (const std::exception& e) {
    slurm_error("sluice: job %llu: %s", static_cast<unsigned long long>(job.job_id), escape_text(e.what()).c_str());
  }
  return 0;
}

}  // namespace sluice::spank
