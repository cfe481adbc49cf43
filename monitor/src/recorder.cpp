#include <sluice/monitor/recorder.hpp>

#include "seqlock.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <new>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

namespace sluice::monitor {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

using detail::SeqGroup;

// One writer; the count is the sum of the buckets, so a concurrent read is self-consistent.
struct AtomicHistogram {
  std::array<std::atomic<std::uint64_t>, HistogramLayout::kBuckets> counts{};
  std::atomic<std::uint64_t> sum{0}, min{~std::uint64_t{0}}, max{0};

  void record(std::uint64_t v) noexcept {
    auto& c = counts[HistogramLayout::index(v)];
    c.store(c.load(kRelaxed) + 1, kRelaxed);
    sum.store(sum.load(kRelaxed) + v, kRelaxed);
    if (v < min.load(kRelaxed)) min.store(v, kRelaxed);
    if (v > max.load(kRelaxed)) max.store(v, kRelaxed);
  }
  void read_into(Histogram& h) const noexcept {
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (const auto n = counts[i].load(kRelaxed)) h.add_bucket(i, n);
    h.add_stats(sum.load(kRelaxed), min.load(kRelaxed), max.load(kRelaxed));
  }
};

constexpr unsigned kMaxPhaseDepth = 8;

}  // namespace

struct alignas(64) Recorder::Slot {
  std::atomic<bool> owned{true};
  SeqGroup<3> io;     // ops, bytes, ns
  SeqGroup<2> stall;  // count, ns
  SeqGroup<4> ar;     // count, bytes, bus bytes, ns
  SeqGroup<5> step;   // count, ns, data wait ns, allreduce ns, compute ns
  AtomicHistogram h_step, h_wait, h_io, h_stall, h_ar;

  // Writer-only state (the owning thread's open step and phases).
  struct Frame {
    Phase phase;
    std::uint64_t t0, child_ns;
  };
  bool in_step = false;
  std::uint64_t step_t0 = 0, cur_wait = 0, cur_ar = 0;
  std::array<Frame, kMaxPhaseDepth> frames{};
  unsigned depth = 0;        // may exceed kMaxPhaseDepth (deeper frames are not timed)
  unsigned blocking_open = 0;  // open data_wait/allreduce frames: they cover auto-attribution

  void reset_writer_state() noexcept {
    in_step = false;
    cur_wait = cur_ar = 0;
    depth = blocking_open = 0;
  }
};

namespace {

struct CacheEntry {
  std::uint64_t id;
  Recorder::Slot* slot;
};
constexpr int kCache = 4;
// Trivially destructible, so the hot path pays no thread_local guard: most recent first.
thread_local CacheEntry t_cache[kCache] = {};
thread_local bool t_exited = false;

// Which recorders are alive, so a thread's exit hook can hand back its slots safely.
struct Registry {
  std::mutex mu;
  std::unordered_set<std::uint64_t> alive;
};
Registry& registry() {
  static auto* r = new Registry;  // never destroyed: threads may exit after static destructors
  return *r;
}
std::atomic<std::uint64_t> g_next_id{1};

struct ThreadHook {
  std::vector<CacheEntry> slots;  // every (recorder, slot) this thread registered
  ~ThreadHook() {
    t_exited = true;
    for (auto& e : t_cache) e = {};
    auto& reg = registry();
    std::lock_guard lock(reg.mu);
    for (const auto& e : slots)
      if (reg.alive.count(e.id)) e.slot->owned.store(false, std::memory_order_release);
  }
};
thread_local ThreadHook t_hook;  // touched on the slow path only

}  // namespace

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

struct Recorder::Impl {
  mutable std::mutex mu;
  std::vector<std::unique_ptr<Slot>> slots;
  std::uint64_t t0 = now_ns();
};

Recorder::Recorder() : id_(g_next_id.fetch_add(1)), impl_(std::make_unique<Impl>()) {
  auto& reg = registry();
  std::lock_guard lock(reg.mu);
  reg.alive.insert(id_);
}

Recorder::~Recorder() {
  auto& reg = registry();
  std::lock_guard lock(reg.mu);  // held while the slots go: no exit hook touches them
  reg.alive.erase(id_);
  impl_.reset();
}

inline Recorder::Slot* Recorder::slot() noexcept {
  if (t_cache[0].id == id_) [[likely]]
    return t_cache[0].slot;
  return slot_slow();
}

Recorder::Slot* Recorder::slot_slow() noexcept {
  if (t_exited) return nullptr;
  for (int i = 1; i < kCache; ++i)
    if (t_cache[i].id == id_) {
      std::rotate(t_cache, t_cache + i, t_cache + i + 1);
      return t_cache[0].slot;
    }
  try {
    auto& hook = t_hook;
    Slot* s = nullptr;
    for (const auto& e : hook.slots)
      if (e.id == id_) s = e.slot;
    if (!s) {
      {
        std::lock_guard lock(impl_->mu);
        for (auto& p : impl_->slots) {
          bool expected = false;
          if (p->owned.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
            s = p.get();
            s->reset_writer_state();
            break;
          }
        }
        if (!s) s = impl_->slots.emplace_back(std::make_unique<Slot>()).get();
      }
      if (hook.slots.size() >= 16) {  // forget recorders that are gone
        auto& reg = registry();
        std::lock_guard lock(reg.mu);
        std::erase_if(hook.slots, [&](const CacheEntry& e) { return !reg.alive.count(e.id); });
      }
      hook.slots.push_back({id_, s});
    }
    std::rotate(t_cache, t_cache + kCache - 1, t_cache + kCache);
    t_cache[0] = {id_, s};
    return s;
  } catch (...) {  // out of memory: the event is dropped
    return nullptr;
  }
}

void Recorder::step_begin() noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s) return;
  if (s->in_step) step_end();
  s->in_step = true;
  s->cur_wait = s->cur_ar = 0;
  s->step_t0 = now_ns();
}

void Recorder::step_end() noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s || !s->in_step) return;
  const std::uint64_t total = now_ns() - s->step_t0;
  const std::uint64_t ar = std::min(s->cur_ar, total);
  const std::uint64_t wait = std::min(s->cur_wait, total - ar);
  s->in_step = false;
  s->step.begin();
  s->step.add(0, 1);
  s->step.add(1, total);
  s->step.add(2, wait);
  s->step.add(3, ar);
  s->step.add(4, total - ar - wait);
  s->step.end();
  s->h_step.record(total);
  s->h_wait.record(wait);
}

void Recorder::phase_begin(Phase p) noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s) return;
  if (s->depth < kMaxPhaseDepth) {
    s->frames[s->depth] = {p, now_ns(), 0};
    if (p != Phase::compute) ++s->blocking_open;
  }
  ++s->depth;
}

void Recorder::phase_end() noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s || s->depth == 0) return;
  const unsigned d = --s->depth;
  if (d >= kMaxPhaseDepth) return;
  const auto& f = s->frames[d];
  const std::uint64_t elapsed = now_ns() - f.t0;
  const std::uint64_t own = elapsed > f.child_ns ? elapsed - f.child_ns : 0;
  if (d > 0) s->frames[d - 1].child_ns += elapsed;
  if (f.phase != Phase::compute) --s->blocking_open;
  if (!s->in_step) return;
  if (f.phase == Phase::data_wait) s->cur_wait += own;
  if (f.phase == Phase::allreduce) s->cur_ar += own;
}

void Recorder::record_io(std::uint64_t bytes, std::uint64_t ns) noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s) return;
  s->io.begin();
  s->io.add(0, 1);
  s->io.add(1, bytes);
  s->io.add(2, ns);
  s->io.end();
  s->h_io.record(ns);
}

void Recorder::record_stall(std::uint64_t ns) noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s) return;
  s->stall.begin();
  s->stall.add(0, 1);
  s->stall.add(1, ns);
  s->stall.end();
  s->h_stall.record(ns);
  if (s->in_step && s->blocking_open == 0) s->cur_wait += ns;
}

void Recorder::record_allreduce(std::uint64_t bytes, std::uint64_t ns, std::uint32_t ranks) noexcept {
  if (!enabled()) return;
  Slot* s = slot();
  if (!s) return;
  const std::uint64_t bus =
      ranks == 0 ? bytes : std::uint64_t(double(bytes) * 2.0 * double(ranks - 1) / double(ranks));
  s->ar.begin();
  s->ar.add(0, 1);
  s->ar.add(1, bytes);
  s->ar.add(2, bus);
  s->ar.add(3, ns);
  s->ar.end();
  s->h_ar.record(ns);
  if (s->in_step && s->blocking_open == 0) s->cur_ar += ns;
}

Snapshot Recorder::snapshot() const {
  Snapshot out;
  std::lock_guard lock(impl_->mu);
  out.elapsed_ns = now_ns() - impl_->t0;
  out.threads = std::uint32_t(impl_->slots.size());
  for (const auto& p : impl_->slots) {
    const Slot& s = *p;
    bool ok[4] = {};
    const auto io = s.io.read(&ok[0]);
    out.io_ops += io[0], out.io_bytes += io[1], out.io_ns += io[2];
    const auto st = s.stall.read(&ok[1]);
    out.stalls += st[0], out.stall_ns += st[1];
    const auto ar = s.ar.read(&ok[2]);
    out.allreduces += ar[0], out.allreduce_bytes += ar[1], out.allreduce_bus_bytes += ar[2];
    out.allreduce_ns += ar[3];
    const auto sp = s.step.read(&ok[3]);
    out.steps += sp[0], out.step_ns += sp[1], out.step_data_wait_ns += sp[2];
    out.step_allreduce_ns += sp[3], out.step_compute_ns += sp[4];
    for (bool b : ok) out.torn_groups += b ? 0 : 1;
    s.h_step.read_into(out.step_time);
    s.h_wait.read_into(out.step_data_wait);
    s.h_io.read_into(out.io_time);
    s.h_stall.read_into(out.stall_time);
    s.h_ar.read_into(out.allreduce_time);
  }
  return out;
}

void Snapshot::merge(const Snapshot& o) {
  elapsed_ns = std::max(elapsed_ns, o.elapsed_ns);
  threads += o.threads;
  torn_groups += o.torn_groups;
  steps += o.steps, step_ns += o.step_ns, step_data_wait_ns += o.step_data_wait_ns;
  step_allreduce_ns += o.step_allreduce_ns, step_compute_ns += o.step_compute_ns;
  io_ops += o.io_ops, io_bytes += o.io_bytes, io_ns += o.io_ns;
  stalls += o.stalls, stall_ns += o.stall_ns;
  allreduces += o.allreduces, allreduce_bytes += o.allreduce_bytes;
  allreduce_bus_bytes += o.allreduce_bus_bytes, allreduce_ns += o.allreduce_ns;
  step_time.merge(o.step_time);
  step_data_wait.merge(o.step_data_wait);
  io_time.merge(o.io_time);
  stall_time.merge(o.stall_time);
  allreduce_time.merge(o.allreduce_time);
}

Summary Snapshot::summary() const {
  constexpr double kMs = 1e-6, kS = 1e-9;
  auto frac = [](std::uint64_t part, std::uint64_t whole) { return whole ? double(part) / double(whole) : 0.0; };
  auto rate = [](std::uint64_t bytes, std::uint64_t ns, double unit) {
    return ns ? double(bytes) / (double(ns) * 1e-9) / unit : 0.0;
  };
  Summary s;
  s.elapsed_s = double(elapsed_ns) * kS;
  s.threads = threads;
  s.steps.count = steps;
  s.steps.total_s = double(step_ns) * kS;
  s.steps.time_mean_ms = step_time.mean() * kMs;
  s.steps.time_p50_ms = step_time.quantile(0.5) * kMs;
  s.steps.time_p95_ms = step_time.quantile(0.95) * kMs;
  s.steps.time_max_ms = double(step_time.max()) * kMs;
  s.steps.data_wait_fraction = frac(step_data_wait_ns, step_ns);
  s.steps.allreduce_fraction = frac(step_allreduce_ns, step_ns);
  s.steps.compute_fraction = frac(step_compute_ns, step_ns);
  s.steps.data_wait_p95_ms = step_data_wait.quantile(0.95) * kMs;
  s.io.ops = io_ops;
  s.io.bytes = io_bytes;
  s.io.seconds = double(io_ns) * kS;
  s.io.mb_per_s = rate(io_bytes, io_ns, 1e6);
  s.io.op_p50_ms = io_time.quantile(0.5) * kMs;
  s.io.op_p95_ms = io_time.quantile(0.95) * kMs;
  s.io.op_max_ms = double(io_time.max()) * kMs;
  s.stall.count = stalls;
  s.stall.seconds = double(stall_ns) * kS;
  s.stall.p95_ms = stall_time.quantile(0.95) * kMs;
  s.stall.max_ms = double(stall_time.max()) * kMs;
  s.allreduce.count = allreduces;
  s.allreduce.bytes = allreduce_bytes;
  s.allreduce.seconds = double(allreduce_ns) * kS;
  s.allreduce.algbw_gbps = rate(allreduce_bytes, allreduce_ns, 1e9);
  s.allreduce.busbw_gbps = rate(allreduce_bus_bytes, allreduce_ns, 1e9);
  s.allreduce.p50_ms = allreduce_time.quantile(0.5) * kMs;
  s.allreduce.p95_ms = allreduce_time.quantile(0.95) * kMs;
  s.allreduce.max_ms = double(allreduce_time.max()) * kMs;
  return s;
}

Recorder& default_recorder() noexcept {
  static Recorder* r = [] {
    auto* rec = new Recorder;  // never destroyed: threads and atexit code may still record
    if (const char* e = std::getenv("SLUICE_MONITOR")) {
      const std::string_view v(e);
      if (v == "0" || v == "off" || v == "false" || v == "no") rec->set_enabled(false);
    }
    return rec;
  }();
  return *r;
}

}  // namespace sluice::monitor
