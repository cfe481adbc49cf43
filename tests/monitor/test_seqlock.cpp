#define BOOST_TEST_MODULE monitor_seqlock
#include <boost/test/unit_test.hpp>

#include "seqlock.hpp"

#include <atomic>
#include <chrono>
#include <thread>

using sluice::monitor::detail::SeqGroup;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_reader_never_sees_half_an_update) {
  SeqGroup<3> g;
  std::atomic<int> stage{0};
  std::thread writer([&] {
    g.begin();
    g.add(0, 1);
    g.add(1, 10);
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
    std::this_thread::sleep_for(2ms);  // the reader is trying meanwhile (or comes late: also fine)
    g.add(2, 100);
    g.end();
  });
  while (stage.load() != 1) std::this_thread::yield();
  stage.store(2);
  bool consistent = false;
  const auto v = g.read(&consistent);
  writer.join();
  BOOST_TEST(consistent);
  BOOST_TEST(v[0] == 1u);
  BOOST_TEST(v[1] == 10u);
  BOOST_TEST(v[2] == 100u);  // not the half-done 0
}

BOOST_AUTO_TEST_CASE(every_copy_is_from_between_updates) {
  SeqGroup<3> g;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      g.begin();
      g.add(0, 1);
      g.add(1, 2);
      g.add(2, 3);
      g.end();
    }
  });
  int bad = 0, reads = 0;
  std::uint64_t last = 0;
  for (; reads < 20000; ++reads) {
    bool consistent = false;
    const auto v = g.read(&consistent);
    if (!consistent || v[1] != 2 * v[0] || v[2] != 3 * v[0] || v[0] < last) ++bad;
    last = v[0];
  }
  stop.store(true);
  writer.join();
  BOOST_TEST(bad == 0);
  BOOST_TEST(g.read()[0] >= last);
}

BOOST_AUTO_TEST_CASE(a_writer_stopped_inside_an_update_does_not_hang_the_reader) {
  SeqGroup<2> g;
  g.begin();  // and never end(): as a thread stopped by SIGSTOP
  g.add(0, 5);
  bool consistent = true;
  const auto v = g.read(&consistent);  // gives up after kMaxWaitNs
  BOOST_TEST(!consistent);
  BOOST_TEST(v[0] == 5u);
  g.end();
  BOOST_TEST(g.read(&consistent)[0] == 5u);
  BOOST_TEST(consistent);
}
