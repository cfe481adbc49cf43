#include "transport.hpp"

#include <sched.h>

#include <string>

namespace sluice::coll {

void throw_timeout(Transport& t, int peer, std::chrono::milliseconds timeout, std::string_view what) {
  throw PeerTimeout("allreduce: no progress from rank " + std::to_string(peer) + " (" + t.describe(peer) +
                        ") for " + std::to_string(timeout.count()) + " ms while " + std::string(what) +
                        " over " + std::string(t.name()) + "; it stalled or died",
                    peer);
}

std::string Transport::describe(int peer) const {
  const PeerInfo& p = peers_[std::size_t(peer)];
  return "host " + p.host + ", pid " + std::to_string(p.pid);
}

void Transport::throw_notice(const Notice& notice, int reporter) const {
  const int culprit = notice[1] >= 0 && notice[1] < size() ? int(notice[1]) : reporter;
  const std::string seen = " (reported by rank " + std::to_string(reporter) + ")";
  if (notice[0] == 3) throw MismatchError("allreduce: " + who(culprit) + " called a different allreduce" + seen, culprit);
  if (notice[0] == 2) throw PeerTimeout("allreduce: " + who(culprit) + " stalled" + seen, culprit);
  throw PeerDied("allreduce: " + who(culprit) + " failed" + seen, culprit);
}

void Transport::check_host_processes() const {
  for (int q = 0; q < size(); ++q) {
    const PeerInfo& p = peers_[std::size_t(q)];
    if (q != rank() && p.same_host && !process_alive(p.pid)) {
      // It may have reported a failure it saw before it went: that names the real culprit.
      run_extra_check();
      throw PeerDied("allreduce: " + who(q) + " died", q);
    }
  }
}

void wait_all(Transport& t, std::span<Request> reqs, Watchdog& dog) {
  std::size_t open = 0;
  for (Request& r : reqs) open += r.active ? 1 : 0;
  using clock = std::chrono::steady_clock;
  auto last_check = clock::now();
  clock::time_point foreign_since{};  // a request's peer has sent another call's message since
  while (open > 0) {
    bool moved = false;
    for (Request& r : reqs) {
      if (r.active && t.test(r)) {
        --open;
        moved = true;
      }
    }
    if (moved) {
      dog.progress();
      foreign_since = {};
      continue;
    }
    if (t.oversubscribed) sched_yield();
    const auto now = clock::now();
    if (now - last_check < std::chrono::milliseconds(10)) continue;
    last_check = now;
    bool foreign = false;
    for (Request& r : reqs) {
      if (!r.active) continue;
      t.check_peer(r.peer);
      if (t.foreign_message(r.peer, r.tag)) {
        foreign = true;
        if (foreign_since == clock::time_point{}) foreign_since = now;
        if (now - foreign_since > kMismatchGrace)
          throw MismatchError("allreduce: " + t.who(r.peer) +
                                  " called a different allreduce (count, type, op or algorithm differ, or it "
                                  "called allreduce a different number of times)",
                              r.peer);
      }
    }
    if (!foreign) foreign_since = {};
    if (dog.expired()) {
      for (Request& r : reqs)
        if (r.active) throw_timeout(t, r.peer, dog.timeout(), "exchanging data with it");
    }
  }
}

}  // namespace sluice::coll
