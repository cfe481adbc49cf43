#include "mpi_transport.hpp"

#include <climits>
#include <cstring>

namespace sluice::coll {

void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw CollectiveError(std::string(call) + " failed: " + std::string(msg, std::size_t(len)));
}

namespace {
MPI_Request& handle(Request& r) {
  static_assert(sizeof(MPI_Request) <= sizeof(Request::handle));
  return *reinterpret_cast<MPI_Request*>(r.handle);
}
int checked_count(std::size_t bytes) {
  if (bytes > std::size_t(INT_MAX)) throw CollectiveError("mpi transport: message over 2 GiB");
  return int(bytes);
}
}  // namespace

MpiTransport::MpiTransport(MPI_Comm comm, const std::vector<PeerInfo>& peers)
    : Transport(peers, comm_rank(comm)), comm_(comm) {
  int* ub = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(comm_, MPI_TAG_UB, &ub, &flag);
  if (flag && ub) max_tag_ = *ub;
}

void MpiTransport::isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) {
  r.peer = peer;
  r.tag = tag;
  mpi_check(MPI_Isend(buf, checked_count(bytes), MPI_BYTE, peer, tag, comm_, &handle(r)), "MPI_Isend");
  r.active = true;
}

void MpiTransport::irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) {
  r.peer = peer;
  r.tag = tag;
  mpi_check(MPI_Irecv(buf, checked_count(bytes), MPI_BYTE, peer, tag, comm_, &handle(r)), "MPI_Irecv");
  r.active = true;
}

bool MpiTransport::test(Request& r) {
  if (!r.active) return true;
  int done = 0;
  MPI_Status st;
  const int rc = MPI_Test(&handle(r), &done, &st);
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    r.active = false;
    throw PeerError("allreduce: MPI reported an error on the exchange with rank " + std::to_string(r.peer) +
                        " (" + describe(r.peer) + "): " + std::string(msg, std::size_t(len)),
                    r.peer);
  }
  if (done) r.active = false;
  return done != 0;
}

void MpiTransport::check_peer(int) {
  run_extra_check();
  // A failure notice from anyone names the culprit.
  int flag = 0;
  MPI_Status st;
  if (MPI_Iprobe(MPI_ANY_SOURCE, failure_tag(), comm_, &flag, &st) == MPI_SUCCESS && flag) {
    Notice msg = {0, -1};
    MPI_Recv(msg.data(), 2, MPI_INT64_T, st.MPI_SOURCE, failure_tag(), comm_, MPI_STATUS_IGNORE);
    throw_notice(msg, st.MPI_SOURCE);
  }
  check_host_processes();
}

bool MpiTransport::foreign_message(int peer, int tag) {
  int flag = 0;
  MPI_Status st;
  return MPI_Iprobe(peer, MPI_ANY_TAG, comm_, &flag, &st) == MPI_SUCCESS && flag && st.MPI_TAG != tag &&
         st.MPI_TAG != failure_tag();
}

void MpiTransport::broadcast_failure(int culprit, int kind) noexcept {
  if (notified_) return;  // once
  notified_ = true;
  notice_ = {std::int64_t(kind), std::int64_t(culprit)};
  for (int q = 0; q < size_; ++q) {
    if (q == rank_ || (q == culprit && kind != 3)) continue;  // a mismatching peer is alive: tell it too
    MPI_Request r = MPI_REQUEST_NULL;
    if (MPI_Isend(notice_.data(), 2, MPI_INT64_T, q, failure_tag(), comm_, &r) == MPI_SUCCESS) notice_reqs_.push_back(r);
  }
  // Drive them out for a moment (an eager send may still need progress), but never wait on
  // a dead or stuck receiver: what is left after 100 ms is freed, not cancelled.
  const double until = MPI_Wtime() + 0.1;
  int done = 0;
  while (!done && MPI_Wtime() < until)
    if (MPI_Testall(int(notice_reqs_.size()), notice_reqs_.data(), &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) break;
  for (MPI_Request& r : notice_reqs_)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
}

void MpiTransport::abandon(Request& r) noexcept {
  if (!r.active) return;
  MPI_Request& h = handle(r);
  MPI_Cancel(&h);
  MPI_Request_free(&h);
  r.active = false;
}

}  // namespace sluice::coll
