#include <sluice/common/error.hpp>
#include <sluice/common/nvml.hpp>
#include <sluice/monitor/sampler.hpp>

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace sluice::monitor {
namespace {

using Clock = std::chrono::steady_clock;

// utime and stime (fields 14, 15 of /proc/self/stat), counted after the command's ')'.
void read_stat(Sample& s) {
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream in(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  const double tick = double(::sysconf(_SC_CLK_TCK));
  s.cpu_user_s = double(utime) / tick;
  s.cpu_sys_s = double(stime) / tick;
}

void read_status(Sample& s) {
  std::ifstream f("/proc/self/status");
  unsigned long long kb = 0;
  std::string line;
  while (std::getline(f, line)) {
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) s.rss_bytes = kb * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) s.rss_peak_bytes = kb * 1024;
  }
}

void read_io(Sample& s) {
  std::ifstream f("/proc/self/io");
  std::string key;
  unsigned long long v = 0;
  while (f >> key >> v) {
    s.io_known = true;
    if (key == "rchar:") s.read_bytes = v;
    else if (key == "wchar:") s.write_bytes = v;
    else if (key == "read_bytes:") s.storage_read_bytes = v;
    else if (key == "write_bytes:") s.storage_write_bytes = v;
  }
}

void read_gpus(const nvml::Library& lib, Sample& s) {
  const int n = lib.device_count();
  for (int i = 0; i < n; ++i) {
    GpuSample g;
    g.index = i;
    if (auto u = lib.utilization(i)) g.util_percent = u->gpu_percent, g.mem_util_percent = u->memory_percent;
    if (auto m = lib.memory(i)) g.mem_used_bytes = m->used_bytes, g.mem_total_bytes = m->total_bytes;
    g.power_watts = lib.power_watts(i);
    s.gpus.push_back(std::move(g));
  }
}

Sample read_now(const nvml::Library* lib) {
  Sample s;
  s.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count();
  read_stat(s);
  read_status(s);
  read_io(s);
  if (lib) read_gpus(*lib, s);
  return s;
}

}  // namespace

struct Sampler::State {
  SamplerOptions opts;
  std::optional<nvml::Library> nvml;
  Clock::time_point t0;

  mutable std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::deque<Sample> ring;
  std::uint64_t dropped = 0;
  bool stop = false, running = false;
  std::thread thread;

  std::mutex nvml_mu;  // one reader of NVML at a time (sampler thread, sample_now)

  Sample take() {
    Sample s;
    {
      std::lock_guard lock(nvml_mu);
      s = read_now(nvml ? &*nvml : nullptr);
    }
    s.t_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::lock_guard lock(mu);
    if (ring.size() >= opts.capacity) ring.pop_front(), ++dropped;
    ring.push_back(s);
    return s;
  }

  void run() {
    auto next = Clock::now();
    std::unique_lock lock(mu);
    while (!stop) {
      lock.unlock();
      try {
        take();
      } catch (...) {  // a failed read (out of memory) skips this sample
      }
      lock.lock();
      const auto now = Clock::now();
      next += opts.interval;
      if (next <= now) next = now + opts.interval - (now - next) % opts.interval;  // skip late ticks
      cv.wait_until(lock, next, [&] { return stop; });
    }
    running = false;
    cv.notify_all();
  }
};

Sampler::Sampler(SamplerOptions opts) : st_(std::make_shared<State>()) {
  if (opts.interval.count() <= 0) throw InvalidArgument("sampler interval must be positive");
  if (opts.capacity == 0) throw InvalidArgument("sampler capacity must be at least 1");
  st_->opts = std::move(opts);
  st_->t0 = Clock::now();
  if (!st_->opts.nvml_path.empty()) {
    try {
      if (auto lib = nvml::Library::load(st_->opts.nvml_path)) st_->nvml.emplace(std::move(*lib));
    } catch (const Error&) {  // an NVML too old for the topology calls: no GPU series
    }
  }
}

Sampler::~Sampler() { stop(); }

void Sampler::start() {
  std::lock_guard lock(st_->mu);
  if (st_->running) return;
  if (st_->thread.joinable()) st_->thread.join();  // an earlier, stopped run
  st_->stop = false;
  st_->running = true;
  st_->thread = std::thread([st = st_] { st->run(); });
}

bool Sampler::stop(std::chrono::milliseconds deadline) {
  std::unique_lock lock(st_->mu);
  if (!st_->thread.joinable()) return true;
  st_->stop = true;
  st_->cv.notify_all();
  if (!st_->cv.wait_for(lock, deadline, [&] { return !st_->running; })) {
    st_->thread.detach();  // it holds its own reference to the state
    auto fresh = std::make_shared<State>();  // later calls must not race with it
    fresh->opts = st_->opts;
    fresh->t0 = st_->t0;
    fresh->ring = st_->ring;
    fresh->dropped = st_->dropped;
    lock.unlock();
    st_ = std::move(fresh);
    return false;
  }
  lock.unlock();
  st_->thread.join();
  return true;
}

bool Sampler::running() const {
  std::lock_guard lock(st_->mu);
  return st_->running;
}

Sample Sampler::sample_now() { return st_->take(); }

std::vector<Sample> Sampler::samples() const {
  std::lock_guard lock(st_->mu);
  return {st_->ring.begin(), st_->ring.end()};
}

std::uint64_t Sampler::dropped() const {
  std::lock_guard lock(st_->mu);
  return st_->dropped;
}

int Sampler::gpu_count() const {
  std::lock_guard lock(st_->nvml_mu);
  return st_->nvml ? st_->nvml->device_count() : 0;
}

Sample read_process_sample() { return read_now(nullptr); }

std::string node_name() {
  if (const char* n = std::getenv("SLURMD_NODENAME"); n && *n) return n;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace sluice::monitor
