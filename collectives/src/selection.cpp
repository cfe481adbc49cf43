#include "selection.hpp"

#include <cmath>

namespace sluice::coll {

namespace {
int floor_pow2(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
}  // namespace

double CostModel::predict(Algorithm a, std::size_t bytes, int n, std::size_t segment_bytes) const noexcept {
  if (n <= 1) return 0;
  const double N = double(bytes);
  const int p = floor_pow2(n);
  const bool folded = p != n;
  const double fold = folded ? 2 * (alpha_us + N * beta_us_per_byte) + N * gamma_us_per_byte : 0;
  const double lg = std::log2(double(p));
  switch (a) {
    case Algorithm::recursive_doubling:
      return fold + lg * (alpha_us + N * beta_us_per_byte + N * gamma_us_per_byte);
    case Algorithm::rabenseifner:
      return fold + 2 * lg * alpha_us + 2.0 * (p - 1) / p * N * beta_us_per_byte +
             double(p - 1) / p * N * gamma_us_per_byte;
    case Algorithm::ring: {
      // 2(n-1) steps; every segment is a message, but segments pipeline: the reduction of
      // one overlaps the transfer of the next, so only the slower of beta and gamma counts
      // for the reduce-scatter half (Rabenseifner pays both, one after the other).
      const double chunk = N / n;
      const double segs = std::max(1.0, std::ceil(chunk / double(segment_bytes)));
      return 2.0 * (n - 1) * alpha_us + (segs - 1) * alpha_us +
             double(n - 1) / n * N * (beta_us_per_byte + std::max(beta_us_per_byte, gamma_us_per_byte));
    }
    default:
      return 1e300;
  }
}

Algorithm select_transport_algorithm(std::size_t bytes, int n, std::size_t segment_bytes,
                                     const CostModel& model) noexcept {
  Algorithm best = Algorithm::recursive_doubling;
  double best_t = model.predict(best, bytes, n, segment_bytes);
  for (Algorithm a : {Algorithm::rabenseifner, Algorithm::ring}) {
    const double t = model.predict(a, bytes, n, segment_bytes);
    if (t < best_t) {
      best = a;
      best_t = t;
    }
  }
  return best;
}

Algorithm select_algorithm(std::size_t bytes, const Topology& topo, std::size_t segment_bytes) noexcept {
  if (topo.nodes == 1 && topo.shm && topo.local_size == topo.ranks) return Algorithm::shm;
  if (topo.shm && topo.local_size > 1 && topo.uniform) return Algorithm::hierarchical;
  return select_transport_algorithm(bytes, topo.ranks, segment_bytes);
}

}  // namespace sluice::coll
