#include "shm_group.hpp"

#include "mpi_handles.hpp"
#include "reduce.hpp"

#include <sluice/common/unique_handle.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SLUICE_CPU_RELAX() _mm_pause()
#else
#define SLUICE_CPU_RELAX() ((void)0)
#endif

namespace sluice::coll {

namespace {
constexpr std::uint64_t kMagic = 0x736c7569636553ull;  // "sluiceS"
constexpr std::size_t kLine = 64;
std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

// The failure flag packs what happened with whom: kind << 32 | (global rank + 1).
enum : int { kDied = 1, kTimeout = 2, kMismatch = 3 };

struct Header {
  std::uint64_t magic;
  std::uint32_t local_size;
  std::uint32_t slots;
  std::uint64_t step_bytes;
  std::uint64_t result_bytes;
};
}  // namespace

// One per local rank, written only by its owner (the failure flag by its owner too).
struct alignas(128) ShmGroup::Control {
  std::atomic<std::uint64_t> in_seq;   // steps whose input this rank has copied in
  std::atomic<std::uint64_t> red_seq;  // steps whose share this rank has reduced
  std::atomic<std::uint64_t> signature[kSlots];  // the call that step (slot) belongs to
  std::atomic<std::uint64_t> failed;   // 0, or kind << 32 | (culprit + 1)
  std::int32_t pid;
  // The direct protocol: where this rank's buffers are (allocation id, 0 for none, and
  // offset), per slot, and the agreement: 2 * step + (every rank's buffers resolved here).
  struct SharedBuffers {
    std::atomic<std::uint64_t> send_id, send_offset, recv_id, recv_offset;
  } shared[kSlots];
  std::atomic<std::uint64_t> agree;
  // allocate_shared, allocation k: 2k-1 once alloc_name (this rank's part, "" if it could
  // not make one) and alloc_len are written, 2k once the peers' parts are mapped; alloc_ok is
  // 2k + (this rank holds every part).
  std::atomic<std::uint64_t> alloc_seq;
  std::atomic<std::uint64_t> alloc_ok;
  char alloc_name[64];
  std::uint64_t alloc_len;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// Tiny vectors travel inline: sequence number, signature and payload in one cache line, so a
// peer's data costs one cache-line transfer (the reader polls the line the data is in).
struct alignas(64) ShmGroup::InlineLine {
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint64_t> signature;
  unsigned char data[kInlineBytes];
};


ShmMapping& ShmMapping::operator=(ShmMapping&& o) noexcept {
  if (this != &o) {
    if (p_) ::munmap(p_, len_);
    p_ = std::exchange(o.p_, nullptr);
    len_ = o.len_;
  }
  return *this;
}
ShmMapping::~ShmMapping() {
  if (p_) ::munmap(p_, len_);
}

namespace {
// memcpy with non-temporal stores (SSE2, baseline x86-64); store_fence() before publishing.
void copy_streaming(char* dst, const char* src, std::size_t n) {
#if defined(__x86_64__)
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(dst) & 15) != 0) {
    *dst++ = *src++;
    --n;
  }
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}
void store_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// The last-level cache of CPU 0 as sysfs tells it (what lscpu shows; glibc's
// _SC_LEVEL3_CACHE_SIZE reports the whole package on AMD, 8x too much here); 32 MiB if unknown.
std::size_t last_level_cache_bytes() {
  std::size_t best_level = 0, bytes = 0;
  for (int i = 0; i < 10; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::FILE* lf = std::fopen((dir + "level").c_str(), "r");
    if (!lf) continue;
    unsigned level = 0;
    const bool got_level = std::fscanf(lf, "%u", &level) == 1;
    std::fclose(lf);
    std::FILE* sf = std::fopen((dir + "size").c_str(), "r");
    if (!sf) continue;
    unsigned long long size = 0;
    char unit = 0;
    const int got = std::fscanf(sf, "%llu%c", &size, &unit);
    std::fclose(sf);
    if (!got_level || got < 1) continue;
    if (unit == 'K') size <<= 10;
    else if (unit == 'M') size <<= 20;
    if (level >= best_level && size > 0) best_level = level, bytes = std::size_t(size);
  }
  return bytes ? bytes : std::size_t{32} << 20;
}

// shm_unlink exactly once (by the creator), whether or not setup finished.
struct ShmNameTraits {
  static const char* invalid() noexcept { return nullptr; }
  static void close(const char* name) noexcept { ::shm_unlink(name); }
};
using UniqueShmName = UniqueHandle<const char*, ShmNameTraits>;
}  // namespace

ShmGroup::ShmGroup(MPI_Comm local, std::vector<int> local_to_global, const std::vector<PeerInfo>& peers,
                   const Options& options, bool host_oversubscribed)
    : to_global_(std::move(local_to_global)), peers_(peers) {
  MPI_Comm_rank(local, &me_);
  MPI_Comm_size(local, &size_);
  const auto L = std::size_t(size_);
  step_bytes_ = round_up(std::max<std::size_t>(options.shm_step_bytes, kLine * L), kLine * L);
  flat_bytes_ = std::min(options.shm_flat_bytes, step_bytes_);
  stream_bytes_ = options.shm_stream_bytes;
  direct_stream_bytes_ = options.shm_direct_stream_bytes;
  if (direct_stream_bytes_ == 0) {
    // Past the last-level cache the outputs are evicted before anyone reads them, and the
    // writes to lines other cores hold cost more than a DRAM write (2 ranks, 32 MiB L3 here:
    // 8 MiB streamed at 8.8-12.3 GB/s busbw, cached at 5.1-5.5; 4 MiB cached 12-17.6, streamed 9.6-14).
    direct_stream_bytes_ = last_level_cache_bytes() / (2 * L);
  }
  result_bytes_ = round_up(step_bytes_ / L, kLine) + kLine;
  slot_stride_ = step_bytes_ + result_bytes_;
  inline_offset_ = round_up(sizeof(Header), 4096) + round_up(L * sizeof(Control), 4096);
  data_offset_ = inline_offset_ + round_up(L * kInlineStride * sizeof(InlineLine), 4096);
  const std::size_t total = data_offset_ + L * kSlots * slot_stride_;
  spin_before_yield_ = host_oversubscribed ? 16 : (1 << 16);

  // The creator picks a name nobody can guess or collide with, and sends it with its status.
  char name[64] = {};
  char created[64] = {};  // the guard's copy: `name` is blanked below to tell the others it failed
  std::string failure;
  UniqueFd fd;
  UniqueShmName unlink_guard;
  if (me_ == 0) {
    std::random_device rd;
    std::snprintf(name, sizeof name, "/sluice-coll-%d-%08x%08x", int(::getpid()), rd(), rd());
    fd.reset(::shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
      failure = std::string("shm_open ") + name + ": " + std::strerror(errno);
    } else {
      std::memcpy(created, name, sizeof created);
      unlink_guard.reset(created);
      if (::ftruncate(fd.get(), off_t(total)) != 0) failure = std::string("ftruncate ") + name + ": " + std::strerror(errno);
    }
    if (!failure.empty()) name[0] = 0;
  }
  mpi_check(MPI_Bcast(name, sizeof name, MPI_CHAR, 0, local), "MPI_Bcast (shm segment name)");
  if (me_ != 0 && name[0]) {
    fd.reset(::shm_open(name, O_RDWR | O_CLOEXEC, 0600));
    if (!fd) failure = std::string("shm_open ") + name + ": " + std::strerror(errno);
  }
  if (failure.empty() && name[0]) {
    void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) failure = "mmap of the " + std::to_string(total) + "-byte shm segment: " + std::strerror(errno);
    else map_ = ShmMapping(p, total);
  }
  if (!name[0] && failure.empty()) failure = "the node's first rank could not create the shm segment";
  int ok = failure.empty() ? 1 : 0, all_ok = 0;
  mpi_check(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, local), "MPI_Allreduce (shm setup)");
  if (!all_ok) throw SystemError("sluice collectives: shared memory between the ranks of this node: " +
                                     (failure.empty() ? std::string("failed on another local rank") : failure), errno);

  if (me_ == 0) {
    auto* h = reinterpret_cast<Header*>(map_.data());
    *h = Header{kMagic, std::uint32_t(size_), std::uint32_t(kSlots), step_bytes_, result_bytes_};
  }
  Control& c = ctl(me_);
  new (&c) Control{};
  for (int sl = 0; sl < kSlots; ++sl) new (&inline_line(me_, std::uint64_t(sl))) InlineLine{};
  c.pid = std::int32_t(::getpid());
  // First touch of this rank's own areas by this rank (NUMA locality, no faults later).
  for (int s = 0; s < kSlots; ++s) std::memset(input_area(me_, std::uint64_t(s)), 0, slot_stride_);
  mpi_check(MPI_Barrier(local), "MPI_Barrier (shm setup)");
  // Everyone has it mapped: the name can go, so nothing is left behind if the job dies.
  unlink_guard.reset();
  auto* h = reinterpret_cast<const Header*>(map_.data());
  if (h->magic != kMagic || h->local_size != std::uint32_t(size_) || h->step_bytes != step_bytes_)
    throw CollectiveError("sluice collectives: the node's ranks disagree on the shm layout "
                          "(SLUICE_COLL_SHM_STEP differs between ranks?)");
}

ShmGroup::~ShmGroup() = default;

ShmGroup::Control& ShmGroup::ctl(int local) const noexcept {
  return reinterpret_cast<Control*>(map_.data() + round_up(sizeof(Header), 4096))[local];
}
char* ShmGroup::input_area(int local, std::uint64_t step) const noexcept {
  return map_.data() + data_offset_ + (std::size_t(local) * kSlots + step % kSlots) * slot_stride_;
}
ShmGroup::InlineLine& ShmGroup::inline_line(int local, std::uint64_t step) const noexcept {
  return reinterpret_cast<InlineLine*>(map_.data() + inline_offset_)[std::size_t(local) * kInlineStride + step % kSlots];
}
char* ShmGroup::result_area(int local, std::uint64_t step) const noexcept {
  return input_area(local, step) + step_bytes_;
}

void ShmGroup::publish(Field f, std::uint64_t v) noexcept {
  Control& c = ctl(me_);
  (f == Field::in ? c.in_seq : c.red_seq).store(v, std::memory_order_release);
}

void ShmGroup::mark_failed(int culprit, int kind) noexcept {
  if (!map_.data()) return;
  std::uint64_t expected = 0;
  ctl(me_).failed.compare_exchange_strong(expected, (std::uint64_t(kind) << 32) | std::uint64_t(culprit + 1));
}

void ShmGroup::fail_peer(int q, const std::string& why, int kind) {
  const int g = to_global_[std::size_t(q)];
  std::uint64_t expected = 0;
  ctl(me_).failed.compare_exchange_strong(expected, (std::uint64_t(kind) << 32) | std::uint64_t(g + 1));
  const PeerInfo& p = peers_[std::size_t(g)];
  const std::string who = "rank " + std::to_string(g) + " (host " + p.host + ", pid " + std::to_string(p.pid) + ")";
  if (kind == kMismatch) throw MismatchError("allreduce: " + who + " " + why, g);
  if (kind == kTimeout) throw PeerTimeout("allreduce: " + who + " " + why, g);
  throw PeerDied("allreduce: " + who + " " + why, g);
}

void ShmGroup::throw_reported(int q, std::uint64_t bad) {
  const int culprit = int(bad & 0xffffffffu) - 1;
  const int kind = int(bad >> 32);
  const PeerInfo& p = peers_[std::size_t(culprit)];
  const std::string msg = "allreduce: rank " + std::to_string(culprit) + " (host " + p.host + ", pid " +
                          std::to_string(p.pid) + ") failed, as reported by rank " +
                          std::to_string(to_global_[std::size_t(q)]);
  std::uint64_t expected = 0;
  ctl(me_).failed.compare_exchange_strong(expected, bad);
  if (kind == kMismatch) throw MismatchError(msg + " (mismatched call)", culprit);
  if (kind == kTimeout) throw PeerTimeout(msg + " (no progress)", culprit);
  throw PeerDied(msg, culprit);
}

void ShmGroup::check_failures() {
  for (int q = 0; q < size_; ++q)
    if (q != me_)
      if (const std::uint64_t bad = ctl(q).failed.load(std::memory_order_acquire)) throw_reported(q, bad);
}

void ShmGroup::wait_at_least(int q, Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature) {
  Control& c = ctl(q);
  std::atomic<std::uint64_t>& v = f == Field::in      ? c.in_seq
                                  : f == Field::red   ? c.red_seq
                                  : f == Field::agree ? c.agree
                                  : f == Field::alloc ? c.alloc_seq
                                                      : inline_line(q, target).seq;
  if (v.load(std::memory_order_acquire) < target) {
    auto last_alive = std::chrono::steady_clock::now();
    for (std::uint32_t spins = 1;; ++spins) {
      if (v.load(std::memory_order_acquire) >= target) break;
      if (int(spins) > spin_before_yield_) ::sched_yield();
      else SLUICE_CPU_RELAX();
      if ((spins & 127) != 0) continue;
      if (const std::uint64_t bad = c.failed.load(std::memory_order_acquire)) throw_reported(q, bad);
      const auto now = std::chrono::steady_clock::now();
      if (now - last_alive > std::chrono::milliseconds(1)) {
        last_alive = now;
        if (!process_alive(c.pid)) {
          check_failures();  // it may have reported the real culprit before it went
          fail_peer(q, "died (its process is gone)", kDied);
        }
      }
      if (dog.expired())
        fail_peer(q, "made no progress for " + std::to_string(dog.timeout().count()) +
                         " ms in a shared-memory allreduce; it stalled or died", kTimeout);
    }
    dog.progress();
  }
  if ((f == Field::in || f == Field::tiny) && signature != 0) {
    const std::uint64_t theirs = f == Field::in ? c.signature[target % kSlots].load(std::memory_order_relaxed)
                                                : inline_line(q, target).signature.load(std::memory_order_relaxed);
    if (theirs != signature)
      fail_peer(q, "called a different allreduce (count, type, op or algorithm differ, or it called "
                   "allreduce a different number of times)", kMismatch);
  }
}

void ShmGroup::wait_all_at_least(Field f, std::uint64_t target, Watchdog& dog, std::uint64_t signature) {
  for (int q = 0; q < size_; ++q)
    if (q != me_) wait_at_least(q, f, target, dog, signature);
}

void ShmGroup::allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                         std::size_t divisor, std::uint64_t signature, Watchdog& dog, const ShareHook* hook) {
  if (count == 0) return;
  if (send == nullptr) send = recv;
  const std::size_t bytes = count * size_of(type);
  if (!hook && bytes <= kInlineBytes) tiny(send, recv, count, type, op, divisor, signature, dog);
  else if (!hook && bytes <= flat_bytes_) flat(send, recv, count, type, op, divisor, signature, dog);
  // regions_made_, not the live regions: it is the same on every local rank, so every rank
  // takes this branch together even after some freed their buffers.
  else if (!hook && regions_made_ > 0 && direct(send, recv, count, type, op, divisor, signature, dog)) return;
  else stepped(send, recv, count, type, op, divisor, signature, dog, hook);
}


namespace {

// The inputs of a reduction, one pointer per local rank: on the stack for up to 64 ranks
// (every node we know), on the heap beyond.
class SourceList {
 public:
  explicit SourceList(int n) {
    if (n > kOnStack) heap_.resize(static_cast<std::size_t>(n));
  }
  const void** data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  static constexpr int kOnStack = 64;
  const void* stack_[kOnStack];
  std::vector<const void*> heap_;
};

}  // namespace

void ShmGroup::flat(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                    std::size_t divisor, std::uint64_t signature, Watchdog& dog) {
  const std::size_t bytes = count * size_of(type);
  const std::uint64_t s = ++seq_;
  // Slot s % 2 is free: every peer published in_seq >= s-1 (we waited for it in step s-1),
  // which it does only after finishing step s-2 (program order + release/acquire).
  std::memcpy(input_area(me_, s), send, bytes);
  ctl(me_).signature[s % kSlots].store(signature, std::memory_order_relaxed);
  publish(Field::in, s);
  wait_all_at_least(Field::in, s, dog, signature);
  SourceList sources(size_);
  const void** src = sources.data();
  for (int q = 0; q < size_; ++q) src[q] = input_area(q, s);
  reduce(type, op, recv, src, size_, count, divisor);
}

void ShmGroup::tiny(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                    std::size_t divisor, std::uint64_t signature, Watchdog& dog) {
  const std::uint64_t s = ++seq_;
  InlineLine& mine = inline_line(me_, s);  // free for the same reason as flat()'s slot
  std::memcpy(mine.data, send, count * size_of(type));
  mine.signature.store(signature, std::memory_order_relaxed);
  mine.seq.store(s, std::memory_order_release);
  SourceList sources(size_);
  const void** src = sources.data();
  for (int q = 0; q < size_; ++q) {
    if (q != me_) wait_at_least(q, Field::tiny, s, dog, signature);
    src[q] = inline_line(q, s).data;
  }
  reduce(type, op, recv, src, size_, count, divisor);
  // Keeps "in_seq >= s" true for the next step's slot reasoning (nobody waits on it now).
  publish(Field::in, s);
}

void ShmGroup::stepped(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                       std::size_t divisor, std::uint64_t signature, Watchdog& dog, const ShareHook* hook) {
  const std::size_t esz = size_of(type);
  const auto L = std::size_t(size_);
  const std::size_t step_elems = step_bytes_ / esz;
  const std::size_t align = kLine / esz;
  const auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);
  std::vector<const void*> src(L);
  // Big outputs bypass the cache (no read-for-ownership of the destination): the copy-out is
  // then one DRAM write per byte instead of a read and a write.
  const bool streaming = count * esz >= stream_bytes_;
  for (std::size_t base = 0; base < count; base += step_elems) {
    const std::size_t m = std::min(step_elems, count - base);
    const std::size_t per = round_up((m + L - 1) / L, align);
    auto off = [&](std::size_t q) { return std::min(m, q * per); };
    auto len = [&](std::size_t q) { return std::min(m, (q + 1) * per) - off(q); };
    const auto me = std::size_t(me_);
    const std::uint64_t s = ++seq_;

    // 1. copy in every share but my own (which I read from my buffer). The slot is free: see
    //    flat() (in_seq >= s-1 of every peer, seen in step s-1, implies it finished step s-2).
    char* mine = input_area(me_, s);
    std::memcpy(mine, in + base * esz, off(me) * esz);
    const std::size_t after = off(me) + len(me);
    std::memcpy(mine + after * esz, in + (base + after) * esz, (m - after) * esz);
    ctl(me_).signature[s % kSlots].store(signature, std::memory_order_relaxed);
    publish(Field::in, s);

    // 2. reduce my share of everyone's input, in rank order, into my result area.
    wait_all_at_least(Field::in, s, dog, signature);
    char* res = result_area(me_, s);
    if (len(me) > 0) {
      for (std::size_t q = 0; q < L; ++q)
        src[q] = q == me ? static_cast<const void*>(in + (base + off(me)) * esz) : input_area(int(q), s) + off(me) * esz;
      // Without a hook the result is final: write it to my output in the same pass (after
      // the reads of my own input, so in place is fine).
      char* mine_out = out + (base + off(me)) * esz;
      reduce(type, op, res, src.data(), size_, len(me), divisor, hook ? nullptr : mine_out);
      if (hook) (*hook)(res, len(me), base + off(me));
    } else if (hook) {
      (*hook)(res, 0, base + off(me));
    }
    publish(Field::red, s);

    // 3. copy every other rank's result out (and mine after a hook changed it).
    for (std::size_t q = 0; q < L; ++q) {
      if (q == me && !hook) continue;
      if (q != me) wait_at_least(int(q), Field::red, s, dog, 0);
      if (streaming) copy_streaming(out + (base + off(q)) * esz, result_area(int(q), s), len(q) * esz);
      else std::memcpy(out + (base + off(q)) * esz, result_area(int(q), s), len(q) * esz);
    }
  }
  if (streaming) store_fence();
}

// --- Shared buffers and the direct protocol ---------------------------------------------------

std::shared_ptr<SharedBuffer::Region> ShmGroup::allocate_shared(std::size_t bytes, Watchdog& dog) {
  const auto L = std::size_t(size_);
  const std::uint64_t k = ++allocations_tried_;  // the same on every local rank
  auto region = std::make_shared<SharedBuffer::Region>();
  region->owner = me_;
  region->bytes = bytes;
  region->maps.resize(L);

  // 1. Each rank creates its part under a name nobody can guess and reserves its pages now
  //    (ENOSPC here, not SIGBUS on first touch), then publishes the name ("" if it failed).
  std::string failure;  // what failed on this rank, errno in `err`
  int err = 0;
  char created[sizeof Control::alloc_name] = {};  // what unlink_guard unlinks
  UniqueFd fd;
  UniqueShmName unlink_guard;
  try {
    const long page = ::sysconf(_SC_PAGESIZE);
    const std::size_t unit = std::size_t(page > 0 ? page : 4096);
    if (bytes > (std::size_t{1} << 62)) throw InvalidArgument("allocate_shared: " + std::to_string(bytes) + " bytes");
    const std::size_t len = round_up(std::max<std::size_t>(bytes, 1), unit);
    std::random_device rd;
    std::snprintf(created, sizeof created, "/sluice-buf-%d-%08x%08x", int(::getpid()), rd(), rd());
    fd.reset(::shm_open(created, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) throw SystemError(std::string("shm_open ") + created, errno);
    unlink_guard.reset(created);
    if (const int e = ::posix_fallocate(fd.get(), 0, off_t(len)); e != 0)
      throw SystemError("reserving " + std::to_string(len) + " bytes of shared memory (" + created + ")", e);
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw SystemError("mmap of a " + std::to_string(len) + "-byte shared buffer", errno);
    region->maps[std::size_t(me_)] = ShmMapping(p, len);
  } catch (const SystemError& e) {
    failure = e.what();
    err = e.code();
  } catch (const std::exception& e) {
    failure = e.what();
    err = EINVAL;
  }
  Control& c = ctl(me_);
  std::memset(c.alloc_name, 0, sizeof c.alloc_name);
  if (failure.empty()) std::memcpy(c.alloc_name, created, sizeof c.alloc_name);
  c.alloc_len = region->maps[std::size_t(me_)].size();
  c.alloc_seq.store(2 * k - 1, std::memory_order_release);

  // 2. Map every peer's part. A peer cannot start allocation k+1 (and overwrite its name)
  //    before everyone has published step 2k below.
  bool peer_failed = false;
  for (int q = 0; q < size_; ++q) {
    if (q == me_) continue;
    wait_at_least(q, Field::alloc, 2 * k - 1, dog, 0);
    if (!failure.empty() || peer_failed) continue;
    const Control& theirs = ctl(q);
    char peer_name[sizeof Control::alloc_name];
    std::memcpy(peer_name, theirs.alloc_name, sizeof peer_name);
    peer_name[sizeof peer_name - 1] = 0;
    if (!peer_name[0]) {
      peer_failed = true;
      continue;
    }
    UniqueFd peer(::shm_open(peer_name, O_RDWR | O_CLOEXEC, 0600));
    void* p = peer ? ::mmap(nullptr, theirs.alloc_len, PROT_READ | PROT_WRITE, MAP_SHARED, peer.get(), 0) : MAP_FAILED;
    if (p == MAP_FAILED) {
      failure = "mapping local rank " + std::to_string(q) + "'s part (" + peer_name + "): " + std::strerror(errno);
      err = errno;
    } else {
      region->maps[std::size_t(q)] = ShmMapping(p, theirs.alloc_len);
    }
  }

  // 3. Agree: all or none. After this every rank has opened every name, so each unlinks its
  //    own on return (nothing stays in /dev/shm).
  const bool ok = failure.empty() && !peer_failed;
  c.alloc_ok.store(2 * k + (ok ? 1 : 0), std::memory_order_relaxed);
  c.alloc_seq.store(2 * k, std::memory_order_release);
  bool all_ok = ok;
  for (int q = 0; q < size_; ++q) {
    if (q == me_) continue;
    wait_at_least(q, Field::alloc, 2 * k, dog, 0);
    // Exactly this allocation's "yes" (a peer already past it would show a later value).
    all_ok = all_ok && ctl(q).alloc_ok.load(std::memory_order_relaxed) == 2 * k + 1;
  }
  if (!failure.empty())
    throw SystemError("sluice collectives: shared buffer of " + std::to_string(bytes) + " bytes: " + failure, err);
  if (!all_ok)
    throw Error("sluice collectives: shared buffer of " + std::to_string(bytes) +
                " bytes: another rank of this node could not create or map its part");
  region->id = ++regions_made_;  // only allocations that every local rank holds count
  std::lock_guard lk(regions_mu_);
  std::erase_if(regions_, [](const auto& w) { return w.expired(); });
  regions_.push_back(region);
  return region;
}

std::pair<std::uint64_t, std::uint64_t> ShmGroup::find_own(const void* p, std::size_t bytes) {
  const auto* c = static_cast<const char*>(p);
  std::lock_guard lk(regions_mu_);
  for (const auto& w : regions_) {
    const auto r = w.lock();
    if (!r) continue;
    const ShmMapping& m = r->maps[std::size_t(me_)];
    if (c >= m.data() && c <= m.data() + m.size() && bytes <= std::size_t(m.data() + m.size() - c))
      return {r->id, std::uint64_t(c - m.data())};
  }
  return {0, 0};
}

char* ShmGroup::resolve(int q, std::uint64_t id, std::uint64_t offset, std::size_t bytes,
                        std::vector<std::shared_ptr<SharedBuffer::Region>>& keep) {
  if (id == 0) return nullptr;
  std::lock_guard lk(regions_mu_);
  for (const auto& w : regions_) {
    auto r = w.lock();
    if (!r || r->id != id) continue;
    const ShmMapping& m = r->maps[std::size_t(q)];
    if (offset > m.size() || bytes > m.size() - offset) return nullptr;
    keep.push_back(std::move(r));
    return m.data() + offset;
  }
  return nullptr;
}

namespace {
// Bytes reduced per block of the direct protocol: the block stays in L1/L2 between the
// reduction and its L copies out.
constexpr std::size_t kDirectBlock = 16 * 1024;
std::atomic<std::uint64_t> direct_call_count{0};
}  // namespace

std::uint64_t ShmGroup::direct_calls() noexcept { return direct_call_count.load(std::memory_order_relaxed); }

bool ShmGroup::direct(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                      std::size_t divisor, std::uint64_t signature, Watchdog& dog) {
  const std::size_t esz = size_of(type);
  const std::size_t bytes = count * esz;
  const auto L = std::size_t(size_);
  const std::uint64_t s = ++seq_;

  // 1. arrive: publish where my buffers are (their allocation and offset; 0: not shared).
  Control& c = ctl(me_);
  Control::SharedBuffers& pub = c.shared[s % kSlots];
  const auto [send_id, send_off] = find_own(send, bytes);
  const auto [recv_id, recv_off] = find_own(recv, bytes);
  pub.send_id.store(send_id, std::memory_order_relaxed);
  pub.send_offset.store(send_off, std::memory_order_relaxed);
  pub.recv_id.store(recv_id, std::memory_order_relaxed);
  pub.recv_offset.store(recv_off, std::memory_order_relaxed);
  c.signature[s % kSlots].store(signature, std::memory_order_relaxed);
  publish(Field::in, s);
  wait_all_at_least(Field::in, s, dog, signature);

  // 2. agree: every rank must find every rank's buffers in its own mappings (a rank that
  //    freed its SharedBuffer no longer maps that allocation), else all take the stepped path.
  std::vector<std::shared_ptr<SharedBuffer::Region>> keep;
  SourceList inputs(size_);
  const void** in = inputs.data();
  std::vector<char*> out(L);
  bool ok = true;
  for (std::size_t q = 0; q < L && ok; ++q) {
    const Control::SharedBuffers& theirs = ctl(int(q)).shared[s % kSlots];
    in[q] = resolve(int(q), theirs.send_id.load(std::memory_order_relaxed),
                    theirs.send_offset.load(std::memory_order_relaxed), bytes, keep);
    out[q] = resolve(int(q), theirs.recv_id.load(std::memory_order_relaxed),
                     theirs.recv_offset.load(std::memory_order_relaxed), bytes, keep);
    ok = in[q] != nullptr && out[q] != nullptr;
  }
  c.agree.store(2 * s + (ok ? 1 : 0), std::memory_order_release);
  bool all = ok;
  for (int q = 0; q < size_; ++q) {
    if (q == me_) continue;
    wait_at_least(q, Field::agree, 2 * s, dog, 0);
    all = all && (ctl(q).agree.load(std::memory_order_acquire) & 1) != 0;
  }
  if (!all) return false;

  // 3. reduce my share of every input, block by block, into every rank's output. Share q is
  //    read and written by rank q alone, so in place is fine (a block is read before it is
  //    written). Outputs go to other cores: big ones bypass the cache.
  const std::size_t align = kLine / esz;
  const std::size_t per = round_up((count + L - 1) / L, align);
  const std::size_t first = std::min(count, std::size_t(me_) * per);
  const std::size_t mine = std::min(count, first + per) - first;
  const bool streaming = bytes >= direct_stream_bytes_;
  direct_scratch_.resize(kDirectBlock / sizeof(std::uint64_t));
  char* block = reinterpret_cast<char*>(direct_scratch_.data());
  const std::size_t block_elems = kDirectBlock / esz;
  SourceList sources(size_);
  const void** src = sources.data();
  for (std::size_t b = 0, blocks = 0; b < mine; b += block_elems, ++blocks) {
    // Another rank failed: stop writing into the others' buffers now (they may be returning).
    if ((blocks & 15) == 15) check_failures();
    const std::size_t m = std::min(block_elems, mine - b);
    const std::size_t at = (first + b) * esz;
    for (std::size_t q = 0; q < L; ++q) src[q] = static_cast<const char*>(in[q]) + at;
    reduce(type, op, block, src, size_, m, divisor);
    for (std::size_t q = 0; q < L; ++q) {
      if (streaming) copy_streaming(out[q] + at, block, m * esz);
      else std::memcpy(out[q] + at, block, m * esz);
    }
  }
  if (streaming) store_fence();

  // 4. done: nobody returns (and lets its caller touch its buffers) before all shares are in.
  publish(Field::red, s);
  wait_all_at_least(Field::red, s, dog, 0);
  direct_call_count.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace sluice::coll
