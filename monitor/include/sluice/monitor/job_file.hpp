// The per-job telemetry file (HDF5; docs/telemetry.md, "Job files"): structs in, structs out.
// MPI-free: the gather (gather_mpi.hpp) builds a JobTelemetry at rank 0 and writes it here;
// report tools read it back. Library sluice_monitor_files (links HDF5; sluice_monitor does not).
//
// Writes are atomic: the file is written under a temporary name in the same directory,
// flushed to storage and renamed over the old one, so a reader sees the previous checkpoint
// or the new one, never half a file. A checkpoint has complete = false; the final write of a
// job that ended normally sets it. A truncated or damaged file (metadata and series carry
// checksums) makes read_job_file throw JobFileError naming the file and the object at fault.
#pragma once

#include <sluice/common/error.hpp>
#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sluice::monitor {

// "sluice.monitor.job/1": the root attribute `schema`.
inline constexpr const char* kJobFileSchema = "sluice.monitor.job/1";

// One rank as the job file holds it.
struct RankTelemetry {
  std::uint32_t rank = 0;
  std::string host;
  Summary summary;                    // from the rank's recorder snapshot (step p50/p95/max, shares, busbw)
  std::vector<Sample> samples;        // the sampler's series, oldest first (may be empty)
  std::uint64_t samples_dropped = 0;  // pushed out of the ring buffer or thinned for the gather
};

// A rank whose own time per step (step time minus allreduce: compute and data wait) is well
// above the job's median: the others wait for it in their allreduce.
struct Straggler {
  std::uint32_t rank = 0;
  double own_ms_per_step = 0;  // mean (step - allreduce) per step, ms
  double ratio = 0;            // own_ms_per_step / median over the ranks with steps
};

struct StragglerOptions {
  double threshold = 1.10;   // ratio at or above which a rank is a straggler
  std::size_t max_ranks = 8;  // listed at most (slowest first)
};

struct JobTelemetry {
  std::string job_id;
  std::int64_t written_at_unix_ms = 0;
  bool complete = false;              // false: a checkpoint (the job was running, or was killed)
  Summary totals;                     // every rank's snapshot merged
  std::vector<RankTelemetry> ranks;   // ascending rank
  std::vector<Straggler> stragglers;  // slowest first
  double straggler_threshold = StragglerOptions{}.threshold;
};

// What a rank contributes, before derivation.
struct RankInput {
  std::uint32_t rank = 0;
  std::string host;
  Snapshot snapshot;
  std::vector<Sample> samples;
  std::uint64_t samples_dropped = 0;
};

// Mean own time per step (ms) of a summary: (step time - allreduce) / steps; 0 without steps.
double own_ms_per_step(const Summary& s) noexcept;
// Ranks with steps whose own time per step is >= threshold x the median over those ranks,
// slowest first, at most opts.max_ranks.
std::vector<Straggler> find_stragglers(const std::vector<RankTelemetry>& ranks, const StragglerOptions& opts = {});
// Builds the job's record: per-rank summaries, merged totals, stragglers; sorted by rank.
JobTelemetry make_job_telemetry(std::string job_id, std::vector<RankInput> ranks, bool complete,
                                const StragglerOptions& opts = {});

// The file or the object inside it (dataset, attribute, group) that could not be written or
// read: a damaged, truncated or foreign file, or a write that failed.
class JobFileError : public Error {
 public:
  JobFileError(std::string file, std::string object, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  const std::string& object() const noexcept { return object_; }  // e.g. "/ranks/2/series/t_s"; "" for the file

 private:
  std::string file_, object_;
};

// The file name for a job id: "job-<id>.h5", characters outside [A-Za-z0-9._-] as '_'.
std::string job_file_name(const std::string& job_id);

// Writes atomically (temporary file in the same directory, fsync, rename). Throws
// JobFileError naming the path on failure; the temporary file is removed.
void write_job_file(const std::filesystem::path& path, const JobTelemetry& job);
// Reads and validates a job file. Throws JobFileError naming the file and the object at fault.
JobTelemetry read_job_file(const std::filesystem::path& path);

}  // namespace sluice::monitor
