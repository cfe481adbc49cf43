/* sluice collectives, C API (C and Fortran training codes; link sluice::collectives).
 *
 *   sluice_coll_comm_t comm;
 *   if (sluice_coll_comm_create(MPI_COMM_WORLD, &comm) != SLUICE_COLL_OK) { ... }
 *   int rc = sluice_coll_allreduce(comm, grad, grad, n, SLUICE_COLL_F32, SLUICE_COLL_AVG,
 *                                  SLUICE_COLL_ALGO_AUTO);
 *   if (rc != SLUICE_COLL_OK)
 *     fprintf(stderr, "%s (rank %d)\n", sluice_coll_last_error(), sluice_coll_last_error_peer());
 *   sluice_coll_comm_destroy(comm);
 *
 * No function throws or aborts; each returns a status, and the thread's last error message
 * stays readable until its next sluice_coll_* call. Values match the C++ enums. */
#ifndef SLUICE_COLLECTIVES_H
#define SLUICE_COLLECTIVES_H

#include <mpi.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_coll_comm* sluice_coll_comm_t;

typedef enum {
  SLUICE_COLL_F32 = 0, SLUICE_COLL_F64 = 1, SLUICE_COLL_F16 = 2, SLUICE_COLL_BF16 = 3,
  SLUICE_COLL_I32 = 4, SLUICE_COLL_I64 = 5
} sluice_coll_dtype_t;

typedef enum {
  SLUICE_COLL_SUM = 0, SLUICE_COLL_AVG = 1, SLUICE_COLL_MIN = 2, SLUICE_COLL_MAX = 3, SLUICE_COLL_PROD = 4
} sluice_coll_op_t;

typedef enum {
  SLUICE_COLL_ALGO_AUTO = 0, SLUICE_COLL_ALGO_SHM = 1, SLUICE_COLL_ALGO_RING = 2,
  SLUICE_COLL_ALGO_RECURSIVE_DOUBLING = 3, SLUICE_COLL_ALGO_RABENSEIFNER = 4,
  SLUICE_COLL_ALGO_HIERARCHICAL = 5
} sluice_coll_algo_t;

/* Status codes. */
enum {
  SLUICE_COLL_OK = 0,
  SLUICE_COLL_ERR_INVALID = 1,    /* bad argument or environment setting */
  SLUICE_COLL_ERR_TIMEOUT = 2,    /* a peer made no progress within the timeout */
  SLUICE_COLL_ERR_PEER_DIED = 3,  /* a peer's process is gone */
  SLUICE_COLL_ERR_MISMATCH = 4,   /* ranks called with different count/type/op/algorithm */
  SLUICE_COLL_ERR_BROKEN = 5,     /* an earlier call failed; destroy the communicator */
  SLUICE_COLL_ERR_OTHER = 6       /* system or MPI failure (see the message) */
};

/* Collective over `comm` (duplicated; options from the SLUICE_* environment). */
int sluice_coll_comm_create(MPI_Comm comm, sluice_coll_comm_t* out);
/* Fortran: the MPI_Fint handle of an mpi/mpi_f08 communicator. */
int sluice_coll_comm_create_f(MPI_Fint comm, sluice_coll_comm_t* out);
int sluice_coll_comm_destroy(sluice_coll_comm_t comm);
int sluice_coll_comm_rank(sluice_coll_comm_t comm);
int sluice_coll_comm_size(sluice_coll_comm_t comm);

/* recv = op over ranks of send; send == recv or send == NULL: in place. Either buffer may be
   CUDA device memory (staged through pinned host memory; collectives/README.md). */
int sluice_coll_allreduce(sluice_coll_comm_t comm, const void* send, void* recv, size_t count,
                          sluice_coll_dtype_t dtype, sluice_coll_op_t op, sluice_coll_algo_t algo);

/* Collective over the communicator: `bytes` of zero-filled, page-aligned memory for this rank
   that the other ranks of its node map too; an allreduce whose buffers lie in such memory on
   every rank of the node skips the staging copies (Communicator::allocate_shared). *out is
   NULL on failure; when the memory cannot be had on some rank, every rank fails. Freed with
   sluice_coll_free_shared (this rank only), or when the communicator is destroyed. */
int sluice_coll_alloc_shared(sluice_coll_comm_t comm, size_t bytes, void** out);
/* p: a pointer from sluice_coll_alloc_shared on this communicator (NULL: nothing to do). */
int sluice_coll_free_shared(sluice_coll_comm_t comm, void* p);

const char* sluice_coll_last_error(void);
/* The rank the last error names, -1 when none. */
int sluice_coll_last_error_peer(void);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_COLLECTIVES_H */
