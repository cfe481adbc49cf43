// The transport layer (Gloo-style): point-to-point, non-blocking, tagged, between the ranks
// of one communicator. Algorithms see only this interface; every wait goes through
// wait_all()/Watchdog, so every wait has a deadline and names the peer it waited on.
#pragma once

#include "peers.hpp"

#include <sluice/collectives/types.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace sluice::coll {

// One outstanding operation. The transport keeps its native handle in `handle`.
struct Request {
  int peer = -1;
  int tag = 0;
  bool active = false;
  alignas(8) unsigned char handle[16] = {};
};

// "No progress for `timeout`": reset at every completion; expired() is cheap to call in a
// spin. The clock starts at the first expired()/progress() call, so a call that never has to
// wait never reads the clock (the tiny shm path is a few hundred nanoseconds).
class Watchdog {
 public:
  explicit Watchdog(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  void progress() { deadline_ = {}; }  // restarts the clock at the next expired()
  bool expired() {
    const auto now = std::chrono::steady_clock::now();
    if (deadline_ == std::chrono::steady_clock::time_point{}) deadline_ = now + timeout_;
    return now > deadline_;
  }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point deadline_{};
};

class Transport {
 public:
  // `peers` (host/pid of every rank) is used, not owned: it outlives the transport.
  Transport(const std::vector<PeerInfo>& peers, int rank) : peers_(peers), rank_(rank), size_(int(peers.size())) {}
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  virtual std::string_view name() const noexcept = 0;
  // The biggest tag value a caller may use. It is itself reserved for failure notices
  // (failure_tag()): the communicator's tags stay below it.
  virtual int max_tag() const noexcept = 0;
  int failure_tag() const noexcept { return max_tag(); }

  // Start a send/receive of `bytes` (> 0) to/from `peer`. The buffer must stay valid and
  // untouched until the request completes.
  virtual void isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) = 0;
  virtual void irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) = 0;
  // Drive progress; true (and r.active = false) once `r` completed.
  virtual bool test(Request& r) = 0;
  // Called while a wait on `peer` makes no progress: throws PeerDied when a process of the
  // job on this host is gone, or the error another rank reported (broadcast_failure).
  virtual void check_peer(int peer) = 0;
  // True when `peer` has sent us a message with another tag than `tag` (another collective
  // call). Legitimate for a moment (the peer may already be one call ahead while our
  // request completes); wait_all calls it a mismatch when it lasts (kMismatchGrace).
  virtual bool foreign_message(int peer, int tag) = 0;
  // More ranks than CPUs on this host: waits yield the CPU instead of spinning.
  bool oversubscribed = false;
  // The peer's rank as text for messages ("rank 3 (host n1, pid 42)").
  std::string who(int peer) const { return "rank " + std::to_string(peer) + " (" + describe(peer) + ")"; }
  // Host and pid of a peer, for error messages ("host n1, pid 42").
  std::string describe(int peer) const;
  // Called first in check_peer (the communicator hooks the node's shm failure flags in).
  void set_extra_check(std::function<void()> fn) { extra_check_ = std::move(fn); }
  // After a failure: give up outstanding requests without waiting for them.
  virtual void abandon(Request& r) noexcept = 0;
  // After a failure: tell every other rank, best effort and without waiting, that `culprit`
  // failed (kind: 1 died, 2 timed out, 3 mismatched). A rank stuck in a wait sees it in
  // check_peer() and fails naming `culprit`, instead of timing out on an innocent neighbour.
  virtual void broadcast_failure(int culprit, int kind) noexcept = 0;

 protected:
  // What broadcast_failure sends, {kind, culprit}, the same on every transport.
  using Notice = std::array<std::int64_t, 2>;
  // A notice received from rank `reporter`: throws the error it names.
  [[noreturn]] void throw_notice(const Notice& notice, int reporter) const;
  // The shm failure flags (set_extra_check), or nothing.
  void run_extra_check() const {
    if (extra_check_) extra_check_();
  }
  // Any process of this job on this host that is gone (not only the peer waited on: in a ring
  // we may be waiting on a live neighbour that waits on the dead one) -> PeerDied naming it.
  void check_host_processes() const;

  const std::vector<PeerInfo>& peers_;
  const int rank_, size_;

 private:
  std::function<void()> extra_check_;
};

// Owns a set of requests for their lifetime: when an error unwinds the stack, the requests
// still open are abandoned (cancelled and freed) before their buffers go away, so a late
// message can never land in freed memory. On success every request is complete: no-op.
class RequestGuard {
 public:
  RequestGuard(Transport& t, std::span<Request> reqs) noexcept : t_(t), reqs_(reqs) {}
  ~RequestGuard() {
    for (Request& r : reqs_)
      if (r.active) t_.abandon(r);
  }
  RequestGuard(const RequestGuard&) = delete;
  RequestGuard& operator=(const RequestGuard&) = delete;

 private:
  Transport& t_;
  std::span<Request> reqs_;
};

// Waits for every active request in `reqs`. Progress resets the watchdog. While stalled it
// asks the transport about the peers still owed (about every 10 ms), and on expiry throws
// PeerTimeout naming the first peer whose request is still open.
void wait_all(Transport& t, std::span<Request> reqs, Watchdog& dog);
inline constexpr std::chrono::milliseconds kMismatchGrace{200};
inline void wait_one(Transport& t, Request& r, Watchdog& dog) { wait_all(t, std::span<Request>(&r, 1), dog); }
[[noreturn]] void throw_timeout(Transport& t, int peer, std::chrono::milliseconds timeout, std::string_view what);

}  // namespace sluice::coll
