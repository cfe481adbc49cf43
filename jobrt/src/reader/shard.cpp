// The shuffle and the sharding rule: pure functions, integer-only, the same on every rank
// and platform (no std::uniform_int_distribution, whose output the standard leaves open).
#include <sluice/reader.hpp>

#include <numeric>

namespace sluice::reader::sharding {

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

// A uniform draw in [0, bound) by rejection: values below 2^64 mod bound are redrawn.
std::uint64_t bounded(std::uint64_t& state, std::uint64_t bound) noexcept {
  const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const std::uint64_t r = splitmix64(state);
    if (r >= threshold) return r % bound;
  }
}

}  // namespace

std::vector<std::uint64_t> epoch_order(std::uint64_t n, std::uint64_t seed, std::uint64_t epoch, bool shuffle) {
  std::vector<std::uint64_t> order(n);
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  if (!shuffle || n < 2) return order;
  // The stream's start mixes seed and epoch through two SplitMix64 steps, so neighbouring
  // (seed, epoch) pairs give unrelated streams.
  std::uint64_t s = seed;
  std::uint64_t state = splitmix64(s) ^ epoch;
  state = splitmix64(state);
  for (std::uint64_t i = n - 1; i > 0; --i) {
    const std::uint64_t j = bounded(state, i + 1);
    std::swap(order[i], order[j]);
  }
  return order;
}

std::uint64_t steps_per_epoch(std::uint64_t n, int ranks, std::size_t batch, Remainder r) noexcept {
  if (ranks <= 0 || batch == 0) return 0;
  const std::uint64_t per_step = static_cast<std::uint64_t>(ranks) * batch;
  return r == Remainder::DropLast ? n / per_step : (n + per_step - 1) / per_step;
}

std::vector<Slot> batch_slots(std::uint64_t n, int ranks, int rank, std::size_t batch, std::uint64_t step) {
  std::vector<Slot> out;
  if (n == 0) return out;
  out.reserve(batch);
  const std::uint64_t first = (step * static_cast<std::uint64_t>(ranks) + static_cast<std::uint64_t>(rank)) * batch;
  for (std::uint64_t k = 0; k < batch; ++k) {
    const std::uint64_t slot = first + k;
    out.push_back({slot % n, slot >= n});
  }
  return out;
}

}  // namespace sluice::reader::sharding
