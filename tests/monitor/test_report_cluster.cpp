// `sluice-report cluster`: synthetic jobs (job files through the job file API, records through
// write_node_record) indexed and reported: exact GPU-hour sums, efficiency over the jobs whose
// utilization is known, the wasters' order, grouping, window clipping, the CSV / JSON / HTML
// shapes, and the CLI's exit statuses.
#define BOOST_TEST_MODULE monitor_report_cluster
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include "hostile_files.hpp"
#include "job_index.hpp"
#include "report_cli.hpp"
#include "report_cluster.hpp"
#include "scratch_dir.hpp"  // tests/reader

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace sluice::monitor;
namespace rep = sluice::monitor::report;
namespace fs = std::filesystem;
using nlohmann::json;
namespace tt = boost::test_tools;

namespace {

constexpr std::int64_t kHour = 3600 * 1000;
constexpr std::int64_t kT0 = 1763942400000;  // 2025-11-24 00:00:00 UTC

// A synthetic job: one rank per GPU, each GPU at a constant utilization; steps of 100 ms with
// wait_ms of data wait and ar_ms of allreduce (the straggler rank has no allreduce).
struct JobSpec {
  std::uint64_t id = 0;
  std::string user = "alice", account = "ml", partition = "gpu";
  std::uint32_t uid = 0;  // the record's (root's own jobs: every job file attributed)
  std::int64_t start = kT0, end = kT0 + 10 * kHour;
  std::vector<std::string> nodes = {"n1"};
  std::vector<double> util = {90, 90, 90, 90};  // per GPU; GPUs spread evenly over the nodes
  double wait_ms = 1, ar_ms = 30;
  int straggler_rank = -1;
  bool record = true, job_file = true;
};

JobTelemetry telemetry(const JobSpec& j) {
  const auto ns = [](double ms) { return std::uint64_t(ms * 1e6); };
  const std::size_t per_node = j.util.size() / j.nodes.size();
  std::vector<RankInput> ranks;
  for (std::size_t r = 0; r < j.util.size(); ++r) {
    Snapshot x;
    const double ar = int(r) == j.straggler_rank ? 0.0 : j.ar_ms;
    x.threads = 1;
    x.steps = 100;
    x.step_ns = x.steps * ns(100);
    x.elapsed_ns = x.step_ns;
    x.step_data_wait_ns = x.steps * ns(j.wait_ms);
    x.step_allreduce_ns = x.steps * ns(ar);
    x.step_compute_ns = x.step_ns - x.step_data_wait_ns - x.step_allreduce_ns;
    for (int i = 0; i < 100; ++i) x.step_time.record(ns(100));
    std::vector<Sample> samples;
    for (std::int64_t t : {j.start + 1000, (j.start + j.end) / 2, j.end - 1000}) {
      Sample s;
      s.unix_ms = t;
      s.t_s = double(t - j.start) / 1000;
      GpuSample g;
      g.index = int(r % per_node);
      g.util_percent = unsigned(j.util[r]);
      s.gpus.push_back(g);
      samples.push_back(std::move(s));
    }
    ranks.push_back({std::uint32_t(r), j.nodes[r / per_node], x, std::move(samples), 0});
  }
  JobTelemetry t = make_job_telemetry(std::to_string(j.id), std::move(ranks), true);
  t.written_at_unix_ms = j.end;
  return t;
}

void write_job(const fs::path& dir, const JobSpec& j) {
  if (j.job_file) write_job_file(dir / job_file_name(std::to_string(j.id)), telemetry(j));
  if (!j.record) return;
  const std::size_t per_node = j.util.size() / j.nodes.size();
  for (const auto& node : j.nodes) {
    NodeJobRecord r;
    r.job_id = j.id;
    r.node = node;
    r.nodes = j.nodes;
    r.user = j.user;
    r.uid = j.uid;
    r.account = j.account;
    r.partition = j.partition;
    r.cpus = 16;
    for (std::size_t g = 0; g < per_node; ++g) r.gpus.push_back(int(g));
    r.start_unix_ms = j.start;
    r.end_unix_ms = j.end;
    r.exit_code = 0;
    r.exit_signal = 0;
    write_node_record(job_record_dir(dir), r);
  }
}

// The four kinds of job of the issue, and one without a job file (its use unknown):
//   101 alice/ml      healthy       4 GPUs x 10 h at 90 %          alloc 40, used 36
//   102 bob/ml        idle GPUs     4 GPUs x 10 h at 80,80,0,0      alloc 40, used 16, idle 20
//   103 carol/vision  input-bound   2 GPUs x  5 h at 50 %, wait 30 % alloc 10, used 5
//   104 alice/vision  straggler     2 nodes x 2 GPUs x 5 h at 70 %  alloc 20, used 14
//   105 dave/ml       record only   2 GPUs x 10 h                   alloc 20, used unknown
//   106 erin/ml       three days earlier: outside every window below
JobSpec spec(std::uint64_t id, const std::string& user, const std::string& account, int hours, std::vector<double> util) {
  JobSpec j;
  j.id = id;
  j.user = user;
  j.account = account;
  j.end = j.start + hours * kHour;
  j.util = std::move(util);
  return j;
}

std::vector<JobSpec> cluster_jobs() {
  std::vector<JobSpec> v;
  v.push_back(spec(101, "alice", "ml", 10, {90, 90, 90, 90}));
  v.push_back(spec(102, "bob", "ml", 10, {80, 80, 0, 0}));
  v.push_back(spec(103, "carol", "vision", 5, {50, 50}));
  v.back().wait_ms = 30;
  v.push_back(spec(104, "alice", "vision", 5, {70, 70, 70, 70}));
  v.back().nodes = {"n1", "n2"};
  v.back().straggler_rank = 3;
  v.push_back(spec(105, "dave", "ml", 10, {0, 0}));
  v.back().job_file = false;
  v.push_back(spec(106, "erin", "ml", 2, {90, 90, 90, 90}));
  v.back().start -= 72 * kHour, v.back().end -= 72 * kHour;
  return v;
}

rep::ClusterOptions window(std::int64_t since, std::int64_t until, std::int64_t now = kT0 + 48 * kHour) {
  rep::ClusterOptions o;
  o.since_unix_ms = since;
  o.until_unix_ms = until;
  o.now_unix_ms = now;
  return o;
}

fs::path make_cluster_dir(const std::string& name) {
  const fs::path dir = sluice::reader::test::scratch_dir("sluice-mon-cluster") / name;
  fs::create_directories(dir);
  for (const auto& j : cluster_jobs()) write_job(dir, j);
  return dir;
}

rep::ClusterReport report_over(const fs::path& dir, std::int64_t since, std::int64_t until,
                          rep::GroupBy by = rep::GroupBy::user) {
  rep::JobIndex index(rep::default_index_path(dir));
  index.update(dir);
  rep::ClusterOptions o = window(since, until);
  o.by = by;
  return rep::build_cluster_report(index, o);
}

const rep::GroupRow* group(const rep::ClusterReport& r, const std::string& name) {
  for (const auto& g : r.groups)
    if (g.name == name) return &g;
  return nullptr;
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

using sluice::monitor::test::Run;
using sluice::monitor::test::slurp;
Run cli(const std::string& args) {
  return sluice::monitor::test::run_report_cli(sluice::reader::test::scratch_dir("sluice-mon-cluster"), args);
}

}  // namespace

BOOST_AUTO_TEST_CASE(gpu_hours_efficiency_and_rules_over_a_day) {
  const fs::path dir = make_cluster_dir("day");
  const rep::ClusterReport r = report_over(dir, kT0, kT0 + 24 * kHour);
  const rep::ClusterTotals& t = r.totals;
  BOOST_TEST(t.jobs == 5);  // 106 is outside the window
  BOOST_TEST(t.gpu_hours_allocated == 130.0, tt::tolerance(1e-9));
  BOOST_TEST(t.gpu_hours_used == 71.0, tt::tolerance(1e-9));
  // Efficiency only over the jobs whose use is known: 105 (no job file) is left out of it.
  BOOST_TEST(t.jobs_without_utilization == 1);
  BOOST_TEST(t.gpu_hours_allocated_with_utilization == 110.0, tt::tolerance(1e-9));
  BOOST_TEST_REQUIRE(t.efficiency().has_value());
  BOOST_TEST(*t.efficiency() == 71.0 / 110.0, tt::tolerance(1e-9));
  BOOST_TEST(t.gpu_hours_idle == 20.0, tt::tolerance(1e-9));  // 102's two idle GPUs x 10 h
  BOOST_TEST(t.input_bound_jobs == 1);                         // 103
  BOOST_TEST(t.input_bound_gpu_hours == 10.0, tt::tolerance(1e-9));
  BOOST_TEST(t.straggler_jobs == 1);                           // 104
  BOOST_TEST(t.jobs_without_record == 0);

  // Wasters: allocated - used, largest first; 105 (use unknown) is not one.
  BOOST_TEST_REQUIRE(r.wasters.size() == 4u);
  BOOST_TEST(r.wasters[0].job_id == "102");
  BOOST_TEST(r.wasters[0].gpu_hours_wasted() == 24.0, tt::tolerance(1e-9));
  BOOST_TEST(r.wasters[0].idle_gpus == 2);
  BOOST_TEST(r.wasters[1].job_id == "104");  // 6
  BOOST_TEST(r.wasters[2].job_id == "103");  // 5
  BOOST_TEST(r.wasters[2].input_bound);
  BOOST_TEST(r.wasters[3].job_id == "101");  // 4

  // By user (default): alice has 101 and 104.
  BOOST_TEST_REQUIRE(group(r, "alice") != nullptr);
  BOOST_TEST(group(r, "alice")->totals.jobs == 2);
  BOOST_TEST(group(r, "alice")->totals.gpu_hours_allocated == 60.0, tt::tolerance(1e-9));
  BOOST_TEST(group(r, "alice")->totals.gpu_hours_used == 50.0, tt::tolerance(1e-9));
  BOOST_TEST(r.groups.front().name == "alice");  // largest allocation first
  BOOST_TEST(group(r, "dave")->totals.jobs_without_utilization == 1);
  BOOST_TEST(!group(r, "dave")->totals.efficiency().has_value());

  // The timeline is hourly for a day: 24 bins, summing to the totals.
  BOOST_TEST(r.bin_ms == kHour);
  BOOST_TEST_REQUIRE(r.timeline.size() == 24u);
  double a = 0, u = 0;
  for (const auto& b : r.timeline) a += b.gpu_hours_allocated, u += b.gpu_hours_used;
  BOOST_TEST(a == 130.0, tt::tolerance(1e-9));
  BOOST_TEST(u == 71.0, tt::tolerance(1e-9));
  // Hour 0: every job runs (4+4+2+4+2 GPUs); hour 7: 101, 102, 105.
  BOOST_TEST(r.timeline[0].gpu_hours_allocated == 16.0, tt::tolerance(1e-9));
  BOOST_TEST(r.timeline[7].gpu_hours_allocated == 10.0, tt::tolerance(1e-9));
  BOOST_TEST(r.timeline[12].gpu_hours_allocated == 0.0);
  BOOST_TEST(r.skipped.empty());
}

BOOST_AUTO_TEST_CASE(grouping_by_account_and_partition) {
  const fs::path dir = make_cluster_dir("by-account");
  const rep::ClusterReport r = report_over(dir, kT0, kT0 + 24 * kHour, rep::GroupBy::account);
  BOOST_TEST_REQUIRE(r.groups.size() == 2u);
  BOOST_TEST(r.groups[0].name == "ml");
  BOOST_TEST(r.groups[0].totals.jobs == 3);
  BOOST_TEST(r.groups[0].totals.gpu_hours_allocated == 100.0, tt::tolerance(1e-9));
  BOOST_TEST(r.groups[0].totals.gpu_hours_used == 52.0, tt::tolerance(1e-9));
  BOOST_TEST(*r.groups[0].totals.efficiency() == 52.0 / 80.0, tt::tolerance(1e-9));
  BOOST_TEST(r.groups[1].name == "vision");
  BOOST_TEST(r.groups[1].totals.gpu_hours_allocated == 30.0, tt::tolerance(1e-9));
  BOOST_TEST(r.groups[1].totals.gpu_hours_used == 19.0, tt::tolerance(1e-9));
  BOOST_TEST(r.groups[1].totals.input_bound_jobs == 1);

  const rep::ClusterReport p = report_over(dir, kT0, kT0 + 24 * kHour, rep::GroupBy::partition);
  BOOST_TEST_REQUIRE(p.groups.size() == 1u);
  BOOST_TEST(p.groups[0].name == "gpu");
  BOOST_TEST(p.groups[0].totals.jobs == 5);
}

BOOST_AUTO_TEST_CASE(gpu_hours_are_clipped_to_the_window) {
  const fs::path dir = make_cluster_dir("clip");
  // [2 h, 7 h): 101 and 102 count 5 h of 4 GPUs, 103 3 h of 2, 104 3 h of 4, 105 5 h of 2.
  const rep::ClusterReport r = report_over(dir, kT0 + 2 * kHour, kT0 + 7 * kHour);
  BOOST_TEST(r.totals.jobs == 5);
  BOOST_TEST(r.totals.gpu_hours_allocated == 20.0 + 20 + 6 + 12 + 10, tt::tolerance(1e-9));
  BOOST_TEST(r.totals.gpu_hours_used == 18.0 + 8 + 3 + 8.4, tt::tolerance(1e-9));
  BOOST_TEST(r.totals.gpu_hours_idle == 10.0, tt::tolerance(1e-9));
  BOOST_TEST(r.timeline.size() == 5u);
  // [5 h, 8 h): the 5 h jobs have ended; a job ending exactly at `since` does not count.
  const rep::ClusterReport late = report_over(dir, kT0 + 5 * kHour, kT0 + 8 * kHour);
  BOOST_TEST(late.totals.jobs == 3);
  BOOST_TEST(late.totals.gpu_hours_allocated == 3 * (4 + 4 + 2), tt::tolerance(1e-9));
  // Three days earlier: only 106.
  const rep::ClusterReport early = report_over(dir, kT0 - 96 * kHour, kT0 - 12 * kHour);
  BOOST_TEST(early.totals.jobs == 1);
  BOOST_TEST(early.totals.gpu_hours_allocated == 8.0, tt::tolerance(1e-9));
  BOOST_TEST(early.bin_ms == 24 * kHour);  // over three days: daily bins
}

BOOST_AUTO_TEST_CASE(a_running_job_counts_up_to_now) {
  const fs::path dir = sluice::reader::test::scratch_dir("sluice-mon-cluster") / "running";
  fs::create_directories(dir);
  NodeJobRecord r;
  r.job_id = 300;
  r.node = "n1";
  r.nodes = {"n1"};
  r.user = "zoe";
  r.gpus = {0, 1};
  r.start_unix_ms = kT0;
  write_node_record(job_record_dir(dir), r);  // no epilog yet
  rep::JobIndex index(rep::default_index_path(dir));
  index.update(dir);
  const auto rep1 = rep::build_cluster_report(index, window(kT0, kT0 + 24 * kHour, kT0 + 3 * kHour));
  BOOST_TEST(rep1.totals.gpu_hours_allocated == 6.0, tt::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(renderings_have_their_shapes) {
  const fs::path dir = make_cluster_dir("render");
  // One unreadable file: listed, the rest still reported.
  std::ofstream(dir / "job-999.h5") << "not an HDF5 file";
  const rep::ClusterReport r = report_over(dir, kT0, kT0 + 24 * kHour);
  BOOST_TEST_REQUIRE(r.skipped.size() == 1u);
  BOOST_TEST(r.totals.jobs == 5);

  const std::string text = rep::render_text(r);
  BOOST_TEST_MESSAGE(text);
  BOOST_TEST(has(text, "  GPU-hours allocated   130.0\n"), text);
  BOOST_TEST(has(text, "  GPU-hours used        71.0"));
  BOOST_TEST(has(text, "  efficiency            64.5 % (over the 110.0 GPU-hours of jobs with utilization; 1 job(s) "
                       "without it)"));
  BOOST_TEST(has(text, "  input-bound jobs      1  (10.0 GPU-hours allocated"));
  BOOST_TEST(has(text, "skipped 1 file(s) that could not be read"));
  BOOST_TEST(has(text, "job-999.h5"));

  const std::string csv = rep::render_csv(r);
  std::istringstream lines(csv);
  std::string header, line;
  std::getline(lines, header);
  BOOST_TEST(header == "user,jobs,gpu_hours_allocated,gpu_hours_used,efficiency,gpu_hours_idle,input_bound_jobs,"
                       "input_bound_gpu_hours,jobs_without_utilization,straggler_jobs");
  std::size_t rows = 0;
  while (std::getline(lines, line)) {
    ++rows;
    BOOST_TEST(std::count(line.begin(), line.end(), ',') == 9, line);
  }
  BOOST_TEST(rows == 4u);  // alice, bob, dave, carol
  BOOST_TEST(has(csv, "\nalice,2,60.000,50.000,0.8333,0.000,0,0.000,0,1\n"), csv);
  BOOST_TEST(has(csv, "\ndave,1,20.000,0.000,,0.000,0,0.000,1,0\n"), csv);

  const json j = json::parse(rep::render_json(r));
  BOOST_TEST(j.at("schema") == "sluice.report.cluster/1");
  BOOST_TEST(j.at("by") == "user");
  BOOST_TEST(j.at("totals").at("gpu_hours_allocated").get<double>() == 130.0, tt::tolerance(1e-9));
  BOOST_TEST(j.at("totals").at("efficiency").get<double>() == 71.0 / 110, tt::tolerance(1e-9));
  BOOST_TEST(j.at("groups").size() == 4u);
  BOOST_TEST(j.at("wasters").at(0).at("job_id") == "102");
  BOOST_TEST(j.at("timeline").size() == 24u);
  BOOST_TEST(j.at("skipped").size() == 1u);
  BOOST_TEST(has(j.at("skipped").at(0).at("reason").get<std::string>(), "job-999.h5"));
  BOOST_TEST(j.at("groups").at(2).at("efficiency").is_null());  // dave
}

BOOST_AUTO_TEST_CASE(html_is_one_self_contained_page_with_charts) {
  const fs::path dir = make_cluster_dir("html");
  write_job(dir, spec(200, "<b>&evil", "x\"y", 10, {10, 10}));  // escaped, never markup
  const fs::path out = dir / "cluster.html";
  const Run r = cli("cluster --dir " + dir.string() + " --since 2025-11-24 --until 2025-11-25 --format html -o " +
                    out.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const std::string html = slurp(out);
  BOOST_TEST(sluice::monitor::test::checked_self_contained_svgs(html) == 2);  // the timeline and the per-group bars
  BOOST_TEST(!has(html, "<b>&evil"));
  BOOST_TEST(has(html, "&lt;b&gt;&amp;evil"));
  BOOST_TEST(has(html, "<title>sluice-report cluster 2025-11-24 00:00 UTC .. 2025-11-25 00:00 UTC</title>"));
  fs::create_directories(CLUSTER_FIXTURE_DIR);
  fs::copy_file(out, fs::path(CLUSTER_FIXTURE_DIR) / "cluster.html", fs::copy_options::overwrite_existing);
}

BOOST_AUTO_TEST_CASE(the_cli_formats_and_exit_statuses) {
  const fs::path dir = make_cluster_dir("cli");
  const std::string window = " --since 2025-11-24T00:00 --until 1764028800";  // a day, two spellings
  Run r = cli("cluster --dir " + dir.string() + window + " --by account --format csv");
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(r.out.rfind("account,jobs,", 0) == 0u, r.out);
  BOOST_TEST(has(r.out, "\nml,3,100.000,52.000,0.6500,"), r.out);
  r = cli("cluster --dir " + dir.string() + window + " --format json");
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(json::parse(r.out).at("totals").at("jobs") == 5);
  r = cli("cluster --dir " + dir.string() + window);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(has(r.out, "By user\n"), r.out);
  BOOST_TEST(fs::exists(rep::default_index_path(dir)));
  // --index elsewhere.
  const fs::path other = dir.parent_path() / "elsewhere.sqlite";
  r = cli("cluster --dir " + dir.string() + window + " --index " + other.string() + " --format json");
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(fs::exists(other));

  // A missing telemetry directory: a data error naming it.
  r = cli("cluster --dir " + (dir / "nope").string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "nope does not exist"), r.err);
  // An index that cannot be created: a data error suggesting --index.
  r = cli("cluster --dir " + dir.string() + " --index " + (dir / "no-such-dir" / "ix.sqlite").string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "--index FILE"), r.err);
  // Bad times: usage errors naming the option.
  r = cli("cluster --dir " + dir.string() + " --since yesterday");
  BOOST_TEST(r.status == 2);
  BOOST_TEST(has(r.err, "--since: 'yesterday' is not a time"), r.err);
  r = cli("cluster --dir " + dir.string() + " --until 2025-13-45");
  BOOST_TEST(r.status == 2);
  BOOST_TEST(has(r.err, "--until"), r.err);
  r = cli("cluster --dir " + dir.string() + " --since now --until now-1d");
  BOOST_TEST(r.status == 2);
  BOOST_TEST(has(r.err, "must be after --since"), r.err);
  r = cli("cluster --dir " + dir.string() + " --by host");
  BOOST_TEST(r.status == 2);
  r = cli("cluster");  // no directory at all
  BOOST_TEST(r.status == 2);
  BOOST_TEST(has(r.err, "SLUICE_TELEMETRY_DIR"), r.err);
  r = cli("cluster --help");
  BOOST_TEST(r.status == 0);
  BOOST_TEST(has(r.out, "EXIT STATUS"));
}

BOOST_AUTO_TEST_CASE(times_on_the_command_line) {
  const std::int64_t now = kT0 + 12 * kHour;
  BOOST_TEST(rep::parse_time_arg("2025-11-24", now) == kT0);
  BOOST_TEST(rep::parse_time_arg("2025-11-24T01:30", now) == kT0 + kHour + 30 * 60000);
  BOOST_TEST(rep::parse_time_arg("2025-11-24T01:30:15Z", now) == kT0 + kHour + 30 * 60000 + 15000);
  BOOST_TEST(rep::parse_time_arg("1763942400", now) == kT0);
  BOOST_TEST(rep::parse_time_arg("now", now) == now);
  BOOST_TEST(rep::parse_time_arg("now-7d", now) == now - 7 * 24 * kHour);
  BOOST_TEST(rep::parse_time_arg("now-12h", now) == now - 12 * kHour);
  BOOST_TEST(rep::parse_time_arg("now-2w", now) == now - 14 * 24 * kHour);
  for (const char* bad : {"", "now-", "now-7", "now-7y", "now+1d", "2025-11", "2025-11-24T", "11/24/2025", "-5", "1e9"})
    BOOST_CHECK_THROW(rep::parse_time_arg(bad, now), sluice::InvalidArgument);
  BOOST_TEST(rep::timeline_bin_ms(24 * kHour) == kHour);
  BOOST_TEST(rep::timeline_bin_ms(30 * 24 * kHour) == 24 * kHour);
  BOOST_TEST(rep::timeline_bin_ms(365 * 24 * kHour) == 7 * 24 * kHour);
}

BOOST_AUTO_TEST_CASE(sluice_report_job_reads_the_job_record) {
  const fs::path dir = make_cluster_dir("job");
  // 101 has both: the header's user and account come from the record.
  Run r = cli("job 101 --format json --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const json j = json::parse(r.out);
  BOOST_TEST(j.at("user") == "alice");
  BOOST_TEST(j.at("account") == "ml");
  BOOST_TEST(j.at("partition") == "gpu");
  // 105 has a record and no job file: it ran without the runtime's telemetry.
  r = cli("job 105 --dir " + dir.string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "job 105 (user dave, COMPLETED) ran without the sluice runtime's telemetry"), r.err);
  // Neither: no telemetry for that job.
  r = cli("job 4242 --dir " + dir.string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "no telemetry for job 4242"), r.err);
}

// --- issue 16, items 6, 7 and 8 ---------------------------------------------------------------

namespace {
fs::path fresh_cluster_dir(const std::string& name) {
  const fs::path dir = sluice::reader::test::scratch_dir("sluice-mon-cluster") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
const std::string kDays = " --since 2025-11-23 --until 2025-11-26";
}  // namespace

BOOST_AUTO_TEST_CASE(a_job_file_planted_by_another_user_is_listed_unverified_not_merged) {
  // Job 147 is alice's (uid 1000, from the record root wrote); its job-147.h5 was written by
  // uid 65534. Job 148 is bob's (uid 1001) and so is its file.
  const fs::path dir = fresh_cluster_dir("planted");
  JobSpec victim = spec(147, "alice", "ml", 10, {90, 90});
  victim.uid = 1000;
  write_job(dir, victim);
  JobSpec own = spec(148, "bob", "ml", 10, {50, 50});
  own.uid = 1001;
  write_job(dir, own);
  if (!sluice::monitor::test::chown_to(dir / "job-147.h5", 65534) ||
      !sluice::monitor::test::chown_to(dir / "job-148.h5", 1001)) {
    BOOST_TEST_MESSAGE("not root: cannot give the files other owners; skipped");
    return;
  }
  const std::string index = " --index " + (dir.parent_path() / "planted.sqlite").string();
  Run r = cli("cluster --dir " + dir.string() + kDays + index + " --format json");
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const json j = json::parse(r.out);
  const json& t = j.at("totals");
  BOOST_TEST(t.at("jobs") == 2);                           // both jobs, by their records
  BOOST_TEST(t.at("gpu_hours_allocated").get<double>() == 40.0, tt::tolerance(1e-9));
  BOOST_TEST(t.at("gpu_hours_used").get<double>() == 10.0, tt::tolerance(1e-9));  // bob's only: 2 x 10 h x 50 %
  BOOST_TEST(t.at("jobs_without_utilization") == 1);        // alice's: the planted figures are not hers
  BOOST_TEST_REQUIRE(j.contains("unverified"));
  BOOST_TEST_REQUIRE(j.at("unverified").size() == 1u);
  const json& u = j.at("unverified").at(0);
  BOOST_TEST(u.at("job_id") == "147");
  BOOST_TEST(u.at("path") == (dir / "job-147.h5").string());
  BOOST_TEST(u.at("owner_uid") == 65534);
  BOOST_TEST(u.at("job_uid") == 1000);
  BOOST_TEST(u.at("job_user") == "alice");
  BOOST_TEST(has(r.err, "1 unverified job file(s) not counted"), r.err);

  r = cli("cluster --dir " + dir.string() + kDays + index);
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(has(r.out, "UNVERIFIED: 1 job file(s) not counted"), r.out);
  BOOST_TEST(has(r.out, (dir / "job-147.h5").string() + " is owned by uid 65534, not by the job's user alice (uid 1000) "
                                                         "nor root"),
             r.out);

  // The job's own page: the record's header, none of the file's figures, and why.
  r = cli("job 147 --no-sacct --format json --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const json p = json::parse(r.out);
  BOOST_TEST(p.at("user") == "alice");
  BOOST_TEST(p.at("state") == "unverified");
  BOOST_TEST(p.at("ranks") == 0);
  BOOST_TEST(p.at("gpus_reported") == 0);
  BOOST_TEST(p.at("steps") == 0);
  BOOST_TEST(p.at("unverified").at("owner_uid") == 65534);
  BOOST_TEST(p.at("file_owner_uid") == 65534);
  BOOST_TEST(has(r.err, "is owned by uid 65534"), r.err);
  r = cli("job 147 --no-sacct --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(has(r.out, "UNVERIFIED job file, not counted: " + (dir / "job-147.h5").string()), r.out);
  BOOST_TEST(has(r.out, "(owner uid 65534, UNVERIFIED)"), r.out);
  BOOST_TEST(!has(r.out, "rank 0 n1"), r.out);  // no per-rank rows from the planted file
  BOOST_TEST(has(r.out, "[warning] " + (dir / "job-147.h5").string() + " is owned by uid 65534"), r.out);

  // The user's own file counts.
  r = cli("job 148 --no-sacct --format json --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const json q = json::parse(r.out);
  BOOST_TEST(q.at("state") == "complete");
  BOOST_TEST(q.at("ranks") == 2);
  BOOST_TEST(q.at("unverified").is_null());
  BOOST_TEST(q.at("file_owner_uid") == 1001);
}

BOOST_AUTO_TEST_CASE(a_file_declaring_huge_datasets_is_skipped_and_named_not_allocated) {
  // sluice-report cluster under a 1 GiB address-space limit: the old reader allocated what the
  // file declared (2^27 rows) and died or skipped it only after running out of memory.
  const fs::path dir = fresh_cluster_dir("huge");
  write_job(dir, spec(101, "alice", "ml", 10, {90, 90}));
  sluice::monitor::test::make_huge_dataset_file(dir / "job-150.h5", "150", hsize_t(1) << 27);
  const std::string index = " --index " + (dir.parent_path() / "huge.sqlite").string();
  const Run r = sluice::monitor::test::run_report_cli(
      dir.parent_path(), "cluster --dir " + dir.string() + kDays + index + " --format json",
      "ulimit -v 1048576 && env -u SLUICE_TELEMETRY_DIR");
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const json j = json::parse(r.out);
  BOOST_TEST(j.at("totals").at("jobs") == 1);
  BOOST_TEST_REQUIRE(j.at("skipped").size() == 1u);
  const std::string reason = j.at("skipped").at(0).at("reason");
  BOOST_TEST(j.at("skipped").at(0).at("path") == (dir / "job-150.h5").string());
  BOOST_TEST(has(reason, (dir / "job-150.h5").string()), reason);
  BOOST_TEST(has(reason, "/ranks/0/series/t_s: declares 134217728 values"), reason);
}

BOOST_AUTO_TEST_CASE(user_controlled_text_is_escaped_in_text_reports) {
  // A file name and a host name with a newline and a terminal escape (ESC [ 31 m).
  const fs::path dir = fresh_cluster_dir("escape");
  JobSpec j = spec(149, "alice", "ml", 10, {90, 90});
  j.nodes = {"evil\n\x1b[31mred"};
  write_job(dir, j);
  std::ofstream(dir / "job-7\n\x1b[31mforged.h5") << "not an HDF5 file";
  const std::string index = " --index " + (dir.parent_path() / "escape.sqlite").string();
  Run r = cli("cluster --dir " + dir.string() + kDays + index);
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(!has(r.out, "\x1b"), r.out);
  BOOST_TEST(has(r.out, "job-7\\x0a\\x1b[31mforged.h5"), r.out);
  r = cli("job 149 --no-sacct --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(!has(r.out, "\x1b"), r.out);
  BOOST_TEST(!has(r.out, "evil\n"), r.out);
  BOOST_TEST(has(r.out, "evil\\x0a\\x1b[31mred"), r.out);
  // JSON keeps the bytes (escaped by JSON itself); HTML escapes markup.
  r = cli("job 149 --no-sacct --format json --dir " + dir.string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(json::parse(r.out).at("hosts").at(0) == "evil\n\x1b[31mred");
  BOOST_TEST(!has(r.out, "\x1b"));
}
