// A job's staging status on one node: what `sluice-stage status JOBID` prints, and what the
// SPANK plugin reads back to fail a job's tasks when its stage-in failed.
//
// Lives at BB_ROOT/.status/job_ID.json. The directory belongs to root (0755); each file is
// written by root (temporary, fsync, rename) and owned by the job's user with mode 0400, so
// the user and the admin can read it, other users cannot, and nobody but root changes it.
//
// {"version":1,"job_id":42,"node":"node1","uid":1000,"bb_dir":"/var/tmp/sluice/job_42",
//  "mode":"sync","phase":"staging-in","bytes_done":0,"bytes_total":0,"files_done":0,
//  "files_total":0,"seconds":0.0,"updated_unix":1700000000,"error":"","stager_pid":0,"stager_start":0,
//  "stage_out_failed":false}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::staging {

enum class StagePhase {
  StagingIn,   // stage-in running (sync: tasks wait; async: tasks may already run)
  Ready,       // stage-in finished (or nothing to stage in); tasks run
  StagingOut,  // job ended; results being copied back
  Done,        // stage-out finished; the bb directory was removed
  Failed,      // see error; the bb directory is kept when stage-out failed
};

std::string_view to_string(StagePhase phase);
// Throws InvalidArgument for an unknown name.
StagePhase stage_phase_from_string(std::string_view name);

struct JobStageStatus {
  std::uint64_t job_id = 0;
  std::string node;
  std::uint32_t uid = 0;
  std::string bb_dir;
  std::string mode = "sync";  // sync | async
  StagePhase phase = StagePhase::StagingIn;
  std::uint64_t bytes_done = 0, bytes_total = 0, files_done = 0, files_total = 0;
  double seconds = 0;
  std::int64_t updated_unix = 0;
  std::string error;             // why the phase is Failed
  std::int64_t stager_pid = 0;   // async stage-in still running in this process (0: none)
  std::uint64_t stager_start = 0;  // its start time (/proc/PID/stat field 22): guards against pid reuse
  bool stage_out_failed = false; // the results are still in bb_dir

  std::string to_json() const;
  // Throws Error naming ORIGIN when TEXT is not a status record.
  static JobStageStatus from_json(const std::string& text, const std::string& origin);
};

inline constexpr const char* kStatusDirName = ".status";

// BB_ROOT/.status/job_ID.json
std::string job_status_path(const std::string& bb_root, std::uint64_t job_id);

// Reads a status file; std::nullopt when it does not exist. Throws Error (naming the file)
// when it cannot be read or parsed.
std::optional<JobStageStatus> load_job_status(const std::string& path);

// Writes STATUS atomically as BB_ROOT/.status/job_ID.json, owned by status.uid, mode 0400.
// Creates BB_ROOT/.status (root, 0755) when missing. Root only (it chowns).
void save_job_status(const std::string& bb_root, const JobStageStatus& status);

}  // namespace sluice::staging
