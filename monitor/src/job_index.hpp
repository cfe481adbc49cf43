// The index behind `sluice-report cluster` (docs/telemetry.md, "sluice-report cluster"): an
// SQLite database with one row per job, updated incrementally from the telemetry directory's
// job files (job-<id>.h5, job_file.hpp) and the SPANK plugin's job records
// (records/job-<id>.<node>.json, job_record.hpp). An update reads only the files that are new
// or changed since the last one (by size and mtime) and re-derives only the jobs they belong to.
//
// Tables: `files` (every file seen: stamp, job, and why it was skipped when it could not be
// read), `records` (each node record's JSON), `telemetry` (what the report needs from each job
// file) and `jobs` (both merged: one row per job). A database of another schema version is
// rebuilt from the files. SQLite stays private: sqlite3 types are only forward-declared here.
#pragma once

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>
#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include "report_job.hpp"  // UnverifiedFile

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::monitor::report {

// Bumped whenever a table changes; a database of another version is rebuilt.
inline constexpr int kIndexSchemaVersion = 2;  // 2: job files' owners, unverified files

// An SQLite failure: the database file, the statement (or step) and SQLite's message.
class IndexError : public Error {
 public:
  IndexError(std::string file, std::string statement, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  const std::string& statement() const noexcept { return statement_; }

 private:
  std::string file_, statement_;
};

struct SqliteDbTraits {
  static sqlite3* invalid() noexcept { return nullptr; }
  static void close(sqlite3* db) noexcept;
};
struct SqliteStmtTraits {
  static sqlite3_stmt* invalid() noexcept { return nullptr; }
  static void close(sqlite3_stmt* s) noexcept;
};
using UniqueSqlite = UniqueHandle<sqlite3*, SqliteDbTraits>;
using UniqueSqliteStmt = UniqueHandle<sqlite3_stmt*, SqliteStmtTraits>;

// A prepared statement; parameters are 1-based (SQLite's), columns 0-based. Every failure is
// an IndexError naming the database file and the statement.
class Statement {
 public:
  Statement(sqlite3* db, std::string db_file, std::string sql);

  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);
  Statement& bind_null(int i);
  template <typename T>
  Statement& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }
  // Steps once: true when a row is ready, false when done.
  bool step();
  // Steps to the end (INSERT, UPDATE, ...), then resets the statement for the next use.
  void run();
  void reset();

  bool is_null(int col) const;
  std::int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  std::optional<std::int64_t> opt_int64(int col) const;
  std::optional<double> opt_real(int col) const;
  std::optional<std::string> opt_text(int col) const;

 private:
  [[noreturn]] void fail(const std::string& step) const;
  sqlite3* db_;
  std::string db_file_, sql_;
  UniqueSqliteStmt stmt_;
};

// A file's identity for the incremental update: changed when size or mtime changed. `path` is
// relative to the telemetry directory ("job-42.h5", "records/job-42.n1.json").
struct FileStamp {
  std::string path;
  std::int64_t size = 0, mtime_ns = 0;
};

// What the report needs from one job file (derived with build_job_report's rules).
struct JobFileSummary {
  bool complete = false;
  std::int64_t start_unix_ms = 0, end_unix_ms = 0;  // oldest and newest sample (else written_at - elapsed, written_at)
  std::uint32_t nodes = 0;                          // distinct hosts
  std::uint32_t gpus_reported = 0;                  // GPUs with samples
  std::optional<double> gpu_util_mean;              // mean over GPUs of their mean utilization, %
  std::uint32_t idle_gpus = 0;                      // GPUs whose mean < kIdleGpuUtilPercent
  std::uint64_t steps = 0;
  double step_p50_ms = 0, data_wait_fraction = 0, allreduce_fraction = 0;
  bool input_bound = false;                         // data wait >= kInputBoundFraction (with steps)
  std::uint32_t stragglers = 0;
  std::uint32_t owner_uid = 0;                      // the file's owner (JobFileOrigin); 0: root
};
JobFileSummary summarize_job_file(const JobTelemetry& job, std::uint32_t owner_uid = 0);

// A file that could not be read (its path: the telemetry directory / the relative path), and
// why; kept until the file changes or disappears.
struct SkippedFile {
  std::string path, reason;
};

// What one update() did.
struct UpdateStats {
  std::size_t files_seen = 0;       // job files and records found
  std::size_t files_read = 0;       // new or changed: opened and read (or failed)
  std::size_t files_removed = 0;    // gone since the last update
  std::size_t jobs_updated = 0;     // rows of `jobs` re-derived
  std::vector<SkippedFile> skipped; // every file currently unreadable (this update's and earlier ones')
  // Every job file currently not attributed to its job: its owner is neither the job's user
  // (from the job's root-written record) nor root (report_job.hpp, job_file_attributable). The
  // job's row has the record's figures only, as a job without a job file.
  std::vector<UnverifiedFile> unverified;
  std::vector<std::string> notes;   // e.g. a job whose end precedes its start (clock skew), clamped
};

// The job key: the id in the file name ("job-<key>.h5", "job-<key>.<node>.json"). Numeric for
// Slurm jobs; a job file may carry another (e.g. "local-host-42"). std::nullopt: not a job file
// or record name (temporary files ".job-*.tmp-*" included).
std::optional<std::string> job_key_of_job_file(std::string_view file_name);
std::optional<std::string> job_key_of_record(std::string_view file_name);

class JobIndex {
 public:
  // Opens (creating) the database at DB_FILE; rebuilds it when its schema version differs.
  // Throws IndexError naming the file (e.g. a read-only directory: give --index).
  explicit JobIndex(std::filesystem::path db_file);
  ~JobIndex();
  JobIndex(JobIndex&&) noexcept;
  JobIndex& operator=(JobIndex&&) noexcept;

  const std::filesystem::path& file() const noexcept { return file_; }
  // Brings the index up to date with TELEMETRY_DIR (and its records/): reads new and changed
  // files, forgets removed ones, re-derives their jobs; one transaction. An index last updated
  // from another directory (compared canonically) starts over. Throws Error when the
  // directory cannot be listed, IndexError on database failures; an unreadable file is skipped.
  UpdateStats update(const std::filesystem::path& telemetry_dir);

  // --- the pieces of update(), public for bulk loads (the benchmark) and tests ---
  // Call inside begin() ... commit(); refresh_jobs() re-derives the given jobs' rows.
  void begin();
  void commit();
  void rollback() noexcept;
  void put_job_file(const FileStamp& f, const std::string& key, const JobFileSummary& s);
  void put_record(const FileStamp& f, const std::string& key, const NodeJobRecord& r);
  void put_skipped(const FileStamp& f, const std::string& key, const std::string& reason);
  void forget_file(const std::string& path);
  // Returns notes (e.g. a clamped end before start).
  std::vector<std::string> refresh_jobs(const std::set<std::string>& keys);

  std::vector<SkippedFile> skipped_files();
  std::vector<UnverifiedFile> unverified_files();
  std::int64_t job_count();
  int schema_version();

  // For the report's queries (same library).
  sqlite3* db() const noexcept { return db_.get(); }
  Statement prepare(std::string sql) const { return Statement(db_.get(), file_.string(), std::move(sql)); }
  void exec(const std::string& sql);

 private:
  void create_schema();
  struct Cache;  // prepared statements reused by the put_* calls
  std::filesystem::path file_;
  std::filesystem::path telemetry_dir_;  // of the last update(): skipped files' paths
  UniqueSqlite db_;
  std::unique_ptr<Cache> cache_;
};

// The stamp of a regular file (stat: size, mtime in ns; `path` as given: make it relative to
// the telemetry directory before put_*); std::nullopt when it is missing or not a regular file.
std::optional<FileStamp> file_stamp(const std::filesystem::path& file);

// The caller's own index of TELEMETRY_DIR: ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/
// index-<hash of the directory's canonical path>.sqlite (the directory created, mode 0700).
// Per user, never in the shared (mode 1777) telemetry directory: a file there could be
// planted by anyone (a link, or a database whose contents the report would trust). Throws
// IndexError when neither variable gives a directory.
std::filesystem::path default_index_path(const std::filesystem::path& telemetry_dir);

}  // namespace sluice::monitor::report
