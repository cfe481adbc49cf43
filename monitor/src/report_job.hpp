// `sluice-report job`: one job's telemetry file (job_file.hpp) as a one-page report, like
// Princeton's jobstats: header, utilization, step-time statistics, stragglers, and notes from
// rules (docs/telemetry.md, "sluice-report job"). MPI-free; links sluice_monitor_files.
//
// build_job_report() derives everything from a JobTelemetry (no I/O, no clock); the render_*
// functions turn the result into text, JSON or a self-contained HTML page. Nothing is invented:
// what the job file does not hold (user, account, partition, Slurm state, memory request) is
// std::nullopt, printed as "unknown" (JSON null), and the rules that would need it are skipped.
#pragma once

#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include "sacct.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::monitor::report {

// --- rule thresholds (docs/telemetry.md, "sluice-report job") ---------------------------------
inline constexpr double kIdleGpuUtilPercent = 5.0;          // a GPU whose mean utilization is below: idle
inline constexpr double kInputBoundFraction = 0.20;         // data wait >= this share of step time: input-bound
inline constexpr double kModeratelyInputBoundFraction = 0.05;  // >= this (and < the above): moderately
inline constexpr double kMemoryUsedFractionLow = 0.50;      // peak memory <= this share of the request: over-requested
// slurm_state of a job whose record says exit 0 but whose job file is a checkpoint.
inline constexpr const char* kEndedEarly = "ENDED_EARLY";

// Mean and maximum of a series ("—" when no sample had the value).
struct MeanMax {
  double mean = 0, max = 0;
};

// One GPU (host, NVML index). Ranks on one host that see the same GPU count it once.
struct GpuReport {
  std::string host;
  int index = 0;
  std::vector<std::uint32_t> ranks;   // ranks whose sampler reported it
  std::optional<MeanMax> util_percent;
  std::optional<MeanMax> mem_used_bytes;
  std::optional<double> mem_total_bytes;  // largest reported
};

struct RankReport {
  std::uint32_t rank = 0;
  std::string host;
  std::uint64_t steps = 0;
  double step_p50_ms = 0, step_p95_ms = 0, step_max_ms = 0;
  double data_wait_fraction = 0, allreduce_fraction = 0;
  double own_ms_per_step = 0;  // step - allreduce, mean (the straggler measure)
  double busbw_gbps = 0;
  std::optional<MeanMax> cpu_cores;  // CPU time per wall second (1.0 = one core busy)
  std::optional<MeanMax> rss_bytes;  // VmRSS; max is the peak (VmHWM) when larger
  std::size_t samples = 0;
  std::uint64_t samples_dropped = 0;
};

// A finding of a rule. `rule`: a stable id (idle_gpus, input_bound, moderately_input_bound,
// stragglers, memory_over_requested, ended_early, clock_skew); `severity`: "warning" or "info".
struct Note {
  std::string rule, severity, text;
};

// A rule that did not run because the job file lacks its inputs.
struct SkippedRule {
  std::string rule, reason;
};

// Whether a job file owned by OWNER_UID (fstat of the file read) counts as the telemetry of
// the job in RECORD: only when its owner is the job's user (the uid in the record root wrote)
// or root. Anyone can write a job-<id>.h5 into the shared directory; a file of another owner
// is "unverified": listed, never merged into the job's figures.
bool job_file_attributable(std::uint32_t owner_uid, const JobRecord& record) noexcept;

// A job file left out because its owner is not the job's user nor root.
struct UnverifiedFile {
  std::string job_id, file;
  std::uint32_t owner_uid = 0;
  std::uint32_t job_uid = 0;  // from the job record
  std::string job_user;       // from the job record ("" when Slurm did not say)
};
// "FILE is owned by uid N, not by the job's user U (uid M) nor root: not counted as job J's telemetry"
std::string describe(const UnverifiedFile& u);

// What the caller knows besides the job file: the plugin's job record (job_record.hpp) and
// Slurm's accounting (sacct.hpp), which fills what the record lacks and says why a job ended.
struct ReportInputs {
  std::optional<JobRecord> record;
  // The job file's owner (read_job_file's JobFileOrigin). With a record, a file of another
  // owner than the job's user or root is unverified: the report holds none of its figures.
  std::optional<std::uint32_t> file_owner_uid;
  std::optional<SacctJob> sacct;
  std::optional<std::uint64_t> mem_requested_bytes;  // the whole job's memory request
  std::int64_t now_unix_ms = 0;                       // a running job's elapsed time
};

struct JobReport {
  std::string job_id;
  std::string file;  // the job file read, for the header
  // Not in the job file (schema sluice.monitor.job/1): from the job record, else unknown.
  // slurm_state: sacct's State when it answered (COMPLETED, CANCELLED, TIMEOUT, ...), else
  // JobRecord::state() (RUNNING, COMPLETED, FAILED, SIGNALED), or ENDED_EARLY (kEndedEarly)
  // when the record says exit 0 but the job file is a checkpoint.
  std::optional<std::string> user, account, partition, slurm_state;
  std::string header_sources;  // "job record", "job record, sacct", ... ("" when none)
  std::optional<std::uint32_t> gpus_allocated, cpus_allocated;  // the record's sums over nodes
  std::optional<int> exit_code, exit_signal;
  std::uint64_t stage_in_bytes = 0, stage_out_bytes = 0;
  double stage_in_s = 0, stage_out_s = 0;
  std::vector<std::string> stage_errors;                        // "node: error"
  bool complete = false;
  std::int64_t written_at_unix_ms = 0;
  std::int64_t data_until_unix_ms = 0;  // newest sample, else written_at
  std::optional<std::int64_t> start_unix_ms;  // oldest sample
  double elapsed_s = 0;                 // the record's wall time, else the recorders' lifetime (longest rank)
  std::vector<std::string> hosts;       // sorted, distinct
  std::uint32_t ranks = 0;
  std::optional<std::uint64_t> mem_requested_bytes;

  // Utilization over all ranks and GPUs.
  std::optional<MeanMax> cpu_cores_per_rank;   // mean of the ranks' means; max of their maxima
  std::optional<MeanMax> rss_bytes_per_rank;
  std::optional<double> rss_peak_total_bytes;  // sum of the ranks' peaks (an upper bound of the job's peak)
  std::optional<MeanMax> gpu_util_percent;     // mean over GPUs of their means; max over all samples
  std::optional<MeanMax> gpu_mem_used_bytes;
  std::vector<GpuReport> gpus;

  Summary totals;  // every rank merged: step p50/p95/max, shares, busbw
  std::vector<RankReport> rank_reports;
  std::vector<Straggler> stragglers;
  double straggler_threshold = 0;

  std::vector<Note> notes;
  std::vector<SkippedRule> skipped_rules;
  // Set when the job file was not attributed (job_file_attributable): every figure above is
  // then the record's alone, as for a job without a job file.
  std::optional<UnverifiedFile> unverified;
  std::optional<std::uint32_t> file_owner_uid;
};

// --- the rules: each appends at most one note, or records why it was skipped ---------------
// Idle GPUs: a GPU whose mean utilization is below kIdleGpuUtilPercent. Needs GPU utilization.
void rule_idle_gpus(JobReport& r);
// Input-bound: data wait >= kInputBoundFraction of step time; moderately input-bound from
// kModeratelyInputBoundFraction. Needs steps.
void rule_input_bound(JobReport& r);
// Stragglers: the job file's straggler list (own time per step >= threshold x the median).
// Needs at least two ranks with steps.
void rule_stragglers(JobReport& r);
// Memory over-requested: the sum of the ranks' peak RSS <= kMemoryUsedFractionLow of the
// request. Needs the request (not in the job file) and memory samples.
void rule_memory_over_requested(JobReport& r);
// Ended early: the record says exit 0 but the job file is a checkpoint (cancelled, timed out,
// or finish() not called). Needs the job record.
void rule_ended_early(JobReport& r);

JobReport build_job_report(const JobTelemetry& job, const std::string& file = {}, const ReportInputs& in = {});

std::string render_text(const JobReport& r);
std::string render_json(const JobReport& r, int indent = 2);
std::string render_html(const JobReport& r);

// DIR/job-<id>.h5 (job_file_name()).
std::filesystem::path job_file_path(const std::filesystem::path& dir, const std::string& job_id);

}  // namespace sluice::monitor::report
