// Pipelined, segmented ring: reduce-scatter (n-1 steps) then allgather (n-1 steps). Each
// of the n chunks is cut into segments; up to `ring_depth` receives are in flight, and a
// segment is forwarded to the right neighbour as soon as it has been reduced, so reduction
// overlaps transfer and the next step starts before this one ends.
#include "algorithms.hpp"

#include "reduce.hpp"

#include <algorithm>

namespace sluice::coll {

namespace {
struct Chunks {
  std::size_t count, n, seg;
  std::size_t off(std::size_t c) const { return c * (count / n) + std::min(c, count % n); }
  std::size_t len(std::size_t c) const { return count / n + (c < count % n ? 1 : 0); }
  std::size_t segments(std::size_t c) const { return (len(c) + seg - 1) / seg; }
  std::size_t seg_off(std::size_t c, std::size_t i) const { return off(c) + i * seg; }
  std::size_t seg_len(std::size_t c, std::size_t i) const { return std::min(seg, len(c) - i * seg); }
};
}  // namespace

void ring_allreduce(Group& g, void* buf, std::size_t count, const Call& call) {
  const auto n = std::size_t(g.size());
  if (count == 0 || n == 1) return;
  const auto r = std::size_t(g.me);
  const std::size_t esz = size_of(call.type);
  const Chunks ch{count, n, std::max<std::size_t>(1, call.options.ring_segment_bytes / esz)};
  const int left = int((r + n - 1) % n), right = int((r + 1) % n);
  Transport& t = g.transport;
  char* b = static_cast<char*>(buf);

  const std::size_t steps = 2 * (n - 1);
  auto send_chunk = [&](std::size_t s) { return s < n - 1 ? (r + n - s) % n : (r + 1 + n - (s - (n - 1))) % n; };
  auto recv_chunk = [&](std::size_t s) { return s < n - 1 ? (r + 2 * n - s - 1) % n : (r + n - (s - (n - 1))) % n; };

  // Every receive, in the order both sides post them: (step, segment).
  struct Item { std::size_t step, seg; };
  std::vector<Item> items;
  for (std::size_t s = 0; s < steps; ++s)
    for (std::size_t i = 0; i < ch.segments(recv_chunk(s)); ++i) items.push_back({s, i});

  const std::size_t depth = std::size_t(std::max(2, call.options.ring_depth));
  std::vector<char> tmp(depth * ch.seg * esz);
  std::vector<Request> recvs(depth);
  // One send slot per (chunk, segment): a chunk segment is re-sent only after it was
  // overwritten by a receive, and that receive waits for the earlier send.
  const std::size_t max_segs = ch.segments(0);
  std::vector<Request> sends(n * max_segs);
  // Declared after the buffers they point into, so they are abandoned before those go.
  RequestGuard recv_guard(t, recvs), send_guard(t, sends);
  auto send_slot = [&](std::size_t c, std::size_t i) -> Request& { return sends[c * max_segs + i]; };

  auto post_send = [&](std::size_t c, std::size_t i) {
    Request& rq = send_slot(c, i);
    wait_one(t, rq, call.dog);
    t.isend(g.peer(right), b + ch.seg_off(c, i) * esz, ch.seg_len(c, i) * esz, call.tag, rq);
  };
  auto post_recv = [&](std::size_t k) {
    const Item& it = items[k];
    const std::size_t c = recv_chunk(it.step);
    void* dst;
    if (it.step < n - 1) {
      dst = tmp.data() + (k % depth) * ch.seg * esz;
    } else {
      wait_one(t, send_slot(c, it.seg), call.dog);  // the allgather overwrites what we sent
      dst = b + ch.seg_off(c, it.seg) * esz;
    }
    t.irecv(g.peer(left), dst, ch.seg_len(c, it.seg) * esz, call.tag, recvs[k % depth]);
  };

  for (std::size_t k = 0; k < std::min(depth, items.size()); ++k) post_recv(k);
  for (std::size_t i = 0; i < ch.segments(send_chunk(0)); ++i) post_send(send_chunk(0), i);

  for (std::size_t k = 0; k < items.size(); ++k) {
    const Item it = items[k];
    wait_one(t, recvs[k % depth], call.dog);
    const std::size_t c = recv_chunk(it.step);
    if (it.step < n - 1) {
      char* mine = b + ch.seg_off(c, it.seg) * esz;
      // The partial sum arriving from the left holds the ranks before me in the chain.
      fold(call, mine, tmp.data() + (k % depth) * ch.seg * esz, mine, ch.seg_len(c, it.seg));
    }
    if (it.step + 1 < steps) post_send(c, it.seg);  // recv_chunk(s) == send_chunk(s + 1)
    if (k + depth < items.size()) post_recv(k + depth);
  }
  wait_all(t, sends, call.dog);
}

}  // namespace sluice::coll
