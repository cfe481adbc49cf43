// The ranks of one node reducing through one shared-memory segment (one copy in, one copy
// out; no loopback through a network stack). Synchronisation is by per-rank sequence numbers
// in the segment (release/acquire), polled with a deadline, the peers' pids and their
// failure flags: no MPI call on the data path.
//
// Two protocols over the same slots and sequence numbers:
//   flat  (count*size <= shm_flat_bytes): every rank copies its whole vector in, then every
//         rank reduces all L vectors (rank order) into its output. One synchronisation.
//   steps (larger): the vector is cut into steps of shm_step_bytes; within a step rank r owns
//         share r: it reduces share r of all L inputs (rank order) into its result area, and
//         every rank copies the L results out. Two synchronisations per step, two slots, so
//         step s+1's copy-in overlaps step s's copy-out.
// Both fold the L inputs in rank order with f32 accumulation for f16/bf16 and one rounding,
// so the result does not depend on the protocol or the step size.
#pragma once

#include "peers.hpp"
#include "transport.hpp"

#include <sluice/collectives/communicator.hpp>

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sluice::coll {

// Shared mapping, unmapped exactly once.
class ShmMapping {
 public:
  ShmMapping() = default;
  ShmMapping(void* p, std::size_t len) : p_(p), len_(len) {}
  ShmMapping(ShmMapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), len_(o.len_) {}
  ShmMapping& operator=(ShmMapping&& o) noexcept;
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;
  ~ShmMapping();
  char* data() const noexcept { return static_cast<char*>(p_); }
  std::size_t size() const noexcept { return len_; }

 private:
  void* p_ = nullptr;
  std::size_t len_ = 0;
};

class ShmGroup {
 public:
  // Collective over `local` (the ranks of this node). `local_to_global[i]` is local rank
  // i's rank in the communicator (for error messages). Throws SystemError if the segment
  // cannot be created or mapped on any rank (all ranks throw). `host_oversubscribed`: more
  // ranks of the job on this host than CPUs, so waits yield early instead of spinning.
  ShmGroup(MPI_Comm local, std::vector<int> local_to_global, const std::vector<PeerInfo>& peers,
           const Options& options, bool host_oversubscribed);
  ~ShmGroup();
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  // Called by a rank on its reduced share of a step (hierarchical: the inter-node part), with
  // the share's first element index in the whole vector, before the other local ranks read it.
  using ShareHook = std::function<void(void* share, std::size_t count, std::size_t first)>;

  // recv = op over the node's ranks of send (send == recv: in place). For op avg the node
  // sum is divided by `avg_divisor`. `signature` identifies the call (count, type, op,
  // algorithm); a peer publishing another one is a MismatchError.
  void allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                 std::size_t avg_divisor, std::uint64_t signature, Watchdog& dog,
                 const ShareHook* hook = nullptr);

  // After any failure: tells the other local ranks (they fail at once, naming `culprit`,
  // global rank). kind: 1 died, 2 timed out, 3 mismatched call.
  void mark_failed(int culprit, int kind) noexcept;

  // Throws what another local rank reported through mark_failed(), if any (the transport
  // calls it while stalled, so a failure seen on this node propagates without MPI).
  void check_failures();

  int local_rank() const noexcept { return me_; }
  int local_size() const noexcept { return size_; }

 private:
  struct Control;
  struct InlineLine;
  static constexpr std::size_t kInlineBytes = 48;
  static constexpr std::size_t kInlineStride = 4;  // lines per rank (2 used): 256 B apart
  Control& ctl(int local) const noexcept;
  InlineLine& inline_line(int local, std::uint64_t step) const noexcept;
  char* input_area(int local, std::uint64_t step) const noexcept;
  char* result_area(int local, std::uint64_t step) const noexcept;
  enum class Field { in, red, tiny };
  void wait_all_at_least(Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature);
  void wait_at_least(int q, Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature);
  [[noreturn]] void throw_reported(int q, std::uint64_t bad);
  [[noreturn]] void fail_peer(int q, const std::string& why, int kind);
  void publish(Field f, std::uint64_t value) noexcept;

  void tiny(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
            std::uint64_t signature, Watchdog& dog);
  void flat(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
            std::uint64_t signature, Watchdog& dog);
  void stepped(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
               std::uint64_t signature, Watchdog& dog, const ShareHook* hook);

  std::vector<int> to_global_;
  const std::vector<PeerInfo>& peers_;
  int me_ = 0, size_ = 1;
  std::size_t step_bytes_ = 0;   // input area per rank per slot
  std::size_t result_bytes_ = 0; // result area per rank per slot
  std::size_t flat_bytes_ = 0;
  std::size_t stream_bytes_ = 0;  // outputs this big are written with non-temporal stores
  std::size_t slot_stride_ = 0;  // bytes per (rank, slot)
  std::size_t data_offset_ = 0;
  std::size_t inline_offset_ = 0;
  static constexpr int kSlots = 2;
  std::uint64_t seq_ = 0;  // last step published by this rank
  int spin_before_yield_ = 0;
  ShmMapping map_;
};

}  // namespace sluice::coll
