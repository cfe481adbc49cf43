// RAII for MPI handles (HighFive-style): one owner, freed exactly once, and a check that
// turns an MPI error code into a typed exception saying which call failed on what.
#pragma once

#include <sluice/collectives/types.hpp>
#include <sluice/common/unique_handle.hpp>

#include <mpi.h>

#include <string>

namespace sluice::coll {

struct MpiCommTraits {
  static MPI_Comm invalid() noexcept { return MPI_COMM_NULL; }
  static void close(MPI_Comm c) noexcept {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&c);
  }
};
using UniqueComm = UniqueHandle<MPI_Comm, MpiCommTraits>;

// Throws CollectiveError("<call> failed: <MPI error string>") unless rc == MPI_SUCCESS.
void mpi_check(int rc, const char* call);

inline int comm_rank(MPI_Comm comm) {
  int rank = 0;
  mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  return rank;
}

}  // namespace sluice::coll
