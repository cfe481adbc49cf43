// Internal: a rank's contribution (snapshot, host, sampler series) as bytes, for the gather
// over MPI (gather_mpi.cpp). MPI-free, so the unit tests check it. Same-architecture only
// (native byte order): every rank of a job runs the same binary.
#pragma once

#include <sluice/monitor/job_file.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace sluice::monitor::detail {

// Encodes R in at most `budget` bytes: when the series does not fit, it is thinned (every
// k-th sample kept, the last one always) and the removed samples are added to
// samples_dropped; with no room at all it is left out. The rest is small (sparse histograms).
std::vector<std::byte> encode_rank(const RankInput& r, std::size_t budget);
// Throws sluice::Error naming `rank_hint` when the bytes are not a whole encode_rank output.
RankInput decode_rank(std::span<const std::byte> bytes, int rank_hint);

}  // namespace sluice::monitor::detail
