// The job's record and live-metrics files, from the plugin's job prolog and epilog (root):
// TELEMETRY_DIR/records/job-<id>.<node>.json written at the start and rewritten at the end
// (monitor/include/sluice/monitor/job_record.hpp), and the Prometheus textfiles a killed job
// left in PROMETHEUS_DIR removed at the end. Slurm-free, so tests drive it with an environment.
//
// Never fails a job: the callers log what goes wrong (slurm_error) and go on.
#pragma once

#include "job_staging.hpp"
#include "plugin_config.hpp"

#include <sluice/monitor/job_record.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::spank {

// SLURM_JOB_CPUS_PER_NODE ("4(x2),2": 4, 4, 2), one count per node in the job's node order.
// Throws InvalidArgument naming the variable when the value is malformed.
std::vector<std::uint32_t> expand_cpus_per_node(const std::string& value);

// What the prolog environment says about the job on this node: user, account, partition,
// cluster, nodes, this node's CPUs (SLURM_JOB_CPUS_PER_NODE) and GPUs (SLURM_JOB_GPUS).
// A missing or malformed optional field is left empty, never an error.
monitor::NodeJobRecord node_record_from_env(const GetEnv& getenv, const JobIdentity& job, std::int64_t now_unix_ms);

// The epilog's additions: end time and the batch script's exit (SLURM_JOB_EXIT_CODE2
// "code:signal", else SLURM_JOB_EXIT_CODE as a wait status).
void add_job_end(monitor::NodeJobRecord& r, const GetEnv& getenv, std::int64_t now_unix_ms);

// Staging figures from this node's status record (job_status.hpp): stage-in in the prolog
// and at the start of the epilog, stage-out after it.
void add_stage_in(monitor::NodeJobRecord& r, const staging::JobStageStatus& s);
void add_stage_out(monitor::NodeJobRecord& r, const staging::JobStageStatus& s);

// Writes this node's record (prolog: the start; epilog: again with the end). No-op without
// telemetry_dir. Throws on failure.
void write_job_record(const PluginConfig& config, const monitor::NodeJobRecord& r);
// Epilog: this node's start record, when it can be read (else `fallback`, built from the
// epilog's own environment), to which the caller adds the end.
monitor::NodeJobRecord load_start_record(const PluginConfig& config, const JobIdentity& job,
                                         monitor::NodeJobRecord fallback);

// Epilog: removes PROMETHEUS_DIR/sluice_job_<id>_rank*.prom and their temporaries, which a
// killed job leaves behind. Only regular files and symlinks (never followed) owned by the
// job's user (UID, from Slurm) are removed: the directory is shared, and a file of that name
// belonging to someone else is not the job's to delete. Returns how many; no-op without
// prometheus_dir. Throws SystemError when the directory cannot be listed.
std::size_t remove_job_metrics(const PluginConfig& config, std::uint64_t job_id, uid_t uid);

}  // namespace sluice::spank
