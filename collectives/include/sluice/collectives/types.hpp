// Element types, reduction ops and algorithm names of sluice collectives, and the typed
// errors a collective throws. Kept free of MPI so kernels and tests can use it alone.
#pragma once

#include <sluice/common/error.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::coll {

// Values are part of the C API (sluice_coll_dtype_t); new ones go last.
enum class DataType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3, i32 = 4, i64 = 5 };
enum class ReduceOp : int { sum = 0, avg = 1, min = 2, max = 3, prod = 4 };
// `automatic` applies the selection rule (see collectives/README.md).
enum class Algorithm : int {
  automatic = 0,
  shm = 1,                 // one node: shared-memory reduce-scatter/allgather (or flat for tiny)
  ring = 2,                // pipelined, segmented ring over the transport
  recursive_doubling = 3,  // log2(n) exchanges of the whole vector (small messages)
  rabenseifner = 4,        // recursive-halving reduce-scatter + recursive-doubling allgather
  hierarchical = 5,        // shm reduce-scatter, per-rail allreduce across nodes, shm allgather
};
// The point-to-point transport under ring/rd/Rabenseifner and the hierarchical rails.
enum class TransportKind : int {
  mpi = 0,  // MPI point-to-point on a private duplicate of the communicator
  ucx = 1,  // UCP tagged messages (worker + endpoints; addresses exchanged over MPI)
};
inline constexpr int kDataTypeCount = 6;
inline constexpr int kReduceOpCount = 5;

std::size_t size_of(DataType t) noexcept;
std::string_view name(DataType t) noexcept;
std::string_view name(ReduceOp op) noexcept;
std::string_view name(Algorithm a) noexcept;
std::string_view name(TransportKind t) noexcept;
// "ring", "rd"/"recursive_doubling", "rabenseifner", "shm", "hierarchical", "auto".
std::optional<Algorithm> parse_algorithm(std::string_view text) noexcept;
std::optional<DataType> parse_datatype(std::string_view text) noexcept;
std::optional<ReduceOp> parse_op(std::string_view text) noexcept;
// "mpi", "ucx".
std::optional<TransportKind> parse_transport(std::string_view text) noexcept;
// Whether this build of the library has the UCX transport.
bool ucx_available() noexcept;

// --- Errors --------------------------------------------------------------------------------
// Every collective failure is a CollectiveError; failures attributable to one peer say which
// (its rank in the communicator, and its host when known).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

class PeerError : public CollectiveError {
 public:
  PeerError(const std::string& what, int peer) : CollectiveError(what), peer_(peer) {}
  int peer() const noexcept { return peer_; }

 private:
  int peer_;
};

// The peer made no progress for the communicator's timeout (stalled, or dead on another node).
class PeerTimeout : public PeerError {
 public:
  using PeerError::PeerError;
};

// The peer's process is gone (seen through its pid on this node, or its shm abort flag).
class PeerDied : public PeerError {
 public:
  using PeerError::PeerError;
};

// The peer called the collective with a different count, type, op or algorithm, or a
// different number of times.
class MismatchError : public PeerError {
 public:
  using PeerError::PeerError;
};

// A collective failed earlier on this communicator; its state is undefined, so every later
// call throws this. Destroy the communicator (and usually the job).
class BrokenCommunicator : public CollectiveError {
 public:
  using CollectiveError::CollectiveError;
};

}  // namespace sluice::coll
