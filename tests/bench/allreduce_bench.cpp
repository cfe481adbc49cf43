// sluice-bench-allreduce: sluice's allreduce against MPI_Allreduce on the same buffers in the
// same run (`sluice-bench allreduce` calls this). Run under mpirun or srun.
//
// For every size (f32 sum, --minbytes..--maxbytes, x--factor): warm-up, then --samples
// samples alternating sluice and MPI; a sample is a batch of back-to-back calls (>= ~2 ms),
// its time the slowest rank's; reported: the median sample per call. algbw = bytes / time,
// busbw = algbw * 2(n-1)/n (nccl-tests). Also single-core memcpy bandwidth of a 256 MiB
// buffer (rank 0, others idle), measured in the same run. Results are checked once per size.
#include <sluice/collectives/communicator.hpp>

#include "reduce.hpp"  // the kernel, for --calibrate

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace sluice::coll;

namespace {

std::size_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? end : "";
  if (unit == "K" || unit == "KiB" || unit == "k") v *= 1024;
  else if (unit == "M" || unit == "MiB" || unit == "m") v *= 1024 * 1024;
  else if (unit == "G" || unit == "GiB" || unit == "g") v *= 1024.0 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") throw std::invalid_argument("bad size: " + s);
  return std::size_t(v);
}

std::string human(std::size_t b) {
  char buf[32];
  if (b >= (1u << 20)) std::snprintf(buf, sizeof buf, "%zuM", b >> 20);
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%zuK", b >> 10);
  else std::snprintf(buf, sizeof buf, "%zu", b);
  return buf;
}

// out = a + b with the library's own kernel (the dispatched ISA).
void kernel_sum(const float* a, const float* b, float* out, std::size_t n) {
  const void* src[2] = {a, b};
  sluice::coll::reduce(DataType::f32, ReduceOp::sum, out, src, 2, n);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void usage() {
  std::printf(
      "usage: sluice-bench-allreduce [--minbytes N] [--maxbytes N] [--factor F] [--samples S]\n"
      "                              [--algo auto|shm|ring|rd|rabenseifner|hierarchical]\n"
      "                              [--transport mpi|ucx] [--shared-buffers] [--json] [--no-check]\n"
      "                              [--skip-mpi]\n"
      "  --transport: the transport under ring/rd/rabenseifner/hierarchical (default:\n"
      "               SLUICE_COLL_TRANSPORT, else mpi); the shm path does not use one.\n"
      "  --shared-buffers: send and recv (of sluice and MPI alike) come from\n"
      "               Communicator::allocate_shared, so sluice's shm path reduces in place of\n"
      "               the staging copies (default: ordinary heap buffers).\n"
      "       sluice-bench-allreduce --calibrate   (cost-model constants: MPI p2p latency and\n"
      "                              bandwidth between ranks 0 and 1, f32 sum kernel bandwidth)\n"
      "  sizes take K/M/G suffixes (binary); defaults 4 B .. 256M, x8, 9 samples.\n");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  std::size_t minb = 4, maxb = std::size_t(256) << 20;
  double factor = 8;
  int samples = 9;
  bool json = false, check = true, skip_mpi = false, calibrate = false, shared_buffers = false;
  std::string transport, algo_name = "auto";  // transport "": SLUICE_COLL_TRANSPORT (default mpi)
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--minbytes") minb = parse_bytes(next());
      else if (a == "--maxbytes") maxb = parse_bytes(next());
      else if (a == "--factor") factor = std::stod(next());
      else if (a == "--samples") samples = std::max(1, std::stoi(next()));
      else if (a == "--algo") algo_name = next();
      else if (a == "--transport") transport = next();
      else if (a == "--json") json = true;
      else if (a == "--no-check") check = false;
      else if (a == "--skip-mpi") skip_mpi = true;
      else if (a == "--shared-buffers") shared_buffers = true;
      else if (a == "--calibrate") calibrate = true;
      else if (a == "-h" || a == "--help") { if (rank == 0) usage(); MPI_Finalize(); return 0; }
      else throw std::invalid_argument("unknown argument " + a);
    }
    if (factor <= 1) throw std::invalid_argument("--factor must be > 1");
    if (!transport.empty() && !parse_transport(transport))
      throw std::invalid_argument("unknown --transport " + transport + " (mpi, ucx)");
    if (transport == "ucx" && !ucx_available())
      throw std::invalid_argument("--transport ucx: this sluice_collectives was not built with UCX");
    if (!parse_algorithm(algo_name)) throw std::invalid_argument("unknown --algo " + algo_name);
  } catch (const std::exception& e) {
    if (rank == 0) std::fprintf(stderr, "sluice-bench-allreduce: %s\n", e.what()), usage();
    MPI_Finalize();
    return 2;
  }
  if (calibrate) {
    // alpha: half the round trip of 8 bytes; beta: one-way time per byte of 4 MiB messages
    // (ping-pong); gamma: the f32 sum kernel (two 4 MiB sources, out of cache) per byte.
    auto pingpong = [&](std::size_t bytes, int reps) {
      std::vector<char> b(bytes, 1);
      std::vector<double> t;
      for (int s = 0; s < 7; ++s) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        for (int i = 0; i < reps; ++i) {
          if (rank == 0) {
            MPI_Send(b.data(), int(bytes), MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(b.data(), int(bytes), MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          } else if (rank == 1) {
            MPI_Recv(b.data(), int(bytes), MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(b.data(), int(bytes), MPI_BYTE, 0, 0, MPI_COMM_WORLD);
          }
        }
        t.push_back((MPI_Wtime() - t0) / reps / 2);
      }
      return median(t);
    };
    const double alpha = pingpong(8, 2000) * 1e6;
    const double big = pingpong(std::size_t(4) << 20, 20) * 1e6;
    const double beta = (big - alpha) / double(std::size_t(4) << 20);
    double gamma = 0;
    {
      const std::size_t elems = std::size_t(1) << 20;
      std::vector<float> a(elems, 1.0f), b(elems, 2.0f), c(elems, 0.0f);
      std::vector<double> t;
      for (int s = 0; s < 9; ++s) {
        std::vector<float> flush(std::size_t(16) << 20, float(s));  // evict the sources
        const double t1 = MPI_Wtime();
        kernel_sum(a.data(), b.data(), c.data(), elems);
        t.push_back(MPI_Wtime() - t1);
        a[std::size_t(s)] = c[std::size_t(s) + 1] + flush[std::size_t(s)];
      }
      gamma = median(t) * 1e6 / double(elems * 4);  // us per byte reduced (output bytes)
    }
    if (rank == 0)
      std::printf("{\"alpha_us\":%.3f,\"beta_us_per_byte\":%.3e,\"p2p_GBps\":%.2f,\"gamma_us_per_byte\":%.3e,"
                  "\"reduce_GBps\":%.2f}\n",
                  alpha, beta, 1e-3 / beta, gamma, 1e-3 / gamma);
    MPI_Finalize();
    return 0;
  }
  const AllreduceOptions call{*parse_algorithm(algo_name)};
  Options options = Options::from_environment();
  if (!transport.empty()) options.transport = *parse_transport(transport);
  Communicator comm(MPI_COMM_WORLD, options);
  transport = name(comm.options().transport);

  // memcpy: one core, 256 MiB, best of 5 after a warm-up (rank 0; the others wait).
  double memcpy_GBps = 0;
  {
    const std::size_t mb = std::size_t(256) << 20;
    if (rank == 0) {
      std::vector<char> a(mb, 1), b(mb, 2);
      std::vector<double> t;
      for (int r = 0; r < 6; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        std::memcpy(b.data(), a.data(), mb);
        auto t1 = std::chrono::steady_clock::now();
        a[std::size_t(r)] = b[mb - 1 - std::size_t(r)];
        if (r > 0) t.push_back(std::chrono::duration<double>(t1 - t0).count());
      }
      memcpy_GBps = double(mb) / median(t) / 1e9;
    }
    MPI_Bcast(&memcpy_GBps, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }

  const std::size_t maxcount = std::max<std::size_t>(1, maxb / 4);
  std::vector<float> heap_send, heap_recv;
  SharedBuffer shared_send, shared_recv;
  std::span<float> send, recv;
  if (shared_buffers) {
    shared_send = comm.allocate_shared(maxcount * sizeof(float));
    shared_recv = comm.allocate_shared(maxcount * sizeof(float));
    send = shared_send.as<float>();
    recv = shared_recv.as<float>();
  } else {
    heap_send.resize(maxcount);
    heap_recv.resize(maxcount);
    send = heap_send;
    recv = heap_recv;
  }
  for (std::size_t i = 0; i < maxcount; ++i) send[i] = float((i + std::size_t(rank)) % 7);
  std::fill(recv.begin(), recv.end(), 0.0f);

  struct Row { std::size_t bytes; double s_us, m_us; Algorithm algo; bool ok; };
  std::vector<Row> rows;
  int bad_total = 0;
  // minbytes, x factor, ..., and maxbytes itself (4 B x 8^k never lands on 256 MiB).
  std::vector<std::size_t> sizes;
  for (double b = double(std::max<std::size_t>(4, minb)); b < double(maxb) * 0.9999999; b *= factor)
    sizes.push_back(std::size_t(b));
  sizes.push_back(std::max<std::size_t>(4, maxb));
  for (std::size_t b : sizes) {
    const std::size_t count = std::max<std::size_t>(1, b / 4);
    const std::size_t bytes = count * 4;
    auto run_sluice = [&] { comm.allreduce(send.data(), recv.data(), count, DataType::f32, ReduceOp::sum, call); };
    auto run_mpi = [&] { MPI_Allreduce(send.data(), recv.data(), int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
    // Calls per batch: enough for ~2 ms, from one timed call of each (agreed on by all ranks).
    auto time_batch = [&](auto&& fn, int k) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int i = 0; i < k; ++i) fn();
      double t = (MPI_Wtime() - t0) / k, tmax = 0;
      MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      return tmax;
    };
    // Warm-up: caches, pages, the peers' spin loops, MPI's protocol state (~50 ms; the
    // iteration count is rank 0's, so every rank makes the same calls).
    {
      const double t0 = MPI_Wtime();
      run_sluice();
      if (!skip_mpi) run_mpi();
      int iters = int(std::clamp(0.05 / std::max(MPI_Wtime() - t0, 1e-7), 1.0, 20000.0));
      MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
      for (int i = 0; i < iters; ++i) {
        run_sluice();
        if (!skip_mpi) run_mpi();
      }
    }
    const double est = std::max(time_batch(run_sluice, 1), skip_mpi ? 0.0 : time_batch(run_mpi, 1));
    const int k = int(std::clamp(2e-3 / std::max(est, 1e-7), 1.0, 2000.0));
    std::vector<double> ts, tm;
    for (int s = 0; s < samples; ++s) {
      ts.push_back(time_batch(run_sluice, k));
      if (!skip_mpi) tm.push_back(time_batch(run_mpi, k));
    }
    bool ok = true;
    if (check) {  // element i is sum over ranks of (i + q) % 7
      comm.allreduce(send.data(), recv.data(), count, DataType::f32, ReduceOp::sum, call);
      for (std::size_t i : {std::size_t(0), count / 2, count - 1}) {
        double e = 0;
        for (int q = 0; q < n; ++q) e += double((i + std::size_t(q)) % 7);
        if (double(recv[i]) != e) ok = false;
      }
      int bad = ok ? 0 : 1, any = 0;
      MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      ok = any == 0;
      bad_total += any;
    }
    rows.push_back({bytes, median(ts) * 1e6, median(tm) * 1e6, comm.select(bytes, call), ok});
  }

  if (rank == 0) {
    const double busf = n > 1 ? 2.0 * (n - 1) / n : 1.0;
    auto bus = [&](std::size_t bytes, double us) { return us > 0 ? double(bytes) / (us * 1e-6) / 1e9 * busf : 0; };
    if (json) {
      std::printf("{\"ranks\":%d,\"memcpy_GBps\":%.2f,\"transport\":\"%s\",\"algo\":\"%s\",\"buffers\":\"%s\",\"results\":[", n,
                  memcpy_GBps, transport.c_str(), algo_name.c_str(), shared_buffers ? "shared" : "user");
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("%s{\"bytes\":%zu,\"sluice_us\":%.2f,\"mpi_us\":%.2f,\"sluice_busbw_GBps\":%.3f,\"mpi_busbw_GBps\":%.3f}",
                    i ? "," : "", r.bytes, r.s_us, r.m_us, bus(r.bytes, r.s_us), bus(r.bytes, r.m_us));
      }
      std::printf("]}\n");
    } else {
      std::printf("# sluice allreduce vs MPI_Allreduce, f32 sum, %d ranks (%d nodes), transport %s, algo %s, %s buffers\n",
                  n, comm.node_count(), transport.c_str(), algo_name.c_str(),
                  shared_buffers ? "shared (allocate_shared)" : "heap");
      std::printf("# memcpy (1 core, 256 MiB): %.2f GB/s; busbw = bytes/time * 2(n-1)/n; median of %d samples\n",
                  memcpy_GBps, samples);
      std::printf("%9s %13s %10s %10s %10s %10s %10s %8s %6s\n", "bytes", "algo", "sluice_us", "mpi_us", "s_algbw",
                  "s_busbw", "m_busbw", "mpi/slc", "check");
      for (const Row& r : rows)
        std::printf("%9s %13s %10.2f %10.2f %10.3f %10.3f %10.3f %8.2f %6s\n", human(r.bytes).c_str(),
                    std::string(name(r.algo)).c_str(), r.s_us, r.m_us, double(r.bytes) / (r.s_us * 1e-6) / 1e9,
                    bus(r.bytes, r.s_us), bus(r.bytes, r.m_us), r.m_us / r.s_us, r.ok ? "ok" : "WRONG");
    }
  }
  MPI_Finalize();
  return bad_total == 0 ? 0 : 1;
}
