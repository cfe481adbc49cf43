#define BOOST_TEST_MODULE monitor_histogram
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/histogram.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using sluice::monitor::Histogram;
using sluice::monitor::HistogramLayout;

namespace {

// Nearest-rank quantile of sorted data: the value of rank ceil(q n).
std::uint64_t exact(const std::vector<std::uint64_t>& sorted, double q) {
  auto rank = std::size_t(std::ceil(q * double(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void check_quantiles(const std::vector<std::uint64_t>& data, const Histogram& h) {
  auto sorted = data;
  std::sort(sorted.begin(), sorted.end());
  for (double q : {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999}) {
    const double want = double(exact(sorted, q));
    const double got = h.quantile(q);
    BOOST_TEST_CONTEXT("q=" << q << " exact=" << want << " estimate=" << got) {
      BOOST_TEST(std::abs(got - want) <= want * HistogramLayout::kRelativeError + 1e-9);
    }
  }
  BOOST_TEST(h.max() == sorted.back());
  BOOST_TEST(h.min() == sorted.front());
  BOOST_TEST(h.quantile(1.0) == double(sorted.back()));
}

}  // namespace

BOOST_AUTO_TEST_CASE(layout_covers_values_without_gaps) {
  // Every bucket's range starts right after the previous one's, and index() agrees.
  for (std::size_t i = 1; i < HistogramLayout::kBuckets; ++i) {
    BOOST_TEST_REQUIRE(HistogramLayout::lower(i) == HistogramLayout::upper(i - 1) + 1);
    BOOST_TEST_REQUIRE(HistogramLayout::index(HistogramLayout::lower(i)) == i);
    BOOST_TEST_REQUIRE(HistogramLayout::index(HistogramLayout::upper(i - 1)) == i - 1);
    // Width at most 1/32 of the lower bound above the exact range.
    if (HistogramLayout::lower(i) >= HistogramLayout::kSub && i + 1 < HistogramLayout::kBuckets)
      BOOST_TEST_REQUIRE(HistogramLayout::upper(i) - HistogramLayout::lower(i) + 1 <=
                         HistogramLayout::lower(i) / HistogramLayout::kSub);
  }
  BOOST_TEST(HistogramLayout::index(~std::uint64_t{0}) == HistogramLayout::kBuckets - 1);
}

BOOST_AUTO_TEST_CASE(small_values_are_exact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 32; ++v) h.record(v);
  BOOST_TEST(h.count() == 32u);
  BOOST_TEST(h.quantile(0.5) == 15.0);  // rank 16 of 0..31
  BOOST_TEST(h.min() == 0u);
  BOOST_TEST(h.max() == 31u);
  BOOST_TEST(h.sum() == 31u * 32u / 2u);
}

BOOST_AUTO_TEST_CASE(quantiles_within_documented_error_on_random_data) {
  std::mt19937_64 rng(12345);
  // Log-normal step times around 1 ms (ns), as a training loop's.
  std::lognormal_distribution<double> lognormal(std::log(1e6), 0.5);
  std::vector<std::uint64_t> data;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    const auto v = std::uint64_t(lognormal(rng));
    data.push_back(v);
    h.record(v);
  }
  BOOST_TEST(h.count() == data.size());
  check_quantiles(data, h);

  // Uniform over nine decades (1 ns .. 1 s), each value from a random decade.
  std::vector<std::uint64_t> wide;
  Histogram hw;
  std::uniform_real_distribution<double> exp10(0.0, 9.0);
  for (int i = 0; i < 100000; ++i) {
    const auto v = std::uint64_t(std::pow(10.0, exp10(rng)));
    wide.push_back(v);
    hw.record(v);
  }
  check_quantiles(wide, hw);
}

BOOST_AUTO_TEST_CASE(empty_histogram) {
  Histogram h;
  BOOST_TEST(h.count() == 0u);
  BOOST_TEST(h.quantile(0.5) == 0.0);
  BOOST_TEST(h.min() == 0u);
  BOOST_TEST(h.max() == 0u);
  BOOST_TEST(h.mean() == 0.0);
}

BOOST_AUTO_TEST_CASE(merge_equals_recording_everything_in_one) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> expo(1.0 / 5e5);
  Histogram a, b, all;
  std::vector<std::uint64_t> data;
  for (int i = 0; i < 50000; ++i) {
    const auto v = std::uint64_t(expo(rng)) + (i % 2 ? 1000000 : 0);  // b is shifted up
    (i % 2 ? b : a).record(v);
    all.record(v);
    data.push_back(v);
  }
  Histogram m;
  m.merge(a);
  m.merge(b);
  BOOST_TEST(m.count() == all.count());
  BOOST_TEST(m.sum() == all.sum());
  BOOST_TEST(m.min() == all.min());
  BOOST_TEST(m.max() == all.max());
  BOOST_TEST(m.buckets() == all.buckets());
  check_quantiles(data, m);
  // Merging an empty histogram changes nothing (its min must not win).
  m.merge(Histogram{});
  BOOST_TEST(m.min() == all.min());
  BOOST_TEST(m.count() == all.count());
}

BOOST_AUTO_TEST_CASE(huge_values_clamp_into_the_last_bucket_but_max_is_exact) {
  Histogram h;
  const std::uint64_t big = std::uint64_t{1} << 60;
  h.record(100);
  h.record(big);
  BOOST_TEST(h.max() == big);
  BOOST_TEST(h.quantile(1.0) == double(big));
  BOOST_TEST(h.quantile(0.99) <= double(big));
  BOOST_TEST(h.quantile(0.99) >= double(std::uint64_t{1} << 47));
}

BOOST_AUTO_TEST_CASE(weighted_record_and_clear) {
  Histogram h;
  h.record(1000, 10);
  h.record(0, 0);  // n = 0 records nothing
  BOOST_TEST(h.count() == 10u);
  BOOST_TEST(h.sum() == 10000u);
  BOOST_TEST(h.min() == 1000u);
  h.clear();
  BOOST_TEST(h.count() == 0u);
  BOOST_TEST(h.quantile(0.5) == 0.0);
}
