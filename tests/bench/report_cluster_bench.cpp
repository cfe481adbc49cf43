// sluice-bench-report-cluster: the figure behind "a report over 100,000 jobs in under 5 s"
// (docs/telemetry.md, "sluice-report cluster"). Not a ctest.
//
// Builds a telemetry directory of N synthetic jobs as real files (one job record per node,
// written as the plugin writes them, and one job file per job: hard links to four template job
// files, healthy / idle GPUs / input-bound / straggler, so that 100,000 jobs cost seconds to
// make), loads the index through its API (put_record / put_job_file with the files' real
// stamps, the templates' summaries; reading 100,000 HDF5 files is timed separately, on a
// smaller count), then times:
//   update, nothing changed: a fresh JobIndex (a new `sluice-report cluster` run) listing and
//     stat-ing every file and comparing it with the index; no file is read;
//   update, one file changed;
//   build_cluster_report + rendering, 30-day window, by user and by account;
//   ingestion of real files: a fresh index over --real jobs, every record and HDF5 file read.
// Prints a table and one JSON line. The data is deleted at the end unless --keep.
#include "job_index.hpp"
#include "report_cluster.hpp"

#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace mon = sluice::monitor;
namespace rep = sluice::monitor::report;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kHourMs = 3600 * 1000, kDayMs = 24 * kHourMs;
constexpr const char* kMarker = ".sluice-bench-cluster";  // a directory this benchmark may delete

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A template job file: `gpus` ranks on one host, one GPU each at the given utilization.
mon::JobTelemetry template_job(const std::string& id, std::vector<unsigned> util, double wait_ms, int slow_rank,
                               std::int64_t t0) {
  std::vector<mon::RankInput> ranks;
  for (std::size_t r = 0; r < util.size(); ++r) {
    mon::Snapshot x;
    const double ar_ms = int(r) == slow_rank ? 0 : 30;
    x.threads = 1;
    x.steps = 1000;
    x.step_ns = x.steps * 100'000'000ull;
    x.elapsed_ns = x.step_ns;
    x.step_data_wait_ns = x.steps * std::uint64_t(wait_ms * 1e6);
    x.step_allreduce_ns = x.steps * std::uint64_t(ar_ms * 1e6);
    x.step_compute_ns = x.step_ns - x.step_data_wait_ns - x.step_allreduce_ns;
    for (int i = 0; i < 1000; ++i) x.step_time.record(100'000'000);
    std::vector<mon::Sample> samples;
    for (int i = 0; i < 60; ++i) {  // 10 min at 10 s
      mon::Sample s;
      s.t_s = 10.0 * i;
      s.unix_ms = t0 + 10000 * i;
      mon::GpuSample g;
      g.index = int(r);
      g.util_percent = util[r];
      s.gpus.push_back(g);
      samples.push_back(std::move(s));
    }
    ranks.push_back({std::uint32_t(r), "node0", x, std::move(samples), 0});
  }
  mon::JobTelemetry t = mon::make_job_telemetry(id, std::move(ranks), true);
  t.written_at_unix_ms = t0 + 600000;
  return t;
}

struct Template {
  fs::path file;
  rep::JobFileSummary summary;
};

// N jobs in TELEMETRY: records/job-<id>.<node>.json (the plugin's JSON) and job-<id>.h5 (a hard
// link to a template). Returns the files per job, for the bulk load.
struct MadeJob {
  std::string key;
  std::vector<fs::path> records;
  fs::path job_file;
  std::size_t kind = 0;
};
std::vector<MadeJob> make_jobs(const fs::path& telemetry, std::size_t n, std::uint64_t first_id, std::int64_t since,
                               const std::vector<Template>& templates) {
  fs::create_directories(mon::job_record_dir(telemetry));
  std::mt19937_64 rng(42 + first_id);
  std::uniform_int_distribution<std::int64_t> start(0, 30 * kDayMs - 1), minutes(10, 24 * 60);
  std::vector<MadeJob> made;
  made.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t id = first_id + i;
    MadeJob m;
    m.key = std::to_string(id);
    m.kind = std::size_t(rng() % templates.size());
    const int nodes = rng() % 10 == 0 ? 2 : 1;
    const int gpus_per_node = 1 << (rng() % 4);  // 1, 2, 4, 8
    mon::NodeJobRecord r;
    r.job_id = id;
    r.user = fmt::format("user{:03}", rng() % 300);
    r.account = fmt::format("acct{:02}", rng() % 40);
    r.partition = rng() % 3 == 0 ? "gpu-long" : "gpu";
    r.cluster = "bench";
    for (int k = 0; k < nodes; ++k) r.nodes.push_back(fmt::format("gpu-{:04}", (id * 7 + std::uint64_t(k)) % 2000));
    r.cpus = 16;
    for (int g = 0; g < gpus_per_node; ++g) r.gpus.push_back(g);
    r.start_unix_ms = since + start(rng);
    r.end_unix_ms = r.start_unix_ms + minutes(rng) * 60000;
    r.exit_code = 0;
    r.exit_signal = 0;
    for (const auto& node : r.nodes) {
      r.node = node;
      const fs::path p = mon::job_record_dir(telemetry) / mon::node_record_file_name(id, node);
      // The plugin's format (to_json), written plainly: write_node_record fsyncs every file.
      std::ofstream(p, std::ios::binary | std::ios::trunc) << mon::to_json(r);
      m.records.push_back(p);
    }
    m.job_file = telemetry / mon::job_file_name(m.key);
    fs::create_hard_link(templates[m.kind].file, m.job_file);
    made.push_back(std::move(m));
  }
  return made;
}

// The bulk load: what update() would store, without reading 100,000 HDF5 files (the records are
// read and parsed for real; the job files' summaries are their templates').
void bulk_load(rep::JobIndex& index, const std::vector<MadeJob>& made, const std::vector<Template>& templates) {
  index.begin();
  std::set<std::string> keys;
  for (const auto& m : made) {
    for (const auto& p : m.records) {
      rep::FileStamp st = *rep::file_stamp(p);
      st.path = std::string(mon::kJobRecordDirName) + "/" + p.filename().string();  // relative, as update() keeps it
      index.put_record(st, m.key, mon::read_node_record_file(p));
    }
    rep::FileStamp st = *rep::file_stamp(m.job_file);
    st.path = m.job_file.filename().string();
    index.put_job_file(st, m.key, templates[m.kind].summary);
    keys.insert(m.key);
  }
  index.refresh_jobs(keys);
  index.commit();
}

struct Row {
  std::string what;
  double seconds;
  std::string detail;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-bench-report-cluster: times sluice-report cluster's index and report over N synthetic jobs "
               "(docs/telemetry.md, \"sluice-report cluster\")"};
  std::size_t jobs = 100000, real = 1000;
  std::string dir_arg = "/var/tmp/sluice-bench-cluster";
  bool keep = false;
  app.add_option("-n,--jobs", jobs, "synthetic jobs (default 100000)");
  app.add_option("--real", real, "jobs whose files a fresh index reads for real (default 1000)");
  app.add_option("-d,--dir", dir_arg, "where the data goes (default /var/tmp/sluice-bench-cluster)");
  app.add_flag("--keep", keep, "keep the data (and the index) afterwards");
  CLI11_PARSE(app, argc, argv);

  const fs::path dir = dir_arg;
  if (fs::exists(dir)) {
    if (!fs::is_empty(dir) && !fs::exists(dir / kMarker)) {
      std::fprintf(stderr, "%s exists and was not made by this benchmark: give another --dir\n", dir.c_str());
      return 2;
    }
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
  std::ofstream(dir / kMarker) << "sluice-bench-report-cluster data; safe to delete\n";

  using clock = std::chrono::steady_clock;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::int64_t since = now - 30 * kDayMs;
  std::vector<Row> rows;

  // Templates: healthy, idle GPUs, input-bound, straggler.
  const fs::path tdir = dir / "templates";
  fs::create_directories(tdir);
  std::vector<Template> templates;
  const std::vector<std::vector<unsigned>> utils = {{92, 90, 91, 89}, {85, 80, 0, 1}, {40, 42, 38, 41}, {75, 70, 72, 74}};
  for (std::size_t k = 0; k < utils.size(); ++k) {
    const mon::JobTelemetry t = template_job("template" + std::to_string(k), utils[k], k == 2 ? 35 : 2, k == 3 ? 3 : -1, since);
    const fs::path f = tdir / mon::job_file_name(t.job_id);
    mon::write_job_file(f, t);
    templates.push_back({f, rep::summarize_job_file(mon::read_job_file(f))});
  }

  // The data set and the bulk load.
  const fs::path telemetry = dir / "telemetry";
  const fs::path index_file = rep::default_index_path(telemetry);
  fs::create_directories(telemetry);
  rep::JobIndex(index_file).update(telemetry);  // empty: the index now belongs to this directory
  auto t0 = clock::now();
  const std::vector<MadeJob> made = make_jobs(telemetry, jobs, 1000000, since, templates);
  std::size_t files = 0;
  for (const auto& m : made) files += m.records.size() + 1;
  rows.push_back({"make the files", seconds_since(t0), fmt::format("{} jobs, {} files (records + job file links)", jobs, files)});
  {
    rep::JobIndex index(index_file);
    t0 = clock::now();
    bulk_load(index, made, templates);
    rows.push_back({"bulk load through the API", seconds_since(t0),
                    fmt::format("{} rows (records parsed; job files' summaries from templates)", index.job_count())});
  }
  const auto index_bytes = fs::file_size(index_file);

  // (a) A new run with nothing changed: list, stat and compare every file.
  rep::UpdateStats stats;
  t0 = clock::now();
  {
    rep::JobIndex index(index_file);
    stats = index.update(telemetry);
  }
  const double update_unchanged = seconds_since(t0);
  rows.push_back({"update, nothing changed (new run)", update_unchanged,
                  fmt::format("{} files seen, {} read", stats.files_seen, stats.files_read)});
  if (stats.files_read != 0) std::fprintf(stderr, "warning: %zu files were read on an unchanged update\n", stats.files_read);

  // One record rewritten (an epilog): one file read, one job re-derived.
  {
    std::ofstream(made[made.size() / 2].records.front(), std::ios::app) << " ";
    t0 = clock::now();
    rep::JobIndex index(index_file);
    stats = index.update(telemetry);
    rows.push_back({"update, one record changed", seconds_since(t0),
                    fmt::format("{} read, {} job re-derived", stats.files_read, stats.jobs_updated)});
  }

  // (b) The report over all jobs, 30-day window, by user and by account.
  double report_max = 0;
  std::int64_t reported_jobs = 0;
  std::string sample_text;
  for (rep::GroupBy by : {rep::GroupBy::user, rep::GroupBy::account}) {
    t0 = clock::now();
    rep::JobIndex index(index_file);
    rep::ClusterOptions o;
    o.since_unix_ms = since;
    o.until_unix_ms = now;
    o.now_unix_ms = now;
    o.by = by;
    const rep::ClusterReport r = rep::build_cluster_report(index, o);
    const double built = seconds_since(t0);
    const std::size_t bytes = rep::render_text(r).size() + rep::render_json(r).size() + rep::render_html(r).size() +
                              rep::render_csv(r).size();
    const double total = seconds_since(t0);
    report_max = std::max(report_max, total);
    reported_jobs = r.totals.jobs;
    rows.push_back({fmt::format("report by {} (build)", rep::to_string(by)), built,
                    fmt::format("{} jobs, {} groups, {:.0f} GPU-h allocated, efficiency {:.1f} %", r.totals.jobs,
                                r.groups.size(), r.totals.gpu_hours_allocated, 100 * r.totals.efficiency().value_or(0))});
    rows.push_back({fmt::format("report by {} (build + text, csv, json, html)", rep::to_string(by)), total,
                    fmt::format("{} bytes rendered", bytes)});
  }
  // A new run end to end, as `sluice-report cluster` does it: open, update (nothing changed), report, render.
  t0 = clock::now();
  {
    rep::JobIndex index(index_file);
    index.update(telemetry);
    rep::ClusterOptions o;
    o.since_unix_ms = since;
    o.until_unix_ms = now;
    o.now_unix_ms = now;
    sample_text = rep::render_text(rep::build_cluster_report(index, o));
  }
  const double end_to_end = seconds_since(t0);
  rows.push_back({"end to end: update + report by user + text", end_to_end, "what one sluice-report cluster run does"});

  // Ingestion of real files: a fresh index reads every record and HDF5 job file.
  double ingest = 0;
  std::size_t ingest_files = 0;
  if (real > 0) {
    const fs::path rdir = dir / "real";
    make_jobs(rdir, real, 5000000, since, templates);
    t0 = clock::now();
    rep::JobIndex index(rep::default_index_path(rdir));
    stats = index.update(rdir);
    ingest = seconds_since(t0);
    ingest_files = stats.files_read;
    rows.push_back({"first update, real files read", ingest,
                    fmt::format("{} jobs, {} files read: {:.0f} us per file", real, stats.files_read,
                                1e6 * ingest / double(std::max<std::size_t>(stats.files_read, 1)))});
  }

  std::printf("sluice-bench-report-cluster: %zu jobs in %s (index %.1f MiB)\n\n", jobs, telemetry.c_str(),
              double(index_bytes) / (1 << 20));
  std::printf("%-48s %10s  %s\n", "what", "seconds", "detail");
  for (const auto& r : rows) std::printf("%-48s %10.3f  %s\n", r.what.c_str(), r.seconds, r.detail.c_str());
  std::printf("\ntarget: a report over 100,000 jobs in < 5 s: end to end %.3f s (%s)\n", end_to_end,
              end_to_end < 5 ? "met" : "NOT met");
  std::printf("{\"bench\":\"report_cluster\",\"jobs\":%zu,\"files\":%zu,\"reported_jobs\":%lld,"
              "\"update_unchanged_s\":%.4f,\"report_max_s\":%.4f,\"end_to_end_s\":%.4f,\"real_ingest_files\":%zu,"
              "\"real_ingest_s\":%.4f,\"index_bytes\":%llu}\n",
              jobs, files, static_cast<long long>(reported_jobs), update_unchanged, report_max, end_to_end,
              ingest_files, ingest, static_cast<unsigned long long>(index_bytes));
  if (keep) {
    std::printf("kept: %s (sluice-report cluster --dir %s)\n", dir.c_str(), telemetry.c_str());
  } else {
    fs::remove_all(dir);
  }
  return 0;
}
