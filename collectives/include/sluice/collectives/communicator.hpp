// sluice collectives, C++ API: a communicator built from an MPI communicator, and allreduce.
//
//   MPI_Init(...);
//   sluice::coll::Communicator comm(MPI_COMM_WORLD);          // collective over the MPI comm
//   comm.allreduce(grad.data(), grad.data(), grad.size(),      // in place
//                  sluice::coll::DataType::f32, sluice::coll::ReduceOp::avg);
//
// Layering (collectives/README.md): Communicator -> algorithms (one file each) ->
// Transport (MPI point-to-point or UCX) and ShmGroup (ranks of one node) -> reduction kernels.
#pragma once

#include <sluice/collectives/types.hpp>

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

namespace sluice::coll {

// Communicator-wide settings. from_environment() reads the SLUICE_COLL_* variables
// (documented in collectives/README.md) over these defaults.
struct Options {
  // No progress from a peer for this long -> PeerTimeout naming it. SLUICE_COLL_TIMEOUT_MS.
  std::chrono::milliseconds timeout{300'000};
  // Default algorithm for every call (automatic = the selection rule). SLUICE_ALLREDUCE_ALGO.
  Algorithm algorithm = Algorithm::automatic;
  // Point-to-point transport of ring/rd/Rabenseifner and the hierarchical rails (the shm path
  // does not use it). SLUICE_COLL_TRANSPORT=mpi|ucx. ucx needs a build with UCX
  // (ucx_available()); otherwise the constructor throws InvalidArgument.
  TransportKind transport = TransportKind::mpi;
  // Detect ranks calling with different count/type/op (cheap; on by default). SLUICE_COLL_CHECK.
  bool check_signature = true;
  // Use shared memory between ranks of one node. SLUICE_COLL_SHM=0 turns it off.
  bool shm = true;
  // Bytes reduced per shared-memory pipeline step (all ranks together). SLUICE_COLL_SHM_STEP.
  std::size_t shm_step_bytes = std::size_t{1} << 20;
  // At or below this many bytes the shm path does one flat exchange. SLUICE_COLL_SHM_FLAT.
  std::size_t shm_flat_bytes = 16 * 1024;
  // Outputs of at least this many bytes are written with non-temporal stores (they would not
  // stay in cache anyway). SLUICE_COLL_SHM_STREAM.
  std::size_t shm_stream_bytes = std::size_t{16} << 20;
  // The same for the direct protocol (buffers from allocate_shared), whose outputs are all
  // written by other cores. 0: when the node's inputs and outputs of the call together
  // (2 x local ranks x bytes) exceed the last-level cache. SLUICE_COLL_SHM_DIRECT_STREAM.
  std::size_t shm_direct_stream_bytes = 0;
  // Ring segment size and segments in flight. SLUICE_COLL_RING_SEGMENT, SLUICE_COLL_RING_DEPTH.
  std::size_t ring_segment_bytes = 256 * 1024;
  int ring_depth = 4;
  // allreduce_async: tensors of one type and op are fused into buckets up to this many bytes
  // (SLUICE_COLL_FUSION_BYTES), and the progress thread agrees with the other ranks on what
  // is ready at least once per cycle (SLUICE_COLL_CYCLE_US).
  std::size_t fusion_bytes = std::size_t{64} << 20;
  std::chrono::microseconds cycle{1000};
  // CUDA device buffers (detected with the CUDA driver, loaded at run time when present) are
  // staged through pinned host memory in chunks of this many bytes, SLUICE_COLL_CUDA_CHUNK_BYTES;
  // when any rank has the driver, host buffers above one chunk are reduced in the same chunks
  // (collectives/README.md). SLUICE_COLL_CUDA=0: no detection, no chunking (host pointers only).
  bool cuda = true;
  std::size_t cuda_chunk_bytes = std::size_t{4} << 20;

  static Options from_environment();
};

// The result of allreduce_async: completed by the communicator's progress thread.
class AllreduceHandle {
 public:
  AllreduceHandle() = default;
  bool valid() const noexcept { return state_ != nullptr; }
  // True once done; throws the collective's error if it failed.
  bool test() const;
  // Blocks until done; throws the collective's error if it failed.
  void wait() const;

  struct State;

 private:
  friend class Communicator;
  explicit AllreduceHandle(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

// Memory that every rank of this node maps (Communicator::allocate_shared). An allreduce whose
// send and recv buffers lie in such memory on every rank of the node reduces straight from the
// ranks' inputs into all their outputs: no copy through the staging segment, about half the
// memory traffic. Move-only; the memory stays valid (and mapped by the peers that still hold
// theirs) until this object is destroyed, also after its communicator.
class SharedBuffer {
 public:
  SharedBuffer() = default;
  void* data() const noexcept;
  std::size_t size() const noexcept;
  explicit operator bool() const noexcept { return region_ != nullptr; }
  template <typename T>
  std::span<T> as() const noexcept {
    return {static_cast<T*>(data()), size() / sizeof(T)};
  }

  struct Region;

 private:
  friend class Communicator;
  explicit SharedBuffer(std::shared_ptr<Region> r) : region_(std::move(r)) {}
  std::shared_ptr<Region> region_;
};

// One gradient for average_gradients (send == nullptr or send == recv: in place).
struct Tensor {
  const void* send;
  void* recv;
  std::size_t count;
  DataType type;
};

// Per call.
struct AllreduceOptions {
  Algorithm algorithm = Algorithm::automatic;  // automatic: the communicator's default/rule
};

class Communicator {
 public:
  // Collective over `comm` (which is duplicated; the caller keeps ownership of `comm`).
  // Exchanges host and pid of every rank, finds the ranks of this node (placement record
  // SLUICE_PLACEMENT when present, else MPI_Comm_split_type) and maps the node's shm segment.
  explicit Communicator(MPI_Comm comm, Options options = Options::from_environment());
  ~Communicator();
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const noexcept;
  int size() const noexcept;
  int local_rank() const noexcept;  // index among the ranks of this node
  int local_size() const noexcept;
  int node_count() const noexcept;
  bool uniform_nodes() const noexcept;  // every node has local_size() ranks
  const Options& options() const noexcept;

  // recv[i] = op over ranks of send[i]. send == recv (or send == nullptr) means in place.
  // Either buffer may be CUDA device memory (staged through pinned host memory), on any rank.
  // Collective: every rank calls with the same count, type and op. Throws PeerError
  // subclasses (naming the peer) on failure; after one, the communicator is broken.
  void allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                 const AllreduceOptions& call = {});

  template <typename T>
  void allreduce(std::span<const T> send, std::span<T> recv, ReduceOp op, const AllreduceOptions& call = {});

  // A zero-filled, page-aligned buffer of `bytes` for this rank that the other ranks of its
  // node map too (see SharedBuffer). Collective over the communicator: every rank calls it,
  // in the same order relative to its other collective calls (sizes may differ), before the
  // first allreduce_async (afterwards it throws InvalidArgument: the progress thread owns the
  // communicator). Without shared memory (SLUICE_COLL_SHM=0, one rank
  // on the node) it is private memory and allreduce treats it like any buffer. All or none:
  // the rank that could not get its part throws SystemError, every other rank Error. On one
  // node it uses no MPI and waits at most Options::timeout for the others (then PeerTimeout).
  // Once a node has made one, calls above the flat limit on other memory pay two more
  // synchronisations (~1 us) to agree that the direct protocol does not apply. After a
  // failure, drop these buffers with the communicator: a peer still inside the failed call
  // may write into them.
  SharedBuffer allocate_shared(std::size_t bytes);

  // Queues an allreduce for the progress thread (started by the first call) and returns at
  // once. Every rank must submit the same tensors in the same order; consecutive tensors of
  // one type and op are fused. Buffers must stay valid until the handle completes. While the
  // thread runs, allreduce() goes through it too (one thread drives the communicator). The
  // thread calls MPI unless the communicator is one node with shared memory or uses the UCX
  // transport: then any MPI thread level works, otherwise MPI_Init_thread(MPI_THREAD_MULTIPLE)
  // is required.
  // The destructor is then collective (every rank's thread must stop).
  AllreduceHandle allreduce_async(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op);
  // Gradient averaging in one call: every tensor averaged over the ranks (fused), waits.
  void average_gradients(std::span<const Tensor> tensors);

  // What `automatic` would choose for `bytes` on this communicator (after the env override).
  Algorithm select(std::size_t bytes, const AllreduceOptions& call = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

template <typename T>
constexpr DataType datatype_of() {
  if constexpr (std::is_same_v<T, float>) return DataType::f32;
  else if constexpr (std::is_same_v<T, double>) return DataType::f64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DataType::i32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DataType::i64;
  else static_assert(sizeof(T) == 0, "use the void* overload for f16/bf16 (uint16_t storage)");
}

template <typename T>
void Communicator::allreduce(std::span<const T> send, std::span<T> recv, ReduceOp op,
                             const AllreduceOptions& call) {
  if (send.size() != recv.size()) throw InvalidArgument("allreduce: send and recv sizes differ");
  allreduce(send.data(), recv.data(), recv.size(), datatype_of<T>(), op, call);
}

}  // namespace sluice::coll
