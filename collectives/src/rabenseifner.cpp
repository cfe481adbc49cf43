// Rabenseifner: reduce-scatter by recursive halving, then allgather by recursive doubling
// (after folding to p = 2^k). Bandwidth-optimal in bytes moved (2(p-1)/p * N) with only
// 2*log2(p) messages: the middle sizes between recursive doubling and the ring.
#include "algorithms.hpp"

#include "reduce.hpp"

namespace sluice::coll {

void rabenseifner_allreduce(Group& g, void* buf, std::size_t count, const Call& call) {
  if (count == 0 || g.size() == 1) return;
  std::vector<char> tmp;
  const int v = fold_to_power_of_two_begin(g, buf, count, call, tmp);
  if (v >= 0) {
    const int p = largest_power_of_two_at_most(g.size());
    const int rem = g.size() - p;
    const std::size_t esz = size_of(call.type);
    char* b = static_cast<char*>(buf);
    tmp.resize((count / 2 + 1) * esz);
    // Ranges kept at each level, to walk back in the allgather.
    struct Level { std::size_t lo, hi, mid; int partner; bool lower; };
    std::vector<Level> levels;
    std::size_t lo = 0, hi = count;
    for (int mask = p / 2; mask >= 1; mask >>= 1) {
      const int pv = v ^ mask;
      const bool lower = (v & mask) == 0;
      const std::size_t mid = lo + (hi - lo) / 2;
      const std::size_t keep_lo = lower ? lo : mid, keep_hi = lower ? mid : hi;
      const std::size_t give_lo = lower ? mid : lo, give_hi = lower ? hi : mid;
      sendrecv(g, real_index(pv, rem), b + give_lo * esz, (give_hi - give_lo) * esz, tmp.data(),
               (keep_hi - keep_lo) * esz, call);
      char* mine = b + keep_lo * esz;
      if (lower) fold(call, mine, mine, tmp.data(), keep_hi - keep_lo);
      else fold(call, mine, tmp.data(), mine, keep_hi - keep_lo);
      levels.push_back({lo, hi, mid, pv, lower});
      lo = keep_lo;
      hi = keep_hi;
    }
    for (auto it = levels.rbegin(); it != levels.rend(); ++it) {
      const std::size_t keep_lo = it->lower ? it->lo : it->mid, keep_hi = it->lower ? it->mid : it->hi;
      const std::size_t give_lo = it->lower ? it->mid : it->lo, give_hi = it->lower ? it->hi : it->mid;
      sendrecv(g, real_index(it->partner, rem), b + keep_lo * esz, (keep_hi - keep_lo) * esz, b + give_lo * esz,
               (give_hi - give_lo) * esz, call);
    }
  }
  fold_to_power_of_two_end(g, buf, count, call);
}

}  // namespace sluice::coll
