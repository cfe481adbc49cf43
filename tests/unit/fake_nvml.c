/* A stand-in for libnvidia-ml.so.1 so the NVML loader is tested without a GPU. It presents
   the two P100s of cts1-pascal.xml (0000:04:00.0 and 0000:07:00.0) joined by 4 NVLinks
   (links 0-3), link 4 present but inactive, and no links above 5. FAKE_NVML_INIT_FAIL=1
   makes nvmlInit fail, as on a node without the driver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char busIdLegacy[16];
  unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
} pci_info;

static const unsigned kBus[2] = {0x04, 0x07};

static void fill(pci_info* p, unsigned bus) {
  memset(p, 0, sizeof *p);
  p->bus = bus;
  snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", bus); /* NVML's 8-digit domain */
}

int nvmlInit_v2(void) { return getenv("FAKE_NVML_INIT_FAIL") ? 9 /* DRIVER_NOT_LOADED */ : 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned* n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** d) {
  if (i > 1) return 2;
  *d = (void*)(kBus + i);
  return 0;
}
int nvmlDeviceGetPciInfo_v3(void* d, pci_info* p) { fill(p, *(const unsigned*)d); return 0; }
int nvmlDeviceGetNvLinkState(void* d, unsigned link, int* active) {
  (void)d;
  if (link > 5) return 2; /* INVALID_ARGUMENT: no such link */
  *active = link < 4;
  return 0;
}
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void* d, unsigned link, pci_info* p) {
  if (link >= 4) return 3;
  fill(p, *(const unsigned*)d == 0x04 ? 0x07 : 0x04);
  return 0;
}
