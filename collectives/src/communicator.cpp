// The communicator: bootstrap over MPI (peers, node membership, shm segment), the call
// signature and tag, algorithm selection and dispatch, failure bookkeeping.
#include <sluice/collectives/communicator.hpp>

#include "algorithms.hpp"
#include "async_engine.hpp"
#include "cuda_staging.hpp"
#include "mpi_handles.hpp"
#include "mpi_transport.hpp"
#include "peers.hpp"
#include "reduce.hpp"
#include "selection.hpp"
#include "shm_group.hpp"
#if SLUICE_COLL_HAVE_UCX
#include "ucx_transport.hpp"
#endif

#include <sluice/common/placement_record.hpp>
#include <sluice/monitor/recorder.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace sluice::coll {

// --- Options ---------------------------------------------------------------------------------
namespace {
template <typename T>
bool env_number(const char* var, T& out, T lo, T hi) {
  const char* v = std::getenv(var);
  if (!v || !*v) return false;
  T x{};
  auto [p, ec] = std::from_chars(v, v + std::strlen(v), x);
  if (ec != std::errc() || *p != 0 || x < lo || x > hi)
    throw InvalidArgument(std::string(var) + "='" + quote_input(v) + "' is not a number in [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "]");
  out = x;
  return true;
}
}  // namespace

Options Options::from_environment() {
  Options o;
  long long ms = 0;
  if (env_number<long long>("SLUICE_COLL_TIMEOUT_MS", ms, 1, 86'400'000)) o.timeout = std::chrono::milliseconds(ms);
  if (const char* a = std::getenv("SLUICE_ALLREDUCE_ALGO")) {
    auto alg = parse_algorithm(a);
    if (!alg) throw InvalidArgument(std::string("SLUICE_ALLREDUCE_ALGO='") + quote_input(a) +
                                    "' (auto, shm, ring, rd, rabenseifner, hierarchical)");
    o.algorithm = *alg;
  }
  if (const char* t = std::getenv("SLUICE_COLL_TRANSPORT"); t && *t) {
    auto kind = parse_transport(t);
    if (!kind)
      throw InvalidArgument(std::string("SLUICE_COLL_TRANSPORT='") + quote_input(t) + "' is not a transport (mpi, ucx)");
    o.transport = *kind;
  }
  int flag = 0;
  if (env_number<int>("SLUICE_COLL_CHECK", flag, 0, 1)) o.check_signature = flag != 0;
  if (env_number<int>("SLUICE_COLL_SHM", flag, 0, 1)) o.shm = flag != 0;
  env_number<std::size_t>("SLUICE_COLL_SHM_STEP", o.shm_step_bytes, 4096, std::size_t{1} << 30);
  env_number<std::size_t>("SLUICE_COLL_SHM_FLAT", o.shm_flat_bytes, 0, std::size_t{1} << 30);
  env_number<std::size_t>("SLUICE_COLL_SHM_STREAM", o.shm_stream_bytes, 0, std::size_t{1} << 62);
  env_number<std::size_t>("SLUICE_COLL_SHM_DIRECT_STREAM", o.shm_direct_stream_bytes, 0, std::size_t{1} << 62);
  env_number<std::size_t>("SLUICE_COLL_RING_SEGMENT", o.ring_segment_bytes, 64, std::size_t{1} << 30);
  env_number<int>("SLUICE_COLL_RING_DEPTH", o.ring_depth, 2, 64);
  env_number<std::size_t>("SLUICE_COLL_FUSION_BYTES", o.fusion_bytes, 0, std::size_t{1} << 40);
  long long us = 0;
  if (env_number<long long>("SLUICE_COLL_CYCLE_US", us, 10, 10'000'000)) o.cycle = std::chrono::microseconds(us);
  if (env_number<int>("SLUICE_COLL_CUDA", flag, 0, 1)) o.cuda = flag != 0;
  env_number<std::size_t>("SLUICE_COLL_CUDA_CHUNK_BYTES", o.cuda_chunk_bytes, 64, std::size_t{1} << 34);
  return o;
}

bool ucx_available() noexcept { return SLUICE_COLL_HAVE_UCX != 0; }

// --- Node membership -------------------------------------------------------------------------
namespace {
// The placement record's node name (SLUICE_PLACEMENT: the JSON itself or a file holding it),
// "" when absent or unreadable (then MPI_Comm_split_type alone decides).
std::string placement_node() {
  const char* raw = std::getenv("SLUICE_PLACEMENT");
  if (!raw || !*raw) return {};
  std::string text = raw;
  if (text.front() != '{') {
    std::ifstream in(text);
    if (!in) return {};
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  try {
    return NodePlacement::from_json(text).node;
  } catch (const Error& e) {
    std::fprintf(stderr, "sluice collectives: ignoring SLUICE_PLACEMENT: %s\n", e.what());
    return {};
  }
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr std::size_t kName = 64;
struct WireInfo {
  char host[kName];
  char node[kName];
  std::int64_t pid;
  std::int64_t leader;  // global rank of this rank's local rank 0
};
}  // namespace

struct Communicator::Impl {
  Options options;
  UniqueComm comm;     // private duplicate: our tags never meet the user's messages
  UniqueComm local;    // ranks of this node
  int rank = 0, size = 1, local_rank = 0, local_size = 1, nodes = 1, node_index = 0;
  bool uniform = true;
  std::vector<PeerInfo> peers;
  std::vector<int> local_ranks;  // global ranks of this node, by local rank
  std::vector<int> rail;         // global ranks with my local rank, by node
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ShmGroup> shm;
  std::uint64_t calls = 0;
  std::string broken;  // why, once a call failed
  bool cuda_here = false;      // this rank can see device memory
  bool cuda_anywhere = false;  // some rank can: calls above one chunk are chunked on every rank
  std::unique_ptr<CudaStager> stager;  // made on the first call with a device buffer
  SharedBuffer fusion;                  // the async engine's fusion buffer, when shared
  std::unique_ptr<AsyncEngine> engine;  // last member: stopped and joined first

  void allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                 const AllreduceOptions& call);

  Topology topology() const { return Topology{size, nodes, local_size, uniform, shm != nullptr}; }

  Algorithm resolve(std::size_t bytes, const AllreduceOptions& call) const {
    Algorithm a = call.algorithm != Algorithm::automatic ? call.algorithm : options.algorithm;
    if (a == Algorithm::automatic) a = select_algorithm(bytes, topology(), options.ring_segment_bytes);
    return a;
  }

  int make_tag(std::uint64_t signature) const {
    const int max_tag = transport->max_tag();  // reserved for failure notices
    if (max_tag >= (1 << 30)) return int(((calls & 0xff) << 22) | (signature & 0x3fffff));
    return int((((calls & 0x7) << 11) | (signature & 0x7ff)) % std::uint64_t(max_tag));
  }

  // One collective call over host buffers (what every chunk of a staged call is).
  void one(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, Algorithm algo);
  void record_failure(const std::exception& e);
  // Communicator::allocate_shared after its checks (the async engine calls it for its buffer).
  SharedBuffer allocate_shared(std::size_t bytes);

  void run(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, Algorithm algo,
           std::uint64_t signature, Watchdog& dog);
};

Communicator::Communicator(MPI_Comm user, Options options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  if (m.options.transport == TransportKind::ucx && !ucx_available())  // the same on every rank
    throw InvalidArgument("transport ucx (SLUICE_COLL_TRANSPORT or Options::transport): this sluice_collectives "
                          "was not built with UCX (pkg-config found no ucx at configure time, or "
                          "SLUICE_COLL_UCX=OFF); use mpi");
  if (name(m.options.transport) == "?") throw InvalidArgument("Options::transport: unknown transport");
  MPI_Comm dup = MPI_COMM_NULL;
  mpi_check(MPI_Comm_dup(user, &dup), "MPI_Comm_dup");
  m.comm.reset(dup);
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  MPI_Comm_rank(dup, &m.rank);
  MPI_Comm_size(dup, &m.size);

  // Node: ranks that share memory (MPI_Comm_split_type) and, when sluice placed the job, the
  // same placement node (the dev cluster runs two "nodes" on one host).
  MPI_Comm shared = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(dup, MPI_COMM_TYPE_SHARED, m.rank, MPI_INFO_NULL, &shared), "MPI_Comm_split_type");
  UniqueComm shared_guard(shared);
  const std::string node = placement_node();
  MPI_Comm local = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split(shared, int(fnv1a(node) & 0x7fffffff), m.rank, &local), "MPI_Comm_split (node)");
  m.local.reset(local);
  MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN);
  MPI_Comm_rank(local, &m.local_rank);
  MPI_Comm_size(local, &m.local_size);
  int leader = m.rank;
  mpi_check(MPI_Bcast(&leader, 1, MPI_INT, 0, local), "MPI_Bcast (node leader)");

  WireInfo mine{};
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::snprintf(mine.host, kName, "%s", host);
  std::snprintf(mine.node, kName, "%s", node.empty() ? host : node.c_str());
  mine.pid = ::getpid();
  mine.leader = leader;
  std::vector<WireInfo> all(std::size_t(m.size));
  mpi_check(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, dup), "MPI_Allgather (peers)");
  std::map<std::int64_t, std::vector<int>> by_leader;  // ordered by leader rank: node order
  m.peers.resize(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    PeerInfo& p = m.peers[i];
    p.host.assign(all[i].host, strnlen(all[i].host, kName));
    p.node.assign(all[i].node, strnlen(all[i].node, kName));
    p.pid = pid_t(all[i].pid);
    p.same_host = p.host == mine.host;
    by_leader[all[i].leader].push_back(int(i));
  }
  m.nodes = int(by_leader.size());
  int idx = 0;
  for (auto& [l, members] : by_leader) {
    if (l == leader) {
      m.node_index = idx;
      m.local_ranks = members;
    }
    if (int(members.size()) != m.local_size) m.uniform = false;
    ++idx;
  }
  if (m.uniform)
    for (auto& [l, members] : by_leader) m.rail.push_back(members[std::size_t(m.local_rank)]);

#if SLUICE_COLL_HAVE_UCX
  if (m.options.transport == TransportKind::ucx) m.transport = std::make_unique<UcxTransport>(dup, m.peers);
#endif
  if (!m.transport) m.transport = std::make_unique<MpiTransport>(dup, m.peers);
  long host_ranks = 0;
  for (const PeerInfo& p : m.peers) host_ranks += p.same_host ? 1 : 0;
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  const bool oversubscribed = cpus > 0 && host_ranks > cpus;
  m.transport->oversubscribed = oversubscribed;
  if (m.options.shm && m.local_size > 1) {
    m.shm = std::make_unique<ShmGroup>(local, m.local_ranks, m.peers, m.options, oversubscribed);
    m.transport->set_extra_check([shm = m.shm.get()] { shm->check_failures(); });
  }
  // Whether calls are chunked must be the same on every rank, so it depends on whether any
  // rank can see device memory, not on this rank's buffers.
  m.cuda_here = m.options.cuda && cuda_present();
  int cuda_any = m.cuda_here ? 1 : 0;
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, &cuda_any, 1, MPI_INT, MPI_MAX, dup), "MPI_Allreduce (CUDA present)");
  m.cuda_anywhere = cuda_any != 0;
}

Communicator::~Communicator() {
  if (impl_) impl_->engine.reset();  // collective: waits for every rank's progress thread
}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;

int Communicator::rank() const noexcept { return impl_->rank; }
int Communicator::size() const noexcept { return impl_->size; }
int Communicator::local_rank() const noexcept { return impl_->local_rank; }
int Communicator::local_size() const noexcept { return impl_->local_size; }
int Communicator::node_count() const noexcept { return impl_->nodes; }
bool Communicator::uniform_nodes() const noexcept { return impl_->uniform; }
const Options& Communicator::options() const noexcept { return impl_->options; }

Algorithm Communicator::select(std::size_t bytes, const AllreduceOptions& call) const {
  return impl_->resolve(bytes, call);
}

void Communicator::allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                             const AllreduceOptions& call) {
  if (impl_->engine) {  // one thread drives the communicator: queue it behind the others
    if (call.algorithm != Algorithm::automatic)
      throw InvalidArgument("allreduce: a forced algorithm cannot be combined with allreduce_async");
    allreduce_async(send, recv, count, type, op).wait();  // recorded by the engine
    return;
  }
  // Telemetry: one record_allreduce per completed call (a failed one is not recorded), into the
  // default recorder; the async engine records its buckets itself (async_engine.cpp).
  const std::uint64_t t0 = monitor::now_ns();
  impl_->allreduce(send, recv, count, type, op, call);
  monitor::record_allreduce(std::uint64_t(count) * size_of(type), monitor::now_ns() - t0,
                            std::uint32_t(impl_->size));
}

void* SharedBuffer::data() const noexcept {
  return region_ ? region_->maps[std::size_t(region_->owner)].data() : nullptr;
}
std::size_t SharedBuffer::size() const noexcept { return region_ ? region_->bytes : 0; }

SharedBuffer Communicator::allocate_shared(std::size_t bytes) {
  Impl& m = *impl_;
  if (!m.broken.empty())
    throw BrokenCommunicator("allocate_shared: the communicator is broken by an earlier failure: " + m.broken);
  // Every rank must agree, call by call, on whether shared buffers exist; a collective of its
  // own running beside the progress thread's calls could not keep that so.
  if (m.engine)
    throw InvalidArgument("allocate_shared: the allreduce_async progress thread is running; allocate shared "
                          "buffers before the first allreduce_async");
  return m.allocate_shared(bytes);
}

SharedBuffer Communicator::Impl::allocate_shared(std::size_t bytes) {
  Impl& m = *this;
  std::shared_ptr<SharedBuffer::Region> region;
  std::exception_ptr failure;
  try {
    if (m.shm) {
      Watchdog dog(m.options.timeout);
      region = m.shm->allocate_shared(bytes, dog);
    } else {  // nobody to share with: private pages
      const long page = ::sysconf(_SC_PAGESIZE);
      const std::size_t unit = std::size_t(page > 0 ? page : 4096);
      if (bytes > (std::size_t{1} << 62))
        throw SystemError("sluice collectives: allocate_shared(" + std::to_string(bytes) + ")", EINVAL);
      const std::size_t len = (std::max<std::size_t>(bytes, 1) + unit - 1) / unit * unit;
      void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED)
        throw SystemError("sluice collectives: allocate_shared(" + std::to_string(bytes) + "): mmap", errno);
      region = std::make_shared<SharedBuffer::Region>();
      region->bytes = bytes;
      region->maps.emplace_back(p, len);
    }
  } catch (const PeerError& e) {  // a local peer never came (or died): the communicator is broken
    m.broken = e.what();
    const int kind = dynamic_cast<const PeerTimeout*>(&e) ? 2 : 1;
    if (m.shm) m.shm->mark_failed(e.peer(), kind);
    m.transport->broadcast_failure(e.peer(), kind);
    // The other nodes wait in the agreement below: give them this node's "no" first.
    int ok = 0;
    if (m.nodes > 1) MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, m.comm.get());
    throw;
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  // All or none across nodes too (on one node the segment's agreement already was).
  int ok = failure ? 0 : 1;
  if (m.nodes > 1 || !m.shm)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, m.comm.get()), "MPI_Allreduce (shared buffer)");
  if (failure) std::rethrow_exception(failure);
  if (!ok) throw Error("sluice collectives: allocate_shared(" + std::to_string(bytes) + "): failed on another rank");
  return SharedBuffer(std::move(region));
}

AllreduceHandle Communicator::allreduce_async(const void* send, void* recv, std::size_t count, DataType type,
                                              ReduceOp op) {
  Impl& m = *impl_;
  if (int(type) < 0 || int(type) >= kDataTypeCount) throw InvalidArgument("allreduce_async: unknown data type");
  if (int(op) < 0 || int(op) >= kReduceOpCount) throw InvalidArgument("allreduce_async: unknown op");
  if (count > 0 && recv == nullptr) throw InvalidArgument("allreduce_async: recv is null");
  if (m.cuda_here && count > 0)  // the progress thread has no current context of its own
    for (const void* p : {send, static_cast<const void*>(recv)})
      if (p && cuda::is_device_pointer(p) && !cuda::Driver::process()->context_of(p))
        throw InvalidArgument("allreduce_async: the CUDA driver names no context for a device buffer (VMM memory?), "
                              "so the progress thread cannot copy it; use allreduce with its context current");
  if (!m.engine) {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    // The thread calls MPI only through the MPI transport (UCX and shm need no MPI after set-up).
    const bool mpi_free = m.size == 1 || (m.nodes == 1 && m.shm && m.local_size == m.size) ||
                          m.options.transport != TransportKind::mpi;
    if (!mpi_free && level < MPI_THREAD_MULTIPLE)
      throw InvalidArgument("allreduce_async: this communicator spans nodes (or has no shared memory), so its "
                            "progress thread calls MPI: initialise MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE), "
                            "or use the UCX transport (SLUICE_COLL_TRANSPORT=ucx)");
    // One node: fused buckets live in a shared buffer, so they take the shm direct protocol.
    // Collective, like the first allreduce_async it belongs to; where the memory cannot be
    // had (every rank fails alike) the engine uses a heap buffer.
    // (Through the segment, no MPI, and with the call deadline: a rank that never makes its
    // first allreduce_async fails the others with PeerTimeout, as its absence would anyway.)
    if (m.shm && m.nodes == 1 && m.options.fusion_bytes > 0) {
      if (!m.broken.empty())
        throw BrokenCommunicator("allreduce_async: the communicator is broken by an earlier failure: " + m.broken);
      try {
        m.fusion = m.allocate_shared(m.options.fusion_bytes);
      } catch (const PeerError&) {
        throw;
      } catch (const Error& e) {
        if (m.rank == 0)
          std::fprintf(stderr, "sluice collectives: fusion buffer in ordinary memory (%s)\n", e.what());
      }
    }
    Impl* impl = &m;
    m.engine = std::make_unique<AsyncEngine>(
        [impl](const void* s, void* r, std::size_t n, DataType t, ReduceOp o) { impl->allreduce(s, r, n, t, o, {}); },
        m.options.fusion_bytes, m.options.cycle, m.cuda_here, std::uint32_t(m.size), m.fusion.as<char>());
  }
  return AllreduceHandle(m.engine->submit(send, recv, count, type, op));
}

void Communicator::average_gradients(std::span<const Tensor> tensors) {
  std::vector<AllreduceHandle> handles;
  handles.reserve(tensors.size());
  for (const Tensor& t : tensors) handles.push_back(allreduce_async(t.send, t.recv, t.count, t.type, ReduceOp::avg));
  for (const AllreduceHandle& h : handles) h.wait();
}

void Communicator::Impl::allreduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                                   const AllreduceOptions& call) {
  Impl& m = *this;
  if (!m.broken.empty()) throw BrokenCommunicator("allreduce: the communicator is broken by an earlier failure: " + m.broken);
  if (int(type) < 0 || int(type) >= kDataTypeCount) throw InvalidArgument("allreduce: unknown data type");
  if (int(op) < 0 || int(op) >= kReduceOpCount) throw InvalidArgument("allreduce: unknown op");
  if (count > 0 && recv == nullptr) throw InvalidArgument("allreduce: recv is null");
  if (send == nullptr) send = recv;
  const std::size_t esz = size_of(type);
  const Algorithm algo = m.resolve(count * esz, call);  // of the whole call, also when chunked
  const std::size_t chunk = std::max<std::size_t>(1, m.options.cuda_chunk_bytes / esz);
  const bool send_device = m.cuda_here && count > 0 && cuda::is_device_pointer(send);
  const bool recv_device =
      m.cuda_here && count > 0 && (send == recv ? send_device : cuda::is_device_pointer(recv));
  if (!send_device && !recv_device) {
    if (!m.cuda_anywhere || count <= chunk) return m.one(send, recv, count, type, op, algo);
    for (std::size_t off = 0; off < count; off += chunk)  // as the ranks with device buffers do
      m.one(static_cast<const char*>(send) + off * esz, static_cast<char*>(recv) + off * esz,
            std::min(chunk, count - off), type, op, algo);
    return;
  }
  try {
    if (!m.stager) m.stager = std::make_unique<CudaStager>();
    m.stager->run(send, recv, count, esz, chunk, send_device, recv_device,
                  [&](const void* s, void* r, std::size_t n) { m.one(s, r, n, type, op, algo); });
  } catch (const std::exception& e) {
    if (m.broken.empty()) m.record_failure(e);  // a CUDA error here: the other ranks must not wait
    throw;
  }
}

void Communicator::Impl::one(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                             Algorithm algo) {
  Impl& m = *this;
  const std::size_t bytes = count * size_of(type);
  ++m.calls;
  if (count == 0) return;
  if (m.size == 1) {
    if (send != recv) std::memcpy(recv, send, bytes);
    return;
  }
  std::uint64_t signature = 0;
  if (m.options.check_signature)
    signature = mix(mix(mix(count) ^ (std::uint64_t(type) << 8 | std::uint64_t(op) << 16)) ^ std::uint64_t(algo)) | 1;
  Watchdog dog(m.options.timeout);
  try {
    m.run(send, recv, count, type, op, algo, signature, dog);
  } catch (const PeerError& e) {
    m.broken = e.what();
    const int kind = dynamic_cast<const MismatchError*>(&e) ? 3 : dynamic_cast<const PeerTimeout*>(&e) ? 2 : 1;
    if (m.shm) m.shm->mark_failed(e.peer(), kind);
    m.transport->broadcast_failure(e.peer(), kind);
    throw;
  } catch (const std::exception& e) {
    m.record_failure(e);
    throw;
  }
}

// This rank failed (not a peer): the communicator is broken, and the others are told so.
void Communicator::Impl::record_failure(const std::exception& e) {
  broken = e.what();
  if (shm) shm->mark_failed(rank, 1);
  transport->broadcast_failure(rank, 1);
}

void Communicator::Impl::run(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                             Algorithm algo, std::uint64_t signature, Watchdog& dog) {
  const std::size_t esz = size_of(type);
  const ReduceOp wire_op = op == ReduceOp::avg ? ReduceOp::sum : op;
  const Call c{type, wire_op, make_tag(signature), dog, options};

  auto transport_algo = [&](Algorithm a, Group& g, void* buf, std::size_t n) {
    switch (a) {
      case Algorithm::ring: ring_allreduce(g, buf, n, c); break;
      case Algorithm::recursive_doubling: recursive_doubling_allreduce(g, buf, n, c); break;
      case Algorithm::rabenseifner: rabenseifner_allreduce(g, buf, n, c); break;
      default: throw InvalidArgument("allreduce: not a transport algorithm: " + std::string(name(a)));
    }
  };

  switch (algo) {
    case Algorithm::shm: {
      if (!shm || local_size != size)
        throw InvalidArgument("allreduce: algorithm shm needs every rank on one node with shared memory (" +
                              std::to_string(nodes) + " nodes here)");
      shm->allreduce(send, recv, count, type, op, std::size_t(size), signature, dog);
      return;
    }
    case Algorithm::hierarchical: {
      if (nodes == 1 && shm) {
        shm->allreduce(send, recv, count, type, op, std::size_t(size), signature, dog);
        return;
      }
      if (!shm || !uniform) {
        if (!uniform)
          throw InvalidArgument("allreduce: algorithm hierarchical needs the same number of ranks on every node");
        // One rank per node: the rail is everyone.
        break;
      }
      Group g{*transport, rail, 0};
      g.me = node_index;
      ShmGroup::ShareHook hook = [&](void* share, std::size_t n, std::size_t) {
        if (n == 0) return;
        const Algorithm inner = select_transport_algorithm(n * esz, nodes, options.ring_segment_bytes);
        transport_algo(inner, g, share, n);
        if (op == ReduceOp::avg) divide(type, share, n, std::size_t(size));
      };
      shm->allreduce(send, recv, count, type, wire_op, 0, signature, dog, &hook);
      return;
    }
    default: break;
  }
  Algorithm a = algo == Algorithm::hierarchical
                    ? select_transport_algorithm(count * esz, size, options.ring_segment_bytes)
                    : algo;
  if (send != recv) std::memcpy(recv, send, count * esz);
  std::vector<int> everyone(static_cast<std::size_t>(size));
  for (int i = 0; i < size; ++i) everyone[std::size_t(i)] = i;
  Group g{*transport, std::move(everyone), rank};
  transport_algo(a, g, recv, count);
  if (op == ReduceOp::avg) divide(type, recv, count, std::size_t(size));
}

}  // namespace sluice::coll
