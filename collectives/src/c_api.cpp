// The C API: every call catches, maps the exception type to a status code and keeps the
// message (and the peer it names) per thread.
#include <sluice/collectives.h>
#include <sluice/collectives/communicator.hpp>

#include <map>
#include <string>

struct sluice_coll_comm {
  sluice::coll::Communicator comm;
  std::map<void*, sluice::coll::SharedBuffer> shared;  // by data(): sluice_coll_alloc_shared
};

namespace {
thread_local std::string last_error;
thread_local int last_peer = -1;

template <typename F>
int guarded(F&& f) noexcept {
  using namespace sluice::coll;
  last_error.clear();
  last_peer = -1;
  auto fail = [](int code, const std::exception& e, int peer = -1) {
    try {
      last_error = e.what();
    } catch (...) {
    }
    last_peer = peer;
    return code;
  };
  try {
    f();
    return SLUICE_COLL_OK;
  } catch (const PeerTimeout& e) {
    return fail(SLUICE_COLL_ERR_TIMEOUT, e, e.peer());
  } catch (const PeerDied& e) {
    return fail(SLUICE_COLL_ERR_PEER_DIED, e, e.peer());
  } catch (const MismatchError& e) {
    return fail(SLUICE_COLL_ERR_MISMATCH, e, e.peer());
  } catch (const PeerError& e) {
    return fail(SLUICE_COLL_ERR_OTHER, e, e.peer());
  } catch (const BrokenCommunicator& e) {
    return fail(SLUICE_COLL_ERR_BROKEN, e);
  } catch (const sluice::InvalidArgument& e) {
    return fail(SLUICE_COLL_ERR_INVALID, e);
  } catch (const std::exception& e) {
    return fail(SLUICE_COLL_ERR_OTHER, e);
  } catch (...) {
    last_error = "unknown error";
    return SLUICE_COLL_ERR_OTHER;
  }
}
}  // namespace

extern "C" {

int sluice_coll_comm_create(MPI_Comm comm, sluice_coll_comm_t* out) {
  if (!out) return SLUICE_COLL_ERR_INVALID;
  *out = nullptr;
  return guarded([&] { *out = new sluice_coll_comm{sluice::coll::Communicator(comm), {}}; });
}

int sluice_coll_comm_create_f(MPI_Fint comm, sluice_coll_comm_t* out) {
  return sluice_coll_comm_create(MPI_Comm_f2c(comm), out);
}

int sluice_coll_comm_destroy(sluice_coll_comm_t comm) {
  return guarded([&] { delete comm; });
}

int sluice_coll_comm_rank(sluice_coll_comm_t comm) { return comm ? comm->comm.rank() : -1; }
int sluice_coll_comm_size(sluice_coll_comm_t comm) { return comm ? comm->comm.size() : -1; }

int sluice_coll_allreduce(sluice_coll_comm_t comm, const void* send, void* recv, size_t count,
                          sluice_coll_dtype_t dtype, sluice_coll_op_t op, sluice_coll_algo_t algo) {
  return guarded([&] {
    if (!comm) throw sluice::InvalidArgument("sluice_coll_allreduce: null communicator");
    if (int(algo) < 0 || int(algo) > int(sluice::coll::Algorithm::hierarchical))
      throw sluice::InvalidArgument("sluice_coll_allreduce: unknown algorithm " + std::to_string(int(algo)));
    comm->comm.allreduce(send, recv, count, sluice::coll::DataType(dtype), sluice::coll::ReduceOp(op),
                         {sluice::coll::Algorithm(algo)});
  });
}

int sluice_coll_alloc_shared(sluice_coll_comm_t comm, size_t bytes, void** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!comm) throw sluice::InvalidArgument("sluice_coll_alloc_shared: null communicator");
    sluice::coll::SharedBuffer b = comm->comm.allocate_shared(bytes);
    // After the collective, so that the other ranks are not left waiting for this one.
    if (!out) throw sluice::InvalidArgument("sluice_coll_alloc_shared: null output pointer");
    void* p = b.data();
    comm->shared.emplace(p, std::move(b));
    *out = p;
  });
}

int sluice_coll_free_shared(sluice_coll_comm_t comm, void* p) {
  return guarded([&] {
    if (!comm) throw sluice::InvalidArgument("sluice_coll_free_shared: null communicator");
    if (!p) return;
    if (comm->shared.erase(p) == 0)
      throw sluice::InvalidArgument("sluice_coll_free_shared: not a buffer from sluice_coll_alloc_shared on this communicator");
  });
}

const char* sluice_coll_last_error(void) { return last_error.c_str(); }
int sluice_coll_last_error_peer(void) { return last_peer; }

}  // extern "C"
