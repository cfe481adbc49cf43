#include "algorithms.hpp"

#include "reduce.hpp"

namespace sluice::coll {

void sendrecv(Group& g, int peer_index, const void* sbuf, std::size_t sbytes, void* rbuf, std::size_t rbytes,
              const Call& call) {
  Request reqs[2];
  RequestGuard guard(g.transport, reqs);
  const int peer = g.peer(peer_index);
  if (rbytes) g.transport.irecv(peer, rbuf, rbytes, call.tag, reqs[0]);
  if (sbytes) g.transport.isend(peer, sbuf, sbytes, call.tag, reqs[1]);
  wait_all(g.transport, reqs, call.dog);
}

void fold(const Call& call, void* dst, const void* lower, const void* upper, std::size_t count) {
  const void* srcs[2] = {lower, upper};
  reduce(call.type, call.op, dst, srcs, 2, count);
}

int largest_power_of_two_at_most(int n) noexcept {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

int real_index(int v, int rem) noexcept { return v < rem ? 2 * v + 1 : v + rem; }

int fold_to_power_of_two_begin(Group& g, void* buf, std::size_t count, const Call& call, std::vector<char>& tmp) {
  const int n = g.size(), r = g.me;
  const int rem = n - largest_power_of_two_at_most(n);
  const std::size_t bytes = count * size_of(call.type);
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      sendrecv(g, r + 1, buf, bytes, nullptr, 0, call);
      return -1;
    }
    tmp.resize(bytes);
    sendrecv(g, r - 1, nullptr, 0, tmp.data(), bytes, call);
    fold(call, buf, tmp.data(), buf, count);
    return r / 2;
  }
  return r - rem;
}

void fold_to_power_of_two_end(Group& g, void* buf, std::size_t count, const Call& call) {
  const int n = g.size(), r = g.me;
  const int rem = n - largest_power_of_two_at_most(n);
  const std::size_t bytes = count * size_of(call.type);
  if (r < 2 * rem) {
    if (r % 2 == 0) sendrecv(g, r + 1, nullptr, 0, buf, bytes, call);
    else sendrecv(g, r - 1, buf, bytes, nullptr, 0, call);
  }
}

}  // namespace sluice::coll
