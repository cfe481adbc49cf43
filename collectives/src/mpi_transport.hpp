// Transport over MPI point-to-point on a private duplicate of the user's communicator
// (errors returned, not fatal). Liveness: pids of ranks on this host; mismatch: MPI_Iprobe
// for a message carrying another collective's tag.
#pragma once

#include "mpi_handles.hpp"
#include "peers.hpp"
#include "transport.hpp"

#include <vector>

namespace sluice::coll {

class MpiTransport final : public Transport {
 public:
  // `comm` is used, not owned (the communicator owns the duplicate).
  MpiTransport(MPI_Comm comm, const std::vector<PeerInfo>& peers);
  std::string_view name() const noexcept override { return "mpi"; }
  int max_tag() const noexcept override { return max_tag_; }
  void isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) override;
  void irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) override;
  bool test(Request& r) override;
  void check_peer(int peer) override;
  bool foreign_message(int peer, int tag) override;
  void abandon(Request& r) noexcept override;
  void broadcast_failure(int culprit, int kind) noexcept override;

 private:
  MPI_Comm comm_;
  int max_tag_ = 32767;
  Notice notice_{};  // what broadcast_failure sends (kept alive)
  bool notified_ = false;
  std::vector<MPI_Request> notice_reqs_;
};

}  // namespace sluice::coll
