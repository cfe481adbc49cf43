// Recursive doubling: log2(p) exchanges of the whole vector (after folding to p = 2^k).
// Latency-optimal; moves count*log2(p) bytes per rank, so only for small messages.
#include "algorithms.hpp"

#include "reduce.hpp"

namespace sluice::coll {

void recursive_doubling_allreduce(Group& g, void* buf, std::size_t count, const Call& call) {
  if (count == 0 || g.size() == 1) return;
  std::vector<char> tmp;
  const int v = fold_to_power_of_two_begin(g, buf, count, call, tmp);
  if (v >= 0) {
    const int p = largest_power_of_two_at_most(g.size());
    const int rem = g.size() - p;
    const std::size_t bytes = count * size_of(call.type);
    tmp.resize(bytes);
    for (int mask = 1; mask < p; mask <<= 1) {
      const int pv = v ^ mask;
      sendrecv(g, real_index(pv, rem), buf, bytes, tmp.data(), bytes, call);
      if (pv < v) fold(call, buf, tmp.data(), buf, count);
      else fold(call, buf, buf, tmp.data(), count);
    }
  }
  fold_to_power_of_two_end(g, buf, count, call);
}

}  // namespace sluice::coll
