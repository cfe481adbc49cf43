/* The C API compiles as C and records into the default recorder. Exits non-zero on failure. */
#include <sluice/monitor.h>

#include <stdio.h>
#include <string.h>

#define CHECK(c)                                              \
  do {                                                        \
    if (!(c)) {                                               \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #c); \
      return 1;                                               \
    }                                                         \
  } while (0)

int main(void) {
  char buf[8192];
  long n;
  int i;
  for (i = 0; i < 3; ++i) {
    sluice_mon_step_begin();
    sluice_mon_record_stall(1000);
    sluice_mon_phase_begin(SLUICE_MON_COMPUTE);
    sluice_mon_phase_end();
    sluice_mon_step_end();
  }
  sluice_mon_record_io(4096, 2000);
  sluice_mon_record_allreduce(1 << 20, 1000000, 4);
  sluice_mon_phase_begin(99); /* ignored */
  sluice_mon_phase_end();
  n = sluice_mon_summary_json(buf, sizeof buf);
  CHECK(n > 0 && (size_t)n < sizeof buf);
  CHECK(strlen(buf) == (size_t)n);
  CHECK(strstr(buf, "\"schema\":\"sluice.monitor.summary/1\"") != NULL);
  CHECK(strstr(buf, "\"steps\":{\"allreduce_fraction\"") != NULL);
  CHECK(strstr(buf, "\"count\":3,\"data_wait_fraction\"") != NULL);
  CHECK(strstr(buf, "\"bytes\":4096") != NULL);
  /* Too small a buffer: cut and terminated, the needed length returned (elapsed_s moves on,
     so the length may differ by a few digits). */
  CHECK(sluice_mon_summary_json(buf, 10) > 100);
  CHECK(strlen(buf) == 9);
  CHECK(sluice_mon_summary_json(NULL, 0) > 100);

  /* Disabled: nothing more is counted. */
  sluice_mon_set_enabled(0);
  sluice_mon_step_begin();
  sluice_mon_step_end();
  sluice_mon_set_enabled(1);
  n = sluice_mon_summary_json(buf, sizeof buf);
  CHECK(strstr(buf, "\"count\":3,\"data_wait_fraction\"") != NULL);

  CHECK(sluice_mon_sampler_start(50) == 0);
  CHECK(sluice_mon_sampler_start(50) == 0); /* already running */
  CHECK(sluice_mon_sampler_stop(2000) == 0);
  CHECK(sluice_mon_now_ns() > 0);
  puts("c_api: ok");
  return 0;
}
