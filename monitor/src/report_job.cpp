// `sluice-report job`: derivation, rules, and the text / JSON / HTML renderings.
// docs/telemetry.md, "sluice-report job".
#include "report_job.hpp"
#include "html_escape.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <numbers>
#include <set>
#include <sstream>
#include <utility>

namespace sluice::monitor::report {

namespace {

// Mean and maximum of the finite values added.
class Acc {
 public:
  void add(double v) {
    if (!std::isfinite(v)) return;
    sum_ += v;
    max_ = n_ ? std::max(max_, v) : v;
    ++n_;
  }
  void add(const std::optional<MeanMax>& m) {  // a mean of means; the max of maxima
    if (!m) return;
    sum_ += m->mean;
    max_ = n_ ? std::max(max_, m->max) : m->max;
    ++n_;
  }
  std::optional<MeanMax> get() const {
    if (n_ == 0) return std::nullopt;
    return MeanMax{sum_ / double(n_), max_};
  }

 private:
  double sum_ = 0, max_ = 0;
  std::size_t n_ = 0;
};

// CPU time per wall second between samples: mean over the whole series, max over intervals.
std::optional<MeanMax> cpu_cores(const std::vector<Sample>& s) {
  if (s.size() < 2) return std::nullopt;
  const double span = s.back().t_s - s.front().t_s;
  const auto cpu = [](const Sample& x) { return x.cpu_user_s + x.cpu_sys_s; };
  if (!(span > 0)) return std::nullopt;
  double mx = 0;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const double dt = s[i].t_s - s[i - 1].t_s;
    if (dt > 0) mx = std::max(mx, (cpu(s[i]) - cpu(s[i - 1])) / dt);
  }
  return MeanMax{std::max(0.0, (cpu(s.back()) - cpu(s.front())) / span), mx};
}

std::optional<MeanMax> rss(const std::vector<Sample>& s) {
  Acc a;
  double peak = 0;
  for (const auto& x : s) {
    a.add(double(x.rss_bytes));
    peak = std::max(peak, double(x.rss_peak_bytes));
  }
  auto m = a.get();
  if (m) m->max = std::max(m->max, peak);
  return m;
}

struct GpuAcc {
  std::set<std::uint32_t> ranks;
  Acc util, mem;
  std::optional<double> total;
};

void add_gpus(JobReport& r, const std::vector<RankTelemetry>& ranks) {
  std::map<std::pair<std::string, int>, GpuAcc> gpus;
  for (const auto& rk : ranks)
    for (const auto& s : rk.samples)
      for (const auto& g : s.gpus) {
        GpuAcc& a = gpus[{rk.host, g.index}];
        a.ranks.insert(rk.rank);
        if (g.util_percent) a.util.add(double(*g.util_percent));
        if (g.mem_used_bytes) a.mem.add(double(*g.mem_used_bytes));
        if (g.mem_total_bytes) a.total = std::max(a.total.value_or(0), double(*g.mem_total_bytes));
      }
  Acc util, mem;
  for (const auto& [key, a] : gpus) {
    GpuReport g{key.first, key.second, {a.ranks.begin(), a.ranks.end()}, a.util.get(), a.mem.get(), a.total};
    util.add(g.util_percent);
    mem.add(g.mem_used_bytes);
    r.gpus.push_back(std::move(g));
  }
  r.gpu_util_percent = util.get();
  r.gpu_mem_used_bytes = mem.get();
}

std::string pct(double fraction) { return fmt::format("{:.1f} %", 100 * fraction); }

std::string gpu_name(const GpuReport& g) {
  std::string ranks;
  for (auto k : g.ranks) ranks += (ranks.empty() ? "" : ",") + std::to_string(k);
  return fmt::format("{}:gpu{} (rank {})", g.host, g.index, ranks);
}

std::string host_of(const JobReport& r, std::uint32_t rank) {
  for (const auto& x : r.rank_reports)
    if (x.rank == rank) return x.host;
  return "?";
}

std::string bytes_str(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

std::string utc(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "unknown";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Slurm's elapsed format: [D-]HH:MM:SS.
std::string duration(double s) {
  const auto t = static_cast<long long>(std::llround(std::max(0.0, s)));
  const long long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, sec = t % 60;
  return d ? fmt::format("{}-{:02}:{:02}:{:02}", d, h, m, sec) : fmt::format("{:02}:{:02}:{:02}", h, m, sec);
}

const char* const kUnknown = "unknown";
std::string or_unknown(const std::optional<std::string>& v) { return v ? *v : kUnknown; }

// The header fields and inputs the job file does not hold.
std::vector<std::string> unknown_fields(const JobReport& r) {
  std::vector<std::string> u;
  if (!r.user) u.push_back("user");
  if (!r.account) u.push_back("account");
  if (!r.partition) u.push_back("partition");
  if (!r.slurm_state) u.push_back("slurm_state");
  if (!r.mem_requested_bytes) u.push_back("mem_requested");
  return u;
}

std::string gpus_line(const JobReport& r) {
  const std::string reported = r.gpus.empty() ? "0 reported (no GPU samples)" : std::to_string(r.gpus.size()) + " reported";
  return r.gpus_allocated ? std::to_string(*r.gpus_allocated) + " allocated, " + reported : reported;
}

std::string exit_line(const JobReport& r) {
  std::string s = "code " + (r.exit_code ? std::to_string(*r.exit_code) : std::string(kUnknown));
  if (r.exit_signal.value_or(0) != 0) s += ", signal " + std::to_string(*r.exit_signal);
  return s;
}

bool has_staging(const JobReport& r) {
  return r.stage_in_bytes || r.stage_out_bytes || !r.stage_errors.empty();
}

std::string staging_line(const JobReport& r) {
  std::string s = fmt::format("in {} in {:.1f} s, out {} in {:.1f} s", bytes_str(double(r.stage_in_bytes)), r.stage_in_s,
                              bytes_str(double(r.stage_out_bytes)), r.stage_out_s);
  for (const auto& e : r.stage_errors) s += "; failed on " + e;
  return s;
}

std::string state_line(const JobReport& r) {
  if (r.unverified) return "no telemetry counted (the job file is unverified)";
  return r.complete ? "complete (final write at the end of the job)"
                    : "incomplete (checkpoint: job still running or was killed)";
}

std::string unverified_line(const JobReport& r) {
  return "UNVERIFIED job file, not counted: " + describe(*r.unverified);
}

std::string file_line(const JobReport& r) {
  std::string s = r.file;
  if (r.file_owner_uid) s += fmt::format(" (owner uid {}{})", *r.file_owner_uid, r.unverified ? ", UNVERIFIED" : "");
  return s;
}

std::string incomplete_line(const JobReport& r) {
  return "incomplete: job still running or was killed; data up to " + utc(r.data_until_unix_ms);
}

// Accounting fills what the record lacks, and knows why the job ended.
void apply_sacct(JobReport& r, const SacctJob& a) {
  auto fill = [](std::optional<std::string>& field, const std::string& v) {
    if (!field && !v.empty()) field = v;
  };
  fill(r.user, a.user);
  fill(r.account, a.account);
  fill(r.partition, a.partition);
  r.slurm_state = a.state;
  if (!r.mem_requested_bytes && a.mem_bytes) r.mem_requested_bytes = a.mem_bytes;
  if (!r.gpus_allocated && a.gpus) r.gpus_allocated = a.gpus;
  if (!r.cpus_allocated && a.cpus) r.cpus_allocated = a.cpus;
  if (!r.exit_code && a.exit_code) r.exit_code = a.exit_code, r.exit_signal = a.exit_signal;
  r.header_sources += r.header_sources.empty() ? "sacct" : ", sacct";
}

}  // namespace

// --- rules ----------------------------------------------------------------------------------

void rule_idle_gpus(JobReport& r) {
  std::vector<const GpuReport*> known, idle;
  for (const auto& g : r.gpus)
    if (g.util_percent) {
      known.push_back(&g);
      if (g.util_percent->mean < kIdleGpuUtilPercent) idle.push_back(&g);
    }
  if (known.empty()) {
    r.skipped_rules.push_back({"idle_gpus", "no GPU utilization samples in the job file"});
    return;
  }
  if (idle.empty()) return;
  std::string list;
  for (const auto* g : idle) list += fmt::format("{}{} {:.1f} %", list.empty() ? "" : ", ", gpu_name(*g), g->util_percent->mean);
  r.notes.push_back({"idle_gpus", "warning",
                     fmt::format("{} of {} GPUs idle (mean utilization < {:g} %): {}. Request only the GPUs the job "
                                 "uses, or check that every rank gets its own GPU.",
                                 idle.size(), known.size(), kIdleGpuUtilPercent, list)});
}

void rule_input_bound(JobReport& r) {
  if (r.totals.steps.count == 0) {
    r.skipped_rules.push_back({"input_bound", "no training steps recorded"});
    return;
  }
  const double f = r.totals.steps.data_wait_fraction;
  if (f >= kInputBoundFraction)
    r.notes.push_back({"input_bound", "warning",
                       fmt::format("input-bound: data wait is {} of step time (>= {:g} %). Stage the data to "
                                   "node-local storage (sluice-stage), add reader threads or prefetch more.",
                                   pct(f), 100 * kInputBoundFraction)});
  else if (f >= kModeratelyInputBoundFraction)
    r.notes.push_back({"moderately_input_bound", "info",
                       fmt::format("moderately input-bound: data wait is {} of step time ({:g}-{:g} %).", pct(f),
                                   100 * kModeratelyInputBoundFraction, 100 * kInputBoundFraction)});
}

void rule_stragglers(JobReport& r) {
  const auto with_steps = std::count_if(r.rank_reports.begin(), r.rank_reports.end(),
                                        [](const RankReport& x) { return x.steps > 0; });
  if (with_steps < 2) {
    r.skipped_rules.push_back({"stragglers", "fewer than two ranks with steps"});
    return;
  }
  if (r.stragglers.empty()) return;
  std::string list;
  for (const auto& s : r.stragglers)
    list += fmt::format("{}rank {} ({}) {:.2f} x", list.empty() ? "" : ", ", s.rank, host_of(r, s.rank), s.ratio);
  const double median = r.stragglers.front().ratio > 0 && std::isfinite(r.stragglers.front().ratio)
                            ? r.stragglers.front().own_ms_per_step / r.stragglers.front().ratio
                            : 0;
  r.notes.push_back({"stragglers", "warning",
                     fmt::format("stragglers: {} rank(s) take >= {:.2f} x the median own time per step ({:.1f} ms; "
                                 "step minus allreduce): {}. The other ranks wait for them in allreduce.",
                                 r.stragglers.size(), r.straggler_threshold, median, list)});
}

void rule_ended_early(JobReport& r) {
  if (!r.slurm_state) {
    r.skipped_rules.push_back({"ended_early", "no job record"});
    return;
  }
  if (*r.slurm_state != kEndedEarly) return;
  r.notes.push_back({"ended_early", "info",
                     "the job ended (Slurm reported exit 0) before its final telemetry write: it was cancelled, "
                     "timed out, or did not call finish(); the figures are from its last checkpoint, " +
                         utc(r.written_at_unix_ms) + "."});
}

void rule_memory_over_requested(JobReport& r) {
  if (!r.mem_requested_bytes) {
    r.skipped_rules.push_back({"memory_over_requested", "the job file holds no memory request"});
    return;
  }
  if (!r.rss_peak_total_bytes) {
    r.skipped_rules.push_back({"memory_over_requested", "no memory samples in the job file"});
    return;
  }
  const double req = double(*r.mem_requested_bytes), peak = *r.rss_peak_total_bytes;
  if (req > 0 && peak <= kMemoryUsedFractionLow * req)
    r.notes.push_back({"memory_over_requested", "warning",
                       fmt::format("memory over-requested: peak use {} of {} requested ({}; <= {:g} %). Request "
                                   "less memory next time.",
                                   bytes_str(peak), bytes_str(req), pct(peak / req), 100 * kMemoryUsedFractionLow)});
}

// --- derivation -----------------------------------------------------------------------------

namespace {

// The header fields the plugin's record knows and the job file does not.
void apply_record(JobReport& r, const JobRecord& rec, std::int64_t now_unix_ms) {
  auto known = [](const std::string& v) { return v.empty() ? std::nullopt : std::optional<std::string>(v); };
  r.user = known(rec.user);
  r.account = known(rec.account);
  r.partition = known(rec.partition);
  r.slurm_state = rec.state();
  r.gpus_allocated = rec.gpus;
  r.cpus_allocated = rec.cpus;
  r.exit_code = rec.exit_code;
  r.exit_signal = rec.exit_signal;
  r.stage_in_bytes = rec.stage_in_bytes;
  r.stage_out_bytes = rec.stage_out_bytes;
  r.stage_in_s = rec.stage_in_s;
  r.stage_out_s = rec.stage_out_s;
  r.stage_errors = rec.stage_errors;
  if (rec.start_unix_ms > 0) r.start_unix_ms = rec.start_unix_ms;
  if (const double e = rec.elapsed_s(now_unix_ms); e > 0) r.elapsed_s = e;
  else if (rec.end_unix_ms && rec.start_unix_ms > 0 && *rec.end_unix_ms < rec.start_unix_ms)
    // Start and end come from different nodes' clocks (prolog, epilog): an end before the start
    // is skew, and the job file's own clock gives the elapsed time instead.
    r.notes.push_back({"clock_skew", "info",
                       fmt::format("the job record ends {:.1f} s before it starts (the nodes' clocks disagree; "
                                   "check NTP): the elapsed time is the job file's, {:.1f} s.",
                                   double(rec.start_unix_ms - *rec.end_unix_ms) / 1000.0, r.elapsed_s)});
  r.header_sources = "job record";
}

}  // namespace

bool job_file_attributable(std::uint32_t owner_uid, const JobRecord& record) noexcept {
  return owner_uid == 0 || owner_uid == record.uid;
}

std::string describe(const UnverifiedFile& u) {
  return fmt::format("{} is owned by uid {}, not by the job's user {}(uid {}) nor root: not counted as job {}'s "
                     "telemetry",
                     u.file, u.owner_uid, u.job_user.empty() ? std::string() : u.job_user + " ", u.job_uid, u.job_id);
}

JobReport build_job_report(const JobTelemetry& file_job, const std::string& file, const ReportInputs& in) {
  // A file nobody can vouch for contributes nothing: the report is the record's alone.
  std::optional<UnverifiedFile> unverified;
  if (in.record && in.file_owner_uid && !job_file_attributable(*in.file_owner_uid, *in.record))
    unverified = UnverifiedFile{std::to_string(in.record->job_id), file, *in.file_owner_uid, in.record->uid,
                                in.record->user};
  JobTelemetry none;
  if (unverified) none.job_id = unverified->job_id;
  const JobTelemetry& job = unverified ? none : file_job;
  JobReport r;
  r.unverified = unverified;
  r.file_owner_uid = in.file_owner_uid;
  r.job_id = job.job_id;
  r.file = file;
  r.complete = job.complete;
  r.written_at_unix_ms = job.written_at_unix_ms;
  r.elapsed_s = job.totals.elapsed_s;
  r.ranks = static_cast<std::uint32_t>(job.ranks.size());
  r.mem_requested_bytes = in.mem_requested_bytes;
  r.totals = job.totals;
  r.stragglers = job.stragglers;
  r.straggler_threshold = job.straggler_threshold;

  std::set<std::string> hosts;
  std::int64_t newest = 0, oldest = 0;
  Acc cpu, mem;
  double peak_sum = 0;
  bool any_mem = false;
  for (const auto& rk : job.ranks) {
    hosts.insert(rk.host);
    const Summary& s = rk.summary;
    RankReport x{rk.rank, rk.host, s.steps.count, s.steps.time_p50_ms, s.steps.time_p95_ms, s.steps.time_max_ms,
                 s.steps.data_wait_fraction, s.steps.allreduce_fraction, own_ms_per_step(s), s.allreduce.busbw_gbps,
                 cpu_cores(rk.samples), rss(rk.samples), rk.samples.size(), rk.samples_dropped};
    cpu.add(x.cpu_cores);
    mem.add(x.rss_bytes);
    if (x.rss_bytes) peak_sum += x.rss_bytes->max, any_mem = true;
    for (const auto& smp : rk.samples)
      if (smp.unix_ms > 0) {
        newest = std::max(newest, smp.unix_ms);
        oldest = oldest ? std::min(oldest, smp.unix_ms) : smp.unix_ms;
      }
    r.rank_reports.push_back(std::move(x));
  }
  r.hosts.assign(hosts.begin(), hosts.end());
  r.data_until_unix_ms = newest ? newest : job.written_at_unix_ms;
  if (oldest) r.start_unix_ms = oldest;
  r.cpu_cores_per_rank = cpu.get();
  r.rss_bytes_per_rank = mem.get();
  if (any_mem) r.rss_peak_total_bytes = peak_sum;
  add_gpus(r, job.ranks);
  if (in.record) apply_record(r, *in.record, in.now_unix_ms);
  // Slurm gives the epilog no reason for the end: an exit 0 without the final write is a job
  // that was stopped from outside (or never called finish()).
  if (r.slurm_state == "COMPLETED" && !r.complete && !r.unverified) r.slurm_state = kEndedEarly;
  if (in.sacct) apply_sacct(r, *in.sacct);
  if (r.unverified)
    r.notes.push_back({"unverified_job_file", "warning",
                       describe(*r.unverified) + ". Anyone can write into the telemetry directory: the figures "
                                                 "below are the job record's only."});

  rule_idle_gpus(r);
  rule_input_bound(r);
  rule_stragglers(r);
  rule_memory_over_requested(r);
  rule_ended_early(r);
  return r;
}

std::filesystem::path job_file_path(const std::filesystem::path& dir, const std::string& job_id) {
  return dir / job_file_name(job_id);
}

// --- text -----------------------------------------------------------------------------------

namespace {

std::string mm_str(const std::optional<MeanMax>& m, std::string (*f)(double)) {
  if (!m) return "unknown (no samples)";
  return fmt::format("mean {:<10}  max {}", f(m->mean), f(m->max));
}
// Words of TEXT in lines of at most WIDTH columns; the first line starts with FIRST, the others
// with as many spaces.
std::string wrap(const std::string& first, const std::string& text, std::size_t width = 100) {
  std::string out = first, word;
  std::size_t col = first.size();
  const std::string indent(first.size(), ' ');
  std::istringstream in(text);
  bool line_start = true;
  while (in >> word) {
    if (!line_start && col + 1 + word.size() > width) {
      out += "\n" + indent;
      col = indent.size();
      line_start = true;
    }
    if (!line_start) out += ' ', ++col;
    out += word;
    col += word.size();
    line_start = false;
  }
  return out + "\n";
}
std::string cores_str(double v) { return fmt::format("{:.2f}", v); }
std::string percent_str(double v) { return fmt::format("{:.1f} %", v); }

}  // namespace

std::string render_text(const JobReport& r) {
  // Job ids, host names, paths, users and stage errors come from files users write: escaped
  // (escape_text), so none can start a line or send a terminal escape. Numbers are ours.
  const auto e = [](std::string_view s) { return escape_text(s); };
  std::string o;
  auto line = [&o](const std::string& s) { o += s + "\n"; };
  auto field = [&line](const char* name, const std::string& v) { line(fmt::format("  {:<12}{}", name, v)); };
  line("sluice-report job " + e(r.job_id));
  if (r.unverified) line(e(unverified_line(r)));
  else if (!r.complete) line(incomplete_line(r));
  line("");
  field("job id", e(r.job_id));
  field("user", e(or_unknown(r.user)));
  field("account", e(or_unknown(r.account)));
  field("partition", e(or_unknown(r.partition)));
  field("state", state_line(r) + "; Slurm state " + e(or_unknown(r.slurm_state)));
  std::string hosts;
  for (const auto& h : r.hosts) hosts += (hosts.empty() ? "" : ", ") + e(h);
  field("nodes", fmt::format("{} ({})", r.hosts.size(), hosts));
  field("ranks", std::to_string(r.ranks));
  field("GPUs", gpus_line(r));
  if (r.cpus_allocated) field("CPUs", std::to_string(*r.cpus_allocated) + " allocated");
  if (r.exit_code || r.exit_signal) field("exit", exit_line(r));
  if (has_staging(r)) field("staging", e(staging_line(r)));
  field("runtime", fmt::format("{} ({:.1f} s)", duration(r.elapsed_s), r.elapsed_s));
  field("started", r.start_unix_ms ? utc(*r.start_unix_ms) : kUnknown);
  field("data up to", utc(r.data_until_unix_ms));
  if (!r.file.empty()) field("file", e(file_line(r)));
  const auto unknown = unknown_fields(r);
  if (!unknown.empty()) {
    std::string u;
    for (const auto& s : unknown) u += (u.empty() ? "" : ", ") + s;
    line("  (unknown: the job file does not record " + u + ")");
  }

  line("");
  line("Utilization");
  field("CPU", mm_str(r.cpu_cores_per_rank, cores_str) + " cores per rank");
  std::string mem = mm_str(r.rss_bytes_per_rank, bytes_str) + " RSS per rank";
  if (r.rss_peak_total_bytes) mem += fmt::format(" (job peak <= {})", bytes_str(*r.rss_peak_total_bytes));
  field("memory", mem);
  field("GPU", mm_str(r.gpu_util_percent, percent_str) + (r.gpu_util_percent ? " utilization" : ""));
  field("GPU memory", mm_str(r.gpu_mem_used_bytes, bytes_str) + (r.gpu_mem_used_bytes ? " used per GPU" : ""));
  for (const auto& g : r.gpus) {
    std::string v = g.util_percent ? fmt::format("util mean {:5.1f} %  max {:5.1f} %", g.util_percent->mean,
                                                 g.util_percent->max)
                                   : std::string("util unknown");
    if (g.mem_used_bytes) v += fmt::format("   memory mean {}  max {}", bytes_str(g.mem_used_bytes->mean),
                                           bytes_str(g.mem_used_bytes->max));
    if (g.mem_total_bytes) v += " of " + bytes_str(*g.mem_total_bytes);
    line(fmt::format("    {:<28}{}", e(gpu_name(g)), v));
  }

  line("");
  const Summary& t = r.totals;
  line(fmt::format("Steps ({} steps over all ranks)", t.steps.count));
  line(fmt::format("  {:<20}{:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>12}", "", "steps", "p50 ms", "p95 ms", "max ms",
                   "data wait", "allreduce", "own ms/step"));
  auto row = [&line](const std::string& who, std::uint64_t n, double p50, double p95, double mx, double dw, double ar,
                     const std::string& own) {
    line(fmt::format("  {:<20}{:>8} {:>9.2f} {:>9.2f} {:>9.2f} {:>10} {:>10} {:>12}", who, n, p50, p95, mx, pct(dw),
                     pct(ar), own));
  };
  row("all ranks", t.steps.count, t.steps.time_p50_ms, t.steps.time_p95_ms, t.steps.time_max_ms,
      t.steps.data_wait_fraction, t.steps.allreduce_fraction, fmt::format("{:.2f}", own_ms_per_step(t)));
  for (const auto& x : r.rank_reports)
    row(fmt::format("rank {} {}", x.rank, e(x.host)), x.steps, x.step_p50_ms, x.step_p95_ms, x.step_max_ms,
        x.data_wait_fraction, x.allreduce_fraction, fmt::format("{:.2f}", x.own_ms_per_step));
  field("step time", fmt::format("data wait {}, allreduce {}, compute {}", pct(t.steps.data_wait_fraction),
                                 pct(t.steps.allreduce_fraction), pct(t.steps.compute_fraction)));
  field("allreduce", t.allreduce.count ? fmt::format("{} calls, busbw {:.2f} GB/s (algbw {:.2f} GB/s), p50 {:.2f} ms",
                                                     t.allreduce.count, t.allreduce.busbw_gbps, t.allreduce.algbw_gbps,
                                                     t.allreduce.p50_ms)
                                       : std::string("none recorded"));
  std::string strag;
  for (const auto& s : r.stragglers)
    strag += fmt::format("{}rank {} ({}) {:.2f} ms/step, {:.2f} x the median", strag.empty() ? "" : "; ", s.rank,
                         e(host_of(r, s.rank)), s.own_ms_per_step, s.ratio);
  field("stragglers", (strag.empty() ? std::string("none") : strag) +
                          fmt::format(" (threshold {:.2f} x the median own time per step)", r.straggler_threshold));

  line("");
  line("Notes");
  if (r.notes.empty()) line("  none");
  for (const auto& n : r.notes) o += wrap(fmt::format("  * [{}] ", n.severity), e(n.text));
  for (const auto& s : r.skipped_rules) line(fmt::format("  (rule {} skipped: {})", s.rule, e(s.reason)));
  return o;
}

// --- JSON -----------------------------------------------------------------------------------

namespace {

nlohmann::json j(const std::optional<MeanMax>& m) {
  if (!m) return nullptr;
  return {{"mean", m->mean}, {"max", m->max}};
}
template <class T>
nlohmann::json j(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

std::string render_json(const JobReport& r, int indent) {
  const Summary& t = r.totals;
  nlohmann::json o;
  o["schema"] = "sluice.report.job/1";
  o["job_id"] = r.job_id;
  o["file"] = r.file;
  o["user"] = j(r.user);
  o["account"] = j(r.account);
  o["partition"] = j(r.partition);
  o["slurm_state"] = j(r.slurm_state);
  o["header_sources"] = r.header_sources;
  o["unknown_fields"] = unknown_fields(r);
  o["complete"] = r.complete;
  o["state"] = r.unverified ? "unverified" : r.complete ? "complete" : "incomplete";
  if (!r.complete && !r.unverified) o["incomplete"] = incomplete_line(r);
  o["file_owner_uid"] = j(r.file_owner_uid);
  if (r.unverified)
    o["unverified"] = {{"file", r.unverified->file}, {"owner_uid", r.unverified->owner_uid},
                       {"job_uid", r.unverified->job_uid}, {"job_user", r.unverified->job_user},
                       {"text", describe(*r.unverified)}};
  else
    o["unverified"] = nullptr;
  o["written_at_unix_ms"] = r.written_at_unix_ms;
  o["data_until_unix_ms"] = r.data_until_unix_ms;
  o["start_unix_ms"] = j(r.start_unix_ms);
  o["elapsed_s"] = r.elapsed_s;
  o["nodes"] = r.hosts.size();
  o["hosts"] = r.hosts;
  o["ranks"] = r.ranks;
  o["gpus"] = r.gpus_allocated ? std::size_t(*r.gpus_allocated) : r.gpus.size();  // allocated, else reported
  o["gpus_allocated"] = j(r.gpus_allocated);
  o["gpus_reported"] = r.gpus.size();
  o["cpus_allocated"] = j(r.cpus_allocated);
  o["exit_code"] = j(r.exit_code);
  o["exit_signal"] = j(r.exit_signal);
  o["staging"] = {{"in_bytes", r.stage_in_bytes}, {"in_s", r.stage_in_s}, {"out_bytes", r.stage_out_bytes},
                  {"out_s", r.stage_out_s}, {"errors", r.stage_errors}};
  o["mem_requested_bytes"] = j(r.mem_requested_bytes);
  o["cpu_cores_per_rank"] = j(r.cpu_cores_per_rank);
  o["rss_bytes_per_rank"] = j(r.rss_bytes_per_rank);
  o["rss_peak_total_bytes"] = j(r.rss_peak_total_bytes);
  o["gpu_util_percent"] = j(r.gpu_util_percent);
  o["gpu_mem_used_bytes"] = j(r.gpu_mem_used_bytes);
  auto& gl = o["gpu_list"] = nlohmann::json::array();
  for (const auto& g : r.gpus)
    gl.push_back({{"host", g.host}, {"index", g.index}, {"ranks", g.ranks}, {"util_percent", j(g.util_percent)},
                  {"mem_used_bytes", j(g.mem_used_bytes)}, {"mem_total_bytes", j(g.mem_total_bytes)}});
  o["steps"] = t.steps.count;
  o["step_time_mean_ms"] = t.steps.time_mean_ms;
  o["step_time_p50_ms"] = t.steps.time_p50_ms;
  o["step_time_p95_ms"] = t.steps.time_p95_ms;
  o["step_time_max_ms"] = t.steps.time_max_ms;
  o["data_wait_fraction"] = t.steps.data_wait_fraction;
  o["allreduce_fraction"] = t.steps.allreduce_fraction;
  o["compute_fraction"] = t.steps.compute_fraction;
  o["allreduce_count"] = t.allreduce.count;
  o["busbw_gbps"] = t.allreduce.busbw_gbps;
  o["algbw_gbps"] = t.allreduce.algbw_gbps;
  auto& pr = o["per_rank"] = nlohmann::json::array();
  for (const auto& x : r.rank_reports)
    pr.push_back({{"rank", x.rank}, {"host", x.host}, {"steps", x.steps}, {"step_time_p50_ms", x.step_p50_ms},
                  {"step_time_p95_ms", x.step_p95_ms}, {"step_time_max_ms", x.step_max_ms},
                  {"data_wait_fraction", x.data_wait_fraction}, {"allreduce_fraction", x.allreduce_fraction},
                  {"own_ms_per_step", x.own_ms_per_step}, {"busbw_gbps", x.busbw_gbps},
                  {"cpu_cores", j(x.cpu_cores)}, {"rss_bytes", j(x.rss_bytes)}, {"samples", x.samples},
                  {"samples_dropped", x.samples_dropped}});
  o["straggler_threshold"] = r.straggler_threshold;
  auto& st = o["stragglers"] = nlohmann::json::array();
  for (const auto& s : r.stragglers)
    st.push_back({{"rank", s.rank}, {"host", host_of(r, s.rank)}, {"own_ms_per_step", s.own_ms_per_step},
                  {"ratio", std::isfinite(s.ratio) ? nlohmann::json(s.ratio) : nlohmann::json(nullptr)}});
  auto& notes = o["notes"] = nlohmann::json::array();
  for (const auto& n : r.notes) notes.push_back({{"rule", n.rule}, {"severity", n.severity}, {"text", n.text}});
  auto& sk = o["rules_skipped"] = nlohmann::json::array();
  for (const auto& s : r.skipped_rules) sk.push_back({{"rule", s.rule}, {"reason", s.reason}});
  // Host names and job ids are bytes from the file: never let invalid UTF-8 throw.
  return o.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// --- HTML -----------------------------------------------------------------------------------

namespace {

std::string esc(std::string_view s) { return html_escape(s); }

// A half-circle gauge for a share in [0, 1] (inline SVG, no namespace URL needed in HTML5).
std::string gauge(const std::string& label, std::optional<double> share, const std::string& value) {
  std::string arc;
  if (share) {
    const double v = std::clamp(*share, 0.0, 1.0), a = std::numbers::pi * v;
    const char* colour = v >= 0.5 ? "#2e7d32" : v >= 0.2 ? "#f9a825" : "#c62828";
    if (v > 0)
      arc = fmt::format(R"(<path d="M10,60 A50,50 0 0 1 {:.2f},{:.2f}" class="fg" style="stroke:{}"/>)",
                        60 - 50 * std::cos(a), 60 - 50 * std::sin(a), colour);
  }
  return fmt::format(R"(<figure class="gauge"><svg viewBox="0 0 120 75" width="150" height="94" role="img" )"
                     R"(aria-label="{0}: {1}"><path d="M10,60 A50,50 0 0 1 110,60" class="bg"/>{2})"
                     R"(<text x="60" y="58" text-anchor="middle" class="v">{1}</text></svg>)"
                     R"(<figcaption>{0}</figcaption></figure>)",
                     esc(label), esc(value), arc);
}

// Horizontal bars: (label, value, text); scaled to the largest value, an optional marker line.
std::string bars(const std::vector<std::tuple<std::string, double, std::string>>& rows, double scale,
                 std::optional<double> marker, const std::string& marker_label) {
  const int w = 640, label_w = 200, bar_w = 340, h = 18;
  std::string o = fmt::format(R"(<svg viewBox="0 0 {0} {1}" width="{0}" height="{1}" role="img">)", w,
                              h * int(rows.size()) + 20);
  int y = 0;
  for (const auto& [label, v, text] : rows) {
    const double len = scale > 0 ? std::clamp(v / scale, 0.0, 1.0) * bar_w : 0;
    o += fmt::format(R"(<text x="0" y="{0}" class="l">{1}</text><rect x="{2}" y="{3}" width="{4:.1f}" height="12" )"
                     R"(class="bar"/><text x="{5}" y="{0}" class="l">{6}</text>)",
                     y + 12, esc(label), label_w, y + 2, len, label_w + bar_w + 8, esc(text));
    y += h;
  }
  if (marker && scale > 0) {
    const double x = label_w + std::clamp(*marker / scale, 0.0, 1.0) * bar_w;
    o += fmt::format(R"(<line x1="{0:.1f}" y1="0" x2="{0:.1f}" y2="{1}" class="mark"/>)"
                     R"(<text x="{0:.1f}" y="{2}" class="l" text-anchor="middle">{3}</text>)",
                     x, y, y + 14, esc(marker_label));
  }
  return o + "</svg>";
}

// The step's phases as one stacked bar.
std::string phase_bar(const Summary& t) {
  const double w = 600;
  const double dw = t.steps.data_wait_fraction * w, ar = t.steps.allreduce_fraction * w, cp = t.steps.compute_fraction * w;
  return fmt::format(R"(<svg viewBox="0 0 600 40" width="600" height="40" role="img" aria-label="step phases">)"
                     R"(<rect x="0" y="0" width="{0:.1f}" height="20" class="compute"/>)"
                     R"(<rect x="{0:.1f}" y="0" width="{1:.1f}" height="20" class="wait"/>)"
                     R"(<rect x="{2:.1f}" y="0" width="{3:.1f}" height="20" class="ar"/>)"
                     R"(<text x="0" y="34" class="l">compute {4}  |  data wait {5}  |  allreduce {6}</text></svg>)",
                     cp, dw, cp + dw, ar, esc(pct(t.steps.compute_fraction)), esc(pct(t.steps.data_wait_fraction)),
                     esc(pct(t.steps.allreduce_fraction)));
}

constexpr const char* kCss = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 6px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:8px 0}
.unknown{color:#888}.gauges{display:flex;flex-wrap:wrap;gap:12px}
figure.gauge{margin:0;text-align:center}figcaption{font-size:12px;color:#555}
svg .bg{fill:none;stroke:#e0e0e0;stroke-width:12}svg .fg{fill:none;stroke-width:12}
svg .v{font-size:14px;fill:#222}svg .l{font-size:11px;fill:#333}svg .bar{fill:#1565c0}
svg .mark{stroke:#c62828;stroke-dasharray:3,2}svg .compute{fill:#2e7d32}svg .wait{fill:#f9a825}svg .ar{fill:#1565c0}
li.warning{color:#8a4b00}li.info{color:#1b4f72}
)";

}  // namespace

std::string render_html(const JobReport& r) {
  const Summary& t = r.totals;
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sluice-report job " +
                  esc(r.job_id) + "</title><style>" + kCss + "</style></head><body>\n";
  o += "<h1>sluice-report job " + esc(r.job_id) + "</h1>\n";
  if (r.unverified) o += "<p class=\"warn\">" + esc(unverified_line(r)) + "</p>\n";
  else if (!r.complete) o += "<p class=\"warn\">" + esc(incomplete_line(r)) + "</p>\n";
  auto row = [](const std::string& k, const std::string& v, bool unknown = false) {
    return "<tr><th>" + esc(k) + "</th><td" + (unknown ? " class=\"unknown\"" : "") + ">" + esc(v) + "</td></tr>\n";
  };
  std::string hosts;
  for (const auto& h : r.hosts) hosts += (hosts.empty() ? "" : ", ") + h;
  o += "<table>\n" + row("job id", r.job_id) + row("user", or_unknown(r.user), !r.user) +
       row("account", or_unknown(r.account), !r.account) + row("partition", or_unknown(r.partition), !r.partition) +
       row("state", state_line(r) + "; Slurm state " + or_unknown(r.slurm_state)) +
       row("nodes", fmt::format("{} ({})", r.hosts.size(), hosts)) + row("ranks", std::to_string(r.ranks)) +
       row("GPUs", gpus_line(r)) + (r.cpus_allocated ? row("CPUs", std::to_string(*r.cpus_allocated) + " allocated") : "") +
       (r.exit_code || r.exit_signal ? row("exit", exit_line(r)) : "") +
       (has_staging(r) ? row("staging", staging_line(r)) : "") +
       row("runtime", fmt::format("{} ({:.1f} s)", duration(r.elapsed_s), r.elapsed_s)) +
       row("started", r.start_unix_ms ? utc(*r.start_unix_ms) : kUnknown, !r.start_unix_ms) +
       row("data up to", utc(r.data_until_unix_ms)) + (r.file.empty() ? "" : row("file", file_line(r))) + "</table>\n";
  const auto unknown = unknown_fields(r);
  if (!unknown.empty()) {
    std::string u;
    for (const auto& s : unknown) u += (u.empty() ? "" : ", ") + s;
    o += "<p class=\"unknown\">Unknown: the job file does not record " + esc(u) + ".</p>\n";
  }

  o += "<h2>Utilization</h2>\n<div class=\"gauges\">";
  const auto& gu = r.gpu_util_percent;
  o += gauge("GPU utilization (mean)", gu ? std::optional(gu->mean / 100) : std::nullopt,
             gu ? fmt::format("{:.0f} %", gu->mean) : kUnknown);
  std::optional<double> mem_total;
  for (const auto& g : r.gpus)
    if (g.mem_total_bytes) mem_total = std::max(mem_total.value_or(0), *g.mem_total_bytes);
  const auto& gm = r.gpu_mem_used_bytes;
  o += gauge("GPU memory (mean per GPU)", gm && mem_total && *mem_total > 0 ? std::optional(gm->mean / *mem_total) : std::nullopt,
             gm ? bytes_str(gm->mean) : kUnknown);
  o += gauge("compute share of step", t.steps.count ? std::optional(t.steps.compute_fraction) : std::nullopt,
             t.steps.count ? pct(t.steps.compute_fraction) : kUnknown);
  o += "</div>\n<table><tr><th></th><th class=\"n\">mean</th><th class=\"n\">max</th></tr>\n";
  auto mm_row = [](const std::string& k, const std::optional<MeanMax>& m, std::string (*f)(double)) {
    if (!m) return "<tr><th>" + esc(k) + "</th><td class=\"unknown\" colspan=\"2\">unknown (no samples)</td></tr>\n";
    return "<tr><th>" + esc(k) + "</th><td class=\"n\">" + esc(f(m->mean)) + "</td><td class=\"n\">" + esc(f(m->max)) +
           "</td></tr>\n";
  };
  o += mm_row("CPU (cores per rank)", r.cpu_cores_per_rank, cores_str) +
       mm_row("memory (RSS per rank)", r.rss_bytes_per_rank, bytes_str) +
       mm_row("GPU utilization", r.gpu_util_percent, percent_str) +
       mm_row("GPU memory used (per GPU)", r.gpu_mem_used_bytes, bytes_str) + "</table>\n";
  if (!r.gpus.empty()) {
    std::vector<std::tuple<std::string, double, std::string>> rows;
    for (const auto& g : r.gpus)
      rows.emplace_back(gpu_name(g), g.util_percent ? g.util_percent->mean : 0,
                        g.util_percent ? fmt::format("{:.1f} % mean", g.util_percent->mean) : std::string(kUnknown));
    o += "<h2>GPU utilization per GPU</h2>\n" +
         bars(rows, 100, kIdleGpuUtilPercent, fmt::format("idle < {:g} %", kIdleGpuUtilPercent)) + "\n";
  }

  o += fmt::format("<h2>Steps</h2>\n<p>{} steps over all ranks; step time p50 {:.2f} ms, p95 {:.2f} ms, max {:.2f} "
                   "ms. Allreduce: {} calls, busbw {:.2f} GB/s.</p>\n",
                   t.steps.count, t.steps.time_p50_ms, t.steps.time_p95_ms, t.steps.time_max_ms, t.allreduce.count,
                   t.allreduce.busbw_gbps);
  if (t.steps.count) o += phase_bar(t) + "\n";
  o += "<table><tr><th>rank</th><th>host</th><th class=\"n\">steps</th><th class=\"n\">p50 ms</th><th class=\"n\">p95 "
       "ms</th><th class=\"n\">max ms</th><th class=\"n\">data wait</th><th class=\"n\">allreduce</th><th "
       "class=\"n\">own ms/step</th></tr>\n";
  std::vector<std::tuple<std::string, double, std::string>> own;
  double own_max = 0;
  for (const auto& x : r.rank_reports) {
    o += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2f}</td><td "
                     "class=\"n\">{:.2f}</td><td class=\"n\">{:.2f}</td><td class=\"n\">{}</td><td "
                     "class=\"n\">{}</td><td class=\"n\">{:.2f}</td></tr>\n",
                     x.rank, esc(x.host), x.steps, x.step_p50_ms, x.step_p95_ms, x.step_max_ms,
                     pct(x.data_wait_fraction), pct(x.allreduce_fraction), x.own_ms_per_step);
    own.emplace_back(fmt::format("rank {} {}", x.rank, x.host), x.own_ms_per_step, fmt::format("{:.2f} ms", x.own_ms_per_step));
    own_max = std::max(own_max, x.own_ms_per_step);
  }
  o += "</table>\n";
  std::optional<double> median;
  if (!r.stragglers.empty() && r.stragglers.front().ratio > 0 && std::isfinite(r.stragglers.front().ratio))
    median = r.stragglers.front().own_ms_per_step / r.stragglers.front().ratio;
  if (!own.empty())
    o += "<h2>Own time per step (step minus allreduce)</h2>\n" + bars(own, own_max, median, "median") + "\n";
  o += "<p>Stragglers (own time per step &gt;= " + fmt::format("{:.2f}", r.straggler_threshold) + " x the median): ";
  if (r.stragglers.empty()) o += "none";
  for (std::size_t i = 0; i < r.stragglers.size(); ++i)
    o += fmt::format("{}rank {} ({}) {:.2f} x", i ? ", " : "", r.stragglers[i].rank, esc(host_of(r, r.stragglers[i].rank)),
                     r.stragglers[i].ratio);
  o += "</p>\n<h2>Notes</h2>\n<ul>\n";
  if (r.notes.empty()) o += "<li>none</li>\n";
  for (const auto& n : r.notes) o += "<li class=\"" + esc(n.severity) + "\">" + esc(n.text) + "</li>\n";
  for (const auto& s : r.skipped_rules) o += "<li class=\"unknown\">rule " + esc(s.rule) + " skipped: " + esc(s.reason) + "</li>\n";
  return o + "</ul>\n</body></html>\n";
}

}  // namespace sluice::monitor::report
