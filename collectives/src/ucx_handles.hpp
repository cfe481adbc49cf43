// RAII for UCX (UCP) handles, like mpi_handles.hpp: one owner each, released exactly once
// (UniqueHandle), and ucx_check, which turns a ucs_status_t into a typed exception saying
// which call failed on what. Only compiled when UCX was found (SLUICE_COLL_HAVE_UCX).
#pragma once

#include <sluice/collectives/types.hpp>
#include <sluice/common/unique_handle.hpp>

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstddef>
#include <string>

namespace sluice::coll {

// Throws CollectiveError("<what> failed: <ucs_status_string>") unless status == UCS_OK.
void ucx_check(ucs_status_t status, const std::string& what);

// Progresses `worker` until `req` (what a *_nbx call returned: NULL, an error or a request)
// completes or `deadline` passes, then frees the request (an unfinished one is released by
// UCX when it completes). Returns its status, UCS_ERR_TIMED_OUT when the deadline came first.
ucs_status_t ucx_wait(ucp_worker_h worker, ucs_status_ptr_t req,
                      std::chrono::steady_clock::time_point deadline) noexcept;

struct UcpConfigTraits {
  static ucp_config_t* invalid() noexcept { return nullptr; }
  static void close(ucp_config_t* c) noexcept { ucp_config_release(c); }
};
using UniqueUcpConfig = UniqueHandle<ucp_config_t*, UcpConfigTraits>;

struct UcpContextTraits {
  static ucp_context_h invalid() noexcept { return nullptr; }
  static void close(ucp_context_h c) noexcept { ucp_cleanup(c); }
};
using UniqueUcpContext = UniqueHandle<ucp_context_h, UcpContextTraits>;

struct UcpWorkerTraits {
  static ucp_worker_h invalid() noexcept { return nullptr; }
  static void close(ucp_worker_h w) noexcept { ucp_worker_destroy(w); }
};
using UniqueUcpWorker = UniqueHandle<ucp_worker_h, UcpWorkerTraits>;

// The handles below are released through the worker they belong to, so they carry it.

// A worker's address (ucp_worker_get_address), released with ucp_worker_release_address.
struct UcpAddress {
  ucp_worker_h worker = nullptr;
  ucp_address_t* address = nullptr;
  std::size_t length = 0;
  bool operator==(const UcpAddress& o) const noexcept { return address == o.address; }
};
struct UcpAddressTraits {
  static UcpAddress invalid() noexcept { return {}; }
  static void close(UcpAddress a) noexcept { ucp_worker_release_address(a.worker, a.address); }
};
using UniqueUcpAddress = UniqueHandle<UcpAddress, UcpAddressTraits>;

// An endpoint. Closing never waits on the peer: a forced close (ucp_ep_close_nbx with
// UCP_EP_CLOSE_FLAG_FORCE; outstanding operations on it complete as cancelled), progressed
// for at most kUcpCloseDeadline. Flush first (ucx_wait on ucp_worker_flush_nbx) for delivery.
inline constexpr std::chrono::milliseconds kUcpCloseDeadline{200};
struct UcpEndpoint {
  ucp_worker_h worker = nullptr;
  ucp_ep_h ep = nullptr;
  bool operator==(const UcpEndpoint& o) const noexcept { return ep == o.ep; }
};
struct UcpEndpointTraits {
  static UcpEndpoint invalid() noexcept { return {}; }
  static void close(UcpEndpoint e) noexcept;
};
using UniqueUcpEndpoint = UniqueHandle<UcpEndpoint, UcpEndpointTraits>;

// An outstanding request (ucp_tag_recv_nbx): released by cancelling it (an unmatched receive
// then never writes into its buffer; a completed request is left as it is) and freeing it.
struct UcpRequest {
  ucp_worker_h worker = nullptr;
  void* request = nullptr;
  bool operator==(const UcpRequest& o) const noexcept { return request == o.request; }
};
struct UcpRequestTraits {
  static UcpRequest invalid() noexcept { return {}; }
  static void close(UcpRequest r) noexcept {
    ucp_request_cancel(r.worker, r.request);
    ucp_request_free(r.request);
  }
};
using UniqueUcpRequest = UniqueHandle<UcpRequest, UcpRequestTraits>;

}  // namespace sluice::coll
