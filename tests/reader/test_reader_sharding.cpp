// The shuffle and the sharding rule as pure functions: no files, no MPI.
#define BOOST_TEST_MODULE reader_sharding
#include <boost/test/unit_test.hpp>

#include <sluice/reader.hpp>

#include <algorithm>
#include <set>

using namespace sluice::reader;
namespace sh = sluice::reader::sharding;

BOOST_AUTO_TEST_CASE(order_is_a_permutation_and_deterministic) {
  for (std::uint64_t n : {0ull, 1ull, 2ull, 7ull, 100ull, 1001ull}) {
    auto a = sh::epoch_order(n, 42, 3);
    auto b = sh::epoch_order(n, 42, 3);
    BOOST_TEST(a == b);
    auto s = a;
    std::sort(s.begin(), s.end());
    for (std::uint64_t i = 0; i < n; ++i) BOOST_TEST(s[i] == i);
  }
  BOOST_TEST(sh::epoch_order(1000, 42, 3) != sh::epoch_order(1000, 42, 4));  // new shuffle each epoch
  BOOST_TEST(sh::epoch_order(1000, 42, 3) != sh::epoch_order(1000, 43, 3));  // and per seed
  auto id = sh::epoch_order(10, 42, 3, false);
  for (std::uint64_t i = 0; i < 10; ++i) BOOST_TEST(id[i] == i);
}

// Pinned values: the order must be the same on every rank, platform and release. These were
// computed once from the documented algorithm (SplitMix64, Fisher-Yates from the top, draws
// by rejection); a change here silently breaks resume of saved jobs, so it must fail.
BOOST_AUTO_TEST_CASE(order_is_pinned) {
  std::uint64_t st = 0;
  BOOST_TEST(sh::splitmix64(st) == 0xE220A8397B1DCDAFull);  // SplitMix64's published first output for seed 0
  const std::vector<std::uint64_t> got = sh::epoch_order(10, 2026, 0);
  const std::vector<std::uint64_t> pinned{4, 5, 1, 0, 8, 3, 6, 2, 9, 7};  // also from an independent Python model
  BOOST_TEST(got == pinned, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(steps) {
  BOOST_TEST(sh::steps_per_epoch(100, 4, 8, Remainder::DropLast) == 3u);
  BOOST_TEST(sh::steps_per_epoch(100, 4, 8, Remainder::Pad) == 4u);
  BOOST_TEST(sh::steps_per_epoch(96, 4, 8, Remainder::Pad) == 3u);
  BOOST_TEST(sh::steps_per_epoch(5, 4, 8, Remainder::DropLast) == 0u);
  BOOST_TEST(sh::steps_per_epoch(5, 4, 8, Remainder::Pad) == 1u);
}

// Exactly once per epoch: with Pad every sample is read exactly once as a real (non-pad)
// sample; with DropLast at most once, and exactly N - N mod (R*B) are read. Every rank gets
// the same number of batches of exactly B.
BOOST_AUTO_TEST_CASE(exactly_once_coverage) {
  int combos = 0;
  for (int ranks : {1, 2, 3, 4, 5, 8})
    for (std::size_t batch : {1u, 2u, 3u, 7u, 16u})
      for (std::uint64_t n : {1ull, 5ull, 16ull, 17ull, 63ull, 64ull, 65ull, 100ull, 257ull})
        for (Remainder rem : {Remainder::Pad, Remainder::DropLast}) {
          const std::uint64_t steps = sh::steps_per_epoch(n, ranks, batch, rem);
          const std::uint64_t per_step = static_cast<std::uint64_t>(ranks) * batch;
          for (std::uint64_t epoch : {0ull, 1ull}) {
            const auto order = sh::epoch_order(n, 7, epoch);
            std::vector<int> seen(n, 0);
            std::uint64_t real = 0, pads = 0;
            for (int r = 0; r < ranks; ++r)
              for (std::uint64_t s = 0; s < steps; ++s) {
                const auto slots = sh::batch_slots(n, ranks, r, batch, s);
                BOOST_REQUIRE_EQUAL(slots.size(), batch);
                for (const auto& sl : slots) {
                  BOOST_REQUIRE(sl.position < n);
                  if (sl.padded) {
                    ++pads;
                    BOOST_REQUIRE(rem == Remainder::Pad);
                  } else {
                    ++seen[order[sl.position]];
                    ++real;
                  }
                }
              }
            if (rem == Remainder::Pad) {
              BOOST_REQUIRE_EQUAL(real, n);
              BOOST_REQUIRE_EQUAL(pads, steps * per_step - n);
              BOOST_REQUIRE(pads < per_step);
              for (std::uint64_t i = 0; i < n; ++i) BOOST_REQUIRE_EQUAL(seen[i], 1);
            } else {
              BOOST_REQUIRE_EQUAL(real, (n / per_step) * per_step);
              BOOST_REQUIRE(n - real < per_step);
              for (std::uint64_t i = 0; i < n; ++i) BOOST_REQUIRE(seen[i] <= 1);
            }
            ++combos;
          }
        }
  BOOST_TEST(combos == 6 * 5 * 9 * 2 * 2);
}

BOOST_AUTO_TEST_CASE(dropped_samples_change_per_epoch) {
  // DropLast leaves out the order's tail, so which samples are skipped changes every epoch.
  const std::uint64_t n = 10;
  std::set<std::uint64_t> skipped_any;
  for (std::uint64_t e = 0; e < 20; ++e) {
    const auto order = sh::epoch_order(n, 1, e);
    skipped_any.insert(order[8]);
    skipped_any.insert(order[9]);
  }
  BOOST_TEST(skipped_any.size() > 2u);
}

BOOST_AUTO_TEST_CASE(state_text_round_trip) {
  ReaderState s{123, 4, 5, 1000, 3, 16, true};
  BOOST_TEST((ReaderState::from_string(s.to_string()) == s));
  BOOST_CHECK_THROW(ReaderState::from_string("nonsense"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(ReaderState::from_string("sluice-reader-state/1 seed=1 epoch=2"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(ReaderState::from_string("sluice-reader-state/1 seed=x epoch=2 step=0 samples=1 ranks=1 batch=1 shuffle=1"),
                    sluice::InvalidArgument);
}
