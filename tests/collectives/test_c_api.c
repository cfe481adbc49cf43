/* The C API from C: create, allreduce (f32 avg in place, i64 sum out of place, each
 * algorithm forced), shared buffers (alloc, allreduce in them, free; freeing a pointer that
 * is not one), a bad argument's status and message, destroy. Under mpirun. */
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
  /* Shared buffers: 100,003 floats summed in place. */
  {
    const size_t n = 100003;
    float* buf = NULL;
    if (sluice_coll_alloc_shared(comm, n * sizeof(float), (void**)&buf) != SLUICE_COLL_OK || buf == NULL) {
      fprintf(stderr, "rank %d: alloc_shared: %s\n", rank, sluice_coll_last_error());
      ++failures;
    } else {
      for (size_t i = 0; i < n; ++i) buf[i] = (float)((size_t)rank + i % 5);
      if (sluice_coll_allreduce(comm, buf, buf, n, SLUICE_COLL_F32, SLUICE_COLL_SUM, SLUICE_COLL_ALGO_AUTO) != SLUICE_COLL_OK) {
        fprintf(stderr, "rank %d: allreduce in shared buffers: %s\n", rank, sluice_coll_last_error());
        ++failures;
      }
      for (size_t i = 0; i < n; ++i)
        if (buf[i] != (float)(size * (size - 1) / 2 + size * (int)(i % 5))) {
          fprintf(stderr, "rank %d: shared buffer sum wrong at %zu\n", rank, i);
          ++failures;
          break;
        }
      if (sluice_coll_free_shared(comm, buf) != SLUICE_COLL_OK) ++failures;
    }
    float not_shared[4];
    if (sluice_coll_free_shared(comm, not_shared) != SLUICE_COLL_ERR_INVALID || strlen(sluice_coll_last_error()) == 0) {
      fprintf(stderr, "rank %d: freeing a stack array was not refused\n", rank);
      ++failures;
    }
    if (sluice_coll_free_shared(comm, NULL) != SLUICE_COLL_OK) ++failures;
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
