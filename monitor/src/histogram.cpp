#include <sluice/monitor/histogram.hpp>

#include <algorithm>
#include <cmath>

namespace sluice::monitor {

static_assert(HistogramLayout::index(31) == 31);
static_assert(HistogramLayout::index(32) == 32 && HistogramLayout::lower(32) == 32);
static_assert(HistogramLayout::index(64) == 64 && HistogramLayout::upper(63) == 63);
static_assert(HistogramLayout::lower(HistogramLayout::index(1000)) <= 1000 &&
              HistogramLayout::upper(HistogramLayout::index(1000)) >= 1000);
static_assert(HistogramLayout::index(std::uint64_t{1} << 48) == HistogramLayout::kBuckets - 1);
static_assert(HistogramLayout::index((std::uint64_t{1} << 48) - 1) == HistogramLayout::kBuckets - 1);

void Histogram::merge(const Histogram& o) noexcept {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

void Histogram::clear() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = sum_ = max_ = 0;
  min_ = std::numeric_limits<std::uint64_t>::max();
}

double Histogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0.0;
  if (!(q > 0.0)) return double(min());
  if (q >= 1.0) return double(max_);
  auto rank = std::uint64_t(std::ceil(q * double(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double lo = double(HistogramLayout::lower(i));
      const double hi = i + 1 == counts_.size() ? double(max_) : double(HistogramLayout::upper(i));
      return std::clamp((lo + hi) / 2.0, double(min()), double(max_));
    }
  }
  return double(max_);
}

}  // namespace sluice::monitor
