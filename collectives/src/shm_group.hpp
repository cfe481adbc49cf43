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
//   direct (larger, and every rank's send and recv lie in memory from allocate_shared(), which
//         every local rank maps): rank r reduces share r straight from all L inputs and writes
//         it into all L outputs. No staging copy; three synchronisations per call (arrive,
//         agree that every rank's buffers are shared, done).
// All fold the L inputs in rank order with f32 accumulation for f16/bf16 and one rounding,
// so the result does not depend on the protocol or the step size.
#pragma once

#include "peers.hpp"
#include "transport.hpp"

#include <sluice/collectives/communicator.hpp>

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
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

// A shared buffer as one rank holds it: its own memory and its mappings of the same
// allocation's buffers of the other local ranks (by local rank). Unmapped when the last
// SharedBuffer referring to it goes.
struct SharedBuffer::Region {
  std::uint64_t id = 0;  // allocation number: the same on every local rank
  int owner = 0;         // this rank's index in maps
  std::size_t bytes = 0; // this rank's buffer as asked for (its mapping is rounded to pages)
  std::vector<ShmMapping> maps;
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

  // Collective over the node's ranks (through the segment, no MPI; every wait has `dog`'s
  // deadline): this rank's shared buffer of `bytes`, mapped by every local rank
  // (Communicator::allocate_shared). All or none: the rank that could not create or map a
  // part throws SystemError, the others Error; a peer that never arrives, PeerTimeout/PeerDied.
  std::shared_ptr<SharedBuffer::Region> allocate_shared(std::size_t bytes, Watchdog& dog);

  // After any failure: tells the other local ranks (they fail at once, naming `culprit`,
  // global rank). kind: 1 died, 2 timed out, 3 mismatched call.
  void mark_failed(int culprit, int kind) noexcept;

  // Throws what another local rank reported through mark_failed(), if any (the transport
  // calls it while stalled, so a failure seen on this node propagates without MPI).
  void check_failures();

  // Calls this process completed with the direct protocol (tests check it was taken).
  static std::uint64_t direct_calls() noexcept;

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
  enum class Field { in, red, tiny, agree, alloc };
  void wait_all_at_least(Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature);
  void wait_at_least(int q, Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature);
  [[noreturn]] void throw_reported(int q, std::uint64_t bad);
  [[noreturn]] void fail_peer(int q, const std::string& why, int kind);
  void publish(Field f, std::uint64_t value) noexcept;

  void tiny(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
            std::uint64_t signature, Watchdog& dog);
  void flat(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
            std::uint64_t signature, Watchdog& dog);
  // false: some rank's buffers are not shared memory (only the arrive and agree steps ran).
  bool direct(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
              std::uint64_t signature, Watchdog& dog);
  // The allocation holding [p, p + bytes) of this rank's memory (id 0: none) and p's offset.
  std::pair<std::uint64_t, std::uint64_t> find_own(const void* p, std::size_t bytes);
  // Local rank q's buffer of allocation `id` at `offset`, held in `keep`; nullptr when this
  // rank no longer maps that allocation or the range runs past it.
  char* resolve(int q, std::uint64_t id, std::uint64_t offset, std::size_t bytes,
                std::vector<std::shared_ptr<SharedBuffer::Region>>& keep);
  void stepped(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, std::size_t divisor,
               std::uint64_t signature, Watchdog& dog, const ShareHook* hook);

  std::vector<int> to_global_;
  const std::vector<PeerInfo>& peers_;
  int me_ = 0, size_ = 1;
  std::size_t step_bytes_ = 0;   // input area per rank per slot
  std::size_t result_bytes_ = 0; // result area per rank per slot
  std::size_t flat_bytes_ = 0;
  std::size_t stream_bytes_ = 0;  // outputs this big are written with non-temporal stores
  std::size_t direct_stream_bytes_ = 0;  // the same for the direct protocol
  std::size_t slot_stride_ = 0;  // bytes per (rank, slot)
  std::size_t data_offset_ = 0;
  std::size_t inline_offset_ = 0;
  static constexpr int kSlots = 2;
  std::uint64_t seq_ = 0;  // last step published by this rank
  int spin_before_yield_ = 0;
  ShmMapping map_;
  std::mutex regions_mu_;  // allocate_shared() may run on another thread than allreduce()
  std::vector<std::weak_ptr<SharedBuffer::Region>> regions_;
  std::atomic<std::uint64_t> regions_made_{0};  // allocations every local rank holds: the same on all
  std::uint64_t allocations_tried_ = 0;          // allocate_shared calls: the same on all
  std::vector<std::uint64_t> direct_scratch_;  // one reduced block of the direct protocol
};

}  // namespace sluice::coll
