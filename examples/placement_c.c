/* The runtime's C API: print this task's placement. */
#include <sluice/jobrt.h>

#include <stdio.h>

int main(void) {
  char err[256];
  sluice_placement* p = NULL;
  int rc = sluice_placement_load(&p, err, sizeof err);
  if (rc == 1) {
    printf("sluice %s: this task was not placed by sluice\n", sluice_version());
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "placement_c: %s\n", err);
    return 1;
  }
  int me = sluice_placement_local_task(p);
  printf("node %s, policy %s, local task %d of %d: gpus", sluice_placement_node(p), sluice_placement_policy(p), me,
         sluice_placement_task_count(p));
  for (int i = 0; i < sluice_placement_gpu_count(p, me); ++i) printf(" %d", sluice_placement_gpu(p, me, i));
  printf(", nics");
  for (int i = 0; i < sluice_placement_nic_count(p, me); ++i) printf(" %s", sluice_placement_nic(p, me, i));
  printf(", cpus %s\n", sluice_placement_cpus(p, me));
  sluice_placement_free(p);
  return 0;
}
