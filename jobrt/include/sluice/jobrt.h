/* sluice job runtime, C API (C and Fortran training codes). Every function that can fail
   returns an int status and writes a message naming what failed into err[errlen]. */
#ifndef SLUICE_JOBRT_H
#define SLUICE_JOBRT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_placement sluice_placement;

const char* sluice_version(void);

/* 0: *out holds this task's placement (free with sluice_placement_free);
   1: not placed by sluice (no SLUICE_PLACEMENT), *out is NULL;
  -1: malformed record, message in err. */
int sluice_placement_load(sluice_placement** out, char* err, size_t errlen);
void sluice_placement_free(sluice_placement* p);

const char* sluice_placement_node(const sluice_placement* p);   /* "" outside Slurm */
const char* sluice_placement_policy(const sluice_placement* p); /* pack|spread|none */
int sluice_placement_local_task(const sluice_placement* p);     /* SLURM_LOCALID */
int sluice_placement_task_count(const sluice_placement* p);     /* tasks on this node */
/* Of local task `task`: -1 when task is out of range. */
int sluice_placement_gpu_count(const sluice_placement* p, int task);
int sluice_placement_gpu(const sluice_placement* p, int task, int i); /* node GPU index */
int sluice_placement_nic_count(const sluice_placement* p, int task);
const char* sluice_placement_nic(const sluice_placement* p, int task, int i);
const char* sluice_placement_cpus(const sluice_placement* p, int task); /* list syntax */

#ifdef __cplusplus
}
#endif
#endif
