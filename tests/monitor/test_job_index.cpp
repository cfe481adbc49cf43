// The SQLite index behind `sluice-report cluster` (monitor/src/job_index.*): incremental
// updates that read only new or changed files, unreadable files skipped and listed, a schema
// rebuild, jobs with only a record or only a job file, clock skew, and concurrent updates.
#define BOOST_TEST_MODULE monitor_job_index
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include "hostile_files.hpp"
#include "job_index.hpp"
#include "scratch_dir.hpp"  // tests/reader

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace sluice::monitor;
namespace rep = sluice::monitor::report;
namespace fs = std::filesystem;
namespace tt = boost::test_tools;

namespace {

constexpr std::int64_t kHour = 3600 * 1000;
constexpr std::int64_t kT0 = 1763942400000;  // 2025-11-24 00:00:00 UTC

fs::path fresh_dir(const std::string& name) {
  const fs::path d = sluice::reader::test::scratch_dir("sluice-mon-index") / name;
  fs::create_directories(d);
  return d;
}

// A job file of one rank per entry of UTIL (one GPU each, on one host), 100 steps, samples
// spanning [start, end].
void write_telemetry(const fs::path& dir, const std::string& id, std::vector<unsigned> util, std::int64_t start,
                     std::int64_t end) {
  std::vector<RankInput> ranks;
  for (std::size_t r = 0; r < util.size(); ++r) {
    Snapshot x;
    x.threads = 1;
    x.steps = 100;
    x.step_ns = 100 * 100000000ull;
    x.step_compute_ns = x.step_ns;
    x.elapsed_ns = x.step_ns;
    for (int i = 0; i < 100; ++i) x.step_time.record(100000000);
    std::vector<Sample> samples;
    for (std::int64_t t : {start, end}) {
      Sample s;
      s.unix_ms = t;
      GpuSample g;
      g.index = int(r);
      g.util_percent = util[r];
      s.gpus.push_back(g);
      samples.push_back(s);
    }
    ranks.push_back({std::uint32_t(r), "n1", x, samples, 0});
  }
  JobTelemetry t = make_job_telemetry(id, std::move(ranks), true);
  t.written_at_unix_ms = end;
  write_job_file(dir / job_file_name(id), t);
}

NodeJobRecord node_record(std::uint64_t id, const std::string& node, int gpus, std::int64_t start,
                          std::optional<std::int64_t> end) {
  NodeJobRecord r;
  r.job_id = id;
  r.node = node;
  r.nodes = {node};
  r.user = "alice";
  r.account = "ml";
  r.partition = "gpu";
  r.cpus = 8;
  for (int g = 0; g < gpus; ++g) r.gpus.push_back(g);
  r.start_unix_ms = start;
  r.end_unix_ms = end;
  if (end) r.exit_code = 0, r.exit_signal = 0;
  return r;
}

struct JobRow {
  bool found = false;
  std::optional<std::string> user, state;
  std::int64_t start = 0;
  std::optional<std::int64_t> end;
  std::int64_t gpus = 0;
  std::optional<double> util, alloc, used, idle;
  bool has_record = false, has_job_file = false;
  std::optional<std::string> note;
};

JobRow row(rep::JobIndex& ix, const std::string& id) {
  rep::Statement q = ix.prepare(
      "SELECT \"user\", state, start_ms, end_ms, gpus_allocated, gpu_util_mean, gpu_hours_allocated, gpu_hours_used, "
      "gpu_hours_idle, has_record, has_job_file, note FROM jobs WHERE job_id = ?1");
  q.bind(1, id);
  JobRow r;
  if (!q.step()) return r;
  r.found = true;
  r.user = q.opt_text(0);
  r.state = q.opt_text(1);
  r.start = q.int64(2);
  r.end = q.opt_int64(3);
  r.gpus = q.int64(4);
  r.util = q.opt_real(5);
  r.alloc = q.opt_real(6);
  r.used = q.opt_real(7);
  r.idle = q.opt_real(8);
  r.has_record = q.int64(9) != 0;
  r.has_job_file = q.int64(10) != 0;
  r.note = q.opt_text(11);
  return r;
}

// Three jobs: 1 with both files (2 GPUs at 60 % and 2 %), 2 with a record only, 3 with a job file only.
fs::path three_jobs(const std::string& name) {
  const fs::path dir = fresh_dir(name);
  write_telemetry(dir, "1", {60, 2}, kT0, kT0 + 2 * kHour);
  write_node_record(job_record_dir(dir), node_record(1, "n1", 2, kT0, kT0 + 2 * kHour));
  write_node_record(job_record_dir(dir), node_record(2, "n1", 4, kT0, kT0 + kHour));
  write_telemetry(dir, "3", {50, 50, 50}, kT0, kT0 + 4 * kHour);
  return dir;
}

}  // namespace

BOOST_AUTO_TEST_CASE(file_names_give_the_job) {
  BOOST_TEST(rep::job_key_of_job_file("job-123.h5").value_or("") == "123");
  BOOST_TEST(rep::job_key_of_job_file("job-local-host-42.h5").value_or("") == "local-host-42");
  BOOST_TEST(!rep::job_key_of_job_file(".job-123.h5.tmp-77"));
  BOOST_TEST(!rep::job_key_of_job_file("job-.h5"));
  BOOST_TEST(!rep::job_key_of_job_file("notes.txt"));
  BOOST_TEST(rep::job_key_of_record("job-42.node1.json").value_or("") == "42");
  BOOST_TEST(rep::job_key_of_record("job-42.gpu-a.b.json").value_or("") == "42");
  BOOST_TEST(!rep::job_key_of_record("job-x.node1.json"));
  BOOST_TEST(!rep::job_key_of_record("job-42.json"));
  BOOST_TEST(!rep::job_key_of_record(".job-42.n1.json.tmp"));
}

BOOST_AUTO_TEST_CASE(jobs_with_both_files_a_record_only_or_a_job_file_only) {
  const fs::path dir = three_jobs("kinds");
  rep::JobIndex ix(rep::default_index_path(dir));
  const rep::UpdateStats s = ix.update(dir);
  BOOST_TEST(s.files_seen == 4u);
  BOOST_TEST(s.files_read == 4u);
  BOOST_TEST(s.jobs_updated == 3u);
  BOOST_TEST(s.skipped.empty());
  BOOST_TEST(ix.job_count() == 3);

  const JobRow both = row(ix, "1");
  BOOST_TEST_REQUIRE(both.found);
  BOOST_TEST(both.user.value_or("") == "alice");
  BOOST_TEST(both.state.value_or("") == "COMPLETED");
  BOOST_TEST(both.gpus == 2);
  BOOST_TEST(both.util.value_or(-1) == 31.0, tt::tolerance(1e-9));
  BOOST_TEST(both.alloc.value_or(-1) == 4.0, tt::tolerance(1e-9));
  BOOST_TEST(both.used.value_or(-1) == 4.0 * 0.31, tt::tolerance(1e-9));
  BOOST_TEST(both.idle.value_or(-1) == 2.0, tt::tolerance(1e-9));  // the GPU at 2 %, 2 h
  BOOST_TEST(both.has_record);
  BOOST_TEST(both.has_job_file);

  // The job did not use the runtime: allocated known, used unknown.
  const JobRow record_only = row(ix, "2");
  BOOST_TEST_REQUIRE(record_only.found);
  BOOST_TEST(record_only.gpus == 4);
  BOOST_TEST(record_only.alloc.value_or(-1) == 4.0, tt::tolerance(1e-9));
  BOOST_TEST(!record_only.used);
  BOOST_TEST(!record_only.util);
  BOOST_TEST(!record_only.has_job_file);

  // No plugin: the GPUs the file reports, the samples' span; who ran it is unknown.
  const JobRow file_only = row(ix, "3");
  BOOST_TEST_REQUIRE(file_only.found);
  BOOST_TEST(!file_only.user);
  BOOST_TEST(!file_only.state);
  BOOST_TEST(file_only.gpus == 3);
  BOOST_TEST(file_only.alloc.value_or(-1) == 12.0, tt::tolerance(1e-9));
  BOOST_TEST(file_only.used.value_or(-1) == 6.0, tt::tolerance(1e-9));
  BOOST_TEST(!file_only.has_record);
}

BOOST_AUTO_TEST_CASE(an_update_reads_only_new_changed_or_removed_files) {
  const fs::path dir = three_jobs("incremental");
  rep::JobIndex ix(rep::default_index_path(dir));
  BOOST_TEST(ix.update(dir).files_read == 4u);

  rep::UpdateStats s = ix.update(dir);  // nothing changed
  BOOST_TEST(s.files_seen == 4u);
  BOOST_TEST(s.files_read == 0u);
  BOOST_TEST(s.jobs_updated == 0u);

  // A reopened index (a new run) remembers the stamps too.
  {
    rep::JobIndex again(rep::default_index_path(dir));
    BOOST_TEST(again.update(dir).files_read == 0u);
  }

  // The same directory spelt another way (a symbolic link, "."): the same files.
  fs::create_directory_symlink(dir, dir.parent_path() / "incremental-link");
  BOOST_TEST(ix.update(dir.parent_path() / "incremental-link" / ".").files_read == 0u);
  // Another directory: the index starts over (its files are not the others').
  const fs::path other = three_jobs("incremental-other");
  s = ix.update(other);
  BOOST_TEST(s.files_read == 4u);
  BOOST_TEST(s.files_removed == 0u);
  BOOST_TEST(ix.job_count() == 3);
  BOOST_TEST(ix.update(dir).files_read == 4u);

  // Job 2's epilog rewrote its record: that file alone is read, that job alone re-derived.
  write_node_record(job_record_dir(dir), node_record(2, "n1", 4, kT0, kT0 + 3 * kHour));
  s = ix.update(dir);
  BOOST_TEST(s.files_read == 1u);
  BOOST_TEST(s.jobs_updated == 1u);
  BOOST_TEST(row(ix, "2").alloc.value_or(-1) == 12.0, tt::tolerance(1e-9));

  // A second node's record of job 1 arrives: only it is read, and the job is merged from both.
  write_node_record(job_record_dir(dir), node_record(1, "n2", 2, kT0 - kHour, kT0 + 2 * kHour));
  s = ix.update(dir);
  BOOST_TEST(s.files_read == 1u);
  BOOST_TEST(row(ix, "1").gpus == 4);
  BOOST_TEST(row(ix, "1").start == kT0 - kHour);  // earliest prolog

  // A new job file; and a job file removed.
  write_telemetry(dir, "2", {100, 100, 100, 100}, kT0, kT0 + 3 * kHour);
  fs::remove(dir / job_file_name("3"));
  s = ix.update(dir);
  BOOST_TEST(s.files_read == 1u);
  BOOST_TEST(s.files_removed == 1u);
  BOOST_TEST(s.jobs_updated == 2u);
  BOOST_TEST(row(ix, "2").used.value_or(-1) == 12.0, tt::tolerance(1e-9));
  BOOST_TEST(!row(ix, "3").found);
  BOOST_TEST(ix.job_count() == 2);
}

BOOST_AUTO_TEST_CASE(unreadable_files_are_skipped_and_listed) {
  const fs::path dir = three_jobs("skipped");
  std::ofstream(dir / "job-7.h5") << "not an HDF5 file";
  std::ofstream(job_record_dir(dir) / "job-8.n1.json") << "{\"schema\": \"sluice.monitor.record/1\", \"job_id\":";
  std::ofstream(job_record_dir(dir) / "job-9.n1.json") << to_json(node_record(10, "n1", 1, kT0, kT0 + kHour));
  std::ofstream(dir / ".job-11.h5.tmp-4242") << "a write cut short";  // ignored altogether
  rep::JobIndex ix(rep::default_index_path(dir));
  rep::UpdateStats s = ix.update(dir);
  BOOST_TEST(s.files_seen == 7u);
  BOOST_TEST(ix.job_count() == 3);  // the readable ones
  BOOST_TEST_REQUIRE(s.skipped.size() == 3u);
  BOOST_TEST(s.skipped[0].path == (dir / "job-7.h5").string());
  BOOST_TEST(s.skipped[0].reason.find("job-7.h5") != std::string::npos, s.skipped[0].reason);
  BOOST_TEST(s.skipped[1].path == (job_record_dir(dir) / "job-8.n1.json").string());
  BOOST_TEST(s.skipped[1].reason.find("not a JSON object") != std::string::npos, s.skipped[1].reason);
  BOOST_TEST(s.skipped[2].reason.find("holds job 10, not 9") != std::string::npos, s.skipped[2].reason);

  // Still listed on the next update, without reading them again.
  s = ix.update(dir);
  BOOST_TEST(s.files_read == 0u);
  BOOST_TEST(s.skipped.size() == 3u);

  // Repaired: read again, no longer skipped.
  write_telemetry(dir, "7", {90}, kT0, kT0 + kHour);
  s = ix.update(dir);
  BOOST_TEST(s.files_read == 1u);
  BOOST_TEST(s.skipped.size() == 2u);
  BOOST_TEST(row(ix, "7").found);

  // A readable record that turns bad: the job loses what it said.
  std::ofstream(job_record_dir(dir) / node_record_file_name(2, "n1")) << "garbage";
  s = ix.update(dir);
  BOOST_TEST(s.skipped.size() == 3u);
  BOOST_TEST(!row(ix, "2").found);
}

BOOST_AUTO_TEST_CASE(an_index_of_another_schema_version_is_rebuilt) {
  const fs::path dir = three_jobs("schema");
  const fs::path file = rep::default_index_path(dir);
  {
    rep::JobIndex ix(file);
    BOOST_TEST(ix.schema_version() == rep::kIndexSchemaVersion);
    ix.update(dir);
    ix.exec("UPDATE meta SET value = 0 WHERE key = 'schema_version'");
    ix.exec("CREATE TABLE leftover(x)");
  }
  rep::JobIndex ix(file);
  BOOST_TEST(ix.schema_version() == rep::kIndexSchemaVersion);
  BOOST_TEST(ix.job_count() == 0);
  BOOST_TEST(ix.update(dir).files_read == 4u);  // everything read again
  BOOST_TEST(ix.job_count() == 3);
  BOOST_CHECK_THROW(ix.exec("SELECT * FROM leftover"), rep::IndexError);
}

BOOST_AUTO_TEST_CASE(sqlite_failures_name_the_file_and_the_statement) {
  const fs::path dir = fresh_dir("errors");
  rep::JobIndex ix(dir / "ix.sqlite");
  try {
    ix.exec("SELECT nonsense FROM nowhere");
    BOOST_FAIL("no exception");
  } catch (const rep::IndexError& e) {
    BOOST_TEST(e.file() == (dir / "ix.sqlite").string());
    BOOST_TEST(e.statement() == "SELECT nonsense FROM nowhere");
    BOOST_TEST(std::string(e.what()).find("no such table: nowhere") != std::string::npos, e.what());
  }
  BOOST_CHECK_THROW(rep::JobIndex(dir / "missing" / "ix.sqlite"), rep::IndexError);
  std::ofstream(dir / "not-a-db.sqlite") << std::string(4096, 'x');
  BOOST_CHECK_THROW(rep::JobIndex(dir / "not-a-db.sqlite"), rep::IndexError);
  BOOST_CHECK_THROW(ix.update(dir / "missing"), sluice::Error);
}

BOOST_AUTO_TEST_CASE(clock_skew_end_before_start_is_clamped_and_noted) {
  const fs::path dir = fresh_dir("skew");
  // Node n2's clock runs ahead: its prolog is later than every epilog.
  NodeJobRecord a = node_record(20, "n1", 2, kT0 + 2 * kHour, kT0 + kHour);
  write_node_record(job_record_dir(dir), a);
  rep::JobIndex ix(rep::default_index_path(dir));
  const rep::UpdateStats s = ix.update(dir);
  BOOST_TEST_REQUIRE(s.notes.size() == 1u);
  BOOST_TEST(s.notes[0].find("job 20: ends 3600.0 s before it starts") != std::string::npos, s.notes[0]);
  const JobRow r = row(ix, "20");
  BOOST_TEST(r.end.value_or(0) == r.start);
  BOOST_TEST(r.alloc.value_or(-1) == 0.0);
  BOOST_TEST(r.note.has_value());
}

BOOST_AUTO_TEST_CASE(concurrent_updates_do_not_corrupt_the_index) {
  const fs::path dir = three_jobs("concurrent");
  for (int i = 0; i < 20; ++i) write_node_record(job_record_dir(dir), node_record(100 + i, "n1", 1, kT0, kT0 + kHour));
  std::vector<std::string> errors(2);
  std::vector<std::thread> runs;
  for (int t = 0; t < 2; ++t)
    runs.emplace_back([&, t] {
      try {
        for (int k = 0; k < 3; ++k) {
          rep::JobIndex ix(rep::default_index_path(dir));
          ix.update(dir);
        }
      } catch (const std::exception& e) {
        errors[std::size_t(t)] = e.what();
      }
    });
  for (auto& r : runs) r.join();
  BOOST_TEST(errors[0] == "");
  BOOST_TEST(errors[1] == "");
  rep::JobIndex ix(rep::default_index_path(dir));
  BOOST_TEST(ix.job_count() == 23);
  BOOST_TEST(ix.update(dir).files_read == 0u);
}

// The index is trusted; a file someone else could have planted is refused, not opened.
BOOST_AUTO_TEST_CASE(a_planted_index_is_refused) {
  const fs::path dir = fresh_dir("planted");
  const fs::path target = dir / "someone-elses.sqlite";
  { rep::JobIndex other(target); }
  fs::create_symlink(target, dir / "link.sqlite");
  auto refused = [](const fs::path& f, const std::string& why) {
    try {
      rep::JobIndex ix(f);
      BOOST_ERROR("opened " << f);
    } catch (const rep::IndexError& e) {
      BOOST_TEST(std::string(e.what()).find(why) != std::string::npos, e.what());
    }
  };
  refused(dir / "link.sqlite", "symbolic link");
  fs::permissions(target, fs::perms::others_write, fs::perm_options::add);
  refused(target, "others may write it");
  fs::create_directory(dir / "a-directory");
  refused(dir / "a-directory", "not a regular file");
}

// Table names come from the file: a name that tries to end the DROP statement and run its
// own (ATTACH a new file) is dropped as a name, nothing else runs.
BOOST_AUTO_TEST_CASE(table_names_from_the_file_cannot_inject_sql) {
  const fs::path dir = fresh_dir("inject");
  const fs::path file = dir / "ix.sqlite", planted = dir / "planted.db";
  {
    rep::JobIndex ix(file);
    ix.exec("UPDATE meta SET value = 0 WHERE key = 'schema_version'");
    ix.exec("CREATE TABLE \"a\"\"; ATTACH DATABASE '" + planted.string() + "' AS p; CREATE TABLE p.t(x); --\"(x)");
  }
  rep::JobIndex ix(file);  // another schema version: every table is dropped and rebuilt
  BOOST_TEST(ix.schema_version() == rep::kIndexSchemaVersion);
  BOOST_TEST(!fs::exists(planted));
  BOOST_CHECK_THROW(ix.exec("ATTACH DATABASE '" + planted.string() + "' AS q"), rep::IndexError);  // ATTACH is off
  BOOST_TEST(!fs::exists(planted));
}

// The default index is the caller's own, outside the shared telemetry directory.
BOOST_AUTO_TEST_CASE(the_default_index_is_per_user) {
  const fs::path dir = fresh_dir("default");
  const fs::path ix = rep::default_index_path(dir);
  BOOST_TEST(ix.parent_path().filename() == "sluice");
  BOOST_TEST(ix.string().find(dir.string()) == std::string::npos, ix.string());
  BOOST_TEST(rep::default_index_path(dir) == ix);                     // stable
  BOOST_TEST(rep::default_index_path(dir / "other") != ix);           // per directory
  BOOST_TEST(((fs::status(ix.parent_path()).permissions() & fs::perms::others_all) == fs::perms::none));
}

// --- issue 16: hostile and planted job files -------------------------------------------------

BOOST_AUTO_TEST_CASE(a_file_declaring_huge_datasets_is_skipped_naming_file_and_dataset) {
  const fs::path dir = three_jobs("huge");
  sluice::monitor::test::make_huge_dataset_file(dir / "job-12.h5", "12", hsize_t(1) << 24);
  // In a child with 512 MiB to spare: the old reader allocated the 2^24 declared rows.
  const auto r = sluice::monitor::test::run_bounded(std::uint64_t(512) << 20, [&] {
    rep::JobIndex ix(dir.parent_path() / "huge.sqlite");
    const rep::UpdateStats s = ix.update(dir);
    std::string out = std::to_string(ix.job_count()) + " jobs";
    for (const auto& k : s.skipped) out += "\nskipped " + k.path + " | " + k.reason;
    return out;
  });
  BOOST_TEST_MESSAGE("child status " << r.status << ": " << r.text);
  BOOST_TEST_REQUIRE(r.status == 0, r.text);
  BOOST_TEST(r.text.rfind("3 jobs\nskipped " + (dir / "job-12.h5").string() + " | ", 0) == 0u, r.text);
  BOOST_TEST(r.text.find("/ranks/0/series/t_s: declares 16777216 values") != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(a_job_file_not_owned_by_the_jobs_user_is_not_merged) {
  const fs::path dir = fresh_dir("planted");
  NodeJobRecord rec = node_record(47, "n1", 2, kT0, kT0 + 2 * kHour);
  rec.uid = 1000;
  write_node_record(job_record_dir(dir), rec);
  write_telemetry(dir, "47", {60, 60}, kT0, kT0 + 2 * kHour);
  if (!sluice::monitor::test::chown_to(dir / "job-47.h5", 65534)) {
    BOOST_TEST_MESSAGE("not root: cannot give the file another owner; skipped");
    return;
  }
  rep::JobIndex ix(dir.parent_path() / "planted.sqlite");
  rep::UpdateStats s = ix.update(dir);
  JobRow j = row(ix, "47");
  BOOST_TEST(j.found);
  BOOST_TEST(j.has_record);
  BOOST_TEST(!j.has_job_file);  // the planted figures are not the job's
  BOOST_TEST(!j.util.has_value());
  BOOST_TEST(!j.used.has_value());
  BOOST_TEST(j.alloc.value_or(0) == 4.0, tt::tolerance(1e-9));  // the record's 2 GPUs x 2 h
  BOOST_TEST_REQUIRE(s.unverified.size() == 1u);
  BOOST_TEST(s.unverified[0].job_id == "47");
  BOOST_TEST(s.unverified[0].file == (dir / "job-47.h5").string());
  BOOST_TEST(s.unverified[0].owner_uid == 65534u);
  BOOST_TEST(s.unverified[0].job_uid == 1000u);

  // The job's user's own file (or root's) counts; the listing empties.
  BOOST_TEST_REQUIRE(sluice::monitor::test::chown_to(dir / "job-47.h5", 1000));
  write_telemetry(dir, "47", {60, 60}, kT0, kT0 + 2 * kHour);  // a new file (root's): re-read
  BOOST_TEST_REQUIRE(sluice::monitor::test::chown_to(dir / "job-47.h5", 1000));
  s = ix.update(dir);
  j = row(ix, "47");
  BOOST_TEST(j.has_job_file);
  BOOST_TEST(j.util.value_or(0) == 60.0, tt::tolerance(1e-9));
  BOOST_TEST(s.unverified.empty());
}
