// The job record (monitor/include/sluice/monitor/job_record.hpp): its JSON, the merge of the
// nodes' records, reading a job's records past damaged ones, and `sluice-report job`'s header
// from it.
#define BOOST_TEST_MODULE monitor_job_record
#include <boost/test/unit_test.hpp>

#include "report_job.hpp"

#include <sluice/monitor/job_record.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
namespace mon = sluice::monitor;

namespace {

mon::NodeJobRecord node(const std::string& name, std::int64_t start, std::optional<std::int64_t> end) {
  mon::NodeJobRecord r;
  r.job_id = 812;
  r.node = name;
  r.nodes = {"n1", "n2"};
  r.user = "alice";
  r.uid = 1000;
  r.account = "ml";
  r.partition = "gpu";
  r.cluster = "c1";
  r.cpus = 8;
  r.gpus = {0, 1, 2, 3};
  r.start_unix_ms = start;
  r.end_unix_ms = end;
  if (end) r.exit_code = 0, r.exit_signal = 0;
  return r;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("sluice-job-record-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

}  // namespace

BOOST_AUTO_TEST_CASE(a_record_round_trips_through_its_json) {
  mon::NodeJobRecord r = node("n1", 1000, 61000);
  r.exit_code = 3;
  r.stage_in_bytes = 1ull << 40;
  r.stage_in_s = 12.5;
  r.stage_error = "stage-out: disk full";
  r.user = "bad\xff";  // invalid UTF-8 from the environment still writes
  const mon::NodeJobRecord back = mon::parse_node_record(mon::to_json(r), "x.json");
  BOOST_TEST(back.job_id == 812u);
  BOOST_TEST(back.nodes == r.nodes);
  BOOST_TEST(back.gpus == r.gpus);
  BOOST_TEST(*back.end_unix_ms == 61000);
  BOOST_TEST(*back.exit_code == 3);
  BOOST_TEST(back.stage_in_bytes == 1ull << 40);
  BOOST_TEST(back.stage_in_s == 12.5);
  BOOST_TEST(back.stage_error == r.stage_error);
  BOOST_TEST(back.user.rfind("bad", 0) == 0u);
  const mon::NodeJobRecord running = mon::parse_node_record(mon::to_json(node("n1", 1000, std::nullopt)), "y.json");
  BOOST_TEST(!running.end_unix_ms);
  BOOST_TEST(!running.exit_code);
}

BOOST_AUTO_TEST_CASE(a_bad_record_is_refused_naming_the_file) {
  for (const std::string& text : {std::string("not json"), std::string("[]"), std::string(R"({"schema":"other/1"})"),
                                  std::string(R"({"schema":"sluice.monitor.record/1","job_id":"x"})")}) {
    try {
      (void)mon::parse_node_record(text, "/t/records/job-1.n1.json");
      BOOST_ERROR("accepted: " << text);
    } catch (const mon::JobRecordError& e) {
      BOOST_TEST(e.file() == "/t/records/job-1.n1.json");
      BOOST_TEST(std::string(e.what()).find("job-1.n1.json") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(nodes_merge_into_one_job) {
  mon::NodeJobRecord a = node("n2", 2000, 70000), b = node("n1", 1000, 65000);
  a.stage_in_bytes = 100, a.stage_in_s = 4;
  b.stage_in_bytes = 50, b.stage_in_s = 9;
  b.stage_error = "stage-out: quota";
  const mon::JobRecord j = mon::merge_node_records({a, b});
  BOOST_TEST(j.job_id == 812u);
  BOOST_TEST(j.user == "alice");
  BOOST_TEST(j.gpus == 8u);
  BOOST_TEST(j.cpus == 16u);
  BOOST_TEST(j.start_unix_ms == 1000);  // earliest prolog
  BOOST_TEST(*j.end_unix_ms == 70000);  // latest epilog
  BOOST_TEST(j.elapsed_s(0) == 69.0);
  BOOST_TEST(j.gpu_hours_allocated(0) == 8 * 69.0 / 3600);
  BOOST_TEST(j.stage_in_bytes == 150u);
  BOOST_TEST(j.stage_in_s == 9.0);  // nodes stage in parallel: the slowest
  BOOST_TEST(j.stage_errors == (std::vector<std::string>{"n1: stage-out: quota"}));
  BOOST_TEST(j.nodes_recorded == (std::vector<std::string>{"n1", "n2"}));
  BOOST_TEST(j.state() == "COMPLETED");

  // One node still running: the job is.
  const mon::JobRecord r = mon::merge_node_records({a, node("n1", 1000, std::nullopt)});
  BOOST_TEST(r.state() == "RUNNING");
  BOOST_TEST(!r.end_unix_ms);
  BOOST_TEST(r.elapsed_s(31000) == 30.0);
  // The same node twice counts once.
  BOOST_TEST(mon::merge_node_records({a, a}).gpus == 4u);

  mon::NodeJobRecord failed = node("n1", 0, 10), killed = node("n1", 0, 10);
  failed.exit_code = 2;
  killed.exit_signal = 9;
  BOOST_TEST(mon::merge_node_records({failed}).state() == "FAILED");
  BOOST_TEST(mon::merge_node_records({killed}).state() == "SIGNALED");

  mon::NodeJobRecord other = node("n1", 0, 10);
  other.job_id = 9;
  BOOST_CHECK_THROW(mon::merge_node_records({a, other}), sluice::InvalidArgument);
  BOOST_CHECK_THROW(mon::merge_node_records({}), sluice::InvalidArgument);
}

BOOST_AUTO_TEST_CASE(reading_a_job_skips_damaged_records_and_other_jobs) {
  TempDir t;
  const fs::path dir = t.path / "records";
  mon::write_node_record(dir, node("n1", 1000, 5000));
  mon::write_node_record(dir, node("n2", 1500, 6000));
  write_text(dir / "job-812.n3.json", "{ truncated");
  mon::NodeJobRecord other = node("n1", 1, 2);
  other.job_id = 8120;  // job-8120.* must not be read as job 812
  mon::write_node_record(dir, other);
  std::vector<std::string> skipped;
  const auto j = mon::read_job_record(dir, 812, &skipped);
  BOOST_REQUIRE(j);
  BOOST_TEST(j->nodes_recorded == (std::vector<std::string>{"n1", "n2"}));
  BOOST_TEST(j->gpus == 8u);
  BOOST_REQUIRE(skipped.size() == 1u);
  BOOST_TEST(skipped[0].find("job-812.n3.json") != std::string::npos);
  BOOST_TEST(!mon::read_job_record(dir, 7));                 // no record: not an error
  BOOST_TEST(!mon::read_job_record(t.path / "missing", 812));  // nor a missing directory
  BOOST_TEST(mon::node_record_file_name(5, "a/../b") == "job-5.a_.._b.json");
}

BOOST_AUTO_TEST_CASE(the_job_report_takes_its_header_from_the_record) {
  mon::RankInput in;
  in.rank = 0;
  in.host = "n1";
  const mon::JobTelemetry job = mon::make_job_telemetry("812", {in}, true);
  namespace rep = mon::report;
  const rep::JobReport bare = rep::build_job_report(job);
  BOOST_TEST(!bare.user);
  BOOST_TEST(!bare.gpus_allocated);

  mon::NodeJobRecord a = node("n1", 1000, 3'601'000);
  a.exit_code = 1;
  a.stage_in_bytes = 2'000'000;
  a.stage_in_s = 1.5;
  rep::ReportInputs inputs;
  inputs.record = mon::merge_node_records({a});
  const rep::JobReport r = rep::build_job_report(job, "f.h5", inputs);
  BOOST_TEST(*r.user == "alice");
  BOOST_TEST(*r.account == "ml");
  BOOST_TEST(*r.partition == "gpu");
  BOOST_TEST(*r.slurm_state == "FAILED");
  BOOST_TEST(*r.gpus_allocated == 4u);
  BOOST_TEST(r.elapsed_s == 3600.0);
  const std::string text = rep::render_text(r);
  BOOST_TEST(text.find("  user        alice\n") != std::string::npos, text);
  BOOST_TEST(text.find("Slurm state FAILED") != std::string::npos);
  BOOST_TEST(text.find("4 allocated, 0 reported") != std::string::npos);
  BOOST_TEST(text.find("code 1") != std::string::npos);
  BOOST_TEST(text.find("staging") != std::string::npos);
  const std::string json = rep::render_json(r);
  BOOST_TEST(json.find("\"gpus\": 4") != std::string::npos, json);
  BOOST_TEST(json.find("\"user\": \"alice\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exit_zero_without_the_final_write_is_reported_as_ended_early) {
  mon::RankInput in;
  in.host = "n1";
  mon::JobTelemetry checkpoint = mon::make_job_telemetry("812", {in}, false);
  checkpoint.written_at_unix_ms = 1'700'000'000'000;
  mon::report::ReportInputs inputs;
  inputs.record = mon::merge_node_records({node("n1", 1000, 5000)});  // exit 0, signal 0
  const auto r = mon::report::build_job_report(checkpoint, "f.h5", inputs);
  BOOST_TEST(*r.slurm_state == mon::report::kEndedEarly);
  BOOST_TEST(std::count_if(r.notes.begin(), r.notes.end(), [](const auto& n) { return n.rule == "ended_early"; }) == 1);
  // The same record with the final write: completed, no note.
  const auto done = mon::report::build_job_report(mon::make_job_telemetry("812", {in}, true), "f.h5", inputs);
  BOOST_TEST(*done.slurm_state == "COMPLETED");
  BOOST_TEST(std::none_of(done.notes.begin(), done.notes.end(), [](const auto& n) { return n.rule == "ended_early"; }));
  // Without a record the rule cannot tell, and says so.
  const auto bare = mon::report::build_job_report(checkpoint);
  BOOST_TEST(std::any_of(bare.skipped_rules.begin(), bare.skipped_rules.end(),
                         [](const auto& s) { return s.rule == "ended_early"; }));
}

BOOST_AUTO_TEST_CASE(sacct_lines_parse_and_fill_what_the_record_lacks) {
  namespace rep = mon::report;
  const auto a = rep::parse_sacct_line("812|alice|ml|gpu|CANCELLED by 1000|0:15|billing=8,cpu=8,gres/gpu=4,mem=64000M,node=2|64000M");
  BOOST_REQUIRE(a);
  BOOST_TEST(a->state == "CANCELLED");
  BOOST_TEST(*a->exit_signal == 15);
  BOOST_TEST(*a->mem_bytes == 64000ull << 20);
  BOOST_TEST(*a->gpus == 4u);
  BOOST_TEST(*a->cpus == 8u);
  BOOST_TEST(!rep::parse_sacct_line("garbage"));
  BOOST_TEST(!rep::parse_sacct_line("812|a|b|c||0:0||"));  // no state
  BOOST_TEST(*rep::parse_sacct_line("9|u|a|p|TIMEOUT|0:0||4G")->mem_bytes == 4ull << 30);  // ReqMem when no TRES
  BOOST_TEST(!rep::parse_sacct_line("9|u|a|p|TIMEOUT|0:0||4000Mc")->mem_bytes);  // per CPU: total unknown
  BOOST_TEST(*rep::parse_sacct_memory("1.5T") == std::uint64_t(1.5 * double(1ull << 40)));
  BOOST_TEST(*rep::parse_sacct_memory("100") == 100ull << 20);
  BOOST_TEST(!rep::parse_sacct_memory("lots"));
  BOOST_TEST(!rep::parse_sacct_memory("nan"));          // NaN and overflow are no request
  BOOST_TEST(!rep::parse_sacct_memory("99999999T"));

  // Accounting says why the job ended (the record alone said ENDED_EARLY) and gives the
  // memory request, which lets the memory rule run.
  mon::RankInput in;
  in.host = "n1";
  rep::ReportInputs inputs;
  inputs.record = mon::merge_node_records({node("n1", 1000, 5000)});
  inputs.record->account.clear();
  inputs.sacct = a;
  const auto r = rep::build_job_report(mon::make_job_telemetry("812", {in}, false), "f.h5", inputs);
  BOOST_TEST(*r.slurm_state == "CANCELLED");
  BOOST_TEST(*r.account == "ml");  // the record had none
  BOOST_TEST(*r.user == "alice");
  BOOST_TEST(*r.gpus_allocated == 4u);  // the record's, not overridden
  BOOST_TEST(*r.mem_requested_bytes == 64000ull << 20);
  BOOST_TEST(r.header_sources == "job record, sacct");
  BOOST_TEST(std::none_of(r.notes.begin(), r.notes.end(), [](const auto& n) { return n.rule == "ended_early"; }));
  BOOST_TEST(std::none_of(r.skipped_rules.begin(), r.skipped_rules.end(),
                          [](const auto& s) { return s.reason.find("request") != std::string::npos; }));
}

BOOST_AUTO_TEST_CASE(sacct_is_asked_only_for_slurm_job_ids_and_its_failures_are_explained) {
  namespace rep = mon::report;
  std::string why;
  BOOST_TEST(!rep::query_sacct("local-vm-1234", std::chrono::seconds(5), &why));
  BOOST_TEST(why == "not a Slurm job id");
  BOOST_TEST(!rep::query_sacct("12;rm -rf /", std::chrono::seconds(5), &why));
  // A stand-in sacct on PATH: one that answers, one that fails as without slurmdbd.
  TempDir t;
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  write_text(t.path / "sacct", "#!/bin/sh\necho \"$2|bob|acct|gpu|TIMEOUT|0:0|cpu=2,mem=2G|2G\"\n");
  fs::permissions(t.path / "sacct", fs::perms::owner_all);
  ::setenv("PATH", (t.path.string() + ":" + saved).c_str(), 1);
  const auto a = rep::query_sacct("4242", std::chrono::seconds(10), &why);
  BOOST_REQUIRE(a);
  BOOST_TEST(a->state == "TIMEOUT");
  BOOST_TEST(a->user == "bob");
  BOOST_TEST(*a->mem_bytes == 2ull << 30);
  write_text(t.path / "sacct", "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n");
  BOOST_TEST(!rep::query_sacct("4242", std::chrono::seconds(10), &why));
  BOOST_TEST(why.find("accounting storage is disabled") != std::string::npos, why);
  // A flood: only the first 1000 lines are kept (memory stays bounded for the whole
  // timeout), so a job line after them is not seen, and the reason says so.
  write_text(t.path / "sacct", "#!/bin/sh\nseq 1 5000\necho \"$2|bob|acct|gpu|COMPLETED|0:0|cpu=2|1G\"\n");
  BOOST_TEST(!rep::query_sacct("4242", std::chrono::seconds(10), &why));
  BOOST_TEST(why == "sacct printed 5001 lines for job 4242; none of the first 1000 was a job line", why);
  ::setenv("PATH", saved.c_str(), 1);
}

BOOST_AUTO_TEST_CASE(a_record_ending_before_it_starts_is_skew_and_the_job_file_gives_the_time) {
  mon::RankInput in;
  in.host = "n1";
  in.snapshot.elapsed_ns = 42'000'000'000;
  const mon::JobTelemetry job = mon::make_job_telemetry("812", {in}, true);
  mon::report::ReportInputs inputs;
  // n2's epilog clock is 3 s behind n1's prolog clock: the merged end precedes the start.
  inputs.record = mon::merge_node_records({node("n1", 10'000, 6'000), node("n2", 12'000, 7'000)});
  BOOST_REQUIRE(*inputs.record->end_unix_ms < inputs.record->start_unix_ms);
  const auto r = mon::report::build_job_report(job, "f.h5", inputs);
  BOOST_TEST(r.elapsed_s == 42.0);
  const auto skew = std::find_if(r.notes.begin(), r.notes.end(), [](const auto& n) { return n.rule == "clock_skew"; });
  BOOST_REQUIRE(skew != r.notes.end());
  BOOST_TEST(skew->text.find("3.0 s before it starts") != std::string::npos, skew->text);
}

// records/ sits in a directory every user may write. What a user could plant there under a
// record's name (a FIFO, a link, a file of their own) is refused at once, never waited on or
// believed; a records/ directory others may write is not believed at all.
BOOST_AUTO_TEST_CASE(planted_records_are_refused_without_blocking) {
  TempDir t;
  const fs::path dir = t.path / "records";
  mon::write_node_record(dir, node("n1", 1000, 5000));
  BOOST_REQUIRE(::mkfifo((dir / "job-812.n2.json").c_str(), 0644) == 0);  // an open would block
  fs::create_symlink(dir / "job-812.n1.json", dir / "job-812.n3.json");
  auto refused = [](const fs::path& f, const std::string& why) {
    try {
      (void)mon::read_node_record_file(f);
      BOOST_ERROR("read " << f);
    } catch (const mon::JobRecordError& e) {
      BOOST_TEST(std::string(e.what()).find(why) != std::string::npos, e.what());
    }
  };
  refused(dir / "job-812.n2.json", "not a regular file");
  refused(dir / "job-812.n3.json", "cannot be opened");  // O_NOFOLLOW: ELOOP
  if (::geteuid() == 0) {  // a file of another user's (root can make one)
    write_text(dir / "job-812.n4.json", mon::to_json(node("n4", 1000, 5000)));
    BOOST_REQUIRE(::chown((dir / "job-812.n4.json").c_str(), 65534, 65534) == 0);
    refused(dir / "job-812.n4.json", "belongs to uid 65534");
  }
  std::vector<std::string> skipped;
  const auto j = mon::read_job_record(dir, 812, &skipped);
  BOOST_REQUIRE(j);
  BOOST_TEST(j->nodes_recorded == std::vector<std::string>{"n1"});
  BOOST_TEST(skipped.size() == (::geteuid() == 0 ? 3u : 2u));

  fs::permissions(dir, fs::perms::others_write, fs::perm_options::add);
  std::string why;
  BOOST_TEST(!mon::trusted_record_dir(dir, &why));
  BOOST_TEST(why.find("writable by others") != std::string::npos, why);
  skipped.clear();
  BOOST_TEST(!mon::read_job_record(dir, 812, &skipped));
  BOOST_REQUIRE(skipped.size() == 1u);
  BOOST_TEST(skipped[0].find("its records are not used") != std::string::npos, skipped[0]);
}
