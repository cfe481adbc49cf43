// The sharded reader from an MPI communicator. Header-only on purpose: libsluice_reader does
// not link MPI, so it works with whichever MPI the training code uses (Open MPI, MPICH).
#pragma once

#include <sluice/reader.hpp>

#include <mpi.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>

namespace sluice::reader {

// Sets OPTIONS.rank and .ranks from COMM, opens the reader, and checks (one MPI_Allreduce,
// collective over COMM) that every rank sees the same number of samples, batch size, seed
// and shuffle: otherwise the shards would overlap or leave samples out. Throws
// InvalidArgument on every rank when they disagree; a rank whose open failed makes the
// others throw too (its own DataError is rethrown on it), so no rank waits forever.
inline Reader open_reader(MPI_Comm comm, ReaderOptions options) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  options.rank = rank;
  options.ranks = size;
  std::optional<Reader> reader;
  std::exception_ptr failure;
  try {
    reader.emplace(std::move(options));
  } catch (...) {
    failure = std::current_exception();
  }
  // min and max of (failed, samples, batch, seed, shuffle) across ranks in one reduction.
  std::uint64_t mine[5] = {failure ? 1u : 0u, reader ? reader->samples() : 0, options.batch_size, options.seed,
                           options.shuffle ? 1u : 0u};
  if (reader) {
    const ReaderState s = reader->state();
    mine[2] = s.batch_size;
    mine[3] = s.seed;
    mine[4] = s.shuffle ? 1 : 0;
  }
  std::uint64_t both[10], out[10];
  for (int i = 0; i < 5; ++i) {
    both[i] = mine[i];
    both[5 + i] = ~mine[i];  // max of the complement = complement of the min
  }
  MPI_Allreduce(both, out, 10, MPI_UINT64_T, MPI_MAX, comm);
  if (failure) std::rethrow_exception(failure);
  if (out[0] != 0) throw InvalidArgument("sluice reader: another rank failed to open the dataset");
  static const char* names[] = {"", "samples", "batch size", "seed", "shuffle"};
  for (int i = 1; i < 5; ++i)
    if (out[i] != ~out[5 + i])
      throw InvalidArgument(std::string("sluice reader: the ranks disagree on the ") + names[i] + " (from " +
                            std::to_string(~out[5 + i]) + " to " + std::to_string(out[i]) + ")");
  return std::move(*reader);
}

}  // namespace sluice::reader
