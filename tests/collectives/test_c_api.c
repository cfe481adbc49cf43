/* The C API from C: create, allreduce (f32 avg in place, i64 sum out of place, each
 * algorithm forced), a bad argument's status and message, destroy. Under mpirun. */
#include <sluice/collectives.h>

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0, rank = 0, size = 1;
  sluice_coll_comm_t comm = NULL;
  if (sluice_coll_comm_create(MPI_COMM_WORLD, &comm) != SLUICE_COLL_OK) {
    fprintf(stderr, "create: %s\n", sluice_coll_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  rank = sluice_coll_comm_rank(comm);
  size = sluice_coll_comm_size(comm);
  const sluice_coll_algo_t algos[] = {SLUICE_COLL_ALGO_AUTO, SLUICE_COLL_ALGO_RING,
                                      SLUICE_COLL_ALGO_RECURSIVE_DOUBLING, SLUICE_COLL_ALGO_RABENSEIFNER};
  for (int a = 0; a < 4; ++a) {
    float g[1000];
    int64_t in[37], out[37];
    for (int i = 0; i < 1000; ++i) g[i] = (float)(rank + i);
    for (int i = 0; i < 37; ++i) in[i] = (int64_t)rank << 40 | i;
    int rc = sluice_coll_allreduce(comm, g, g, 1000, SLUICE_COLL_F32, SLUICE_COLL_AVG, algos[a]);
    rc |= sluice_coll_allreduce(comm, in, out, 37, SLUICE_COLL_I64, SLUICE_COLL_SUM, algos[a]);
    if (rc != SLUICE_COLL_OK) {
      fprintf(stderr, "rank %d algo %d: %s\n", rank, (int)algos[a], sluice_coll_last_error());
      ++failures;
      continue;
    }
    for (int i = 0; i < 1000; ++i)
      if (g[i] != (float)((size - 1) / 2.0 + i)) { ++failures; fprintf(stderr, "f32 avg wrong at %d\n", i); break; }
    for (int i = 0; i < 37; ++i)
      if (out[i] != ((int64_t)(size * (size - 1) / 2) << 40) + (int64_t)size * i) { ++failures; break; }
  }
  /* A bad argument: status, message, no side effects. */
  int rc = sluice_coll_allreduce(comm, NULL, NULL, 5, SLUICE_COLL_F32, SLUICE_COLL_SUM, SLUICE_COLL_ALGO_AUTO);
  if (rc != SLUICE_COLL_ERR_INVALID || strlen(sluice_coll_last_error()) == 0) {
    fprintf(stderr, "null recv: rc %d, message '%s'\n", rc, sluice_coll_last_error());
    ++failures;
  }
  if (sluice_coll_comm_destroy(comm) != SLUICE_COLL_OK) ++failures;
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("C API: %d failures on %d ranks\n", total, size);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
