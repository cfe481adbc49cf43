// sluice-bench reader: the sharded reader's shuffled-epoch throughput against a naive loop
// (one H5Dread per sample and dataset, HDF5's default chunk cache, as h5py code does) and a
// raw sequential read of the same file's bytes; page cache warm, and cold where root may
// drop it. Then stall: a consumer that "computes" (sleeps, as a CPU thread waiting on a GPU
// does) a fixed time per batch, FACTOR x the measured read time per batch.
//
//   sluice-bench-reader [--dir D] [--samples N] [--shape 3x32x32] [--chunk-samples 64]
//                       [--batch 256] [--depth 4] [--compute-factor 1.2] [--naive-seconds 5]
//                       [--io-threads 8] [--advise 0] [--mmap] [--ram-window BYTES] [--reps 3]
//                       [--no-cold] [--json]
//
// Warm sluice figures time the second epoch of a reader (steady state); cold ones the first.
// Each warm figure is the median of --reps runs, the three kinds interleaved, so that a
// busy machine skews them alike.
//
// Data: D/bench.h5 from sluice-mkdata (made when absent or of another size). Not a test.
#include <sluice/reader.hpp>

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace sluice::reader;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool drop_caches() {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!f) return false;
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

struct Result {
  double mbps = 0, samples_per_s = 0, seconds = 0;
};

// Raw: the file's bytes, start to end, in 8 MiB preads.
Result raw_sequential(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(file.c_str());
    std::exit(1);
  }
  std::vector<char> buf(8 << 20);
  std::uint64_t total = 0;
  const auto t0 = Clock::now();
  for (;;) {
    const ssize_t r = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(total));
    if (r <= 0) break;
    total += static_cast<std::uint64_t>(r);
  }
  const double t = since(t0);
  ::close(fd);
  return {total / t / 1e6, 0, t};
}

// One shuffled epoch through the reader (open excluded), no compute. WARMUP: epochs read
// first (a training job's steady state: mappings made, buffers touched).
Result sluice_epoch(const ReaderOptions& o, std::uint64_t* steps_out, double* read_per_batch, int warmup = 0) {
  Reader r(o);
  const std::uint64_t steps = r.steps_per_epoch();
  for (std::uint64_t k = 0; k < steps * static_cast<std::uint64_t>(warmup); ++k) (void)r.next();
  std::size_t sample_bytes = 0;
  for (const auto& d : r.datasets()) sample_bytes += d.sample_bytes;
  const auto t0 = Clock::now();
  std::uint64_t samples = 0;
  for (std::uint64_t k = 0; k < steps; ++k) samples += r.next().size();
  const double t = since(t0);
  *steps_out = steps;
  *read_per_batch = t / static_cast<double>(steps);
  return {static_cast<double>(samples * sample_bytes) / t / 1e6, static_cast<double>(samples) / t, t};
}

// Naive: the same shuffled order, one H5Dread per sample for x and for y, default caches.
Result naive(const std::string& file, std::uint64_t n, std::uint64_t seed, double budget_s) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t x = H5Dopen2(f, "x", H5P_DEFAULT), y = H5Dopen2(f, "y", H5P_DEFAULT);
  hid_t xs = H5Dget_space(x), ys = H5Dget_space(y);
  const int rank = H5Sget_simple_extent_ndims(xs);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(xs, dims.data(), nullptr);
  std::size_t xbytes = H5Tget_size(H5Dget_type(x));
  for (int i = 1; i < rank; ++i) xbytes *= dims[static_cast<std::size_t>(i)];
  std::vector<char> xb(xbytes);
  std::int64_t yb = 0;
  std::vector<hsize_t> mdims(dims);
  mdims[0] = 1;
  hid_t xm = H5Screate_simple(rank, mdims.data(), nullptr);
  hsize_t one = 1;
  hid_t ym = H5Screate_simple(1, &one, nullptr);
  hid_t xt = H5Dget_type(x);
  const auto order = sharding::epoch_order(n, seed, 0);
  std::vector<hsize_t> start(static_cast<std::size_t>(rank), 0), count(mdims);
  std::uint64_t done = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    start[0] = order[i];
    H5Sselect_hyperslab(xs, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    H5Dread(x, xt, xm, xs, H5P_DEFAULT, xb.data());
    H5Sselect_hyperslab(ys, H5S_SELECT_SET, start.data(), nullptr, &one, nullptr);
    H5Dread(y, H5T_NATIVE_INT64, ym, ys, H5P_DEFAULT, &yb);
    ++done;
    if ((done & 255) == 0 && since(t0) > budget_s) break;
  }
  const double t = since(t0);
  H5Tclose(xt);
  H5Sclose(xm);
  H5Sclose(ym);
  H5Sclose(xs);
  H5Sclose(ys);
  H5Dclose(x);
  H5Dclose(y);
  H5Fclose(f);
  return {static_cast<double>(done * (xbytes + 8)) / t / 1e6, static_cast<double>(done) / t, t};
}

// Stall: a first epoch without compute measures the read time per batch now (the machine's
// load changes; a figure from earlier runs would not be this run's); then one epoch
// computing FACTOR x that per batch (sleep); the fraction of its wall time spent in next().
double stall(const ReaderOptions& o, std::uint64_t steps, double factor, double* compute_s, double* total_s) {
  Reader r(o);
  const auto w0 = Clock::now();
  for (std::uint64_t k = 0; k < steps; ++k) (void)r.next();
  *compute_s = factor * since(w0) / static_cast<double>(steps);
  // Let the queue fill first, as it does during the model's setup; measure what follows.
  std::this_thread::sleep_for(std::chrono::duration<double>(*compute_s * static_cast<double>(o.prefetch_depth)));
  const auto before = r.counters().stall_seconds;
  const auto t0 = Clock::now();
  for (std::uint64_t k = 0; k < steps; ++k) {
    Batch b = r.next();
    std::this_thread::sleep_for(std::chrono::duration<double>(*compute_s));
  }
  *total_s = since(t0);
  return (r.counters().stall_seconds - before) / *total_s;
}

}  // namespace

int run(int argc, char** argv) {
  std::string dir = "/var/tmp/sluice-bench-reader", shape = "3x32x32";
  std::uint64_t samples = 65536, chunk = 64;
  std::size_t batch = 256, depth = 4;
  double factor = 1.2, naive_budget = 5;
  bool json = false, cold = true;
  unsigned io_threads = 8, reps = 3;
  std::size_t advise = 0;
  bool use_mmap = false;
  std::uint64_t ram_window = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice-bench reader: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") dir = val();
    else if (a == "--samples") samples = std::stoull(val());
    else if (a == "--shape") shape = val();
    else if (a == "--chunk-samples") chunk = std::stoull(val());
    else if (a == "--batch") batch = std::stoull(val());
    else if (a == "--depth") depth = std::stoull(val());
    else if (a == "--compute-factor") factor = std::stod(val());
    else if (a == "--naive-seconds") naive_budget = std::stod(val());
    else if (a == "--no-cold") cold = false;
    else if (a == "--mmap") use_mmap = true;
    else if (a == "--io-threads") io_threads = static_cast<unsigned>(std::stoul(val()));
    else if (a == "--advise") advise = std::stoull(val());
    else if (a == "--ram-window") ram_window = std::stoull(val());
    else if (a == "--reps") reps = std::max(1u, static_cast<unsigned>(std::stoul(val())));
    else if (a == "--json") json = true;
    else {
      const bool help = a == "-h" || a == "--help";
      std::fprintf(help ? stdout : stderr,
                   "usage: sluice-bench reader [--dir D] [--samples N] [--shape 3x32x32] [--chunk-samples 64 (0: contiguous)]\n"
                   "       [--batch 256] [--depth 4] [--compute-factor 1.2] [--naive-seconds 5] [--io-threads 8]\n"
                   "       [--advise 0] [--mmap] [--ram-window BYTES (0: off)] [--reps 3] [--no-cold] [--json]\n"
                   "Shuffled-epoch throughput of the sluice reader vs one H5Dread per sample vs a raw sequential\n"
                   "read of the same file, warm and cold (root: page cache dropped), and the stall of a consumer\n"
                   "computing FACTOR x the read time per batch. Data: D/bench-*.h5 from sluice-mkdata.\n");
      return help ? 0 : 2;
    }
  }
  fs::create_directories(dir);
  const std::string file = dir + "/bench-" + std::to_string(samples) + "-" + shape + "-c" + std::to_string(chunk) + ".h5";
  if (!fs::exists(file)) {
    const char* env = std::getenv("SLUICE_MKDATA");
    const std::string mk = env && *env ? env : SLUICE_MKDATA;
    const std::string cmd = mk + " --out " + file + " --samples " + std::to_string(samples) + " --shape " + shape +
                            " --dtype f32 --labels 10 --chunk-samples " + std::to_string(chunk) + " > /dev/null";
    std::fprintf(stderr, "making %s ...\n", file.c_str());
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "sluice-bench reader: sluice-mkdata failed\n");
      return 1;
    }
  }
  ReaderOptions o;
  o.files = {file};
  o.batch_size = batch;
  o.prefetch_depth = depth;
  o.seed = 1;
  o.use_staged = false;
  o.remainder = Remainder::DropLast;
  o.io_threads = io_threads;
  o.advise_ahead = advise;
  o.use_mmap = use_mmap;
  o.ram_window_bytes = ram_window;

  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const bool can_drop = cold && drop_caches();
  struct Row {
    const char* name;
    Result warm, cold;
    bool has_cold = false;
  };
  std::vector<Row> rows;
  std::uint64_t steps = 0;

  // Warm: one pass to fill the page cache, then the measurements.
  (void)raw_sequential(file);
  Row raw{"raw sequential (pread 8 MiB)", {}, {}};
  Row sl{"sluice shuffled epoch", {}, {}};
  Row nv{"naive, 1 H5Dread/sample", {}, {}};
  {
    std::vector<Result> r1, r2, r3;
    for (unsigned k = 0; k < reps; ++k) {
      r1.push_back(raw_sequential(file));
      double x = 0;
      r2.push_back(sluice_epoch(o, &steps, &x, 1));
      r3.push_back(naive(file, samples, 1, naive_budget / reps));
    }
    auto median = [](std::vector<Result> v) {
      std::sort(v.begin(), v.end(), [](const Result& a, const Result& b) { return a.mbps < b.mbps; });
      return v[v.size() / 2];
    };
    raw.warm = median(r1);
    sl.warm = median(r2);
    nv.warm = median(r3);
  }
  if (can_drop) {
    drop_caches();
    raw.cold = raw_sequential(file);
    drop_caches();
    double rpb = 0;
    std::uint64_t st = 0;
    sl.cold = sluice_epoch(o, &st, &rpb);
    drop_caches();
    nv.cold = naive(file, samples, 1, naive_budget);
    raw.has_cold = sl.has_cold = nv.has_cold = true;
  }
  rows = {raw, sl, nv};
  (void)raw_sequential(file);  // warm again for the stall run

  double compute = 0, loop_s = 0;
  const double stall_frac = stall(o, steps, factor, &compute, &loop_s);

  if (json) {
    std::printf("{\"sluice_MBps\":%.1f,\"naive_MBps\":%.2f,\"raw_seq_MBps\":%.1f,\"stall_fraction\":%.4f,"
                "\"sluice_samples_per_s\":%.0f,\"naive_samples_per_s\":%.0f,\"sluice_vs_raw\":%.3f,\"sluice_vs_naive\":%.1f,"
                "\"cold\":%s,\"sluice_cold_MBps\":%.1f,\"naive_cold_MBps\":%.2f,\"raw_seq_cold_MBps\":%.1f,"
                "\"samples\":%llu,\"shape\":\"%s\",\"chunk_samples\":%llu,\"batch\":%zu,\"depth\":%zu,"
                "\"read_ms_per_batch\":%.3f,\"compute_ms_per_batch\":%.3f,\"io_threads\":%u,\"advise\":%zu,\"mmap\":%s,"
                "\"ram_window_bytes\":%llu}\n",
                sl.warm.mbps, nv.warm.mbps, raw.warm.mbps, stall_frac, sl.warm.samples_per_s, nv.warm.samples_per_s,
                sl.warm.mbps / raw.warm.mbps, sl.warm.mbps / nv.warm.mbps, can_drop ? "true" : "false", sl.cold.mbps,
                nv.cold.mbps, raw.cold.mbps, static_cast<unsigned long long>(samples), shape.c_str(),
                static_cast<unsigned long long>(chunk), batch, depth, compute / factor * 1e3, compute * 1e3, io_threads, advise, use_mmap ? "true" : "false",
                static_cast<unsigned long long>(ram_window));
    return 0;
  }
  std::printf("sluice-bench reader: %llu samples of f32 %s (+ i64 label), %s, batch %zu, depth %zu, io threads %u, advise %zu%s%s,\n"
              "  file %s, warm: median of %u\n\n",
              static_cast<unsigned long long>(samples), shape.c_str(),
              chunk ? ("chunks of " + std::to_string(chunk) + " samples").c_str() : "contiguous", batch, depth, io_threads, advise,
              use_mmap ? ", mmap" : "",
              ram_window ? (", RAM window " + std::to_string(ram_window >> 20) + " MiB").c_str() : "", file.c_str(), reps);
  std::printf("%-30s %12s %14s %12s %14s\n", "", "warm MB/s", "warm samples/s", "cold MB/s", "cold samples/s");
  for (const Row& r : rows) {
    std::printf("%-30s %12.1f %14.0f", r.name, r.warm.mbps, r.warm.samples_per_s);
    if (r.has_cold)
      std::printf(" %12.1f %14.0f\n", r.cold.mbps, r.cold.samples_per_s);
    else
      std::printf(" %12s %14s\n", "-", "-");
  }
  std::printf("\nsluice / raw sequential: %.2f (warm)%s;  sluice / naive: %.1fx (warm)\n", sl.warm.mbps / raw.warm.mbps,
              can_drop ? (", " + std::to_string(sl.cold.mbps / raw.cold.mbps).substr(0, 4) + " (cold)").c_str() : "",
              sl.warm.mbps / nv.warm.mbps);
  std::printf("stall: compute %.2f ms/batch (%.1f x read %.2f ms/batch just measured), %llu batches in %.2f s: %.2f %% waiting\n",
              compute * 1e3, factor, compute / factor * 1e3, static_cast<unsigned long long>(steps), loop_s, stall_frac * 100);
  if (!can_drop) std::printf("(cold: not measured, the page cache cannot be dropped here)\n");
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-bench reader: %s\n", e.what());
    return 1;
  }
}
