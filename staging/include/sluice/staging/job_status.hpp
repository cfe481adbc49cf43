// A job's staging status on one node, kept twice, both written only by root:
//  - root's state, BB_ROOT/.state/job_ID.json (root:root 0600 in a 0700 directory): the only
//    copy root ever reads back (which supervisor to stop, whose burst buffer, the phase).
//  - the user's view, BB_ROOT/.status/job_ID.json (the job's user, 0400): what
//    `sluice-stage status JOBID`, the job's tasks and sluice.staged read. Its owner can
//    chmod and rewrite it, so root never reads it; it only replaces it.
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
inline constexpr const char* kStateDirName = ".state";

// BB_ROOT/.status/job_ID.json
std::string job_status_path(const std::string& bb_root, std::uint64_t job_id);

// Reads a status file; std::nullopt when it does not exist. Throws Error (naming the file)
// when it cannot be read or parsed.
std::optional<JobStageStatus> load_job_status(const std::string& path);

// Writes STATUS atomically as the user's view BB_ROOT/.status/job_ID.json, owned by
// status.uid, mode 0400. Creates BB_ROOT/.status (root, 0755) when missing. Root only.
void save_job_status(const std::string& bb_root, const JobStageStatus& status);

// Root's state: writes STATUS as BB_ROOT/.state/job_ID.json (0600, this process's uid) and
// then the user's view. Creates BB_ROOT/.state (0700) when missing.
void save_job_state(const std::string& bb_root, const JobStageStatus& status);
// Reads root's state back; std::nullopt when there is none. Throws Error (naming the file)
// when the directory or the file is not root's alone, or the record is not valid, or it
// names another job.
std::optional<JobStageStatus> load_job_state(const std::string& bb_root, std::uint64_t job_id);
// Removes root's state of a job (with the user's view). Missing files are not an error.
void remove_job_state(const std::string& bb_root, std::uint64_t job_id);

}  // namespace sluice::staging
