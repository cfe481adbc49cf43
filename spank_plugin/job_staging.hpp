// A job's stage-in and stage-out on one node, driven by the plugin's job prolog and epilog
// (both run as root in slurmd's `slurmstepd spank` helper). Slurm-free so tests drive it.
//
// Every user path is touched by `sluice-stage`, run as the job's user (spawn_as_user).
// Root itself only creates BB_ROOT/job_ID (then hands it to the user), the per-user cache
// directory, and the status records; it never opens a path the user controls.
//
// Neither prolog nor epilog fails for a user's mistake: Slurm drains a node whose prolog or
// epilog fails. A failed stage-in is recorded in the job's status and each of the job's
// tasks then fails with the reason (remote context); a failed stage-out keeps the files in
// the burst buffer and is recorded in the status and the slurmd log.
#pragma once

#include "plugin_config.hpp"

#include <sluice/staging/job_status.hpp>
#include <sluice/staging/spec.hpp>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sluice::spank {

// What the user asked at submission. sbatch/salloc/srun put it in the job control
// environment (spank_job_control_setenv); the prolog and epilog see it as SPANK_<name>.
struct JobStaging {
  std::vector<staging::StageSpec> in;
  std::vector<staging::StageOutSpec> out;
  bool async = false;
  bool empty() const { return in.empty() && out.empty(); }
};

inline constexpr const char* kStageInVar = "SLUICE_STAGE_IN";    // canonical specs, one per line
inline constexpr const char* kStageOutVar = "SLUICE_STAGE_OUT";  // canonical specs, one per line
inline constexpr const char* kStageModeVar = "SLUICE_STAGE_MODE";  // sync | async

using GetEnv = std::function<std::optional<std::string>(const std::string&)>;

// The staging request's canonical text (every spec, one line each, --stage-in and
// --stage-out together) must fit this: slurmd passes it to slurmstepd in the environment,
// where one string over 128 KiB (MAX_ARG_STRLEN) makes the exec fail, the prolog fail and
// the node drain. Half that leaves room for the SPANK_ prefix and Slurm's own variables.
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;
// The request's size as the prolog will receive it.
std::size_t request_bytes(const JobStaging& staging);
// Throws InvalidArgument saying the size and the limit when STAGING is over it.
void check_request_size(const JobStaging& staging);

// The job control variables for STAGING (name, value), without the SPANK_ prefix.
std::vector<std::pair<std::string, std::string>> job_control_env(const JobStaging& staging);
// Reads them back (SPANK_ prefix) and parses every spec again: the values came from the
// user's side. Throws InvalidArgument naming the bad spec.
JobStaging job_staging_from_env(const GetEnv& getenv);

// --stage-mode's value; throws InvalidArgument listing the valid ones.
bool parse_stage_mode_async(const std::string& mode);

// Who and where, from the prolog/epilog environment that slurmd sets.
struct JobIdentity {
  std::uint64_t job_id = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string node;                // SLURMD_NODENAME
  std::vector<std::string> nodes;  // the job's nodes, in Slurm's order (shard split)
  std::size_t node_index() const;  // this node's place in `nodes`; throws if absent
};
JobIdentity job_identity_from_env(const GetEnv& getenv);

// A stage-out DST with %N (this node's name), %j (the job id) and %% replaced, so each
// node of a job can write its results to its own directory.
std::string expand_destination(const std::string& dst, const JobIdentity& job);

std::string job_bb_dir(const PluginConfig& config, std::uint64_t job_id);  // BB_ROOT/job_ID
std::string user_cache_dir(const PluginConfig& config, uid_t uid);         // BB_ROOT/.cache/uid_N

// Job prolog: makes the burst buffer, stages in (sync: before returning; async: in a
// detached root supervisor that runs the stage and keeps the status current), and records
// the outcome. Throws only for the node's own faults (bad bb_root), never for the user's.
void prolog_stage(const PluginConfig& config, const JobIdentity& job, const JobStaging& staging);

// Job epilog: stops an async stage-in still running, stages out, and removes the burst
// buffer when that succeeded; a failure keeps it and is recorded. Returns the failure
// (empty when none) so the caller can log it.
std::string epilog_stage(const PluginConfig& config, const JobIdentity& job, const JobStaging& staging);

}  // namespace sluice::spank
