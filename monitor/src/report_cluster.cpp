// `sluice-report cluster`: aggregation over the index and the text / CSV / JSON / HTML renderings.
// docs/telemetry.md, "sluice-report cluster".
#include "report_cluster.hpp"
#include "html_escape.hpp"

#include "report_job.hpp"  // kIdleGpuUtilPercent, kInputBoundFraction

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

namespace sluice::monitor::report {

namespace {

constexpr std::int64_t kHourMs = 3600 * 1000, kDayMs = 24 * kHourMs, kWeekMs = 7 * kDayMs;

// The window's rows: the jobs overlapping [?1, ?2) (?3: now, the end of running jobs) and
// their hours inside it, `h`.
constexpr const char* kWindow = R"sql(
WITH w AS (
  SELECT *, MAX(MIN(COALESCE(end_ms, ?3), ?2) - MAX(start_ms, ?1), 0) / 3600000.0 AS h
  FROM jobs WHERE start_ms < ?2 AND COALESCE(end_ms, ?3) > ?1)
)sql";

const char* group_column(GroupBy by) {
  switch (by) {
    case GroupBy::account: return "account";
    case GroupBy::partition: return "\"partition\"";
    case GroupBy::user: break;
  }
  return "\"user\"";
}

std::tm utc_tm(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return tm;
}

std::string utc(std::int64_t unix_ms) {
  const std::tm tm = utc_tm(unix_ms);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string pct_or_dash(std::optional<double> f) { return f ? fmt::format("{:.1f} %", 100 * *f) : "-"; }

const char* bin_name(std::int64_t bin_ms) { return bin_ms == kHourMs ? "hour" : bin_ms == kDayMs ? "day" : "week"; }

std::string bin_label(std::int64_t start_ms, std::int64_t bin_ms) {
  const std::tm tm = utc_tm(start_ms);
  char buf[64];
  if (bin_ms == kHourMs) std::strftime(buf, sizeof buf, "%Y-%m-%d %H:00", &tm);
  else std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

const char* to_string(GroupBy by) noexcept {
  switch (by) {
    case GroupBy::account: return "account";
    case GroupBy::partition: return "partition";
    case GroupBy::user: break;
  }
  return "user";
}

std::optional<double> ClusterTotals::efficiency() const {
  if (!(gpu_hours_allocated_with_utilization > 0)) return std::nullopt;
  return gpu_hours_used / gpu_hours_allocated_with_utilization;
}

std::int64_t timeline_bin_ms(std::int64_t window_ms) noexcept {
  if (window_ms <= 3 * kDayMs) return kHourMs;
  if (window_ms <= 120 * kDayMs) return kDayMs;
  return kWeekMs;
}

ClusterReport build_cluster_report(JobIndex& index, const ClusterOptions& o) {
  if (o.until_unix_ms <= o.since_unix_ms) throw InvalidArgument("the window is empty: --until must be after --since");
  ClusterReport r;
  r.since_unix_ms = o.since_unix_ms;
  r.until_unix_ms = o.until_unix_ms;
  r.now_unix_ms = o.now_unix_ms;
  r.by = o.by;
  r.index_file = index.file().string();
  auto bind_window = [&](Statement& q) {
    q.bind(1, o.since_unix_ms).bind(2, o.until_unix_ms).bind(3, o.now_unix_ms);
  };

  // Per group; the totals are their sums.
  Statement g = index.prepare(std::string(kWindow) + "SELECT COALESCE(" + group_column(o.by) + R"sql(, 'unknown') AS grp,
  count(*),
  sum(gpu_util_mean IS NULL),
  sum(1 - has_record),
  sum(gpus_allocated * h),
  sum(CASE WHEN gpu_util_mean IS NOT NULL THEN gpus_allocated * h ELSE 0 END),
  sum(CASE WHEN gpu_util_mean IS NOT NULL THEN gpus_allocated * h * gpu_util_mean / 100.0 ELSE 0 END),
  sum(MIN(COALESCE(idle_gpus, 0), gpus_allocated) * h),
  sum(input_bound != 0),
  sum(CASE WHEN input_bound != 0 THEN gpus_allocated * h ELSE 0 END),
  sum(stragglers > 0)
FROM w GROUP BY grp ORDER BY 5 DESC, grp)sql");
  bind_window(g);
  while (g.step()) {
    GroupRow row;
    row.name = g.text(0);
    ClusterTotals& t = row.totals;
    t.jobs = g.int64(1);
    t.jobs_without_utilization = g.int64(2);
    t.jobs_without_record = g.int64(3);
    t.gpu_hours_allocated = g.real(4);
    t.gpu_hours_allocated_with_utilization = g.real(5);
    t.gpu_hours_used = g.real(6);
    t.gpu_hours_idle = g.real(7);
    t.input_bound_jobs = g.int64(8);
    t.input_bound_gpu_hours = g.real(9);
    t.straggler_jobs = g.int64(10);
    ClusterTotals& s = r.totals;
    s.jobs += t.jobs;
    s.jobs_without_utilization += t.jobs_without_utilization;
    s.jobs_without_record += t.jobs_without_record;
    s.gpu_hours_allocated += t.gpu_hours_allocated;
    s.gpu_hours_allocated_with_utilization += t.gpu_hours_allocated_with_utilization;
    s.gpu_hours_used += t.gpu_hours_used;
    s.gpu_hours_idle += t.gpu_hours_idle;
    s.input_bound_jobs += t.input_bound_jobs;
    s.input_bound_gpu_hours += t.input_bound_gpu_hours;
    s.straggler_jobs += t.straggler_jobs;
    r.groups.push_back(std::move(row));
  }

  // The largest wasters: allocated - used GPU-hours, of the jobs whose use is known.
  Statement w = index.prepare(std::string(kWindow) + R"sql(SELECT job_id, "user", account, "partition", start_ms,
  end_ms, gpus_allocated, gpu_util_mean, gpus_allocated * h AS alloc, gpus_allocated * h * gpu_util_mean / 100.0 AS used,
  input_bound, COALESCE(idle_gpus, 0)
FROM w WHERE gpu_util_mean IS NOT NULL ORDER BY alloc - used DESC, job_id LIMIT ?4)sql");
  bind_window(w);
  w.bind(4, std::int64_t(o.wasters));
  while (w.step()) {
    Waster x;
    x.job_id = w.text(0);
    x.user = w.opt_text(1).value_or("unknown");
    x.account = w.opt_text(2).value_or("unknown");
    x.partition = w.opt_text(3).value_or("unknown");
    x.start_unix_ms = w.int64(4);
    x.end_unix_ms = w.opt_int64(5);
    x.gpus = w.int64(6);
    x.gpu_util_mean = w.real(7);
    x.gpu_hours_allocated = w.real(8);
    x.gpu_hours_used = w.real(9);
    x.input_bound = w.int64(10) != 0;
    x.idle_gpus = w.int64(11);
    r.wasters.push_back(std::move(x));
  }

  // The timeline: each job's GPU-hours spread over the bins (UTC hours, days or weeks) it overlaps.
  r.bin_ms = timeline_bin_ms(o.until_unix_ms - o.since_unix_ms);
  const std::int64_t first = o.since_unix_ms - ((o.since_unix_ms % r.bin_ms) + r.bin_ms) % r.bin_ms;
  for (std::int64_t t = first; t < o.until_unix_ms; t += r.bin_ms) r.timeline.push_back({t, 0, 0, 0});
  Statement tl = index.prepare(std::string(kWindow) + "SELECT MAX(start_ms, ?1), MIN(COALESCE(end_ms, ?3), ?2), "
                                                      "gpus_allocated, gpu_util_mean FROM w WHERE h > 0");
  bind_window(tl);
  while (tl.step()) {
    const std::int64_t lo = tl.int64(0), hi = tl.int64(1);
    const double gpus = double(tl.int64(2));
    const std::optional<double> util = tl.opt_real(3);
    for (auto i = std::size_t((lo - first) / r.bin_ms); i < r.timeline.size(); ++i) {
      TimeBin& b = r.timeline[i];
      const std::int64_t a = std::max(lo, b.start_unix_ms), z = std::min(hi, b.start_unix_ms + r.bin_ms);
      if (a >= hi) break;
      if (z <= a) continue;
      const double h = gpus * double(z - a) / 3.6e6;
      b.gpu_hours_allocated += h;
      if (util) b.gpu_hours_allocated_with_utilization += h, b.gpu_hours_used += h * *util / 100.0;
    }
  }

  r.skipped = index.skipped_files();
  r.unverified = index.unverified_files();
  Statement n = index.prepare(std::string(kWindow) + "SELECT note FROM w WHERE note IS NOT NULL ORDER BY job_id");
  bind_window(n);
  while (n.step()) r.notes.push_back(n.text(0));
  return r;
}

// --- text -------------------------------------------------------------------------------------

namespace {

constexpr std::size_t kSkippedShown = 5;

std::string window_line(const ClusterReport& r) {
  return fmt::format("{} .. {} ({:.1f} days; jobs overlapping the window, GPU-hours clipped to it)",
                     utc(r.since_unix_ms), utc(r.until_unix_ms), double(r.until_unix_ms - r.since_unix_ms) / kDayMs);
}

std::string efficiency_note(const ClusterTotals& t) {
  if (t.jobs_without_utilization == 0) return "";
  return fmt::format(" (over the {} GPU-hours of jobs with utilization; {} job(s) without it)",
                     fmt::format("{:.1f}", t.gpu_hours_allocated_with_utilization), t.jobs_without_utilization);
}

std::string shorten(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n - 1) + "~"; }

// The reason, with the path in front unless the reason names it (error messages shorten long ones).
std::string skipped_line(const SkippedFile& s) {
  return s.reason.find(s.path) != std::string::npos ? s.reason : s.path + ": " + s.reason;
}

}  // namespace

std::string render_text(const ClusterReport& r) {
  // Job ids (from file names), users, accounts, paths and reasons are text users control:
  // escaped (escape_text), so none can start a line or send a terminal escape.
  const auto e = [](std::string_view s) { return escape_text(s); };
  const ClusterTotals& t = r.totals;
  std::string o = "sluice-report cluster\n  window      " + window_line(r) + "\n  index       " + e(r.index_file) + "\n\n";
  o += fmt::format("  jobs                  {}", t.jobs);
  if (t.jobs_without_record) o += fmt::format("  ({} without a job record: user, account, partition unknown)", t.jobs_without_record);
  o += fmt::format("\n  GPU-hours allocated   {:.1f}\n", t.gpu_hours_allocated);
  o += fmt::format("  GPU-hours used        {:.1f}  (allocated x mean GPU utilization)\n", t.gpu_hours_used);
  o += fmt::format("  efficiency            {}{}\n", pct_or_dash(t.efficiency()), efficiency_note(t));
  o += fmt::format("  GPU-hours idle        {:.1f}  (GPUs with mean utilization < {:g} %)\n", t.gpu_hours_idle,
                   kIdleGpuUtilPercent);
  o += fmt::format("  input-bound jobs      {}  ({:.1f} GPU-hours allocated; data wait >= {:g} % of step time)\n",
                   t.input_bound_jobs, t.input_bound_gpu_hours, 100 * kInputBoundFraction);
  o += fmt::format("  jobs with stragglers  {}\n", t.straggler_jobs);

  o += fmt::format("\nBy {}\n  {:<20} {:>7} {:>12} {:>11} {:>10} {:>10} {:>11} {:>8}\n", to_string(r.by), to_string(r.by),
                   "jobs", "GPU-h alloc", "GPU-h used", "efficiency", "GPU-h idle", "input-bound", "no util");
  for (const auto& g : r.groups)
    o += fmt::format("  {:<20} {:>7} {:>12.1f} {:>11.1f} {:>10} {:>10.1f} {:>11} {:>8}\n", e(shorten(g.name, 20)),
                     g.totals.jobs, g.totals.gpu_hours_allocated, g.totals.gpu_hours_used,
                     pct_or_dash(g.totals.efficiency()), g.totals.gpu_hours_idle, g.totals.input_bound_jobs,
                     g.totals.jobs_without_utilization);
  if (r.groups.empty()) o += "  (no jobs in the window)\n";

  o += fmt::format("\nLargest wasters (allocated - used GPU-hours in the window)\n  {:<14} {:<12} {:<12} {:>5} "
                   "{:>7} {:>9} {:>9} {:>9}  {}\n",
                   "job", "user", "account", "GPUs", "util", "alloc", "used", "wasted", "why");
  for (const auto& w : r.wasters) {
    std::string why;
    if (w.idle_gpus) why += fmt::format("{} idle GPU(s)", w.idle_gpus);
    if (w.input_bound) why += std::string(why.empty() ? "" : ", ") + "input-bound";
    if (why.empty()) why = "low utilization";
    o += fmt::format("  {:<14} {:<12} {:<12} {:>5} {:>5.1f} % {:>9.1f} {:>9.1f} {:>9.1f}  {}\n", e(shorten(w.job_id, 14)),
                     e(shorten(w.user, 12)), e(shorten(w.account, 12)), w.gpus, w.gpu_util_mean, w.gpu_hours_allocated,
                     w.gpu_hours_used, w.gpu_hours_wasted(), why);
  }
  if (r.wasters.empty()) o += "  (no job with GPU utilization in the window)\n";

  double peak = 0;
  for (const auto& b : r.timeline) peak = std::max(peak, b.gpu_hours_allocated);
  o += fmt::format("\nGPU-hours per {} (UTC): allocated, used; # used, . allocated but not used\n", bin_name(r.bin_ms));
  for (const auto& b : r.timeline) {
    const int width = 40;
    const int a = peak > 0 ? int(std::lround(width * b.gpu_hours_allocated / peak)) : 0;
    const int u = peak > 0 ? std::min(a, int(std::lround(width * b.gpu_hours_used / peak))) : 0;
    o += fmt::format("  {:<16} {:>10.1f} {:>10.1f}  {}{}\n", bin_label(b.start_unix_ms, r.bin_ms), b.gpu_hours_allocated,
                     b.gpu_hours_used, std::string(std::size_t(u), '#'), std::string(std::size_t(a - u), '.'));
  }

  if (!r.skipped.empty()) {
    o += fmt::format("\nskipped {} file(s) that could not be read (the report covers the rest):\n", r.skipped.size());
    for (std::size_t i = 0; i < r.skipped.size() && i < kSkippedShown; ++i) o += "  " + e(skipped_line(r.skipped[i])) + "\n";
    if (r.skipped.size() > kSkippedShown)
      o += fmt::format("  ... and {} more (all of them in --format json)\n", r.skipped.size() - kSkippedShown);
  }
  if (!r.unverified.empty()) {
    o += fmt::format("\nUNVERIFIED: {} job file(s) not counted (owner neither the job's user from its record nor "
                     "root; the jobs count their allocation only):\n",
                     r.unverified.size());
    for (std::size_t i = 0; i < r.unverified.size() && i < kSkippedShown; ++i)
      o += "  " + e(describe(r.unverified[i])) + "\n";
    if (r.unverified.size() > kSkippedShown)
      o += fmt::format("  ... and {} more (all of them in --format json)\n", r.unverified.size() - kSkippedShown);
  }
  if (!r.notes.empty()) {
    o += "\nclamped:\n";
    for (const auto& n : r.notes) o += "  " + e(n) + "\n";
  }
  return o;
}

// --- CSV --------------------------------------------------------------------------------------

namespace {
// RFC 4180 quoting; a leading = + - @ is prefixed with ' so a spreadsheet does not run it.
std::string csv_field(const std::string& s) {
  std::string v = !s.empty() && std::string_view("=+-@").find(s[0]) != std::string_view::npos ? "'" + s : s;
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
}  // namespace

std::string render_csv(const ClusterReport& r) {
  std::string o = fmt::format("{},jobs,gpu_hours_allocated,gpu_hours_used,efficiency,gpu_hours_idle,input_bound_jobs,"
                              "input_bound_gpu_hours,jobs_without_utilization,straggler_jobs\n",
                              to_string(r.by));
  for (const auto& g : r.groups) {
    const ClusterTotals& t = g.totals;
    const auto eff = t.efficiency();
    o += fmt::format("{},{},{:.3f},{:.3f},{},{:.3f},{},{:.3f},{},{}\n", csv_field(g.name), t.jobs, t.gpu_hours_allocated,
                     t.gpu_hours_used, eff ? fmt::format("{:.4f}", *eff) : "", t.gpu_hours_idle, t.input_bound_jobs,
                     t.input_bound_gpu_hours, t.jobs_without_utilization, t.straggler_jobs);
  }
  return o;
}

// --- JSON -------------------------------------------------------------------------------------

namespace {
nlohmann::json totals_json(const ClusterTotals& t) {
  const auto eff = t.efficiency();
  return {{"jobs", t.jobs},
          {"jobs_without_utilization", t.jobs_without_utilization},
          {"jobs_without_record", t.jobs_without_record},
          {"gpu_hours_allocated", t.gpu_hours_allocated},
          {"gpu_hours_allocated_with_utilization", t.gpu_hours_allocated_with_utilization},
          {"gpu_hours_used", t.gpu_hours_used},
          {"efficiency", eff ? nlohmann::json(*eff) : nlohmann::json(nullptr)},
          {"gpu_hours_idle", t.gpu_hours_idle},
          {"input_bound_jobs", t.input_bound_jobs},
          {"input_bound_gpu_hours", t.input_bound_gpu_hours},
          {"straggler_jobs", t.straggler_jobs}};
}
}  // namespace

std::string render_json(const ClusterReport& r, int indent) {
  using nlohmann::json;
  json groups = json::array(), wasters = json::array(), timeline = json::array(), skipped = json::array(),
       unverified = json::array();
  for (const auto& g : r.groups) {
    json x = totals_json(g.totals);
    x["name"] = g.name;
    groups.push_back(std::move(x));
  }
  for (const auto& w : r.wasters)
    wasters.push_back({{"job_id", w.job_id},
                       {"user", w.user},
                       {"account", w.account},
                       {"partition", w.partition},
                       {"start_unix_ms", w.start_unix_ms},
                       {"end_unix_ms", w.end_unix_ms ? json(*w.end_unix_ms) : json(nullptr)},
                       {"gpus", w.gpus},
                       {"gpu_util_mean", w.gpu_util_mean},
                       {"gpu_hours_allocated", w.gpu_hours_allocated},
                       {"gpu_hours_used", w.gpu_hours_used},
                       {"gpu_hours_wasted", w.gpu_hours_wasted()},
                       {"idle_gpus", w.idle_gpus},
                       {"input_bound", w.input_bound}});
  for (const auto& b : r.timeline)
    timeline.push_back({{"start_unix_ms", b.start_unix_ms},
                        {"gpu_hours_allocated", b.gpu_hours_allocated},
                        {"gpu_hours_used", b.gpu_hours_used},
                        {"gpu_hours_allocated_with_utilization", b.gpu_hours_allocated_with_utilization}});
  for (const auto& s : r.skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
  for (const auto& u : r.unverified)
    unverified.push_back({{"job_id", u.job_id}, {"path", u.file}, {"owner_uid", u.owner_uid}, {"job_uid", u.job_uid},
                          {"job_user", u.job_user}, {"text", describe(u)}});
  const json j{{"schema", kClusterReportSchema},
               {"since_unix_ms", r.since_unix_ms},
               {"until_unix_ms", r.until_unix_ms},
               {"now_unix_ms", r.now_unix_ms},
               {"by", to_string(r.by)},
               {"index", r.index_file},
               {"idle_gpu_util_percent", kIdleGpuUtilPercent},
               {"input_bound_fraction", kInputBoundFraction},
               {"totals", totals_json(r.totals)},
               {"groups", std::move(groups)},
               {"wasters", std::move(wasters)},
               {"bin_ms", r.bin_ms},
               {"timeline", std::move(timeline)},
               {"skipped", std::move(skipped)},
               {"unverified", std::move(unverified)},
               {"notes", r.notes}};
  return j.dump(indent, ' ', false, json::error_handler_t::replace) + "\n";
}

// --- HTML -------------------------------------------------------------------------------------

namespace {

std::string esc(std::string_view s) { return html_escape(s); }

// Allocated and used GPU-hours per bin as two step areas.
std::string timeline_svg(const ClusterReport& r) {
  const double W = 900, H = 240, left = 60, right = 10, top = 12, bottom = 34;
  const double pw = W - left - right, ph = H - top - bottom;
  double peak = 0;
  for (const auto& b : r.timeline) peak = std::max(peak, b.gpu_hours_allocated);
  const double ymax = peak > 0 ? peak * 1.05 : 1;
  const std::size_t n = r.timeline.size();
  const auto x = [&](std::size_t i) { return left + pw * double(i) / double(std::max<std::size_t>(n, 1)); };
  const auto y = [&](double v) { return top + ph * (1 - v / ymax); };
  auto area = [&](auto value) {
    std::string d = fmt::format("M{:.1f},{:.1f}", x(0), y(0));
    for (std::size_t i = 0; i < n; ++i) {
      const double v = value(r.timeline[i]);
      d += fmt::format(" L{:.1f},{:.1f} L{:.1f},{:.1f}", x(i), y(v), x(i + 1), y(v));
    }
    return d + fmt::format(" L{:.1f},{:.1f} Z", x(n), y(0));
  };
  std::string o = fmt::format(R"(<svg viewBox="0 0 {0} {1}" width="{0}" height="{1}" role="img" )"
                              R"(aria-label="GPU-hours allocated and used per {2}">)",
                              W, H, bin_name(r.bin_ms));
  for (int k = 0; k <= 4; ++k) {  // grid and y labels
    const double v = ymax * k / 4, yy = y(v);
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" class="grid"/>)", left, yy, W - right, yy);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="l" text-anchor="end">{:.0f}</text>)", left - 4, yy + 4, v);
  }
  o += R"(<path class="alloc" d=")" + area([](const TimeBin& b) { return b.gpu_hours_allocated; }) + "\"/>";
  o += R"(<path class="used" d=")" + area([](const TimeBin& b) { return b.gpu_hours_used; }) + "\"/>";
  // At most 6 labels, each at its bin's start (the last one ends at the right edge).
  const std::size_t labels = std::min<std::size_t>(n, 6);
  for (std::size_t k = 0; k < labels; ++k) {
    const std::size_t i = labels > 1 ? k * (n - 1) / (labels - 1) : 0;
    const bool last = labels > 1 && k + 1 == labels;
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="l" text-anchor="{}">{}</text>)", last ? x(i + 1) : x(i),
                     H - 14, k == 0 ? "start" : last ? "end" : "middle",
                     esc(bin_label(r.timeline[i].start_unix_ms, r.bin_ms)));
  }
  o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="l">GPU-hours per {}</text>)", left, H - 1, bin_name(r.bin_ms));
  return o + "</svg>";
}

// Per group: allocated (light) with used (dark) over it.
std::string groups_svg(const ClusterReport& r, std::size_t max_rows = 25) {
  const std::size_t n = std::min(r.groups.size(), max_rows);
  const double W = 900, row = 24, label = 170, value = 240, bar = W - label - value;
  const double H = row * double(n) + 6;
  double peak = 0;
  for (std::size_t i = 0; i < n; ++i) peak = std::max(peak, r.groups[i].totals.gpu_hours_allocated);
  std::string o = fmt::format(R"(<svg viewBox="0 0 {0} {1}" width="{0}" height="{1}" role="img" )"
                              R"(aria-label="GPU-hours per {2}">)",
                              W, H, to_string(r.by));
  for (std::size_t i = 0; i < n; ++i) {
    const ClusterTotals& t = r.groups[i].totals;
    const double yy = 3 + row * double(i);
    const double wa = peak > 0 ? bar * t.gpu_hours_allocated / peak : 0, wu = peak > 0 ? bar * t.gpu_hours_used / peak : 0;
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="l" text-anchor="end">{}</text>)", label - 6, yy + 15,
                     esc(shorten(r.groups[i].name, 28)));
    o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="alloc"/>)", label, yy, wa, row - 6);
    o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="used"/>)", label, yy, wu, row - 6);
    // Whole GPU-hours from 100 on: the label must fit beside the bar.
    const int digits = t.gpu_hours_allocated >= 100 ? 0 : 1;
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="l">{:.{}f} / {:.{}f} GPU-h ({})</text>)",
                     label + bar + 6, yy + 15, t.gpu_hours_used, digits, t.gpu_hours_allocated, digits,
                     pct_or_dash(t.efficiency()));
  }
  return o + "</svg>";
}

constexpr const char* kCss = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em;color:#222;max-width:960px}
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:2px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}th{border-bottom:1px solid #bbb}
.kv td{text-align:left}.muted{color:#777}.warn{color:#b71c1c}
svg .grid{stroke:#e4e4e4}svg .l{font-size:11px;fill:#333}
svg .alloc{fill:#bbdefb}svg .used{fill:#1565c0}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
)";

}  // namespace

std::string render_html(const ClusterReport& r) {
  const ClusterTotals& t = r.totals;
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sluice-report cluster " +
                  esc(utc(r.since_unix_ms)) + " .. " + esc(utc(r.until_unix_ms)) + "</title><style>" + kCss +
                  "</style></head><body>\n";
  o += "<h1>sluice-report cluster</h1>\n<p class=\"muted\">" + esc(window_line(r)) + "<br>index " + esc(r.index_file) +
       "</p>\n";
  o += "<table class=\"kv\">\n";
  auto kv = [&](const std::string& k, const std::string& v) { o += "<tr><td>" + k + "</td><td>" + v + "</td></tr>\n"; };
  kv("jobs", fmt::format("{}{}", t.jobs,
                         t.jobs_without_record ? fmt::format(" ({} without a job record)", t.jobs_without_record) : ""));
  kv("GPU-hours allocated", fmt::format("{:.1f}", t.gpu_hours_allocated));
  kv("GPU-hours used", fmt::format("{:.1f} (allocated &times; mean GPU utilization)", t.gpu_hours_used));
  kv("efficiency", esc(pct_or_dash(t.efficiency()) + efficiency_note(t)));
  kv("GPU-hours idle", fmt::format("{:.1f} (GPUs with mean utilization &lt; {:g} %)", t.gpu_hours_idle, kIdleGpuUtilPercent));
  kv("input-bound jobs", fmt::format("{} ({:.1f} GPU-hours allocated)", t.input_bound_jobs, t.input_bound_gpu_hours));
  kv("jobs with stragglers", std::to_string(t.straggler_jobs));
  o += "</table>\n";

  o += fmt::format("<h2>GPU-hours per {} (UTC)</h2>\n<p class=\"legend\"><span style=\"background:#bbdefb\"></span>"
                   "allocated<span style=\"background:#1565c0\"></span>used</p>\n",
                   bin_name(r.bin_ms));
  o += timeline_svg(r) + "\n";

  o += fmt::format("<h2>By {}</h2>\n", to_string(r.by));
  constexpr std::size_t kChartGroups = 25;
  if (!r.groups.empty()) o += groups_svg(r, kChartGroups) + "\n";
  if (r.groups.size() > kChartGroups)
    o += fmt::format("<p class=\"muted\">The chart shows the {} largest of {} groups; the table has them all.</p>\n",
                     kChartGroups, r.groups.size());
  o += fmt::format("<table><tr><th>{}</th><th>jobs</th><th>GPU-h allocated</th><th>GPU-h used</th><th>efficiency</th>"
                   "<th>GPU-h idle</th><th>input-bound</th><th>without utilization</th></tr>\n",
                   to_string(r.by));
  for (const auto& g : r.groups)
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.1f}</td><td>{:.1f}</td><td>{}</td><td>{:.1f}</td><td>{}</td>"
                     "<td>{}</td></tr>\n",
                     esc(g.name), g.totals.jobs, g.totals.gpu_hours_allocated, g.totals.gpu_hours_used,
                     esc(pct_or_dash(g.totals.efficiency())), g.totals.gpu_hours_idle, g.totals.input_bound_jobs,
                     g.totals.jobs_without_utilization);
  o += "</table>\n";

  o += "<h2>Largest wasters</h2>\n<table><tr><th>job</th><th>user</th><th>account</th><th>GPUs</th><th>util</th>"
       "<th>GPU-h allocated</th><th>GPU-h used</th><th>wasted</th><th>idle GPUs</th><th>input-bound</th></tr>\n";
  for (const auto& w : r.wasters)
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} %</td><td>{:.1f}</td><td>{:.1f}</td>"
                     "<td>{:.1f}</td><td>{}</td><td>{}</td></tr>\n",
                     esc(w.job_id), esc(w.user), esc(w.account), w.gpus, w.gpu_util_mean, w.gpu_hours_allocated,
                     w.gpu_hours_used, w.gpu_hours_wasted(), w.idle_gpus, w.input_bound ? "yes" : "");
  o += "</table>\n";

  if (!r.skipped.empty()) {
    o += fmt::format("<h2 class=\"warn\">Skipped {} file(s)</h2>\n<p>They could not be read; the report covers the "
                     "rest.</p>\n<ul>\n",
                     r.skipped.size());
    for (const auto& s : r.skipped) o += "<li>" + esc(skipped_line(s)) + "</li>\n";
    o += "</ul>\n";
  }
  if (!r.unverified.empty()) {
    o += fmt::format("<h2 class=\"warn\">Unverified: {} job file(s) not counted</h2>\n<p>Their owner is neither the "
                     "job's user (from the job record) nor root; the jobs count their allocation only.</p>\n<ul>\n",
                     r.unverified.size());
    for (const auto& u : r.unverified) o += "<li>" + esc(describe(u)) + "</li>\n";
    o += "</ul>\n";
  }
  if (!r.notes.empty()) {
    o += "<h2>Clamped</h2>\n<ul>\n";
    for (const auto& n : r.notes) o += "<li>" + esc(n) + "</li>\n";
    o += "</ul>\n";
  }
  return o + "</body></html>\n";
}

// --- times ------------------------------------------------------------------------------------

std::int64_t parse_time_arg(const std::string& text, std::int64_t now_unix_ms) {
  const auto bad = [&]() {
    return InvalidArgument("'" + text +
                           "' is not a time: give YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), unix seconds, now, or "
                           "now-<n><s|m|h|d|w> (e.g. now-7d)");
  };
  if (text == "now") return now_unix_ms;
  if (text.rfind("now-", 0) == 0) {
    std::int64_t n = 0;
    const char* b = text.data() + 4;
    const char* e = text.data() + text.size();
    const auto [p, ec] = std::from_chars(b, e, n);
    if (ec != std::errc() || p == b || p + 1 != e || n < 0) throw bad();
    std::int64_t unit = 0;
    switch (*p) {
      case 's': unit = 1000; break;
      case 'm': unit = 60 * 1000; break;
      case 'h': unit = kHourMs; break;
      case 'd': unit = kDayMs; break;
      case 'w': unit = kWeekMs; break;
      default: throw bad();
    }
    if (n > now_unix_ms / unit) throw bad();
    return now_unix_ms - n * unit;
  }
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t s = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), s);
    if (ec != std::errc() || s > std::int64_t(1) << 40) throw bad();
    return s * 1000;
  }
  std::string t = text;
  if (!t.empty() && (t.back() == 'Z' || t.back() == 'z')) t.pop_back();
  for (const char* format : {"%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"}) {
    std::tm tm{};
    const char* end = ::strptime(t.c_str(), format, &tm);
    if (end && *end == '\0' && t.size() >= 10) return std::int64_t(::timegm(&tm)) * 1000;
  }
  throw bad();
}

}  // namespace sluice::monitor::report
