// allreduce_async: a background thread owns the communicator while it runs (Horovod-style).
// Every cycle the ranks' threads agree, with one tiny allreduce, on how many submitted
// tensors every rank has queued (the minimum), and reduce that many, in submission order,
// fusing consecutive tensors of one type and op into buckets of at most `fusion_bytes`.
// The per-cycle agreement doubles as a heartbeat: a dead or stalled rank surfaces as the
// usual PeerDied/PeerTimeout on every handle. Submission order must be the same on every rank.
#pragma once

#include <sluice/collectives/communicator.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace sluice::coll {

struct AllreduceHandle::State {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  void finish(std::exception_ptr e);
};

class AsyncEngine {
 public:
  // `run` is the communicator's synchronous allreduce (called from the engine thread only).
  using Run = std::function<void(const void*, void*, std::size_t, DataType, ReduceOp)>;
  // `cuda`: tensors may be device memory (the fusion buffer is filled and emptied with the
  // CUDA driver's copies where they are). `ranks`: the communicator's size, for telemetry:
  // each bucket (a fused one, or a single tensor) that completes is one record_allreduce of
  // its total bytes into the default recorder; the agreement rounds are not recorded.
  // `fusion_memory`: the fusion buffer (at least fusion_bytes; the communicator's shared
  // buffer, so fused buckets take the shm direct protocol), or empty: a heap buffer grown
  // as buckets need it.
  AsyncEngine(Run run, std::size_t fusion_bytes, std::chrono::microseconds cycle, bool cuda, std::uint32_t ranks,
              std::span<char> fusion_memory = {});
  // Collective: waits until every rank's engine stops (their communicators are destroyed),
  // then joins. Handles still queued fail with BrokenCommunicator.
  ~AsyncEngine();
  AsyncEngine(const AsyncEngine&) = delete;
  AsyncEngine& operator=(const AsyncEngine&) = delete;

  std::shared_ptr<AllreduceHandle::State> submit(const void* send, void* recv, std::size_t count, DataType type,
                                                 ReduceOp op);

 private:
  struct Item {
    const void* send;
    void* recv;
    std::size_t count;
    DataType type;
    ReduceOp op;
    std::shared_ptr<AllreduceHandle::State> state;
  };
  void loop();
  void process(std::vector<Item>& items);

  Run run_;
  std::size_t fusion_bytes_;
  std::chrono::microseconds cycle_;
  bool cuda_;
  std::uint32_t ranks_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::exception_ptr failed_;  // once set, every submit fails with it
  std::span<char> fusion_memory_;
  std::vector<char> fusion_;  // when fusion_memory_ is empty
  std::thread thread_;
};

}  // namespace sluice::coll
