// The selection rule: which algorithm `automatic` runs (collectives/README.md explains it and
// where the constants come from).
#pragma once

#include <sluice/collectives/types.hpp>

#include <cstddef>

namespace sluice::coll {

struct Topology {
  int ranks = 1;
  int nodes = 1;
  int local_size = 1;     // ranks on this node
  bool uniform = true;    // every node has local_size ranks
  bool shm = false;       // the shm path is set up on this node
};

// NCCL-style cost model for the transport algorithms: time = a * messages_on_critical_path +
// b * bytes_sent_per_rank + c * bytes_reduced_per_rank (microseconds). Measured on the
// development VM over Open MPI's vader BTL (collectives/README.md, "Cost model").
struct CostModel {
  // `sluice-bench-allreduce --calibrate`, 2 ranks, 2026-11-23 (three runs on a loaded VM:
  // alpha 1.39-3.59 us, p2p 2.2-5.2 GB/s, f32 sum kernel 7.6-8.9 GB/s out of cache).
  double alpha_us = 1.4;                    // per message (half a ping-pong of 8 bytes)
  double beta_us_per_byte = 1.0 / 4200.0;   // 1 / p2p bandwidth (4 MiB ping-pong), bytes/us
  double gamma_us_per_byte = 1.0 / 8000.0;  // 1 / f32 sum kernel bandwidth, bytes/us
  double predict(Algorithm a, std::size_t bytes, int n, std::size_t segment_bytes) const noexcept;
};

// For a group of `n` ranks talking over the transport only.
Algorithm select_transport_algorithm(std::size_t bytes, int n, std::size_t segment_bytes,
                                     const CostModel& model = {}) noexcept;
// The whole rule.
Algorithm select_algorithm(std::size_t bytes, const Topology& topo, std::size_t segment_bytes) noexcept;

}  // namespace sluice::coll
