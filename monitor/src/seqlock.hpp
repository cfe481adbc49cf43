// Internal: a group of counters with one writer thread and a sequence lock, so that a
// reader copies them all from between two updates. (Tests include it directly.)
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <thread>

namespace sluice::monitor::detail {

template <std::size_t N>
struct SeqGroup {
  // The longest a reader waits for one writer before it takes a copy anyway: far longer
  // than a writer's critical section (a few stores) even when the writer is preempted
  // inside it; reached only if the writer's thread is stopped there (SIGSTOP, a debugger).
  static constexpr std::int64_t kMaxWaitNs = 200'000'000;

  std::atomic<std::uint32_t> seq{0};
  std::array<std::atomic<std::uint64_t>, N> v{};

  // Writer (the one owning thread): begin(); add()...; end().
  void begin() noexcept {
    seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  void add(std::size_t i, std::uint64_t x) noexcept {
    v[i].store(v[i].load(std::memory_order_relaxed) + x, std::memory_order_relaxed);
  }
  void end() noexcept { seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // Reader (any thread). `consistent`, when given, tells whether the copy is from between
  // two updates (false only after kMaxWaitNs; each field is then still a value it had).
  std::array<std::uint64_t, N> read(bool* consistent = nullptr) const noexcept {
    std::array<std::uint64_t, N> out{};
    std::int64_t t0 = -1;
    for (unsigned attempt = 0;; ++attempt) {
      const std::uint32_t s1 = seq.load(std::memory_order_acquire);
      for (std::size_t i = 0; i < N; ++i) out[i] = v[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((s1 & 1u) == 0 && seq.load(std::memory_order_relaxed) == s1) {
        if (consistent) *consistent = true;
        return out;
      }
      if (attempt < 64) continue;
      const std::int64_t now = mono_ns();
      if (t0 < 0) t0 = now;
      if (now - t0 > kMaxWaitNs) break;
      std::this_thread::yield();
    }
    if (consistent) *consistent = false;
    return out;
  }

 private:
  static std::int64_t mono_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
};

}  // namespace sluice::monitor::detail
