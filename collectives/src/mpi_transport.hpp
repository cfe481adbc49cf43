// Transport over MPI point-to-point on a private duplicate of the user's communicator
// (errors returned, not fatal). Liveness: pids of ranks on this host; mismatch: MPI_Iprobe
// for a message carrying another collective's tag.
#pragma once

#include "mpi_handles.hpp"
#include "peers.hpp"
#include "transport.hpp"

#include <functional>
#include <vector>

namespace sluice::coll {

class MpiTransport final : public Transport {
 public:
  // `comm` is used, not owned (the communicator owns the duplicate).
  MpiTransport(MPI_Comm comm, const std::vector<PeerInfo>& peers);
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  std::string_view name() const noexcept override { return "mpi"; }
  int max_tag() const noexcept override { return max_tag_; }
  void isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) override;
  void irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) override;
  bool test(Request& r) override;
  void check_peer(int peer) override;
  bool foreign_message(int peer, int tag) override;
  void abandon(Request& r) noexcept override;
  void broadcast_failure(int culprit, int kind) noexcept override;
  // Called first in check_peer (the communicator hooks the node's shm failure flags in).
  void set_extra_check(std::function<void()> fn) { extra_check_ = std::move(fn); }
  // The tag reserved for failure notices; collective tags stay below it.
  int failure_tag() const noexcept { return max_tag_; }
  std::string describe(int peer) const override;

 private:
  MPI_Comm comm_;
  const std::vector<PeerInfo>& peers_;
  int rank_ = 0, size_ = 1, max_tag_ = 32767;
  std::vector<std::int64_t> notice_;        // what broadcast_failure sends (kept alive)
  std::vector<MPI_Request> notice_reqs_;
  std::function<void()> extra_check_;
};

}  // namespace sluice::coll
