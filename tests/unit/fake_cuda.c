/* A stand-in for libcuda.so.1 so the dlopen wrapper (common/src/cuda_driver.cpp) and the
   pinned staging of sluice collectives are tested without a GPU. Point SLUICE_CUDA_LIBRARY
   at it. One device, one (primary) context.

   "Device memory" (cuMemAlloc) is an address range reserved with PROT_NONE, so code that
   dereferences a device pointer on the host crashes; the bytes live in a separate host
   buffer that only the copy calls reach. Streams are real: a worker thread per stream runs
   the queued copies and event records in order, each copy after FAKE_CUDA_DELAY_US
   (default 100) microseconds, so reading a staging buffer before its copy's event completed
   reads stale bytes (pinned buffers start filled with 0xA5). Asynchronous copies fail with
   CUDA_ERROR_INVALID_CONTEXT unless the calling thread has the context current.
   FAKE_CUDA_INIT_FAIL=1 makes cuInit fail (CUDA_ERROR_NO_DEVICE), as on a node without a GPU.
   fake_cu_* functions report counts to the tests. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, usleep */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st {
  int unused;
} * CUcontext;
typedef struct CUevent_st* CUevent;
typedef struct CUstream_st* CUstream;

enum {
  kOk = 0,
  kInvalidValue = 1,
  kOutOfMemory = 2,
  kNoDevice = 100,
  kInvalidDevice = 101,
  kInvalidContext = 201,
  kInvalidHandle = 400
};

static struct CUctx_st g_ctx;
static __thread CUcontext t_current;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* --- allocations ----------------------------------------------------------------------- */
enum { kMaxAllocs = 4096 };
struct alloc {
  char* base; /* the address handed out (device: PROT_NONE) */
  size_t size, mapped;
  char* backing; /* device: where the bytes live; pinned: == base */
  int device;
};
static struct alloc g_allocs[kMaxAllocs];
static long g_dtoh, g_htod, g_live_pinned, g_live_device, g_live_streams, g_live_events;

static void count(long* counter, long delta) {
  pthread_mutex_lock(&g_mu);
  *counter += delta;
  pthread_mutex_unlock(&g_mu);
}

static struct alloc* find(const void* p) { /* caller holds g_mu */
  const char* c = (const char*)p;
  for (int i = 0; i < kMaxAllocs; ++i)
    if (g_allocs[i].base && c >= g_allocs[i].base && c < g_allocs[i].base + (g_allocs[i].size ? g_allocs[i].size : 1))
      return &g_allocs[i];
  return NULL;
}

static struct alloc* slot(void) {
  for (int i = 0; i < kMaxAllocs; ++i)
    if (!g_allocs[i].base) return &g_allocs[i];
  return NULL;
}

/* The host address behind device range [p, p+n), or NULL when it is not device memory. */
static char* device_bytes(CUdeviceptr p, size_t n) {
  pthread_mutex_lock(&g_mu);
  struct alloc* a = find((const void*)(unsigned long)p);
  char* out = NULL;
  if (a && a->device && (char*)(unsigned long)p + n <= a->base + a->size)
    out = a->backing + ((char*)(unsigned long)p - a->base);
  pthread_mutex_unlock(&g_mu);
  return out;
}

CUresult cuInit(unsigned flags) {
  (void)flags;
  const char* f = getenv("FAKE_CUDA_INIT_FAIL");
  return f && *f == '1' ? kNoDevice : kOk;
}

CUresult cuGetErrorName(CUresult e, const char** s) {
  switch (e) {
    case kOk: *s = "CUDA_SUCCESS"; return kOk;
    case kInvalidValue: *s = "CUDA_ERROR_INVALID_VALUE"; return kOk;
    case kOutOfMemory: *s = "CUDA_ERROR_OUT_OF_MEMORY"; return kOk;
    case kNoDevice: *s = "CUDA_ERROR_NO_DEVICE"; return kOk;
    case kInvalidDevice: *s = "CUDA_ERROR_INVALID_DEVICE"; return kOk;
    case kInvalidContext: *s = "CUDA_ERROR_INVALID_CONTEXT"; return kOk;
    case kInvalidHandle: *s = "CUDA_ERROR_INVALID_HANDLE"; return kOk;
    default: *s = NULL; return kInvalidValue;
  }
}
CUresult cuGetErrorString(CUresult e, const char** s) {
  const char* name = NULL;
  if (cuGetErrorName(e, &name) != kOk) return kInvalidValue;
  *s = e == kInvalidContext ? "invalid device context" : "fake CUDA error";
  return kOk;
}

CUresult cuDeviceGet(int* dev, int ordinal) {
  if (ordinal != 0) return kInvalidDevice;
  *dev = 0;
  return kOk;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext* c, int dev) {
  if (dev != 0) return kInvalidDevice;
  *c = &g_ctx;
  return kOk;
}
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { return dev == 0 ? kOk : kInvalidDevice; }
CUresult cuCtxGetCurrent(CUcontext* c) {
  *c = t_current;
  return kOk;
}
CUresult cuCtxSetCurrent(CUcontext c) {
  if (c && c != &g_ctx) return kInvalidContext;
  t_current = c;
  return kOk;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
  if (t_current != &g_ctx) return kInvalidContext;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t mapped = (n + page - 1) / page * page + page; /* a guard page after */
  void* base = mmap(NULL, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  char* backing = malloc(n ? n : 1);
  pthread_mutex_lock(&g_mu);
  struct alloc* a = slot();
  if (base == MAP_FAILED || !backing || !a) {
    pthread_mutex_unlock(&g_mu);
    if (base != MAP_FAILED) munmap(base, mapped);
    free(backing);
    return kOutOfMemory;
  }
  *a = (struct alloc){(char*)base, n, mapped, backing, 1};
  ++g_live_device;
  pthread_mutex_unlock(&g_mu);
  *p = (CUdeviceptr)(unsigned long)base;
  return kOk;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
  pthread_mutex_lock(&g_mu);
  struct alloc* a = find((const void*)(unsigned long)p);
  if (!a || !a->device || a->base != (char*)(unsigned long)p) {
    pthread_mutex_unlock(&g_mu);
    return kInvalidValue;
  }
  struct alloc copy = *a;
  memset(a, 0, sizeof *a);
  --g_live_device;
  pthread_mutex_unlock(&g_mu);
  munmap(copy.base, copy.mapped);
  free(copy.backing);
  return kOk;
}

CUresult cuMemHostAlloc(void** p, size_t n, unsigned flags) {
  (void)flags;
  if (t_current != &g_ctx) return kInvalidContext;
  char* b = malloc(n ? n : 1);
  if (!b) return kOutOfMemory;
  memset(b, 0xA5, n);
  pthread_mutex_lock(&g_mu);
  struct alloc* a = slot();
  if (!a) {
    pthread_mutex_unlock(&g_mu);
    free(b);
    return kOutOfMemory;
  }
  *a = (struct alloc){b, n, 0, b, 0};
  ++g_live_pinned;
  pthread_mutex_unlock(&g_mu);
  *p = b;
  return kOk;
}

CUresult cuMemFreeHost(void* p) {
  pthread_mutex_lock(&g_mu);
  struct alloc* a = find(p);
  if (!a || a->device || a->base != p) {
    pthread_mutex_unlock(&g_mu);
    return kInvalidValue;
  }
  memset(a, 0, sizeof *a);
  --g_live_pinned;
  pthread_mutex_unlock(&g_mu);
  free(p);
  return kOk;
}

CUresult cuPointerGetAttribute(void* data, int attribute, CUdeviceptr p) {
  pthread_mutex_lock(&g_mu);
  struct alloc* a = find((const void*)(unsigned long)p);
  const int device = a ? a->device : -1;
  pthread_mutex_unlock(&g_mu);
  if (device < 0) return kInvalidValue; /* unregistered host memory */
  if (attribute == 1) { /* CU_POINTER_ATTRIBUTE_CONTEXT */
    *(CUcontext*)data = &g_ctx;
    return kOk;
  }
  if (attribute == 2) { /* CU_POINTER_ATTRIBUTE_MEMORY_TYPE: DEVICE 2, HOST 1 */
    *(unsigned*)data = device ? 2u : 1u;
    return kOk;
  }
  return kInvalidValue;
}

/* Synchronous copies, for tests to fill and read device buffers. */
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
  char* d = device_bytes(dst, n);
  if (!d) return kInvalidValue;
  memcpy(d, src, n);
  return kOk;
}
CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
  char* s = device_bytes(src, n);
  if (!s) return kInvalidValue;
  memcpy(dst, s, n);
  return kOk;
}

/* --- streams and events ------------------------------------------------------------------- */
struct CUevent_st {
  unsigned long recorded, completed; /* under g_mu */
};

struct op {
  struct op* next;
  char* dst;
  const char* src;
  size_t n;
  CUevent event; /* non-null: an event record */
  unsigned long seq;
};

struct CUstream_st {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct op *head, *tail;
  int busy, stop;
};

static pthread_cond_t g_event_cv = PTHREAD_COND_INITIALIZER;

static void* worker(void* arg) {
  CUstream s = arg;
  const char* d = getenv("FAKE_CUDA_DELAY_US");
  const unsigned delay = d && *d ? (unsigned)atoi(d) : 100u;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (!s->head) break;
    struct op* o = s->head;
    s->head = o->next;
    if (!s->head) s->tail = NULL;
    s->busy = 1;
    pthread_mutex_unlock(&s->mu);
    if (o->event) {
      pthread_mutex_lock(&g_mu);
      if (o->seq > o->event->completed) o->event->completed = o->seq;
      pthread_cond_broadcast(&g_event_cv);
      pthread_mutex_unlock(&g_mu);
    } else {
      if (delay) usleep(delay);
      memcpy(o->dst, o->src, o->n);
    }
    free(o);
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static CUresult enqueue(CUstream s, struct op* o) {
  if (!s) {
    free(o);
    return kInvalidHandle; /* sluice always passes its own stream */
  }
  pthread_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = o;
  else s->head = o;
  s->tail = o;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return kOk;
}

CUresult cuStreamCreate(CUstream* out, unsigned flags) {
  (void)flags;
  if (t_current != &g_ctx) return kInvalidContext;
  CUstream s = calloc(1, sizeof *s);
  if (!s) return kOutOfMemory;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->thread, NULL, worker, s) != 0) {
    free(s);
    return kOutOfMemory;
  }
  count(&g_live_streams, 1);
  *out = s;
  return kOk;
}

CUresult cuStreamSynchronize(CUstream s) {
  if (!s) return kInvalidHandle;
  pthread_mutex_lock(&s->mu);
  while (s->head || s->busy) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return kOk;
}

CUresult cuStreamDestroy_v2(CUstream s) {
  if (!s) return kInvalidHandle;
  pthread_mutex_lock(&s->mu);
  s->stop = 1; /* the worker drains the queue first, as the driver does */
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
  count(&g_live_streams, -1);
  return kOk;
}

static CUresult copy_async(char* dst, const char* src, size_t n, CUstream s) {
  if (t_current != &g_ctx) return kInvalidContext;
  struct op* o = calloc(1, sizeof *o);
  if (!o) return kOutOfMemory;
  o->dst = dst;
  o->src = src;
  o->n = n;
  return enqueue(s, o);
}

CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream s) {
  char* from = device_bytes(src, n);
  if (!from) return kInvalidValue;
  const CUresult r = copy_async(dst, from, n, s);
  if (r == kOk) count(&g_dtoh, 1);
  return r;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
  char* to = device_bytes(dst, n);
  if (!to) return kInvalidValue;
  const CUresult r = copy_async(to, src, n, s);
  if (r == kOk) count(&g_htod, 1);
  return r;
}

CUresult cuEventCreate(CUevent* e, unsigned flags) {
  (void)flags;
  if (t_current != &g_ctx) return kInvalidContext;
  *e = calloc(1, sizeof **e);
  if (!*e) return kOutOfMemory;
  count(&g_live_events, 1);
  return kOk;
}

CUresult cuEventDestroy_v2(CUevent e) {
  if (!e) return kInvalidHandle;
  free(e);
  count(&g_live_events, -1);
  return kOk;
}

CUresult cuEventRecord(CUevent e, CUstream s) {
  if (!e) return kInvalidHandle;
  struct op* o = calloc(1, sizeof *o);
  if (!o) return kOutOfMemory;
  pthread_mutex_lock(&g_mu);
  o->event = e;
  o->seq = ++e->recorded;
  pthread_mutex_unlock(&g_mu);
  return enqueue(s, o);
}

CUresult cuEventSynchronize(CUevent e) {
  if (!e) return kInvalidHandle;
  pthread_mutex_lock(&g_mu);
  const unsigned long target = e->recorded;
  while (e->completed < target) pthread_cond_wait(&g_event_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  return kOk;
}

/* --- for the tests ------------------------------------------------------------------------ */
static long read_counter(const long* c) {
  pthread_mutex_lock(&g_mu);
  const long v = *c;
  pthread_mutex_unlock(&g_mu);
  return v;
}
long fake_cu_dtoh_copies(void) { return read_counter(&g_dtoh); }
long fake_cu_htod_copies(void) { return read_counter(&g_htod); }
/* Pinned buffers, device buffers, streams and events not freed yet. */
long fake_cu_live_pinned(void) { return read_counter(&g_live_pinned); }
long fake_cu_live_device(void) { return read_counter(&g_live_device); }
long fake_cu_live_streams(void) { return read_counter(&g_live_streams); }
long fake_cu_live_events(void) { return read_counter(&g_live_events); }
