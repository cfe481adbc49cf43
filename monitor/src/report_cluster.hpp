// `sluice-report cluster`: GPU-hours allocated and used over many jobs, from the index
// (job_index.hpp), per user, account or partition, with the largest wasters and utilization
// over time (docs/telemetry.md, "sluice-report cluster").
//
// Window: a job counts when it overlaps [since, until); its GPU-hours are clipped to the
// window (a job running from the day before counts only its hours inside). A running job
// (no epilog yet) runs until `now`. Used GPU-hours = allocated x the job's mean GPU
// utilization / 100; known only for jobs whose job file has GPU samples, and efficiency is
// used / allocated over those jobs only.
#pragma once

#include "job_index.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::monitor::report {

inline constexpr const char* kClusterReportSchema = "sluice.report.cluster/1";
inline constexpr std::size_t kDefaultWasters = 10;

enum class GroupBy { user, account, partition };
const char* to_string(GroupBy by) noexcept;

// Sums over a set of jobs, clipped to the window.
struct ClusterTotals {
  std::int64_t jobs = 0;
  std::int64_t jobs_without_utilization = 0;    // no GPU samples (or no job file): used unknown
  std::int64_t jobs_without_record = 0;         // no plugin record: user etc. unknown
  double gpu_hours_allocated = 0;
  double gpu_hours_allocated_with_utilization = 0;  // of the jobs whose use is known
  double gpu_hours_used = 0;
  double gpu_hours_idle = 0;                    // of GPUs whose mean utilization < kIdleGpuUtilPercent
  std::int64_t input_bound_jobs = 0;
  double input_bound_gpu_hours = 0;             // allocated
  std::int64_t straggler_jobs = 0;
  // used / allocated over the jobs whose use is known; nullopt without any.
  std::optional<double> efficiency() const;
};

struct GroupRow {
  std::string name;  // "unknown" when the record is missing or Slurm did not say
  ClusterTotals totals;
};

struct Waster {
  std::string job_id;
  std::string user, account, partition;  // "unknown" when not known
  std::int64_t start_unix_ms = 0;
  std::optional<std::int64_t> end_unix_ms;  // nullopt: running
  std::int64_t gpus = 0;
  double gpu_util_mean = 0;
  double gpu_hours_allocated = 0, gpu_hours_used = 0;  // clipped to the window
  double gpu_hours_wasted() const { return gpu_hours_allocated - gpu_hours_used; }
  bool input_bound = false;
  std::int64_t idle_gpus = 0;
};

// One bin of the timeline: GPU-hours allocated and used inside [start, start + bin).
struct TimeBin {
  std::int64_t start_unix_ms = 0;
  double gpu_hours_allocated = 0, gpu_hours_used = 0;
  double gpu_hours_allocated_with_utilization = 0;
};

struct ClusterReport {
  std::int64_t since_unix_ms = 0, until_unix_ms = 0, now_unix_ms = 0;
  GroupBy by = GroupBy::user;
  std::string index_file;
  ClusterTotals totals;
  std::vector<GroupRow> groups;   // largest allocation first
  std::vector<Waster> wasters;    // largest (allocated - used) first
  std::int64_t bin_ms = 0;        // hour, day or week, from the window's length
  std::vector<TimeBin> timeline;
  std::vector<SkippedFile> skipped;  // files the index could not read
  std::vector<UnverifiedFile> unverified;  // job files not counted: their owner is not the job's user nor root
  std::vector<std::string> notes;    // jobs clamped (end before start)
};

struct ClusterOptions {
  std::int64_t since_unix_ms = 0, until_unix_ms = 0;
  std::int64_t now_unix_ms = 0;  // end of running jobs
  GroupBy by = GroupBy::user;
  std::size_t wasters = kDefaultWasters;
};

// Hour for windows up to 3 days, day up to 120 days, week beyond.
std::int64_t timeline_bin_ms(std::int64_t window_ms) noexcept;

ClusterReport build_cluster_report(JobIndex& index, const ClusterOptions& o);

std::string render_text(const ClusterReport& r);
// One row per group: group,jobs,gpu_hours_allocated,gpu_hours_used,efficiency,gpu_hours_idle,...
std::string render_csv(const ClusterReport& r);
std::string render_json(const ClusterReport& r, int indent = 2);
std::string render_html(const ClusterReport& r);

// --- times on the command line -------------------------------------------------------------
// YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC; a trailing Z is accepted), unix seconds, "now", or
// now-<n><unit> with unit s, m, h, d or w. Throws InvalidArgument saying what is accepted.
std::int64_t parse_time_arg(const std::string& text, std::int64_t now_unix_ms);

}  // namespace sluice::monitor::report
