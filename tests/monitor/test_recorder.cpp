#define BOOST_TEST_MODULE monitor_recorder
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/recorder.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

using namespace sluice::monitor;
using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t kMs = 1000000;

void check_phases_sum(const Snapshot& s) {
  BOOST_TEST(s.step_data_wait_ns + s.step_allreduce_ns + s.step_compute_ns == s.step_ns);
}
}  // namespace

BOOST_AUTO_TEST_CASE(counts_exactly_under_concurrent_threads) {
  Recorder rec;
  constexpr int kThreads = 8, kEvents = 100000;
  std::latch go(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      go.arrive_and_wait();  // all alive at once: one slot each
      for (int i = 0; i < kEvents; ++i) {
        rec.record_io(std::uint64_t(t + 1), 100);
        if (i % 10 == 0) rec.record_stall(50);
        if (i % 100 == 0) rec.record_allreduce(1000, 2000, 2);
      }
    });
  for (auto& t : ts) t.join();
  const Snapshot s = rec.snapshot();
  // One slot per live thread; a thread that ended may hand its slot to one that starts late.
  BOOST_TEST(s.threads >= 1u);
  BOOST_TEST(s.threads <= std::uint32_t(kThreads));
  BOOST_TEST(s.io_ops == std::uint64_t(kThreads) * kEvents);
  BOOST_TEST(s.io_bytes == std::uint64_t(kEvents) * (kThreads * (kThreads + 1) / 2));
  BOOST_TEST(s.io_ns == std::uint64_t(kThreads) * kEvents * 100);
  BOOST_TEST(s.io_time.count() == s.io_ops);
  BOOST_TEST(s.stalls == std::uint64_t(kThreads) * kEvents / 10);
  BOOST_TEST(s.stall_time.count() == s.stalls);
  BOOST_TEST(s.allreduces == std::uint64_t(kThreads) * kEvents / 100);
  BOOST_TEST(s.allreduce_bytes == s.allreduces * 1000);
  BOOST_TEST(s.allreduce_bus_bytes == s.allreduces * 1000);  // 2 (n-1) / n = 1 for n = 2
}

BOOST_AUTO_TEST_CASE(snapshot_while_recording_is_consistent_and_ends_exact) {
  Recorder rec;
  constexpr int kWriters = 3, kEvents = 300000;
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kWriters; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kEvents; ++i) {
        rec.record_io(4096, 7);  // bytes and ns in a fixed ratio to the count
        if (i % 1000 == 0) {
          rec.step_begin();
          rec.record_stall(10);
          rec.step_end();
        }
      }
      done.fetch_add(1);
    });
  std::uint64_t last_ops = 0, last_steps = 0;
  int snapshots = 0, bad_ratio = 0, bad_phases = 0, went_back = 0;
  while (done.load() < kWriters || snapshots < 5) {
    const Snapshot s = rec.snapshot();
    ++snapshots;
    if (s.io_bytes != s.io_ops * 4096 || s.io_ns != s.io_ops * 7) ++bad_ratio;
    if (s.step_data_wait_ns + s.step_allreduce_ns + s.step_compute_ns != s.step_ns) ++bad_phases;
    if (s.io_ops < last_ops || s.steps < last_steps) ++went_back;
    last_ops = s.io_ops, last_steps = s.steps;
  }
  for (auto& t : ts) t.join();
  BOOST_TEST(rec.snapshot().torn_groups == 0u);
  BOOST_TEST(bad_ratio == 0);
  BOOST_TEST(bad_phases == 0);
  BOOST_TEST(went_back == 0);
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.io_ops == std::uint64_t(kWriters) * kEvents);
  BOOST_TEST(s.steps == std::uint64_t(kWriters) * (kEvents / 1000));
  BOOST_TEST(s.step_time.count() == s.steps);
  BOOST_TEST_MESSAGE("snapshots taken while recording: " << snapshots);
}

BOOST_AUTO_TEST_CASE(step_phases_sum_to_the_step_time) {
  Recorder rec;
  rec.step_begin();
  {
    PhaseScope wait(Phase::data_wait, rec);
    std::this_thread::sleep_for(2ms);
  }
  const std::uint64_t t0 = now_ns();
  std::this_thread::sleep_for(1ms);  // "in" the allreduce, which then reports its own time
  const std::uint64_t ar_ns = now_ns() - t0;
  rec.record_allreduce(1 << 20, ar_ns, 8);  // no explicit scope open: counts as allreduce
  {
    PhaseScope compute(Phase::compute, rec);
    volatile double x = 0;
    for (int i = 0; i < 100000; ++i) x = x + i;
  }
  rec.step_end();
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.steps == 1u);
  check_phases_sum(s);
  BOOST_TEST(s.step_data_wait_ns >= 2 * kMs);  // sleep_for sleeps at least that long
  BOOST_TEST(s.step_allreduce_ns == ar_ns);
  BOOST_TEST(s.step_compute_ns > 0u);
  BOOST_TEST(s.step_ns >= 3 * kMs);
  BOOST_TEST(s.step_time.count() == 1u);
  BOOST_TEST(s.step_data_wait.count() == 1u);
}

BOOST_AUTO_TEST_CASE(reports_inside_a_step_become_its_phases) {
  Recorder rec;
  rec.step_begin();
  std::this_thread::sleep_for(3ms);
  rec.record_stall(1 * kMs);  // the reader's wait for a batch
  rec.record_allreduce(100, 1 * kMs, 2);
  rec.step_end();
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.step_data_wait_ns == 1 * kMs);
  BOOST_TEST(s.step_allreduce_ns == 1 * kMs);
  check_phases_sum(s);
  // Outside a step: counted as events, not as phases.
  rec.record_stall(5 * kMs);
  const Snapshot s2 = rec.snapshot();
  BOOST_TEST(s2.stalls == 2u);
  BOOST_TEST(s2.step_data_wait_ns == 1 * kMs);
}

BOOST_AUTO_TEST_CASE(explicit_scopes_are_not_counted_twice) {
  Recorder rec;
  rec.step_begin();
  {
    PhaseScope ar(Phase::allreduce, rec);
    rec.record_allreduce(100, 3600 * 1000 * kMs, 2);  // reports an hour: the scope's time counts
    rec.record_stall(3600 * 1000 * kMs);              // inside an allreduce scope: not data wait
  }
  rec.step_end();
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.step_allreduce_ns < 3600 * 1000 * kMs);
  BOOST_TEST(s.step_data_wait_ns == 0u);
  BOOST_TEST(s.allreduce_ns == 3600 * 1000 * kMs);  // the event itself is still counted
  check_phases_sum(s);
}

BOOST_AUTO_TEST_CASE(nested_scopes_are_exclusive_and_overlong_phases_clamp) {
  Recorder rec;
  rec.step_begin();
  {
    PhaseScope wait(Phase::data_wait, rec);
    std::this_thread::sleep_for(1ms);
    {
      PhaseScope ar(Phase::allreduce, rec);
      std::this_thread::sleep_for(2ms);
    }
  }
  rec.step_end();
  Snapshot s = rec.snapshot();
  BOOST_TEST(s.step_allreduce_ns >= 2 * kMs);
  BOOST_TEST(s.step_data_wait_ns >= 1 * kMs);
  check_phases_sum(s);  // the inner 2 ms are not also data wait

  Recorder rec2;
  rec2.step_begin();
  rec2.record_stall(3600 * 1000 * kMs);  // longer than the step
  rec2.step_end();
  s = rec2.snapshot();
  BOOST_TEST(s.step_data_wait_ns == s.step_ns);
  BOOST_TEST(s.step_compute_ns == 0u);
  check_phases_sum(s);
}

BOOST_AUTO_TEST_CASE(unbalanced_calls_are_harmless) {
  Recorder rec;
  rec.step_end();    // no open step
  rec.phase_end();   // no open phase
  rec.step_begin();
  rec.step_begin();  // ends the first
  rec.step_end();
  for (int i = 0; i < 20; ++i) rec.phase_begin(Phase::data_wait);  // deeper than tracked
  for (int i = 0; i < 25; ++i) rec.phase_end();
  rec.step_begin();
  rec.record_stall(5);  // phases balanced again: auto-attribution works
  rec.step_end();
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.steps == 3u);
  BOOST_TEST(s.step_data_wait_ns == 5u);
  check_phases_sum(s);
}

BOOST_AUTO_TEST_CASE(disabled_records_nothing) {
  Recorder rec;
  rec.set_enabled(false);
  rec.step_begin();
  rec.record_io(1, 1);
  rec.step_end();
  BOOST_TEST(rec.snapshot().io_ops == 0u);
  BOOST_TEST(rec.snapshot().steps == 0u);
  BOOST_TEST(rec.snapshot().threads == 0u);
  rec.set_enabled(true);
  rec.record_io(1, 1);
  BOOST_TEST(rec.snapshot().io_ops == 1u);
}

BOOST_AUTO_TEST_CASE(an_exited_threads_slot_is_reused_and_keeps_its_counts) {
  Recorder rec;
  for (int i = 0; i < 5; ++i) std::thread([&] { rec.record_io(10, 1); }).join();
  const Snapshot s = rec.snapshot();
  BOOST_TEST(s.threads == 1u);
  BOOST_TEST(s.io_ops == 5u);
  BOOST_TEST(s.io_bytes == 50u);
}

BOOST_AUTO_TEST_CASE(many_recorders_on_one_thread) {
  // More recorders than the thread's cache holds; some destroyed and replaced (an address
  // may come back: the new recorder must start empty).
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < 7; ++i) recs.push_back(std::make_unique<Recorder>());
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < recs.size(); ++i) recs[i]->record_io(i + 1, 1);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    BOOST_TEST(recs[i]->snapshot().io_ops == 3u);
    BOOST_TEST(recs[i]->snapshot().io_bytes == 3 * (i + 1));
  }
  for (int i = 0; i < 3; ++i) {
    recs[2].reset();
    recs[2] = std::make_unique<Recorder>();
    BOOST_TEST(recs[2]->snapshot().io_ops == 0u);
    recs[2]->record_io(1, 1);
    BOOST_TEST(recs[2]->snapshot().io_ops == 1u);
  }
  std::thread([&] { recs[0]->record_io(1, 1); }).join();
  BOOST_TEST(recs[0]->snapshot().io_ops == 4u);
}

BOOST_AUTO_TEST_CASE(summary_and_json) {
  Recorder rec;
  for (int i = 0; i < 4; ++i) {
    rec.step_begin();
    rec.record_stall(1);
    rec.step_end();
  }
  rec.record_io(2000000, 1000000000);              // 2 MB in 1 s
  rec.record_allreduce(1000000000, 1000000000, 4);  // 1 GB in 1 s on 4 ranks
  const Summary sum = rec.summary();
  BOOST_TEST(sum.steps.count == 4u);
  BOOST_TEST(sum.steps.time_max_ms >= sum.steps.time_p95_ms);
  BOOST_TEST(sum.steps.time_p95_ms >= sum.steps.time_p50_ms);
  BOOST_TEST(sum.steps.data_wait_fraction + sum.steps.compute_fraction + sum.steps.allreduce_fraction ==
             1.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(sum.io.mb_per_s == 2.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(sum.allreduce.algbw_gbps == 1.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(sum.allreduce.busbw_gbps == 1.5, boost::test_tools::tolerance(1e-9));  // 2 (4-1) / 4
  BOOST_TEST(sum.allreduce.max_ms == 1000.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(sum.threads == 1u);

  const auto j = nlohmann::json::parse(to_json(sum));
  BOOST_TEST(j.at("schema").get<std::string>() == "sluice.monitor.summary/1");
  BOOST_TEST(j.at("steps").at("count").get<std::uint64_t>() == 4u);
  BOOST_TEST(j.at("steps").contains("time_p50_ms"));
  BOOST_TEST(j.at("steps").contains("time_p95_ms"));
  BOOST_TEST(j.at("steps").contains("data_wait_fraction"));
  BOOST_TEST(j.at("steps").contains("allreduce_fraction"));
  BOOST_TEST(j.at("allreduce").at("busbw_gbps").get<double>() == 1.5, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(j.at("io").at("bytes").get<std::uint64_t>() == 2000000u);
}

BOOST_AUTO_TEST_CASE(snapshots_merge_like_ranks) {
  Recorder a, b;
  a.record_io(10, 100);
  b.record_io(20, 300);
  b.record_io(30, 500);
  Snapshot m = a.snapshot();
  m.merge(b.snapshot());
  BOOST_TEST(m.io_ops == 3u);
  BOOST_TEST(m.io_bytes == 60u);
  BOOST_TEST(m.io_time.count() == 3u);
  BOOST_TEST(m.io_time.max() == 500u);
  BOOST_TEST(m.io_time.min() == 100u);
  BOOST_TEST(m.threads == 2u);
}

BOOST_AUTO_TEST_CASE(default_recorder_and_free_functions) {
  Recorder& d = default_recorder();
  BOOST_TEST(&d == &default_recorder());
  const auto before = d.snapshot();
  {
    StepScope step;
    record_stall(3);
    record_io(5, 6);
    record_allreduce(7, 8);
  }
  std::thread([] { record_io(5, 6); }).join();
  const auto after = d.snapshot();
  BOOST_TEST(after.steps == before.steps + 1);
  BOOST_TEST(after.io_ops == before.io_ops + 2);
  BOOST_TEST(after.allreduces == before.allreduces + 1);
  BOOST_TEST(after.step_data_wait_ns == before.step_data_wait_ns + 3);
}
