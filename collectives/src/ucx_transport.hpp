// Transport over UCX: one UCP context and worker per communicator, an endpoint to every rank
// (worker addresses exchanged with MPI_Allgather at construction, MPI not used afterwards),
// tagged messages whose 64-bit tag is (source rank << 32 | collective tag), received with a
// full mask, so a receive matches one peer and one tag like MPI. Liveness, mismatch probe and
// failure notices as in MpiTransport; endpoint errors (UCP_ERR_HANDLING_MODE_PEER) name the
// peer. Only compiled when UCX was found (SLUICE_COLL_HAVE_UCX).
#pragma once

#include "transport.hpp"
#include "ucx_handles.hpp"

#include <mpi.h>

#include <climits>
#include <vector>

namespace sluice::coll {

class UcxTransport final : public Transport {
 public:
  // Collective over `comm` (used during construction only, to exchange worker addresses).
  // Every rank throws if any rank could not set UCX up (naming it), so none is left waiting.
  UcxTransport(MPI_Comm comm, const std::vector<PeerInfo>& peers);
  // Flushes what was sent (at most kUcpCloseDeadline), then closes every endpoint without
  // waiting for the peers. Never communicates beyond that flush.
  ~UcxTransport() override;

  std::string_view name() const noexcept override { return "ucx"; }
  int max_tag() const noexcept override { return INT_MAX; }  // the low 32 bits of the wire tag

  // ucp_tag_send_nbx on the peer's endpoint / ucp_tag_recv_nbx matching (peer, tag) exactly.
  void isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) override;
  void irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) override;
  // ucp_worker_progress, then the request's status; a receive of another length is an error.
  bool test(Request& r) override;
  // ucp_request_cancel, then progress for at most 50 ms while it finishes, then free.
  void abandon(Request& r) noexcept override;

  // Failure notices (a receive posted for the communicator's life), pids on this host, and
  // the peer's endpoint error.
  void check_peer(int peer) override;
  // ucp_tag_probe_nb for any tag from the peer (unexpected messages only, like MPI_Iprobe).
  bool foreign_message(int peer, int tag) override;
  // A tagged send of {kind, culprit} to every reachable rank, driven for at most 100 ms.
  void broadcast_failure(int culprit, int kind) noexcept override;

 private:
  // Set by the endpoint's error handler (UCX calls it from ucp_worker_progress).
  struct EpFailure {
    ucs_status_t status = UCS_OK;
  };
  static void on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status) noexcept;
  void open_worker();
  void connect(const std::vector<char>& addresses, const std::vector<int>& offsets);
  // Ends a set-up step: every rank learns whether every rank got through it. One that did
  // not throws `error`; the others throw an error naming the first rank that failed.
  void agree(MPI_Comm comm, const std::string& error, const char* step) const;
  [[noreturn]] void fail_request(const Request& r, ucs_status_t status, const char* call);
  // A failure notice from anyone, waiting up to `grace` for one: throws the error it names.
  void check_notice(std::chrono::milliseconds grace);
  // UCX lost the connection to `peer`: PeerDied naming it, unless a failure notice (which may
  // be just behind: the rank that sent it may have exited since) or the shm flags name another.
  [[noreturn]] void connection_lost(int peer, const std::string& detail);

  // Declaration order is the order of creation; destruction runs in reverse: the notice
  // receive is cancelled and the endpoints closed before the worker and context go.
  UniqueUcpContext context_;
  UniqueUcpWorker worker_;
  std::vector<EpFailure> ep_failure_;  // by peer; outlives the endpoints that report into it
  Notice notice_out_{};                // what broadcast_failure sends (kept alive)
  bool notified_ = false;
  std::vector<UniqueUcpEndpoint> eps_;  // by peer (one to self too)
  Notice notice_in_{};                  // a failure notice from anyone lands here
  UniqueUcpRequest notice_recv_;
};

}  // namespace sluice::coll
