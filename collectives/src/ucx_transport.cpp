#include "ucx_transport.hpp"

#include "mpi_handles.hpp"

#include <cstdint>
#include <string>

namespace sluice::coll {

using Clock = std::chrono::steady_clock;

void ucx_check(ucs_status_t status, const std::string& what) {
  if (status == UCS_OK) return;
  throw CollectiveError(what + " failed: " + ucs_status_string(status));
}

ucs_status_t ucx_wait(ucp_worker_h worker, ucs_status_ptr_t req, Clock::time_point deadline) noexcept {
  if (req == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(req)) return UCS_PTR_STATUS(req);
  ucs_status_t st = ucp_request_check_status(req);
  while (st == UCS_INPROGRESS && Clock::now() < deadline) {
    ucp_worker_progress(worker);
    st = ucp_request_check_status(req);
  }
  ucp_request_free(req);
  return st == UCS_INPROGRESS ? UCS_ERR_TIMED_OUT : st;
}

void UcpEndpointTraits::close(UcpEndpoint e) noexcept {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucx_wait(e.worker, ucp_ep_close_nbx(e.ep, &p), Clock::now() + kUcpCloseDeadline);
}

namespace {
// What a Request's handle holds: the UCP request (null once complete) and the byte count,
// with the top bit set for a receive.
struct Handle {
  void* req;
  std::uint64_t info;
};
constexpr std::uint64_t kRecvBit = std::uint64_t{1} << 63;
constexpr std::chrono::milliseconds kAbandonGrace{50};
Handle& handle(Request& r) {
  static_assert(sizeof(Handle) <= sizeof(Request::handle) && alignof(Handle) <= 8);
  return *reinterpret_cast<Handle*>(r.handle);
}

// The wire tag: the sender's rank in the high 32 bits, the collective's tag in the low 32.
constexpr ucp_tag_t kTagBits = 0xffffffffull;
constexpr ucp_tag_t kSourceBits = ~kTagBits;
constexpr ucp_tag_t kFullMask = ~ucp_tag_t{0};
ucp_tag_t wire_tag(int source, int tag) {
  return ucp_tag_t(std::uint32_t(source)) << 32 | std::uint32_t(tag);
}
int tag_source(ucp_tag_t t) { return int(t >> 32); }
int tag_value(ucp_tag_t t) { return int(t & kTagBits); }
}  // namespace

UcxTransport::UcxTransport(MPI_Comm comm, const std::vector<PeerInfo>& peers)
    : Transport(peers, comm_rank(comm)), ep_failure_(peers.size()) {
  // Each step that can fail on one rank alone ends with agree(), so that every rank throws
  // and none is left waiting in the next collective call for a rank that threw.
  std::string error;
  UniqueUcpAddress address;
  try {
    open_worker();
    UcpAddress a{worker_.get()};
    ucx_check(ucp_worker_get_address(worker_.get(), &a.address, &a.length), "ucp_worker_get_address");
    address.reset(a);
  } catch (const CollectiveError& e) {
    error = e.what();
  }
  agree(comm, error, "set up UCX (context, worker)");

  // Worker addresses: lengths, then the bytes.
  const auto mine = std::uint64_t(address.get().length);
  const auto n = static_cast<std::size_t>(size_);
  std::vector<std::uint64_t> lengths(n);
  mpi_check(MPI_Allgather(&mine, 1, MPI_UINT64_T, lengths.data(), 1, MPI_UINT64_T, comm),
            "MPI_Allgather (UCX address lengths)");
  std::vector<int> counts(n), offsets(n);
  std::uint64_t total = 0;
  for (std::size_t q = 0; q < n; ++q) {
    counts[q] = int(lengths[q]);
    offsets[q] = int(total);
    total += lengths[q];
  }
  if (total > std::uint64_t(INT_MAX)) throw CollectiveError("ucx transport: worker addresses over 2 GiB in all");
  std::vector<char> addresses(total);
  mpi_check(MPI_Allgatherv(address.get().address, int(mine), MPI_BYTE, addresses.data(), counts.data(),
                           offsets.data(), MPI_BYTE, comm),
            "MPI_Allgatherv (UCX worker addresses)");
  address.reset();

  error.clear();
  try {
    connect(addresses, offsets);
    // Failure notices (broadcast_failure) from any rank: a receive posted for the whole
    // communicator's life, tested in check_peer.
    ucp_request_param_t p{};
    ucs_status_ptr_t req = ucp_tag_recv_nbx(worker_.get(), notice_in_.data(), sizeof notice_in_,
                                            wire_tag(0, failure_tag()), kTagBits, &p);
    if (UCS_PTR_IS_ERR(req)) ucx_check(UCS_PTR_STATUS(req), "ucp_tag_recv_nbx (failure notices)");
    notice_recv_.reset(UcpRequest{worker_.get(), req});
  } catch (const CollectiveError& e) {
    error = e.what();
  }
  agree(comm, error, "create its UCX endpoints");
}

UcxTransport::~UcxTransport() {
  // Deliver what we sent (a peer may still be receiving our last message), but never wait
  // on a dead or stuck peer; then the members close the endpoints (forced) and the rest.
  ucp_request_param_t p{};
  ucx_wait(worker_.get(), ucp_worker_flush_nbx(worker_.get(), &p), Clock::now() + kUcpCloseDeadline);
}

void UcxTransport::agree(MPI_Comm comm, const std::string& error, const char* step) const {
  const int failed = error.empty() ? size_ : rank_;
  int first = size_;
  mpi_check(MPI_Allreduce(&failed, &first, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce (UCX set-up)");
  if (!error.empty()) throw CollectiveError("ucx transport: " + error);
  if (first < size_)
    throw CollectiveError("ucx transport: " + who(first) + " could not " + step + " (its own error says why)");
}

void UcxTransport::open_worker() {
  ucp_config_t* cfg = nullptr;  // UCX_* environment variables (UCX_TLS, ...) apply
  ucx_check(ucp_config_read(nullptr, nullptr, &cfg), "ucp_config_read");
  UniqueUcpConfig config(cfg);
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG;
  ucp_context_h context = nullptr;
  ucx_check(ucp_init(&params, config.get(), &context), "ucp_init");
  context_.reset(context);
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // allreduce_async's progress thread takes over
  ucp_worker_h worker = nullptr;
  ucx_check(ucp_worker_create(context_.get(), &wp, &worker), "ucp_worker_create");
  worker_.reset(worker);
}

void UcxTransport::connect(const std::vector<char>& addresses, const std::vector<int>& offsets) {
  eps_.reserve(std::size_t(size_));
  for (int q = 0; q < size_; ++q) {
    ucp_ep_params_t p{};
    p.field_mask =
        UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    p.address = reinterpret_cast<const ucp_address_t*>(addresses.data() + offsets[std::size_t(q)]);
    p.err_mode = UCP_ERR_HANDLING_MODE_PEER;  // a lost peer fails its requests, never the process
    p.err_handler.cb = &UcxTransport::on_ep_error;
    p.err_handler.arg = &ep_failure_[std::size_t(q)];
    ucp_ep_h ep = nullptr;
    ucx_check(ucp_ep_create(worker_.get(), &p, &ep), "ucp_ep_create (to " + who(q) + ")");
    eps_.emplace_back(UcpEndpoint{worker_.get(), ep});
  }
}

void UcxTransport::on_ep_error(void* arg, ucp_ep_h, ucs_status_t status) noexcept {
  static_cast<EpFailure*>(arg)->status = status;
}

void UcxTransport::check_notice(std::chrono::milliseconds grace) {
  const auto until = Clock::now() + grace;
  ucp_tag_recv_info_t info{};
  for (;;) {
    ucp_worker_progress(worker_.get());
    if (notice_recv_ && ucp_tag_recv_request_test(notice_recv_.get().request, &info) == UCS_OK)
      throw_notice(notice_in_, tag_source(info.sender_tag));
    if (Clock::now() >= until) return;
  }
}

void UcxTransport::connection_lost(int peer, const std::string& detail) {
  run_extra_check();
  check_notice(std::chrono::milliseconds(50));
  throw PeerDied("allreduce: UCX lost the connection to " + who(peer) + " (" + detail + ")", peer);
}

void UcxTransport::fail_request(const Request& r, ucs_status_t status, const char* call) {
  const std::string detail = std::string(call) + ": " + ucs_status_string(status);
  if (ep_failure_[std::size_t(r.peer)].status != UCS_OK || status == UCS_ERR_CONNECTION_RESET ||
      status == UCS_ERR_ENDPOINT_TIMEOUT || status == UCS_ERR_UNREACHABLE)
    connection_lost(r.peer, detail);
  throw PeerError("allreduce: UCX reported an error on the exchange with " + who(r.peer) + " (" + detail + ")",
                  r.peer);
}

void UcxTransport::isend(int peer, const void* buf, std::size_t bytes, int tag, Request& r) {
  r.peer = peer;
  r.tag = tag;
  ucp_request_param_t p{};  // contiguous bytes, no callback: test() polls
  ucs_status_ptr_t req = ucp_tag_send_nbx(eps_[std::size_t(peer)].get().ep, buf, bytes, wire_tag(rank_, tag), &p);
  if (UCS_PTR_IS_ERR(req)) fail_request(r, UCS_PTR_STATUS(req), "ucp_tag_send_nbx");
  handle(r) = Handle{req, std::uint64_t(bytes)};  // null: already complete
  r.active = true;
}

void UcxTransport::irecv(int peer, void* buf, std::size_t bytes, int tag, Request& r) {
  r.peer = peer;
  r.tag = tag;
  ucp_request_param_t p{};
  ucs_status_ptr_t req = ucp_tag_recv_nbx(worker_.get(), buf, bytes, wire_tag(peer, tag), kFullMask, &p);
  if (UCS_PTR_IS_ERR(req)) fail_request(r, UCS_PTR_STATUS(req), "ucp_tag_recv_nbx");
  handle(r) = Handle{req, std::uint64_t(bytes) | kRecvBit};
  r.active = true;
}

bool UcxTransport::test(Request& r) {
  if (!r.active) return true;
  Handle& h = handle(r);
  if (h.req != nullptr) {
    ucp_worker_progress(worker_.get());
    const bool recv = (h.info & kRecvBit) != 0;
    ucp_tag_recv_info_t info{};
    const ucs_status_t st = recv ? ucp_tag_recv_request_test(h.req, &info) : ucp_request_check_status(h.req);
    if (st == UCS_INPROGRESS) return false;
    ucp_request_free(h.req);
    h.req = nullptr;
    r.active = false;
    if (st != UCS_OK) fail_request(r, st, recv ? "ucp_tag_recv_nbx" : "ucp_tag_send_nbx");
    const std::uint64_t expected = h.info & ~kRecvBit;
    if (recv && info.length != expected)
      throw PeerError("allreduce: " + who(r.peer) + " sent " + std::to_string(info.length) + " bytes where " +
                          std::to_string(expected) + " were expected (ucx)",
                      r.peer);
  }
  r.active = false;
  return true;
}

void UcxTransport::check_peer(int peer) {
  run_extra_check();
  check_notice(std::chrono::milliseconds(0));  // a failure notice from anyone names the culprit
  check_host_processes();
  // UCX saw the connection to the peer fail (a process on another host is gone).
  if (const ucs_status_t st = ep_failure_[std::size_t(peer)].status; st != UCS_OK)
    connection_lost(peer, std::string("endpoint error: ") + ucs_status_string(st));
}

bool UcxTransport::foreign_message(int peer, int tag) {
  ucp_tag_recv_info_t info{};
  if (ucp_tag_probe_nb(worker_.get(), wire_tag(peer, 0), kSourceBits, 0, &info) == nullptr) return false;
  const int t = tag_value(info.sender_tag);
  return t != tag && t != failure_tag();
}

void UcxTransport::broadcast_failure(int culprit, int kind) noexcept {
  if (notified_) return;  // once
  notified_ = true;
  notice_out_ = {std::int64_t(kind), std::int64_t(culprit)};
  std::vector<ucs_status_ptr_t> sent;
  sent.reserve(std::size_t(size_));
  for (int q = 0; q < size_; ++q) {
    if (q == rank_ || (q == culprit && kind != 3)) continue;  // a mismatching peer is alive: tell it too
    if (ep_failure_[std::size_t(q)].status != UCS_OK) continue;
    ucp_request_param_t p{};
    sent.push_back(ucp_tag_send_nbx(eps_[std::size_t(q)].get().ep, notice_out_.data(), sizeof notice_out_,
                                    wire_tag(rank_, failure_tag()), &p));
  }
  // Drive them out for a moment, but never wait on a dead or stuck receiver: what is left
  // after 100 ms is freed (and cancelled when the endpoints close).
  const auto until = Clock::now() + std::chrono::milliseconds(100);
  for (ucs_status_ptr_t req : sent) ucx_wait(worker_.get(), req, until);
}

void UcxTransport::abandon(Request& r) noexcept {
  if (!r.active) return;
  Handle& h = handle(r);
  if (h.req != nullptr) {
    // An unmatched receive is cancelled at once. One already matched (a rendezvous under way)
    // cannot be, nor can a send: let them finish for a moment before their buffers go, as
    // the peer is still moving data. What is left after that waits for the peer's next move
    // (it stalled or died) and is cancelled when the endpoints close.
    ucp_request_cancel(worker_.get(), h.req);
    ucx_wait(worker_.get(), h.req, Clock::now() + kAbandonGrace);
  }
  h.req = nullptr;
  r.active = false;
}

}  // namespace sluice::coll
