// Prometheus text exposition (format 0.0.4) of one rank's telemetry, and the textfile writer.
#include <sluice/monitor/prometheus.hpp>

#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace sluice::monitor {

std::string prometheus_escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

constexpr double kNsPerS = 1e9;

double seconds(std::uint64_t ns) { return double(ns) / kNsPerS; }  // division: 150 ms is 0.15

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Whole numbers (counts, bytes) as integers, not 3e+06; the rest in the shortest round trip.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    return std::string(buf, r.ptr);
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Appends families: HELP and TYPE once, then the series.
class Exposition {
 public:
  explicit Exposition(const PrometheusLabels& l) {
    auto add = [&](const char* k, const std::string& v) {
      base_ += base_.empty() ? "" : ",";
      base_ += k;
      base_ += "=\"" + prometheus_escape_label(v) + "\"";
    };
    add("jobid", l.jobid);
    add("user", l.user);
    add("account", l.account);
    if (l.rank >= 0) add("rank", std::to_string(l.rank));
    if (!l.host.empty()) add("host", l.host);
  }
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // extra: more labels, already formatted (k="v",...), or "".
  void series(const std::string& name, double value, const std::string& extra = {}) {
    out_ += name + "{" + base_;
    if (!extra.empty()) out_ += "," + extra;
    out_ += "} " + format_value(value) + "\n";
  }
  void one(const char* name, const char* type, const char* help, double value) {
    family(name, type, help);
    series(name, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string base_, out_;
};

std::string label(const char* k, const std::string& v) { return std::string(k) + "=\"" + prometheus_escape_label(v) + "\""; }

}  // namespace

std::string render_prometheus(const Snapshot& s, const Sample* latest, const PrometheusLabels& labels) {
  Exposition e(labels);
  e.one("sluice_elapsed_seconds", "gauge", "Time since the recorder was created.", seconds(s.elapsed_ns));
  e.one("sluice_steps_total", "counter", "Training steps completed.", double(s.steps));
  e.family("sluice_step_seconds", "summary", "Step time (quantiles over the whole job).");
  e.series("sluice_step_seconds", s.step_time.quantile(0.5) / kNsPerS, "quantile=\"0.5\"");
  e.series("sluice_step_seconds", s.step_time.quantile(0.95) / kNsPerS, "quantile=\"0.95\"");
  e.series("sluice_step_seconds_sum", seconds(s.step_ns));
  e.series("sluice_step_seconds_count", double(s.steps));
  e.one("sluice_data_wait_seconds_total", "counter", "Time steps spent waiting for data.",
        seconds(s.step_data_wait_ns));
  e.one("sluice_compute_seconds_total", "counter", "Time steps spent computing (neither data wait nor allreduce).",
        seconds(s.step_compute_ns));
  e.one("sluice_allreduce_calls_total", "counter", "Allreduce calls.", double(s.allreduces));
  e.one("sluice_allreduce_seconds_total", "counter", "Time in allreduce calls.", seconds(s.allreduce_ns));
  e.one("sluice_allreduce_bytes_total", "counter", "Bytes reduced by allreduce calls.", double(s.allreduce_bytes));
  e.one("sluice_io_reads_total", "counter", "Read operations reported to the recorder.", double(s.io_ops));
  e.one("sluice_io_read_bytes_total", "counter", "Bytes read, as reported to the recorder.", double(s.io_bytes));
  e.one("sluice_io_read_seconds_total", "counter", "Time in read operations reported to the recorder.",
        seconds(s.io_ns));
  e.one("sluice_stalls_total", "counter", "Stalls (waits for data) reported to the recorder.", double(s.stalls));
  e.one("sluice_stall_seconds_total", "counter", "Time stalled.", seconds(s.stall_ns));
  if (!latest) return e.take();

  e.family("sluice_cpu_seconds_total", "counter", "CPU time of the process.");
  e.series("sluice_cpu_seconds_total", latest->cpu_user_s, "mode=\"user\"");
  e.series("sluice_cpu_seconds_total", latest->cpu_sys_s, "mode=\"system\"");
  e.one("sluice_rss_bytes", "gauge", "Resident set size of the process.", double(latest->rss_bytes));
  e.one("sluice_rss_peak_bytes", "gauge", "Peak resident set size of the process.", double(latest->rss_peak_bytes));
  // GPU families: only those some GPU reports, one series per reporting GPU.
  auto gpu_family = [&](const char* name, const char* type, const char* help, auto value) {
    bool any = false;
    for (const GpuSample& g : latest->gpus) {
      auto v = value(g);
      if (!v) continue;
      if (!any) e.family(name, type, help), any = true;
      e.series(name, double(*v), label("gpu", std::to_string(g.index)));
    }
  };
  gpu_family("sluice_gpu_utilization_ratio", "gauge", "GPU utilization (0 to 1).", [](const GpuSample& g) {
    return g.util_percent ? std::optional<double>(*g.util_percent / 100.0) : std::nullopt;
  });
  gpu_family("sluice_gpu_memory_used_bytes", "gauge", "GPU memory in use.",
             [](const GpuSample& g) { return g.mem_used_bytes; });
  gpu_family("sluice_gpu_memory_total_bytes", "gauge", "GPU memory installed.",
             [](const GpuSample& g) { return g.mem_total_bytes; });
  gpu_family("sluice_gpu_power_watts", "gauge", "GPU power draw.", [](const GpuSample& g) { return g.power_watts; });
  return e.take();
}

// ---- the writer ----------------------------------------------------------------------------

struct PrometheusWriter::State {
  std::mutex write_mu;  // one write at a time (thread and write_now)
  mutable std::mutex mu;  // below
  std::condition_variable cv;
  bool stopping = false, reported = false;
  std::string error;
  std::uint64_t writes = 0;
  std::thread thread;
};

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string passwd_user() {
  std::vector<char> buf(16384);
  passwd pw{}, *res = nullptr;
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &res) == 0 && res && res->pw_name) return res->pw_name;
  return "uid" + std::to_string(getuid());
}

// A job id safe in a file name: [A-Za-z0-9_.-], anything else as '_'.
std::string file_safe(std::string s) {
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) c = '_';
  return s;
}

}  // namespace

PrometheusWriter::PrometheusWriter(PrometheusOptions opts) : opts_(std::move(opts)), st_(std::make_shared<State>()) {
  try {
    labels_.jobid = !opts_.job_id.empty() ? opts_.job_id : env("SLURM_JOB_ID");
    if (labels_.jobid.empty()) labels_.jobid = "local-" + std::to_string(getpid());
    labels_.user = !opts_.user.empty() ? opts_.user : env("SLURM_JOB_USER");
    if (labels_.user.empty()) labels_.user = passwd_user();
    labels_.account = !opts_.account.empty() ? opts_.account : env("SLURM_JOB_ACCOUNT");
    if (labels_.account.empty()) labels_.account = "unknown";
    labels_.rank = opts_.rank;
    if (labels_.rank < 0) {
      const std::string r = env("SLURM_PROCID");
      labels_.rank = r.empty() ? 0 : std::atoi(r.c_str());
      if (labels_.rank < 0) labels_.rank = 0;
    }
    if (opts_.interval <= std::chrono::milliseconds::zero()) opts_.interval = std::chrono::milliseconds(15000);
    labels_.host = !opts_.host.empty() ? opts_.host : node_name();
    std::string dir = !opts_.dir.empty() ? opts_.dir : env("SLUICE_PROMETHEUS_DIR");
    if (dir.empty()) return;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const std::string name = "sluice_job_" + file_safe(labels_.jobid) + "_rank" + std::to_string(labels_.rank) + ".prom";
    path_ = dir + "/" + name;
    tmp_path_ = dir + "/." + name + ".tmp";
  } catch (const std::exception& ex) {  // allocation only; leave the writer disabled
    path_.clear();
    std::fprintf(stderr, "sluice prometheus: disabled: %s\n", ex.what());
  }
}

PrometheusWriter::~PrometheusWriter() { stop(); }

std::string PrometheusWriter::error() const {
  std::lock_guard lk(st_->mu);
  return st_->error;
}

std::uint64_t PrometheusWriter::writes() const {
  std::lock_guard lk(st_->mu);
  return st_->writes;
}

bool PrometheusWriter::write_now() noexcept {
  if (!enabled()) return false;
  std::lock_guard wl(st_->write_mu);
  {
    std::lock_guard lk(st_->mu);
    if (st_->stopping) return false;  // the file is gone for good once stop() ran
  }
  std::string failure;
  try {
    Recorder& rec = opts_.recorder ? *opts_.recorder : default_recorder();
    const Snapshot snap = rec.snapshot();
    Sample latest;
    bool have = false;
    if (opts_.sampler) {
      std::vector<Sample> all = opts_.sampler->samples();
      if (!all.empty()) latest = std::move(all.back()), have = true;
    }
    if (!have) latest = read_process_sample();
    const std::string text = render_prometheus(snap, &latest, labels_);
    std::FILE* f = std::fopen(tmp_path_.c_str(), "w");
    if (!f) {
      failure = "cannot write " + tmp_path_ + " (directory of " + path_ + "): " + std::strerror(errno);
    } else {
      const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
      const int werr = errno;
      const bool closed = std::fclose(f) == 0;
      if (!wrote || !closed) {
        failure = "cannot write " + tmp_path_ + ": " + std::strerror(wrote ? errno : werr);
        std::remove(tmp_path_.c_str());
      } else if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        failure = "cannot rename " + tmp_path_ + " to " + path_ + ": " + std::strerror(errno);
        std::remove(tmp_path_.c_str());
      }
    }
  } catch (const std::exception& ex) {
    failure = std::string("cannot write ") + path_ + ": " + ex.what();
  }
  std::lock_guard lk(st_->mu);
  if (failure.empty()) {
    ++st_->writes;
    return true;
  }
  if (!st_->reported) std::fprintf(stderr, "sluice prometheus: %s\n", failure.c_str());
  st_->reported = true;
  st_->error = std::move(failure);
  return false;
}

void PrometheusWriter::start() noexcept {
  if (!enabled()) return;
  std::lock_guard lk(st_->mu);
  if (st_->thread.joinable() || st_->stopping) return;
  try {
    st_->thread = std::thread([this] {
      auto next = std::chrono::steady_clock::now();
      for (;;) {
        write_now();
        next += opts_.interval;
        const auto now = std::chrono::steady_clock::now();
        while (next <= now) next += opts_.interval;  // skip late ticks, do not bunch them
        std::unique_lock ul(st_->mu);
        if (st_->cv.wait_until(ul, next, [&] { return st_->stopping; })) return;
      }
    });
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "sluice prometheus: cannot start the writer thread: %s\n", ex.what());
  }
}

void PrometheusWriter::stop() noexcept {
  std::thread t;
  {
    std::lock_guard lk(st_->mu);
    if (st_->stopping) return;
    st_->stopping = true;
    t = std::move(st_->thread);
  }
  st_->cv.notify_all();
  if (t.joinable()) t.join();
  if (!enabled()) return;
  std::lock_guard wl(st_->write_mu);
  std::remove(tmp_path_.c_str());
  if (std::remove(path_.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    try {
      std::lock_guard lk(st_->mu);
      st_->error = "cannot remove " + path_ + ": " + std::strerror(err);
    } catch (...) {  // allocation: the message is lost, nothing else
    }
  }
}

}  // namespace sluice::monitor
