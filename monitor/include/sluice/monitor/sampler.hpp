// Sampler: a thread that records the process's CPU, memory and I/O from /proc and each
// GPU's utilization, memory and power through NVML (loaded with dlopen; no NVML means no GPU
// series, not an error), every `interval` (default 10 s), into a bounded ring buffer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::monitor {

struct GpuSample {
  int index = 0;                          // NVML device index
  std::optional<unsigned> util_percent;   // absent: the driver does not report it
  std::optional<unsigned> mem_util_percent;
  std::optional<std::uint64_t> mem_used_bytes, mem_total_bytes;
  std::optional<double> power_watts;
};

struct Sample {
  double t_s = 0;               // since the sampler started (monotonic)
  std::int64_t unix_ms = 0;     // wall clock, for joining with other nodes' series
  double cpu_user_s = 0, cpu_sys_s = 0;  // cumulative, whole process (/proc/self/stat)
  std::uint64_t rss_bytes = 0, rss_peak_bytes = 0;  // VmRSS, VmHWM (/proc/self/status)
  bool io_known = false;        // /proc/self/io readable
  std::uint64_t read_bytes = 0, write_bytes = 0;  // cumulative, through read/write calls (rchar, wchar)
  std::uint64_t storage_read_bytes = 0, storage_write_bytes = 0;  // from storage (read_bytes, write_bytes)
  std::vector<GpuSample> gpus;  // empty without NVML
};

struct SamplerOptions {
  std::chrono::milliseconds interval{10000};
  std::size_t capacity = 8640;  // samples kept (24 h at 10 s); the oldest go first
  // NVML library to dlopen; empty: no GPU series.
  std::string nvml_path = "libnvidia-ml.so.1";
};

class Sampler {
 public:
  // Throws sluice::InvalidArgument for a zero interval or capacity. Does not start.
  explicit Sampler(SamplerOptions opts = {});
  ~Sampler();  // stop()
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Starts the thread; it samples at once, then every interval (no drift; late ticks are
  // skipped, not bunched). No-op when running.
  void start();
  // Asks the thread to stop and waits up to `deadline`. True when it has ended; false when
  // a sample is stuck (e.g. in the driver): the thread is then left to finish on its own,
  // holding only state it shares with nobody.
  bool stop(std::chrono::milliseconds deadline = std::chrono::milliseconds(2000));
  bool running() const;

  // Takes one sample now, on the calling thread, into the ring buffer; returns it.
  Sample sample_now();
  std::vector<Sample> samples() const;  // oldest first
  std::uint64_t dropped() const;        // samples pushed out of the ring buffer
  int gpu_count() const;                // GPUs NVML shows (0 without NVML)

  struct State;

 private:
  std::shared_ptr<State> st_;
};

// One reading of /proc/self (no GPUs), without a sampler (t_s = 0).
Sample read_process_sample();

// This node's name as Slurm knows it ($SLURMD_NODENAME, set in every task), else the host
// name: the same name the job record and Slurm's tools use, also where several emulated
// nodes share one host.
std::string node_name();

}  // namespace sluice::monitor
