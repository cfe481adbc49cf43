/* sluice telemetry, C API (C, C++ and Fortran through ISO_C_BINDING: no varargs, plain
   integer arguments). Every call records into the process-wide default recorder; see
   <sluice/monitor/recorder.hpp> and docs/telemetry.md. The record calls never fail. */
#ifndef SLUICE_MONITOR_H
#define SLUICE_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SLUICE_MON_DATA_WAIT = 0, SLUICE_MON_COMPUTE = 1, SLUICE_MON_ALLREDUCE = 2 };

void sluice_mon_step_begin(void);
void sluice_mon_step_end(void);
/* phase: one of SLUICE_MON_*; other values are ignored. */
void sluice_mon_phase_begin(int phase);
void sluice_mon_phase_end(void);

void sluice_mon_record_io(uint64_t bytes, uint64_t ns);
void sluice_mon_record_stall(uint64_t ns);
/* ranks: communicator size for busbw; 0 if unknown. */
void sluice_mon_record_allreduce(uint64_t bytes, uint64_t ns, uint32_t ranks);

void sluice_mon_set_enabled(int on);
uint64_t sluice_mon_now_ns(void);

/* The summary as JSON, NUL-terminated, into buf (len bytes). Returns the length it needs
   (without the NUL), as snprintf does; -1 on failure (out of memory). */
long sluice_mon_summary_json(char* buf, size_t len);

/* A sampler thread for the process (one per process): every interval_ms (<= 0: 10000).
   Returns 0, or -1 when it could not be started. stop waits up to deadline_ms. */
int sluice_mon_sampler_start(long interval_ms);
int sluice_mon_sampler_stop(long deadline_ms);

#ifdef __cplusplus
}
#endif

#endif
