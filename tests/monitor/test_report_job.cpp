// `sluice-report job`: synthetic job files (written with the job file API) through the report
// library and the CLI: the rules' notes, the JSON fields, the text lines, the HTML page, and the
// errors (incomplete, corrupt, unknown job, usage).
#define BOOST_TEST_MODULE monitor_report_job
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/job_file.hpp>

#include "report_cli.hpp"
#include "report_job.hpp"
#include "scratch_dir.hpp"  // tests/reader

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace sluice::monitor;
namespace rep = sluice::monitor::report;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::int64_t kT0 = 1700000000000;  // 2023-11-14 22:13:20 UTC

fs::path scratch() { return sluice::reader::test::scratch_dir("sluice-mon-report"); }

// One rank: `steps` steps of step_ms each, of which wait_ms data wait and ar_ms allreduce.
struct RankSpec {
  std::string host = "node0";
  int steps = 100;
  double step_ms = 100, wait_ms = 1, ar_ms = 10;
  std::vector<unsigned> gpu_util = {90};  // one GPU per entry (NVML index = position + 2 x rank)
};

Snapshot rank_snapshot(const RankSpec& s) {
  const auto ns = [](double ms) { return std::uint64_t(ms * 1e6); };
  Snapshot x;
  x.threads = 1;
  x.steps = std::uint64_t(s.steps);
  x.step_ns = x.steps * ns(s.step_ms);
  x.elapsed_ns = x.step_ns;
  x.step_data_wait_ns = x.steps * ns(s.wait_ms);
  x.step_allreduce_ns = x.steps * ns(s.ar_ms);
  x.step_compute_ns = x.step_ns - x.step_data_wait_ns - x.step_allreduce_ns;
  x.allreduces = x.steps;
  x.allreduce_ns = x.step_allreduce_ns;
  x.allreduce_bytes = x.steps << 26;
  x.allreduce_bus_bytes = x.allreduce_bytes * 3 / 2;
  for (int i = 0; i < s.steps; ++i) {
    x.step_time.record(ns(s.step_ms));
    x.step_data_wait.record(ns(s.wait_ms));
    x.allreduce_time.record(ns(s.ar_ms));
  }
  return x;
}

// Six samples 10 s apart: 2 cores busy, RSS growing to 4 GiB, the given GPU utilization.
std::vector<Sample> series(const RankSpec& s, std::uint32_t rank) {
  std::vector<Sample> out;
  for (int i = 0; i < 6; ++i) {
    Sample x;
    x.t_s = 10.0 * i;
    x.unix_ms = kT0 + 10000 * i;
    x.cpu_user_s = 18.0 * i, x.cpu_sys_s = 2.0 * i;
    x.rss_bytes = std::uint64_t(i + 1) << 29, x.rss_peak_bytes = x.rss_bytes;
    for (std::size_t g = 0; g < s.gpu_util.size(); ++g) {
      GpuSample gs;
      gs.index = int(g + 2 * rank);
      gs.util_percent = s.gpu_util[g];
      gs.mem_used_bytes = std::uint64_t(20) << 30;
      gs.mem_total_bytes = std::uint64_t(80) << 30;
      x.gpus.push_back(gs);
    }
    out.push_back(std::move(x));
  }
  return out;
}

JobTelemetry make_job(const std::string& id, const std::vector<RankSpec>& ranks, bool complete = true) {
  std::vector<RankInput> in;
  for (std::size_t r = 0; r < ranks.size(); ++r)
    in.push_back({std::uint32_t(r), ranks[r].host, rank_snapshot(ranks[r]), series(ranks[r], std::uint32_t(r)), 0});
  JobTelemetry job = make_job_telemetry(id, std::move(in), complete);
  job.written_at_unix_ms = kT0 + 60000;
  return job;
}

std::vector<RankSpec> balanced(int n, double wait_ms = 1) {
  std::vector<RankSpec> v(std::size_t(n), RankSpec{});
  for (int r = 0; r < n; ++r) v[std::size_t(r)].host = "node" + std::to_string(r / 2), v[std::size_t(r)].wait_ms = wait_ms;
  return v;
}

std::vector<std::string> rules(const json& j) {
  std::vector<std::string> out;
  for (const auto& n : j.at("notes")) out.push_back(n.at("rule").get<std::string>());
  return out;
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

using sluice::monitor::test::Run;
using sluice::monitor::test::slurp;
Run cli(const std::string& args, const std::string& env = "env -u SLUICE_TELEMETRY_DIR") {
  return sluice::monitor::test::run_report_cli(scratch(), args, env);
}

// Writes the job under its file name in the scratch directory.
fs::path write(const JobTelemetry& job) {
  const fs::path p = rep::job_file_path(scratch(), job.job_id);
  write_job_file(p, job);
  return p;
}

json report_json(const JobTelemetry& job, const rep::ReportInputs& in = {}) {
  return json::parse(rep::render_json(rep::build_job_report(job, "job.h5", in)));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_balanced_healthy_job_has_no_notes) {
  const JobTelemetry job = make_job("100", balanced(4));
  const json j = report_json(job);
  BOOST_TEST(j.at("job_id") == "100");
  BOOST_TEST(j.at("notes").empty(), j.at("notes").dump());
  BOOST_TEST(j.at("gpus") == 4);
  BOOST_TEST(j.at("nodes") == 2);
  BOOST_TEST(j.at("ranks") == 4);
  BOOST_TEST(j.at("complete") == true);
  BOOST_TEST(j.at("elapsed_s").get<double>() == 10.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(j.at("step_time_p50_ms").get<double>() == 100.0, boost::test_tools::tolerance(0.016));
  BOOST_TEST(j.at("data_wait_fraction").get<double>() == 0.01, boost::test_tools::tolerance(1e-6));
  BOOST_TEST(j.at("allreduce_fraction").get<double>() == 0.10, boost::test_tools::tolerance(1e-6));
  BOOST_TEST(j.at("busbw_gbps").get<double>() > 0);
  // 20 s of CPU per 10 s: 2 cores; GPUs at 90 %; RSS 0.5..3 GiB per rank.
  BOOST_TEST(j.at("cpu_cores_per_rank").at("mean").get<double>() == 2.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(j.at("gpu_util_percent").at("mean").get<double>() == 90.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(j.at("rss_bytes_per_rank").at("max").get<double>() == double(std::uint64_t(3) << 30));
  // Not in the job file: unknown, never made up.
  BOOST_TEST(j.at("user").is_null());
  BOOST_TEST(j.at("account").is_null());
  BOOST_TEST(j.at("partition").is_null());
  BOOST_TEST(j.at("unknown_fields").dump() == R"(["user","account","partition","slurm_state","mem_requested"])");
  // The rules skipped are the memory one (no request in the file) and ended_early (no record).
  BOOST_TEST_REQUIRE(j.at("rules_skipped").size() == 2u);
  BOOST_TEST(j.at("rules_skipped")[0].at("rule") == "memory_over_requested");
  BOOST_TEST(j.at("rules_skipped")[1].at("rule") == "ended_early");

  const std::string text = rep::render_text(rep::build_job_report(job, "job.h5"));
  BOOST_TEST_MESSAGE(text);
  BOOST_TEST(has(text, "sluice-report job 100\n"));
  BOOST_TEST(has(text, "  user        unknown\n"));
  BOOST_TEST(has(text, "  nodes       2 (node0, node1)\n"));
  BOOST_TEST(has(text, "  GPUs        4 reported\n"));
  BOOST_TEST(has(text, "  runtime     00:00:10 (10.0 s)\n"));
  BOOST_TEST(has(text, "(unknown: the job file does not record user, account, partition, slurm_state, mem_requested)"));
  BOOST_TEST(has(text, "Notes\n  none\n"));
  BOOST_TEST(!has(text, "incomplete"));
  BOOST_TEST(std::regex_search(text, std::regex(R"(  all ranks +400 +\d+\.\d\d)")));
  BOOST_TEST(has(text, "data wait 1.0 %, allreduce 10.0 %, compute 89.0 %"));
}

BOOST_AUTO_TEST_CASE(an_idle_gpu_is_noted) {
  auto ranks = balanced(2);
  ranks[1].gpu_util = {2};
  ranks[0].gpu_util = {80, 3};  // rank 0 drives two GPUs, one of them idle
  const json j = report_json(make_job("101", ranks));
  BOOST_TEST(j.at("gpus") == 3);
  BOOST_TEST((rules(j) == std::vector<std::string>{"idle_gpus"}));
  const std::string note = j.at("notes")[0].at("text");
  BOOST_TEST(has(note, "2 of 3 GPUs idle (mean utilization < 5 %)"), note);
  BOOST_TEST(has(note, "node0:gpu1 (rank 0) 3.0 %"), note);
  BOOST_TEST(has(note, "node0:gpu2 (rank 1) 2.0 %"), note);
  BOOST_TEST(j.at("notes")[0].at("severity") == "warning");
}

BOOST_AUTO_TEST_CASE(gpu_rules_are_skipped_without_gpu_samples) {
  auto ranks = balanced(2);
  for (auto& r : ranks) r.gpu_util.clear();
  const json j = report_json(make_job("102", ranks));
  BOOST_TEST(j.at("gpus") == 0);
  BOOST_TEST(j.at("gpu_util_percent").is_null());
  bool skipped = false;
  for (const auto& s : j.at("rules_skipped")) skipped |= s.at("rule") == "idle_gpus";
  BOOST_TEST(skipped);
  BOOST_TEST(j.at("notes").empty());
}

BOOST_AUTO_TEST_CASE(data_wait_of_30_percent_is_input_bound) {
  const json j = report_json(make_job("103", balanced(2, 30)));
  BOOST_TEST(j.at("data_wait_fraction").get<double>() == 0.30, boost::test_tools::tolerance(1e-6));
  BOOST_TEST((rules(j) == std::vector<std::string>{"input_bound"}));
  BOOST_TEST(has(j.at("notes")[0].at("text"), "data wait is 30.0 % of step time (>= 20 %)"));
}

BOOST_AUTO_TEST_CASE(data_wait_of_10_percent_is_moderately_input_bound) {
  const json j = report_json(make_job("104", balanced(2, 10)));
  BOOST_TEST((rules(j) == std::vector<std::string>{"moderately_input_bound"}));
  BOOST_TEST(j.at("notes")[0].at("severity") == "info");
  // The boundaries: 5 % is moderately input-bound, 20 % input-bound, just below 5 % nothing.
  BOOST_TEST((rules(report_json(make_job("x", balanced(2, 5)))) == std::vector<std::string>{"moderately_input_bound"}));
  BOOST_TEST((rules(report_json(make_job("x", balanced(2, 20)))) == std::vector<std::string>{"input_bound"}));
  BOOST_TEST(rules(report_json(make_job("x", balanced(2, 4.9)))).empty());
}

BOOST_AUTO_TEST_CASE(a_straggler_is_named) {
  auto ranks = balanced(4);
  // Rank 3 computes 50 % longer; the others wait for it in allreduce (same step time).
  for (std::size_t r = 0; r < 3; ++r) ranks[r].ar_ms = 40;
  ranks[3].ar_ms = 10;
  const json j = report_json(make_job("105", ranks));
  BOOST_TEST((rules(j) == std::vector<std::string>{"stragglers"}));
  BOOST_TEST_REQUIRE(j.at("stragglers").size() == 1u);
  BOOST_TEST(j.at("stragglers")[0].at("rank") == 3);
  BOOST_TEST(j.at("stragglers")[0].at("host") == "node1");
  BOOST_TEST(j.at("stragglers")[0].at("ratio").get<double>() == 1.5, boost::test_tools::tolerance(1e-6));
  BOOST_TEST(has(j.at("notes")[0].at("text"), "rank 3 (node1) 1.50 x"));
  const std::string text = rep::render_text(rep::build_job_report(make_job("105", ranks)));
  BOOST_TEST(has(text, "  stragglers  rank 3 (node1) 90.00 ms/step, 1.50 x the median"), text);
  BOOST_TEST(std::regex_search(text, std::regex(R"(  rank 3 node1 +100 +\d+\.\d\d)")), text);
}

BOOST_AUTO_TEST_CASE(memory_over_requested_needs_the_request) {
  const JobTelemetry job = make_job("106", balanced(2));  // peak 3 GiB per rank: 6 GiB
  rep::ReportInputs in;
  in.mem_requested_bytes = std::uint64_t(64) << 30;
  json j = report_json(job, in);
  BOOST_TEST((rules(j) == std::vector<std::string>{"memory_over_requested"}));
  BOOST_TEST(has(j.at("notes")[0].at("text"), "peak use 6.0 GiB of 64.0 GiB requested (9.4 %"));
  BOOST_TEST_REQUIRE(j.at("rules_skipped").size() == 1u);  // only ended_early: no job record
  BOOST_TEST(j.at("rules_skipped")[0].at("rule") == "ended_early");
  in.mem_requested_bytes = std::uint64_t(8) << 30;  // 75 % used: fine
  BOOST_TEST(rules(report_json(job, in)).empty());
}

BOOST_AUTO_TEST_CASE(a_checkpoint_is_reported_incomplete) {
  const fs::path p = write(make_job("107", balanced(2), /*complete=*/false));
  const Run r = cli("job 107 --dir " + scratch().string());
  BOOST_TEST(r.status == 0);
  // The newest sample is kT0 + 50 s.
  BOOST_TEST(has(r.out, "incomplete: job still running or was killed; data up to 2023-11-14 22:14:10 UTC\n"), r.out);
  BOOST_TEST(has(r.out, "  state       incomplete (checkpoint"));
  const Run rj = cli("job 107 --format json", "env SLUICE_TELEMETRY_DIR=" + scratch().string());
  BOOST_TEST_REQUIRE(rj.status == 0);
  const json j = json::parse(rj.out);
  BOOST_TEST(j.at("complete") == false);
  BOOST_TEST(j.at("state") == "incomplete");
  BOOST_TEST(j.at("data_until_unix_ms") == kT0 + 50000);
  BOOST_TEST(j.at("file") == p.string());
}

BOOST_AUTO_TEST_CASE(the_cli_reports_a_job_file_as_json_and_text) {
  auto ranks = balanced(2, 30);
  write(make_job("108", ranks));
  const Run rj = cli("job 108 --format json --dir " + scratch().string());
  BOOST_TEST_REQUIRE(rj.status == 0, rj.err);
  const json j = json::parse(rj.out);
  BOOST_TEST(j.at("job_id") == "108");
  BOOST_TEST((rules(j) == std::vector<std::string>{"input_bound"}));
  const Run rt = cli("job 108 -d " + scratch().string());
  BOOST_TEST(rt.status == 0);
  BOOST_TEST(has(rt.out, "  * [warning] input-bound: data wait is 30.0 % of step time"), rt.out);
  BOOST_TEST(has(rt.out, "  state       complete (final write"));
}

BOOST_AUTO_TEST_CASE(html_is_one_self_contained_page) {
  auto ranks = balanced(4);
  ranks[2].gpu_util = {1};
  ranks[1].host = "<b>&evil";  // escaped, never markup
  write(make_job("109", ranks, false));
  const fs::path out = scratch() / "report.html";
  const Run r = cli("job 109 --format html -o " + out.string() + " --dir " + scratch().string());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  BOOST_TEST(r.out.empty());
  const std::string html = slurp(out);
  BOOST_TEST(sluice::monitor::test::checked_self_contained_svgs(html) >= 4);  // gauges, GPU, phase, own-time bars
  BOOST_TEST(!has(html, "<b>&evil"));
  BOOST_TEST(has(html, "&lt;b&gt;&amp;evil"));
  BOOST_TEST(has(html, "incomplete: job still running or was killed"));
  BOOST_TEST(has(html, "idle_gpus") == false);  // the note's text, not its id, is shown
  BOOST_TEST(has(html, "GPUs idle (mean utilization &lt; 5 %)"));
  // For the rendering test (chromium), when there is one: kept outside the scratch directory.
  fs::create_directories(REPORT_FIXTURE_DIR);
  fs::copy_file(out, fs::path(REPORT_FIXTURE_DIR) / "report.html", fs::copy_options::overwrite_existing);
  // stdout as well.
  const Run rs = cli("job 109 --format html --dir " + scratch().string());
  BOOST_TEST(rs.status == 0);
  BOOST_TEST(rs.out == html);
}

BOOST_AUTO_TEST_CASE(a_corrupt_file_is_a_data_error_naming_it) {
  const fs::path p = rep::job_file_path(scratch(), "110");
  std::ofstream(p) << "not an HDF5 file at all";
  Run r = cli("job 110 --dir " + scratch().string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, p.string()), r.err);
  BOOST_TEST(has(r.err, "not an HDF5 file"), r.err);
  BOOST_TEST(r.out.empty());
  // A real file cut in half.
  const fs::path q = write(make_job("111", balanced(2)));
  fs::resize_file(q, fs::file_size(q) / 2);
  r = cli("job 111 --format json --dir " + scratch().string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "sluice-report: sluice telemetry: " + q.string()), r.err);
  BOOST_TEST(r.out.empty());
}

BOOST_AUTO_TEST_CASE(an_unknown_job_is_a_data_error) {
  const Run r = cli("job 999999 --dir " + scratch().string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "no telemetry for job 999999: " + (scratch() / "job-999999.h5").string() + " does not exist"),
             r.err);
}

BOOST_AUTO_TEST_CASE(an_unwritable_output_is_a_data_error) {
  write(make_job("112", balanced(2)));
  const Run r = cli("job 112 -o " + (scratch() / "no-such-dir" / "r.html").string() + " --dir " + scratch().string());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(has(r.err, "cannot write the report to"), r.err);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  Run r = cli("job 1");  // no --dir, no SLUICE_TELEMETRY_DIR
  BOOST_TEST(r.status == 2);
  BOOST_TEST(has(r.err, "give --dir DIR or set SLUICE_TELEMETRY_DIR"), r.err);
  BOOST_TEST(cli("job 1 --format pdf --dir /tmp").status == 2);
  BOOST_TEST(cli("").status == 2);
  BOOST_TEST(cli("job").status == 2);
  r = cli("--help");
  BOOST_TEST(r.status == 0);
  BOOST_TEST(has(r.out, "cluster [--dir DIR] [--since T]"));
}
