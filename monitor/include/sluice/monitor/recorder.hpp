// In-process recorder: per-rank step spans, phases and I/O / stall / allreduce counters,
// cheap enough to leave on.
//
// Hot path: no locks, no allocation. Each thread records into its own fixed-size slot
// (registered once per thread and recorder, under a mutex; reused after the thread exits).
// A slot has one writer, so updates are relaxed loads and stores, not read-modify-writes.
// Related fields (bytes, ns and count of one kind; a step's total and phases) are updated
// under a per-group sequence lock, so a reader thread calling snapshot() sees them from the
// same event. Histograms are read bucket by bucket; their count is the sum of the buckets.
//
// Steps are per thread: step_begin()/step_end() on the training thread. Inside a step,
// record_stall() counts as data wait and record_allreduce() as allreduce, unless an explicit
// PhaseScope is open on the thread (then the scope's own time counts, not both). Compute is
// the rest of the step. Phases always sum to the step's time (over-long phases are clamped).
//
// Everything here is noexcept; a thread whose thread-local state was already destroyed
// (recording from another thread_local's destructor) has its events dropped.
#pragma once

#include <sluice/monitor/histogram.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace sluice::monitor {

enum class Phase : int { data_wait = 0, compute = 1, allreduce = 2 };

// Per-step statistics. Times in milliseconds; fractions of the summed step time.
struct StepStats {
  std::uint64_t count = 0;
  double total_s = 0;
  double time_mean_ms = 0, time_p50_ms = 0, time_p95_ms = 0, time_max_ms = 0;
  double data_wait_fraction = 0, compute_fraction = 0, allreduce_fraction = 0;
  double data_wait_p95_ms = 0;  // per-step data wait
};
struct IoStats {
  std::uint64_t ops = 0, bytes = 0;
  double seconds = 0, mb_per_s = 0;  // bytes / summed op time (10^6 bytes/s)
  double op_p50_ms = 0, op_p95_ms = 0, op_max_ms = 0;
};
struct StallStats {
  std::uint64_t count = 0;
  double seconds = 0, p95_ms = 0, max_ms = 0;
};
struct AllreduceStats {
  std::uint64_t count = 0, bytes = 0;
  double seconds = 0;
  double algbw_gbps = 0;  // bytes / summed time, 10^9 bytes/s
  double busbw_gbps = 0;  // algbw x 2(n-1)/n, n per call (as nccl-tests)
  double p50_ms = 0, p95_ms = 0, max_ms = 0;
};

// A plain summary of one recorder (one rank), for logs, job files and the gather.
struct Summary {
  double elapsed_s = 0;        // since the recorder was created (or reset)
  std::uint32_t threads = 0;   // slots (threads that recorded)
  StepStats steps;
  IoStats io;
  StallStats stall;
  AllreduceStats allreduce;
};
std::string to_json(const Summary& s, int indent = -1);

// Everything a recorder holds, merged over its threads: mergeable across ranks.
struct Snapshot {
  std::uint64_t elapsed_ns = 0;
  std::uint32_t threads = 0;
  std::uint64_t steps = 0, step_ns = 0, step_data_wait_ns = 0, step_allreduce_ns = 0, step_compute_ns = 0;
  std::uint64_t io_ops = 0, io_bytes = 0, io_ns = 0;
  std::uint64_t stalls = 0, stall_ns = 0;
  std::uint64_t allreduces = 0, allreduce_bytes = 0, allreduce_bus_bytes = 0, allreduce_ns = 0;
  Histogram step_time, step_data_wait, io_time, stall_time, allreduce_time;
  // Counter groups copied without a consistent view (a writer stopped inside an update
  // for over 200 ms, e.g. by SIGSTOP); normally 0.
  std::uint32_t torn_groups = 0;

  void merge(const Snapshot& o);
  Summary summary() const;
};

class Recorder {
 public:
  Recorder();
  ~Recorder();  // no thread may record into it any more
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Step spans on the calling thread. step_begin() inside an open step ends that one first.
  void step_begin() noexcept;
  void step_end() noexcept;  // no-op without an open step
  // Explicit phases (nesting is exclusive: an inner phase's time is not its parent's).
  void phase_begin(Phase p) noexcept;
  void phase_end() noexcept;

  // Reports from the reader and the collectives (or anyone): one event each.
  void record_io(std::uint64_t bytes, std::uint64_t ns) noexcept;
  void record_stall(std::uint64_t ns) noexcept;
  // ranks: communicator size for busbw (0: unknown, counted as algbw).
  void record_allreduce(std::uint64_t bytes, std::uint64_t ns, std::uint32_t ranks = 0) noexcept;

  // Off: every call above returns at once (one relaxed load).
  void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }
  bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }

  // Safe from any thread while others record.
  Snapshot snapshot() const;
  Summary summary() const { return snapshot().summary(); }

  struct Slot;  // implementation (recorder.cpp)

 private:
  Slot* slot() noexcept;
  Slot* slot_slow() noexcept;
  struct Impl;
  std::uint64_t id_;
  std::atomic<bool> enabled_{true};
  std::unique_ptr<Impl> impl_;
};

// The process-wide recorder the reader and collectives report into; never destroyed.
// Created enabled unless SLUICE_MONITOR=0 (or off/false/no) in the environment.
Recorder& default_recorder() noexcept;

// Shorthands for the default recorder.
inline void step_begin() noexcept { default_recorder().step_begin(); }
inline void step_end() noexcept { default_recorder().step_end(); }
inline void record_io(std::uint64_t bytes, std::uint64_t ns) noexcept { default_recorder().record_io(bytes, ns); }
inline void record_stall(std::uint64_t ns) noexcept { default_recorder().record_stall(ns); }
inline void record_allreduce(std::uint64_t bytes, std::uint64_t ns, std::uint32_t ranks = 0) noexcept {
  default_recorder().record_allreduce(bytes, ns, ranks);
}

// RAII: a step span, or a phase within one.
class StepScope {
 public:
  explicit StepScope(Recorder& r = default_recorder()) noexcept : r_(r) { r_.step_begin(); }
  ~StepScope() { r_.step_end(); }
  StepScope(const StepScope&) = delete;
  StepScope& operator=(const StepScope&) = delete;

 private:
  Recorder& r_;
};
class PhaseScope {
 public:
  explicit PhaseScope(Phase p, Recorder& r = default_recorder()) noexcept : r_(r) { r_.phase_begin(p); }
  ~PhaseScope() { r_.phase_end(); }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Recorder& r_;
};

// Monotonic clock in ns (CLOCK_MONOTONIC), as the recorder uses.
std::uint64_t now_ns() noexcept;

}  // namespace sluice::monitor
