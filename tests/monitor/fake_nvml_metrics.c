/* A stand-in for libnvidia-ml.so.1 with the telemetry calls: two GPUs whose utilization,
   memory and power are fixed per device (GPU i: 40+i*50 %, (i+1) GiB of 16 GiB used,
   150.5 W), except that GPU 1 reports no power (NOT_SUPPORTED), as some boards do.
   FAKE_NVML_SLEEP_MS=N makes nvmlDeviceGetUtilizationRates take N ms (a stuck driver). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  char busIdLegacy[16];
  unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
} pci_info;
typedef struct {
  unsigned gpu, memory;
} utilization;
typedef struct {
  unsigned long long total, free, used;
} memory;

static const unsigned kIndex[2] = {0, 1};

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned* n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** d) {
  if (i > 1) return 2;
  *d = (void*)(kIndex + i);
  return 0;
}
int nvmlDeviceGetPciInfo_v3(void* d, pci_info* p) {
  memset(p, 0, sizeof *p);
  p->bus = 4 + *(const unsigned*)d;
  return 0;
}
int nvmlDeviceGetNvLinkState(void* d, unsigned link, int* active) { (void)d, (void)link, (void)active; return 2; }
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void* d, unsigned link, pci_info* p) { (void)d, (void)link, (void)p; return 2; }

int nvmlDeviceGetUtilizationRates(void* d, utilization* u) {
  const char* sleep_ms = getenv("FAKE_NVML_SLEEP_MS");
  if (sleep_ms) {
    long ms = atol(sleep_ms);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  u->gpu = 40 + *(const unsigned*)d * 50;
  u->memory = 10;
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* d, memory* m) {
  m->total = 16ull << 30;
  m->used = (unsigned long long)(*(const unsigned*)d + 1) << 30;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetPowerUsage(void* d, unsigned* mw) {
  if (*(const unsigned*)d == 1) return 3; /* NOT_SUPPORTED */
  *mw = 150500;
  return 0;
}
