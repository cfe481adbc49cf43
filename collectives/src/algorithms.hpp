// Allreduce algorithms over a Transport, one file each (ring.cpp, recursive_doubling.cpp,
// rabenseifner.cpp); the shared-memory and hierarchical paths live in shm_group.cpp and
// communicator.cpp. Each works in place on `buf` over a Group (a subset of the transport's
// ranks, e.g. one rail of the hierarchical path), for any group size and any count.
//
// Determinism: every element of the result is computed by exactly one fixed chain of
// operations (ring: the chunk's owner chain; rd/Rabenseifner: the pair always folds the
// lower-ranked side first), then copied, so all ranks hold identical bits, and repeated
// runs with the same group size, count, segment size and algorithm repeat them.
#pragma once

#include "transport.hpp"

#include <sluice/collectives/communicator.hpp>

#include <cstddef>
#include <vector>

namespace sluice::coll {

struct Group {
  Transport& transport;
  std::vector<int> ranks;  // transport ranks, in group order
  int me = 0;              // my index in `ranks`
  int size() const noexcept { return int(ranks.size()); }
  int peer(int index) const noexcept { return ranks[std::size_t(index)]; }
};

// What every algorithm gets for one call. `op` is never avg here: the caller reduces with
// sum and divides once at the end.
struct Call {
  DataType type;
  ReduceOp op;
  int tag;
  Watchdog& dog;
  const Options& options;
};

void ring_allreduce(Group& g, void* buf, std::size_t count, const Call& call);
void recursive_doubling_allreduce(Group& g, void* buf, std::size_t count, const Call& call);
void rabenseifner_allreduce(Group& g, void* buf, std::size_t count, const Call& call);

// Helpers shared by the algorithms.
// Exchange with one peer (both directions; zero-byte sides skipped), waiting with the watchdog.
void sendrecv(Group& g, int peer_index, const void* sbuf, std::size_t sbytes, void* rbuf, std::size_t rbytes,
              const Call& call);
// dst = op(lower, upper) where `lower` came from the lower group index (deterministic order).
void fold(const Call& call, void* dst, const void* lower, const void* upper, std::size_t count);

// Non-power-of-two wrapper (recursive doubling and Rabenseifner): ranks 2i and 2i+1 for
// i < rem fold into the odd one, the remaining p = 2^k ranks run `core` on a virtual rank,
// and the odd ones send the result back. Returns the virtual rank (-1: was folded away).
int fold_to_power_of_two_begin(Group& g, void* buf, std::size_t count, const Call& call, std::vector<char>& tmp);
void fold_to_power_of_two_end(Group& g, void* buf, std::size_t count, const Call& call);
int real_index(int virtual_rank, int rem) noexcept;
int largest_power_of_two_at_most(int n) noexcept;

}  // namespace sluice::coll
