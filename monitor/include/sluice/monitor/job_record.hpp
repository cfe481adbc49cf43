// The job record: who ran a job, where, with what, and how it ended, written by the SPANK
// plugin as root on every node of the job, at its start (prolog) and again at its end
// (epilog). The reports take user, account, partition, allocation and exit state from it;
// the performance figures come from the job's telemetry file (job_file.hpp), which the job's
// own processes write. Slurm's accounting (sacct) is not needed.
//
// Layout: TELEMETRY_DIR/records/job-<id>.<node>.json, one file per node, in a directory that
// belongs to root and is not writable by users (the job files beside it are the users'), so a
// record can be trusted. Schema "sluice.monitor.record/1":
//
//   {"schema":"sluice.monitor.record/1","job_id":42,"node":"node1","nodes":["node1","node2"],
//    "user":"alice","uid":1000,"account":"ml","partition":"gpu","cluster":"c1",
//    "cpus":8,"gpus":[0,1],"start_unix_ms":1700000000000,"end_unix_ms":1700000360000,
//    "exit_code":0,"exit_signal":0,"stage_in_bytes":0,"stage_in_s":0.0,
//    "stage_out_bytes":0,"stage_out_s":0.0,"stage_error":""}
//
// end_unix_ms, exit_code and exit_signal are absent (null) until the epilog ran.
// Library sluice_monitor_record: static, free of MPI, HDF5 and the recorder, so the plugin
// links it.
#pragma once

#include <sluice/common/error.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::monitor {

inline constexpr const char* kJobRecordSchema = "sluice.monitor.record/1";
inline constexpr const char* kJobRecordDirName = "records";

// One node's view of a job.
struct NodeJobRecord {
  std::uint64_t job_id = 0;
  std::string node;                // this node (SLURMD_NODENAME)
  std::vector<std::string> nodes;  // every node of the job, in Slurm's order
  std::string user;                // "" when Slurm did not say
  std::uint32_t uid = 0;
  std::string account, partition, cluster;  // "" when Slurm did not say
  std::uint32_t cpus = 0;          // CPUs allocated on this node
  std::vector<int> gpus;           // GPU indices allocated on this node
  std::int64_t start_unix_ms = 0;  // prolog
  std::optional<std::int64_t> end_unix_ms;  // epilog
  std::optional<int> exit_code;    // the batch script's exit code (epilog)
  std::optional<int> exit_signal;  // the signal that ended it, 0 if none (epilog)
  std::uint64_t stage_in_bytes = 0, stage_out_bytes = 0;
  double stage_in_s = 0, stage_out_s = 0;
  std::string stage_error;         // a failed stage-in or stage-out on this node
};

// The job, merged from its nodes' records.
struct JobRecord {
  std::uint64_t job_id = 0;
  std::string user, account, partition, cluster;
  std::uint32_t uid = 0;
  std::vector<std::string> nodes;           // the job's nodes (from the records)
  std::vector<std::string> nodes_recorded;  // nodes whose record was read, sorted
  std::uint32_t cpus = 0, gpus = 0;         // sums over nodes_recorded
  std::int64_t start_unix_ms = 0;           // earliest prolog
  std::optional<std::int64_t> end_unix_ms;  // latest epilog, once every recorded node ended
  std::optional<int> exit_code, exit_signal;  // the first node's that has one (all see the same)
  std::uint64_t stage_in_bytes = 0, stage_out_bytes = 0;
  double stage_in_s = 0, stage_out_s = 0;   // the slowest node's (nodes stage in parallel)
  std::vector<std::string> stage_errors;    // "node: error"

  // RUNNING (an epilog is missing), COMPLETED (exit 0), FAILED (nonzero exit) or
  // SIGNALED (killed by a signal). Cancelled and timed-out jobs show as what the batch
  // script's end looked like (Slurm gives the epilog no reason): sacct, where it answers,
  // says more.
  std::string state() const;
  // Wall time: end - start, or `now_unix_ms` - start while running; 0 when unknown.
  double elapsed_s(std::int64_t now_unix_ms) const;
  double gpu_hours_allocated(std::int64_t now_unix_ms) const { return gpus * elapsed_s(now_unix_ms) / 3600.0; }
};

// A record that cannot be read or trusted; names the file.
class JobRecordError : public Error {
 public:
  JobRecordError(std::string file, const std::string& what);
  const std::string& file() const noexcept { return file_; }

 private:
  std::string file_;
};

// TELEMETRY_DIR/records
std::filesystem::path job_record_dir(const std::filesystem::path& telemetry_dir);
// "job-<id>.<node>.json", node characters outside [A-Za-z0-9._-] as '_'.
std::string node_record_file_name(std::uint64_t job_id, const std::string& node);

std::string to_json(const NodeJobRecord& r);
// Throws JobRecordError naming FILE when TEXT is not a record of this schema.
NodeJobRecord parse_node_record(const std::string& text, const std::string& file);

// Reads one record file (at most 1 MiB); throws JobRecordError naming it.
NodeJobRecord read_node_record_file(const std::filesystem::path& file);

// Writes R as record_dir/node_record_file_name(...) atomically (root_files.hpp), mode 0644.
// The directory is created (0755) if missing and must belong to the caller (root): throws
// Error naming it otherwise.
void write_node_record(const std::filesystem::path& record_dir, const NodeJobRecord& r);

// Merges one job's node records (any order; at least one). Throws InvalidArgument when they
// are of different jobs.
JobRecord merge_node_records(const std::vector<NodeJobRecord>& nodes);

// Whether RECORD_DIR may be believed: a directory (not a link) of root's (the plugin's) or the
// caller's, writable by its owner only. The telemetry directory around it is writable by
// every user, who could otherwise create records/ first and fill it with forgeries. WHY (when
// given) says what is wrong.
bool trusted_record_dir(const std::filesystem::path& record_dir, std::string* why = nullptr);

// Reads and merges every record of JOB_ID in RECORD_DIR; std::nullopt when there is none.
// A record that cannot be read is skipped and described in `skipped` (when given).
std::optional<JobRecord> read_job_record(const std::filesystem::path& record_dir, std::uint64_t job_id,
                                         std::vector<std::string>* skipped = nullptr);

}  // namespace sluice::monitor
