// The per-job telemetry file (HDF5; docs/telemetry.md, "Job files"): structs in, structs out.
// MPI-free: the gather (gather_mpi.hpp) builds a JobTelemetry at rank 0 and writes it here;
// report tools read it back. Library sluice_monitor_files (links HDF5; sluice_monitor does not).
//
// Writes are atomic: the file is written under a temporary name in the same directory,
// flushed to storage and renamed over the old one, so a reader sees the previous checkpoint
// or the new one, never half a file. A checkpoint has complete = false; the final write of a
// job that ended normally sets it. A truncated or damaged file (metadata and series carry
// checksums) makes read_job_file throw JobFileError naming the file and the object at fault.
//
// Reads are bounded (JobFileLimits): the job files live in a directory every user can write
// into, and the admin's reports read them all, so a file cannot make a read allocate more than
// the file can hold. A dataset whose declared size is past those bounds, an attribute of more
// than one value, or a string attribute past its maximum is refused with a JobFileLimitError
// naming the file and the object, before anything of that size is allocated.
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

// A job file refused because of what it declares (a dataset far larger than the bytes the file
// stores for it, an attribute of many values, an oversized string): hostile or damaged.
class JobFileLimitError : public JobFileError {
 public:
  using JobFileError::JobFileError;
};

// What one read_job_file may allocate (docs/telemetry.md, "Limits on what a report reads").
// The writer stores every column chunked, shuffled and deflated; deflate cannot shrink data
// more than about 1032:1, so a dataset declaring more than max_compression_ratio times the
// bytes the file stores for it (H5Dget_storage_size, itself at most the file's size) does not
// hold what it declares.
struct JobFileLimits {
  std::uint64_t max_dataset_bytes = std::uint64_t(256) << 20;  // one column (2^25 rows of 8 bytes)
  std::uint64_t max_read_bytes = std::uint64_t(4) << 30;       // everything one read allocates
  std::uint64_t max_chunk_bytes = std::uint64_t(64) << 20;     // one HDF5 chunk (the writer's: 32 KiB x GPUs)
  std::uint64_t small_dataset_bytes = std::uint64_t(64) << 10; // below: no storage check
  double max_compression_ratio = 2048;  // declared bytes per stored byte, per dataset and per file
  std::size_t max_string_bytes = 4096;  // a string attribute (job id, host name, schema)
};

// Who wrote a job file and how large it is, from the descriptor the read used (fstat).
struct JobFileOrigin {
  std::uint32_t owner_uid = 0;
  std::uint64_t size = 0;
};

// The file name for a job id: "job-<id>.h5", characters outside [A-Za-z0-9._-] as '_'.
std::string job_file_name(const std::string& job_id);

// Writes atomically (temporary file in the same directory, fsync, rename). Throws
// JobFileError naming the path on failure; the temporary file is removed.
void write_job_file(const std::filesystem::path& path, const JobTelemetry& job);
// Reads and validates a job file. Throws JobFileError naming the file and the object at fault
// (JobFileLimitError: past LIMITS). A symbolic link or anything but a regular file is refused.
// ORIGIN (when given) receives the file's owner and size, from the descriptor read.
JobTelemetry read_job_file(const std::filesystem::path& path, JobFileOrigin* origin = nullptr,
                           const JobFileLimits& limits = {});

}  // namespace sluice::monitor
