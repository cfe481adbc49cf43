// sluice-train-mlp: data-parallel training of a small MLP on the sluice runtime, the way a
// training code uses it. Each rank reads its shard of a sluice-mkdata dataset (sharded,
// shuffled, prefetched reader; staged copies in $SLUICE_BB when the job staged them),
// computes forward and backward passes by hand, averages the gradients over all ranks with
// sluice's allreduce (layer 2's gradients go out while layer 1's are computed), and applies
// SGD with momentum. Telemetry (steps, data wait, allreduce, samples) goes to the job file
// through a JobSession. Checkpoints (weights, momentum, reader position) are written
// atomically into --checkpoint-dir ($SLUICE_BB/checkpoints in a job), from which the job's
// --stage-out copies them; --resume continues from one exactly.
//
//   srun --mpi=pmix sluice-train-mlp --train d-00000-of-00004.h5 ... --test d-00003-of-00004.h5 (see --help)
#include <sluice/collectives/communicator.hpp>
#include <sluice/jobrt.hpp>
#include <sluice/monitor/job_session.hpp>
#include <sluice/reader_mpi.hpp>

#include "mlp_cpu.hpp"

#ifdef SLUICE_TRAIN_CUDA
#include "mlp_cuda.hpp"
#endif

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace coll = sluice::coll;
namespace mon = sluice::monitor;
namespace rd = sluice::reader;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::vector<std::string> train, test;
  unsigned epochs = 5, hidden = 64, classes = 10;
  std::size_t batch = 32;
  float lr = 0.05f, momentum = 0.9f;
  std::uint64_t seed = 1;
  std::string checkpoint_dir, resume;
  std::uint64_t checkpoint_every = 0;  // steps; 0: at the end of every epoch
  std::uint64_t stop_after = 0;        // global steps; 0: train all epochs
  bool deterministic = false;
  std::string device = "auto";  // cpu | cuda | auto
};

// --- the model (mlp_cpu.hpp) -------------------------------------------------------------
using mlp::Activations;
using mlp::Mlp;

// Glorot-uniform weights from one integer generator: every rank starts from the same bits
// without a broadcast. Biases start at 0.
void init_weights(Mlp& m, std::uint64_t seed) {
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uniform = [&](float a) {
    const std::uint64_t r = rd::sharding::splitmix64(state);
    return (static_cast<float>(r >> 40) / static_cast<float>(1u << 24) * 2.0f - 1.0f) * a;
  };
  const float a2 = std::sqrt(6.0f / float(m.h + m.c)), a1 = std::sqrt(6.0f / float(m.d + m.h));
  for (std::size_t i = 0; i < m.c * m.h; ++i) m.params[m.w2() + i] = uniform(a2);
  for (std::size_t i = 0; i < m.h * m.d; ++i) m.params[m.w1() + i] = uniform(a1);
}

// FNV-1a 64 over bytes: the weights' fingerprint printed at the end (ranks and runs compare it).
std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string hex(std::uint64_t v) {
  char b[19];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// --- checkpoints -------------------------------------------------------------------------
// Text header (format, reader state, dimensions), then the parameters and the momentum as
// raw little-endian floats, then the FNV-1a of all of it: a torn or foreign file is refused.
constexpr const char* kCheckpointFormat = "sluice-train-mlp-checkpoint/1";

void write_checkpoint(const fs::path& dir, const Mlp& m, const rd::ReaderState& state) {
  fs::create_directories(dir);
  const fs::path final_path = dir / "checkpoint.bin", tmp = dir / ".checkpoint.bin.tmp";
  std::string body = std::string(kCheckpointFormat) + "\n" + state.to_string() + "\n" + std::to_string(m.d) + " " +
                     std::to_string(m.h) + " " + std::to_string(m.c) + "\n";
  body.append(reinterpret_cast<const char*>(m.params.data()), m.params.size() * sizeof(float));
  body.append(reinterpret_cast<const char*>(m.velocity.data()), m.velocity.size() * sizeof(float));
  const std::uint64_t sum = fnv1a(body.data(), body.size());
  body.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  // Temporary name, fsync, rename, fsync the directory: the file under the final name is
  // always a whole checkpoint, the previous one until the new one is complete.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < body.size()) {
    const ssize_t n = ::write(fd, body.data() + off, body.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(e));
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw std::runtime_error("cannot sync " + tmp.string() + ": " + std::strerror(errno));
  fs::rename(tmp, final_path);
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

rd::ReaderState read_checkpoint(const fs::path& path, Mlp& m) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open the checkpoint " + path.string());
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& why) { return std::runtime_error("checkpoint " + path.string() + ": " + why); };
  if (bytes.size() < sizeof(std::uint64_t)) throw fail("too short");
  std::uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + bytes.size() - sizeof sum, sizeof sum);
  if (fnv1a(bytes.data(), bytes.size() - sizeof sum) != sum) throw fail("checksum mismatch (torn or damaged file)");
  std::istringstream head(bytes);
  std::string format, state_line;
  std::size_t d = 0, h = 0, c = 0;
  std::getline(head, format);
  std::getline(head, state_line);
  head >> d >> h >> c;
  head.get();
  if (format != kCheckpointFormat) throw fail("not a " + std::string(kCheckpointFormat) + " file");
  if (d != m.d || h != m.h || c != m.c)
    throw fail("model " + std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(c) + ", this run's is " +
               std::to_string(m.d) + "x" + std::to_string(m.h) + "x" + std::to_string(m.c));
  const std::size_t at = static_cast<std::size_t>(head.tellg()), n = m.params.size() * sizeof(float);
  if (bytes.size() != at + 2 * n + sizeof sum) throw fail("size does not match the model");
  std::memcpy(m.params.data(), bytes.data() + at, n);
  std::memcpy(m.velocity.data(), bytes.data() + at + n, n);
  return rd::ReaderState::from_string(state_line);
}

// --- helpers -----------------------------------------------------------------------------
struct Batch {
  const float* x;
  const std::int64_t* y;
  std::size_t b;
};

Batch view(const rd::Batch& batch) {
  return {batch.as<float>(0).data(), batch.as<std::int64_t>(1).data(), batch.size()};
}

void check_layout(const rd::Reader& r, const std::string& what, std::size_t d) {
  const auto& ds = r.datasets();
  if (ds[0].type.kind != rd::ElementType::Kind::Float || ds[0].type.bytes != 4 || !ds[0].type.little_endian)
    throw std::runtime_error(what + ": x must be f32 (sluice-mkdata --dtype f32), it is " + ds[0].type.name());
  if (ds[1].type.kind != rd::ElementType::Kind::Int || ds[1].type.bytes != 8 || !ds[1].sample_shape.empty())
    throw std::runtime_error(what + ": y must be one int64 label per sample, it is " + ds[1].type.name());
  if (d && ds[0].sample_bytes / 4 != d)
    throw std::runtime_error(what + ": samples of " + std::to_string(ds[0].sample_bytes / 4) +
                             " values, the training set's have " + std::to_string(d));
}

void check_labels(const Batch& b, unsigned classes) {
  for (std::size_t s = 0; s < b.b; ++s)
    if (b.y[s] < 0 || b.y[s] >= static_cast<std::int64_t>(classes))
      throw std::runtime_error("label " + std::to_string(b.y[s]) + " is outside [0, --classes=" +
                               std::to_string(classes) + ")");
}

// This rank's placement in one line (or why there is none).
std::string placement_line(int rank) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const char* node = std::getenv("SLURMD_NODENAME");
  std::string out = "rank " + std::to_string(rank) + " on " + (node ? node : host) + ": ";
  try {
    const auto p = sluice::placement_from_environment();
    if (!p) return out + "not placed by sluice (no SLUICE_PLACEMENT)";
    const auto& t = p->self();
    std::string gpus, nics;
    for (int g : t.gpus) gpus += (gpus.empty() ? "" : ",") + std::to_string(g);
    for (const auto& n : t.nics) nics += (nics.empty() ? "" : ",") + n;
    return out + "task " + std::to_string(t.task) + " gpus " + (gpus.empty() ? "-" : gpus) + " nics " +
           (nics.empty() ? "-" : nics) + " cpus " + (t.cpus.empty() ? "-" : t.cpus) + " (" + p->node.policy + ")";
  } catch (const std::exception& e) {
    return out + "placement record unreadable: " + e.what();
  }
}

std::vector<std::string> gather_lines(MPI_Comm comm, const std::string& mine) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  constexpr int kWidth = 512;
  std::string buf = mine.substr(0, kWidth - 1);
  buf.resize(kWidth, '\0');
  std::vector<char> all(rank == 0 ? std::size_t(kWidth) * size : 0);
  MPI_Gather(buf.data(), kWidth, MPI_CHAR, all.data(), kWidth, MPI_CHAR, 0, comm);
  std::vector<std::string> out;
  for (int r = 0; rank == 0 && r < size; ++r) out.emplace_back(all.data() + std::size_t(r) * kWidth);
  return out;
}

int run(const Args& a) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  rd::ReaderOptions ro;
  ro.files = a.train;
  ro.batch_size = a.batch;
  ro.seed = a.seed;
  ro.remainder = rd::Remainder::DropLast;  // every step averages full batches
  rd::Reader train = rd::open_reader(MPI_COMM_WORLD, ro);
  check_layout(train, "--train", 0);
  // Where each rank runs and what it reads: the staged copy in $SLUICE_BB, or the source.
  const std::string reads = fs::path(train.resolved_files().front()).parent_path().string();
  for (const auto& line : gather_lines(MPI_COMM_WORLD, placement_line(rank) + "; reads " + reads))
    std::printf("placement: %s\n", line.c_str());
  const std::size_t d = train.datasets()[0].sample_bytes / 4;
  const std::uint64_t steps_per_epoch = train.steps_per_epoch();
  if (steps_per_epoch == 0)
    throw std::runtime_error("--train has " + std::to_string(train.samples()) + " samples, fewer than ranks x --batch (" +
                             std::to_string(ranks) + " x " + std::to_string(a.batch) + "): no full step");

  // The held-out set is opened now, so a bad --test fails before any training.
  std::optional<rd::Reader> test;
  if (!a.test.empty()) {
    rd::ReaderOptions to;
    to.files = a.test;
    to.batch_size = a.batch;
    to.shuffle = false;
    to.remainder = rd::Remainder::Pad;
    test.emplace(rd::open_reader(MPI_COMM_WORLD, to));
    check_layout(*test, "--test", d);
  }

  Mlp model(d, a.hidden, a.classes);
  init_weights(model, a.seed);
  if (!a.resume.empty()) {
    const rd::ReaderState state = read_checkpoint(a.resume, model);  // every rank reads the same file
    train.restore(state);  // InvalidArgument when ranks, batch, seed or the data differ
  }
  // The model on the GPU (CUDA kernels, examples/mlp_cuda.cu) when built with CUDA and one is
  // there: the batch goes up, the gradients are averaged in device memory (sluice's allreduce
  // takes device pointers), SGD runs there; weights come down for checkpoints and the end.
#ifdef SLUICE_TRAIN_CUDA
  std::optional<mlp_cuda::CudaMlp> gpu;
  if (a.device == "cuda" || (a.device == "auto" && mlp_cuda::device_present())) {
    if (!mlp_cuda::device_present()) throw std::runtime_error("--device cuda: no CUDA device is visible");
    // Under sluice's placement CUDA_VISIBLE_DEVICES holds this task's GPUs: device 0 is its own.
    if (!std::getenv("SLUICE_PLACEMENT")) {
      int local = 0;
      MPI_Comm node;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
      MPI_Comm_rank(node, &local);
      MPI_Comm_free(&node);
      mlp_cuda::set_device(local % mlp_cuda::device_count());
    }
    gpu.emplace(model.d, model.h, model.c, a.batch, model.params.data(), model.velocity.data());
  }
  const bool on_gpu = gpu.has_value();
#else
  if (a.device == "cuda") throw std::runtime_error("--device cuda: this build has no CUDA (no nvcc when it was built)");
  const bool on_gpu = false;
#endif
  const std::uint64_t total_steps = std::uint64_t(a.epochs) * steps_per_epoch;
  auto global_step = [&] {
    const auto s = train.state();
    return s.epoch * steps_per_epoch + s.step;
  };
  if (rank == 0) {
    std::printf("model: %zu -> %u -> %u (%zu parameters); %d ranks x batch %zu, %llu steps per epoch, %u epochs%s\n",
                d, a.hidden, a.classes, model.params.size(), ranks, a.batch,
                static_cast<unsigned long long>(steps_per_epoch), a.epochs,
                a.deterministic ? ", deterministic allreduce" : ", fused async allreduce");
    std::printf("device: %s\n", on_gpu ? "cuda" : "cpu");
    if (!a.resume.empty())
      std::printf("resumed from %s at step %llu\n", a.resume.c_str(), static_cast<unsigned long long>(global_step()));
    std::fflush(stdout);
  }

  coll::Communicator comm(MPI_COMM_WORLD);
  mon::JobSession telemetry(MPI_COMM_WORLD);
  if (rank == 0) {
    const auto transport = coll::name(comm.options().transport);
    std::printf("allreduce: %d ranks on %d nodes, transport %.*s between nodes; job file %s\n", ranks,
                comm.node_count(), static_cast<int>(transport.size()), transport.data(),
                telemetry.job_file().enabled() ? telemetry.job_file().path().c_str() : "off");
    std::fflush(stdout);
  }
  Activations act;
  const std::size_t l2 = model.layer2_size(), l1 = model.params.size() - l2;
  double epoch_loss = 0;
  std::uint64_t epoch_steps = 0;
  std::vector<double> losses;
  const auto t0 = std::chrono::steady_clock::now();
  auto weights_to_host = [&] {
#ifdef SLUICE_TRAIN_CUDA
    if (gpu) gpu->download(model.params.data(), model.velocity.data());
#endif
  };
  auto checkpoint = [&] {
    if (rank == 0 && !a.checkpoint_dir.empty()) {
      weights_to_host();
      write_checkpoint(a.checkpoint_dir, model, train.state());
    }
  };

  const std::uint64_t stop = a.stop_after ? std::min(a.stop_after, total_steps) : total_steps;
  while (global_step() < stop) {
    {
      mon::StepScope step;  // data wait (the reader's stall) + compute + allreduce
      const rd::Batch batch = train.next();
      const Batch b = view(batch);
      check_labels(b, a.classes);
#ifdef SLUICE_TRAIN_CUDA
      if (gpu) {
        // Both layers' gradients are complete on return: the allreduce then reads device memory.
        epoch_loss += gpu->forward_backward(b.x, b.y, b.b);
        float* g = gpu->grads_device();
        if (a.deterministic) {
          comm.allreduce(g, g, gpu->n_params(), coll::DataType::f32, coll::ReduceOp::avg);
        } else {
          const std::size_t g2 = gpu->layer2_size(), g1 = gpu->n_params() - g2;
          auto h2 = comm.allreduce_async(g, g, g2, coll::DataType::f32, coll::ReduceOp::avg);
          auto h1 = comm.allreduce_async(g + g2, g + g2, g1, coll::DataType::f32, coll::ReduceOp::avg);
          h2.wait();
          h1.wait();
        }
        gpu->sgd(a.lr, a.momentum);
      } else
#endif
      {
        epoch_loss += mlp::forward(model, b.x, b.y, b.b, act);
        if (a.deterministic) {
          // One synchronous call over the whole buffer: the same bits whatever the timing.
          mlp::backward(model, b.x, b.y, b.b, act);
          comm.allreduce(model.grads.data(), model.grads.data(), model.grads.size(), coll::DataType::f32,
                         coll::ReduceOp::avg);
        } else {
          coll::AllreduceHandle layer2;
          mlp::backward(model, b.x, b.y, b.b, act, [&] {
            layer2 = comm.allreduce_async(model.grads.data(), model.grads.data(), l2, coll::DataType::f32,
                                          coll::ReduceOp::avg);
          });
          coll::AllreduceHandle layer1 = comm.allreduce_async(model.grads.data() + l2, model.grads.data() + l2,
                                                              l1, coll::DataType::f32, coll::ReduceOp::avg);
          layer2.wait();
          layer1.wait();
        }
        mlp::sgd_step(model, a.lr, a.momentum);
      }
    }
    ++epoch_steps;
    telemetry.tick();
    const std::uint64_t g = global_step();
    const bool epoch_end = g % steps_per_epoch == 0;
    if (epoch_end) {
      double mean = epoch_loss / double(epoch_steps);
      comm.allreduce(&mean, &mean, 1, coll::DataType::f64, coll::ReduceOp::avg);
      losses.push_back(mean);
      if (rank == 0) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("epoch %llu/%u: loss %.6g (%llu steps, %.1f s)\n", static_cast<unsigned long long>(g / steps_per_epoch),
                    a.epochs, mean, static_cast<unsigned long long>(epoch_steps), s);
        std::fflush(stdout);
      }
      epoch_loss = 0, epoch_steps = 0;
    }
    if ((a.checkpoint_every && g % a.checkpoint_every == 0) || (!a.checkpoint_every && epoch_end)) checkpoint();
  }
  checkpoint();  // where it stopped (the end, or --stop-after)

  // Test accuracy on held-out samples: each rank a shard of one pass, repeats not counted.
  double accuracy = -1;
  std::uint64_t tested = 0;
  if (test) {
    std::int64_t counts[2] = {0, 0};  // correct, samples
    for (std::uint64_t s = 0; s < test->steps_per_epoch(); ++s) {
      const rd::Batch batch = test->next();
      const Batch b = view(batch);
      check_labels(b, a.classes);
      // Padding repeats the start of the order to fill the last step: those are not counted.
      const std::vector<std::uint8_t> skip(batch.padded().begin(), batch.padded().end());
      counts[1] += static_cast<std::int64_t>(std::count(skip.begin(), skip.end(), 0));
      std::size_t correct = 0;
#ifdef SLUICE_TRAIN_CUDA
      if (gpu) correct = gpu->count_correct(b.x, b.y, b.b, skip.data());
      else
#endif
      {
        Activations eval;
        mlp::forward(model, b.x, b.y, b.b, eval, &correct, skip.data());
      }
      counts[0] += static_cast<std::int64_t>(correct);
    }
    comm.allreduce(counts, counts, 2, coll::DataType::i64, coll::ReduceOp::sum);
    tested = static_cast<std::uint64_t>(counts[1]);
    accuracy = tested ? double(counts[0]) / double(tested) : 0;
  }

  telemetry.finish();
  weights_to_host();
  // Every rank must hold the same bits: compare the fingerprints.
  const std::uint64_t mine = fnv1a(model.params.data(), model.params.size() * sizeof(float));
  std::vector<std::uint64_t> all(static_cast<std::size_t>(ranks));
  MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  const bool identical = std::all_of(all.begin(), all.end(), [&](std::uint64_t v) { return v == all[0]; });
  if (rank == 0) {
    if (accuracy >= 0) std::printf("test accuracy: %.2f %% of %llu samples\n", 100 * accuracy,
                                   static_cast<unsigned long long>(tested));
    std::printf("weights: fnv1a64 %s, %s on %d ranks\n", hex(mine).c_str(), identical ? "identical" : "DIFFERENT", ranks);
    std::string json = "{\"ranks\":" + std::to_string(ranks) + ",\"nodes\":" + std::to_string(comm.node_count()) +
                       ",\"steps\":" + std::to_string(global_step()) + ",\"losses\":[";
    for (std::size_t i = 0; i < losses.size(); ++i) {
      char v[32];
      std::snprintf(v, sizeof v, "%s%.6f", i ? "," : "", losses[i]);
      json += v;
    }
    char tail[256];
    std::snprintf(tail, sizeof tail, "],\"test_accuracy\":%.6f,\"weights_fnv1a64\":\"%s\",\"identical\":%s,",
                  accuracy, hex(mine).c_str(), identical ? "true" : "false");
    json += tail;
    json += "\"checkpoint\":\"" + (a.checkpoint_dir.empty() ? std::string() : (fs::path(a.checkpoint_dir) / "checkpoint.bin").string()) +
            "\",\"job_file\":\"" + (telemetry.job_file().enabled() ? telemetry.job_file().path() : std::string()) + "\"}";
    std::printf("result: %s\n", json.c_str());
  }
  return identical ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "sluice-train-mlp: data-parallel training of a small MLP (one hidden ReLU layer, softmax cross-entropy,\n"
      "SGD with momentum) on a sluice-mkdata dataset, with sluice's sharded reader, allreduce and telemetry.\n"
      "Run one process per rank: srun --mpi=pmix sluice-train-mlp ..., or mpirun."};
  app.add_option("--train", a.train, "training files (x: f32 samples, y: int64 labels), one logical dataset")
      ->required()
      ->type_name("FILE...");
  app.add_option("--test", a.test, "held-out files for the final test accuracy (same layout)")->type_name("FILE...");
  app.add_option("--epochs", a.epochs, "epochs in all, counting those before a --resume (default 5)")
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--batch", a.batch, "samples per batch per rank (default 32)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--hidden", a.hidden, "hidden units (default 64)")->check(CLI::Range(1u, 1u << 16));
  app.add_option("--classes", a.classes, "classes; labels must lie in [0, classes) (default 10)")
      ->check(CLI::Range(2u, 1u << 16));
  app.add_option("--lr", a.lr, "learning rate (default 0.05)")->check(CLI::PositiveNumber);
  app.add_option("--momentum", a.momentum, "SGD momentum (default 0.9)")->check(CLI::Range(0.0f, 0.999f));
  app.add_option("--seed", a.seed, "seed of the initial weights and of every epoch's shuffle (default 1)");
  app.add_option("--checkpoint-dir", a.checkpoint_dir,
                 "where rank 0 writes checkpoint.bin (atomically) at every epoch end and at the end "
                 "(default: $SLUICE_BB/checkpoints in a sluice job, else none)")
      ->type_name("DIR");
  app.add_option("--checkpoint-every", a.checkpoint_every, "checkpoint every N steps instead of every epoch")
      ->type_name("N");
  app.add_option("--resume", a.resume, "continue exactly from this checkpoint (same ranks, batch, seed and data)")
      ->type_name("FILE");
  app.add_option("--stop-after", a.stop_after, "stop (with a checkpoint) after global step N, e.g. to test resume")
      ->type_name("N");
  app.add_option("--device", a.device,
                 "where the model runs: cpu, cuda (the CUDA kernels of examples/mlp_cuda.cu; a build with nvcc and "
                 "a visible GPU), or auto (default: cuda when both are there)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_flag("--deterministic", a.deterministic,
               "average all gradients in one synchronous allreduce per step: the same bits run after run and "
               "over either transport (the default fuses per-layer async allreduces, whose bucket boundaries "
               "follow timing across nodes)");
  app.footer(
      "OUTPUT (rank 0, stdout)\n"
      "  placement: one line per rank; epoch N/E: loss L; test accuracy; weights: fnv1a64 H, identical on N ranks;\n"
      "  result: {JSON: ranks, nodes, steps, losses[], test_accuracy, weights_fnv1a64, identical, checkpoint, job_file}\n\n"
      "ENVIRONMENT\n"
      "  SLUICE_BB (burst buffer: default checkpoint directory, staged input), SLUICE_TELEMETRY_DIR (job file),\n"
      "  SLUICE_COLL_TRANSPORT=mpi|ucx and the other SLUICE_COLL_* (docs/collectives.md).\n\n"
      "EXIT STATUS\n"
      "  0 trained (and the weights are identical on every rank); 1 an error (named) or differing weights; 2 usage.\n\n"
      "EXAMPLE\n"
      "  sluice-mkdata --out d.h5 --samples 16384 --shape 256 --labels 10 --files 4\n"
      "  mpirun -np 2 sluice-train-mlp --train d-00000-of-00004.h5 d-00001-of-00004.h5 d-00002-of-00004.h5 \\\n"
      "    --test d-00003-of-00004.h5 --epochs 3 --checkpoint-dir ckpt");

  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = rank == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    MPI_Finalize();
    return rc == 0 ? 0 : 2;
  }
  if (a.checkpoint_dir.empty())
    if (const char* bb = std::getenv("SLUICE_BB"); bb && *bb) a.checkpoint_dir = std::string(bb) + "/checkpoints";
  int rc = 0;
  try {
    rc = run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-train-mlp: rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may be waiting in a collective
  }
  MPI_Finalize();
  return rc;
}
