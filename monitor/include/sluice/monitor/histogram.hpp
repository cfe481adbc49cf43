// Log-bucket histogram (HDR-like) for durations in ns and sizes in bytes.
//
// Layout: values 0..31 have a bucket each (exact). Above, each power of two [2^e, 2^(e+1))
// is cut into 32 equal sub-buckets of width 2^(e-5). A bucket's width is therefore at most
// 1/32 of its lower bound, and a quantile reported as the bucket's midpoint (clamped to the
// exact min and max) is within 1/64 (1.6 %) of the exact nearest-rank quantile. Values at
// or above 2^48 (78 hours in ns, 256 TiB in bytes) share the last bucket; max stays exact.
//
// `Histogram` is a plain value (merge, quantiles). The recorder's per-thread copies use the
// same `HistogramLayout` with single-writer atomics (see recorder.cpp).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace sluice::monitor {

struct HistogramLayout {
  static constexpr unsigned kSubBits = 5;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;  // 32
  static constexpr unsigned kMaxExp = 47;                               // last exact octave
  static constexpr std::size_t kBuckets = (kMaxExp - kSubBits + 2) * kSub;
  // Worst-case relative error of a reported quantile (midpoint of its bucket).
  static constexpr double kRelativeError = 1.0 / double(2 * kSub);

  static constexpr std::size_t index(std::uint64_t v) noexcept {
    if (v < kSub) return std::size_t(v);
    const unsigned e = 63u - unsigned(std::countl_zero(v));
    if (e > kMaxExp) return kBuckets - 1;
    return std::size_t(e - kSubBits + 1) * kSub + std::size_t((v >> (e - kSubBits)) - kSub);
  }
  // Smallest value of bucket i.
  static constexpr std::uint64_t lower(std::size_t i) noexcept {
    if (i < kSub) return i;
    const unsigned e = unsigned(i / kSub) + kSubBits - 1;
    return (kSub + (i % kSub)) << (e - kSubBits);
  }
  // Largest value of bucket i (inclusive); the last bucket reaches 2^64-1.
  static constexpr std::uint64_t upper(std::size_t i) noexcept {
    if (i + 1 == kBuckets) return std::numeric_limits<std::uint64_t>::max();
    return lower(i + 1) - 1;
  }
};

class Histogram {
 public:
  Histogram() : counts_(HistogramLayout::kBuckets, 0) {}

  void record(std::uint64_t v, std::uint64_t n = 1) noexcept {
    if (n == 0) return;
    counts_[HistogramLayout::index(v)] += n;
    count_ += n;
    sum_ += v * n;
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }
  void merge(const Histogram& o) noexcept;
  void clear() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t sum() const noexcept { return sum_; }  // wraps past 2^64 (584 years of ns)
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? double(sum_) / double(count_) : 0.0; }
  // Nearest-rank quantile, q in [0, 1]: the value of rank ceil(q * count) (at least 1),
  // within kRelativeError of the exact one; 0 when empty. quantile(1) == max().
  double quantile(double q) const noexcept;

  const std::vector<std::uint64_t>& buckets() const noexcept { return counts_; }
  // For the recorder's snapshot: adds a bucket count read from an atomic copy.
  void add_bucket(std::size_t i, std::uint64_t n) noexcept { counts_[i] += n, count_ += n; }
  void add_stats(std::uint64_t sum, std::uint64_t min, std::uint64_t max) noexcept {
    sum_ += sum;
    if (min < min_) min_ = min;
    if (max > max_) max_ = max;
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0, sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max(), max_ = 0;
};

}  // namespace sluice::monitor
