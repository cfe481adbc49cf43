// The SQLite index of jobs (job_index.hpp; docs/telemetry.md, "sluice-report cluster").
#include "job_index.hpp"

#include "report_job.hpp"

#include <fmt/format.h>
#include <sqlite3.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <system_error>
#include <unordered_map>

namespace sluice::monitor::report {

namespace fs = std::filesystem;

IndexError::IndexError(std::string file, std::string statement, const std::string& what)
    : Error("index " + file + ": " + (statement.empty() ? std::string() : "`" + statement + "`: ") + what),
      file_(std::move(file)),
      statement_(std::move(statement)) {}

void SqliteDbTraits::close(sqlite3* db) noexcept { sqlite3_close_v2(db); }
void SqliteStmtTraits::close(sqlite3_stmt* s) noexcept { sqlite3_finalize(s); }

// --- Statement --------------------------------------------------------------------------------

namespace {
// The statement as messages show it: one line, at most 120 characters.
std::string short_sql(const std::string& sql) {
  std::string s;
  for (char c : sql) {
    if (c == '\n' || c == '\t') c = ' ';
    if (c == ' ' && !s.empty() && s.back() == ' ') continue;
    s += c;
  }
  return s.size() > 120 ? s.substr(0, 117) + "..." : s;
}
}  // namespace

Statement::Statement(sqlite3* db, std::string db_file, std::string sql)
    : db_(db), db_file_(std::move(db_file)), sql_(std::move(sql)) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql_.c_str(), int(sql_.size()), &s, nullptr) != SQLITE_OK) fail("prepare");
  stmt_.reset(s);
}

void Statement::fail(const std::string& step) const {
  throw IndexError(db_file_, short_sql(sql_), step + ": " + sqlite3_errmsg(db_));
}

Statement& Statement::bind(int i, std::int64_t v) {
  if (sqlite3_bind_int64(stmt_.get(), i, v) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind(int i, double v) {
  if (sqlite3_bind_double(stmt_.get(), i, v) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
  if (sqlite3_bind_text(stmt_.get(), i, v.data(), int(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind_null(int i) {
  if (sqlite3_bind_null(stmt_.get(), i) != SQLITE_OK) fail("bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_errmsg is only meaningful before the reset.
  const std::string msg = sqlite3_errmsg(db_);
  sqlite3_reset(stmt_.get());
  throw IndexError(db_file_, short_sql(sql_), "step: " + msg);
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
std::int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_.get(), col); }
std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_.get(), col);
  return p ? std::string(reinterpret_cast<const char*>(p), std::size_t(sqlite3_column_bytes(stmt_.get(), col)))
           : std::string();
}
std::optional<std::int64_t> Statement::opt_int64(int col) const {
  return is_null(col) ? std::nullopt : std::optional(int64(col));
}
std::optional<double> Statement::opt_real(int col) const {
  return is_null(col) ? std::nullopt : std::optional(real(col));
}
std::optional<std::string> Statement::opt_text(int col) const {
  return is_null(col) ? std::nullopt : std::optional(text(col));
}

// --- file names -------------------------------------------------------------------------------

namespace {
bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

std::optional<std::string> job_key_of_job_file(std::string_view name) {
  // "job-<id>.h5"; the writer's temporary files start with a dot and never match.
  if (name.rfind("job-", 0) != 0 || !ends_with(name, ".h5") || name.size() <= 7) return std::nullopt;
  return std::string(name.substr(4, name.size() - 7));
}

std::optional<std::string> job_key_of_record(std::string_view name) {
  // "job-<digits>.<node>.json" (node_record_file_name).
  if (name.rfind("job-", 0) != 0 || !ends_with(name, ".json")) return std::nullopt;
  const std::size_t dot = name.find('.', 4);
  if (dot == std::string_view::npos || dot == 4 || dot + 5 >= name.size()) return std::nullopt;
  const std::string_view id = name.substr(4, dot - 4);
  if (!std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::string(id);
}

fs::path default_index_path(const fs::path& telemetry_dir) {
  fs::path cache;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') cache = x;
  else if (const char* h = std::getenv("HOME"); h && *h == '/') cache = fs::path(h) / ".cache";
  else
    throw IndexError((telemetry_dir / "?").string(), "",
                     "no per-user cache directory for the index (HOME and XDG_CACHE_HOME unset): give --index FILE");
  std::error_code ec;
  const fs::path dir = fs::weakly_canonical(telemetry_dir, ec);
  const std::string key = (ec ? telemetry_dir : dir).string();
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: a stable name per directory
  for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ull;
  const fs::path where = cache / "sluice";
  fs::create_directories(where, ec);
  if (ec) throw IndexError(where.string(), "", "cannot create the index directory: " + ec.message());
  ::chmod(where.c_str(), 0700);
  return where / fmt::format("index-{:016x}.sqlite", h);
}

namespace {
// The index is trusted (its rows become the report): it must be the caller's own regular
// file, not a link and not writable by others. A missing file is created by SQLite.
void check_index_file(const fs::path& file) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw IndexError(file.string(), "", std::string("cannot stat the index: ") + std::strerror(errno));
  }
  std::string why;
  if (S_ISLNK(st.st_mode)) why = "it is a symbolic link";
  else if (!S_ISREG(st.st_mode)) why = "it is not a regular file";
  else if (st.st_uid != ::geteuid()) why = "it belongs to uid " + std::to_string(st.st_uid) + ", not to you";
  else if (st.st_mode & 022) why = "others may write it (mode " + fmt::format("{:o}", st.st_mode & 07777) + ")";
  if (!why.empty())
    throw IndexError(file.string(), "", "refusing to use the index: " + why + "; remove it, or give --index FILE");
}

// "name" with its double quotes doubled: an SQL identifier from the file itself.
std::string quoted_identifier(const std::string& name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
}  // namespace

std::optional<FileStamp> file_stamp(const fs::path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileStamp{p.string(), std::int64_t(st.st_size),
                   std::int64_t(st.st_mtim.tv_sec) * 1000000000 + std::int64_t(st.st_mtim.tv_nsec)};
}

// --- derivation of a job file -----------------------------------------------------------------

JobFileSummary summarize_job_file(const JobTelemetry& job, std::uint32_t owner_uid) {
  const JobReport r = build_job_report(job);
  JobFileSummary s;
  s.owner_uid = owner_uid;
  s.complete = job.complete;
  s.end_unix_ms = r.data_until_unix_ms;
  s.start_unix_ms = r.start_unix_ms.value_or(job.written_at_unix_ms - std::int64_t(job.totals.elapsed_s * 1000));
  s.nodes = std::uint32_t(r.hosts.size());
  s.gpus_reported = std::uint32_t(r.gpus.size());
  if (r.gpu_util_percent) s.gpu_util_mean = r.gpu_util_percent->mean;
  for (const auto& g : r.gpus)
    if (g.util_percent && g.util_percent->mean < kIdleGpuUtilPercent) ++s.idle_gpus;
  s.steps = job.totals.steps.count;
  s.step_p50_ms = job.totals.steps.time_p50_ms;
  s.data_wait_fraction = job.totals.steps.data_wait_fraction;
  s.allreduce_fraction = job.totals.steps.allreduce_fraction;
  s.input_bound = s.steps > 0 && s.data_wait_fraction >= kInputBoundFraction;
  s.stragglers = std::uint32_t(job.stragglers.size());
  return s;
}

// --- JobIndex ---------------------------------------------------------------------------------

namespace {

enum FileKind : std::int64_t { kJobFile = 1, kRecord = 2 };

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value);
CREATE TABLE files(path TEXT PRIMARY KEY, kind INTEGER NOT NULL, job_key TEXT NOT NULL,
                   size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, error TEXT);
CREATE INDEX files_job ON files(job_key);
CREATE TABLE records(path TEXT PRIMARY KEY, job_key TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX records_job ON records(job_key);
CREATE TABLE telemetry(job_key TEXT PRIMARY KEY, path TEXT NOT NULL, complete INTEGER, start_ms INTEGER,
                       end_ms INTEGER, nodes INTEGER, gpus_reported INTEGER, gpu_util_mean REAL,
                       idle_gpus INTEGER, steps INTEGER, step_p50_ms REAL, data_wait_fraction REAL,
                       allreduce_fraction REAL, input_bound INTEGER, stragglers INTEGER, owner_uid INTEGER);
CREATE TABLE jobs(job_id TEXT PRIMARY KEY, user TEXT, account TEXT, partition TEXT, cluster TEXT, state TEXT,
                  start_ms INTEGER NOT NULL, end_ms INTEGER, nodes INTEGER, gpus_allocated INTEGER NOT NULL,
                  cpus_allocated INTEGER, gpu_util_mean REAL, gpu_hours_allocated REAL, gpu_hours_used REAL,
                  gpu_hours_idle REAL, idle_gpus INTEGER, steps INTEGER, step_p50_ms REAL,
                  data_wait_fraction REAL, allreduce_fraction REAL, input_bound INTEGER NOT NULL DEFAULT 0,
                  stragglers INTEGER NOT NULL DEFAULT 0, complete INTEGER, has_record INTEGER NOT NULL,
                  has_job_file INTEGER NOT NULL, note TEXT, uid INTEGER, unverified_file TEXT,
                  unverified_owner_uid INTEGER);
CREATE INDEX jobs_start ON jobs(start_ms);
)sql";

std::optional<std::string> non_empty(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

}  // namespace

struct JobIndex::Cache {
  Statement put_file, put_record, del_record, put_telemetry, del_telemetry, forget_file;
  Statement records_of, telemetry_of, put_job, del_job;
  explicit Cache(const JobIndex& ix)
      : put_file(ix.prepare("INSERT OR REPLACE INTO files(path, kind, job_key, size, mtime_ns, error) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")),
        put_record(ix.prepare("INSERT OR REPLACE INTO records(path, job_key, json) VALUES (?1, ?2, ?3)")),
        del_record(ix.prepare("DELETE FROM records WHERE path = ?1")),
        put_telemetry(ix.prepare(
            "INSERT OR REPLACE INTO telemetry(job_key, path, complete, start_ms, end_ms, nodes, gpus_reported, "
            "gpu_util_mean, idle_gpus, steps, step_p50_ms, data_wait_fraction, allreduce_fraction, input_bound, "
            "stragglers, owner_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")),
        del_telemetry(ix.prepare("DELETE FROM telemetry WHERE path = ?1")),
        forget_file(ix.prepare("DELETE FROM files WHERE path = ?1")),
        records_of(ix.prepare("SELECT path, json FROM records WHERE job_key = ?1")),
        telemetry_of(ix.prepare(
            "SELECT complete, start_ms, end_ms, nodes, gpus_reported, gpu_util_mean, idle_gpus, steps, step_p50_ms, "
            "data_wait_fraction, allreduce_fraction, input_bound, stragglers, owner_uid, path FROM telemetry "
            "WHERE job_key = ?1")),
        put_job(ix.prepare(
            "INSERT OR REPLACE INTO jobs(job_id, user, account, partition, cluster, state, start_ms, end_ms, nodes, "
            "gpus_allocated, cpus_allocated, gpu_util_mean, gpu_hours_allocated, gpu_hours_used, gpu_hours_idle, "
            "idle_gpus, steps, step_p50_ms, data_wait_fraction, allreduce_fraction, input_bound, stragglers, "
            "complete, has_record, has_job_file, note, uid, unverified_file, unverified_owner_uid) VALUES (?1, ?2, "
            "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, "
            "?25, ?26, ?27, ?28, ?29)")),
        del_job(ix.prepare("DELETE FROM jobs WHERE job_id = ?1")) {}
};

JobIndex::JobIndex(fs::path db_file) : file_(std::move(db_file)) {
  check_index_file(file_);
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, nullptr);
  db_.reset(db);  // closed even when the open failed
  if (rc != SQLITE_OK) {
    const int err = sqlite3_system_errno(db);
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    if (err) why += " (" + std::system_category().message(err) + ")";
    throw IndexError(file_.string(), "", "cannot open or create the index: " + why);
  }
  // Another `sluice-report cluster` updating it: wait for its transaction rather than fail.
  // The rollback journal (not WAL) keeps the file usable on network file systems, whose
  // shared-memory locking WAL cannot rely on.
  sqlite3_busy_timeout(db_.get(), 120000);
  // Whatever the file holds, it cannot reach other files (ATTACH) nor run what its schema
  // says (triggers, views calling functions).
  sqlite3_limit(db_.get(), SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  exec("PRAGMA trusted_schema = OFF");
  exec("PRAGMA synchronous = NORMAL");
  // Read, not mapped: a file shrunk under a mapping (NFS) would be SIGBUS. A large page cache
  // (64 MiB) serves the report's scans of the jobs table.
  exec("PRAGMA cache_size = -65536");
  exec("PRAGMA temp_store = MEMORY");
  if (schema_version() != kIndexSchemaVersion) {
    // Another version (or an empty file): rebuild everything from the files.
    begin();
    try {
      if (schema_version() == kIndexSchemaVersion) {  // another run rebuilt it while we waited
        commit();
        cache_ = std::make_unique<Cache>(*this);
        return;
      }
      std::vector<std::string> tables;
      {
        Statement q = prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
        while (q.step()) tables.push_back(q.text(0));
      }
      for (const auto& t : tables) exec("DROP TABLE IF EXISTS " + quoted_identifier(t));
      create_schema();
      commit();
    } catch (...) {
      rollback();
      throw;
    }
  }
  cache_ = std::make_unique<Cache>(*this);
}

JobIndex::~JobIndex() {
  cache_.reset();  // statements before the connection
}
JobIndex::JobIndex(JobIndex&&) noexcept = default;
JobIndex& JobIndex::operator=(JobIndex&&) noexcept = default;

void JobIndex::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg ? msg : sqlite3_errmsg(db_.get());
    sqlite3_free(msg);
    throw IndexError(file_.string(), short_sql(sql), why);
  }
}

int JobIndex::schema_version() {
  Statement has = prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  if (!has.step() || has.int64(0) == 0) return 0;
  Statement q = prepare("SELECT value FROM meta WHERE key = 'schema_version'");
  return q.step() ? int(q.int64(0)) : 0;
}

void JobIndex::create_schema() {
  exec(kSchema);
  exec("INSERT INTO meta(key, value) VALUES ('schema_version', " + std::to_string(kIndexSchemaVersion) + ")");
}

void JobIndex::begin() { exec("BEGIN IMMEDIATE"); }
void JobIndex::commit() { exec("COMMIT"); }
void JobIndex::rollback() noexcept {
  if (!sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void JobIndex::put_job_file(const FileStamp& f, const std::string& key, const JobFileSummary& s) {
  cache_->put_file.bind(1, f.path).bind(2, std::int64_t(kJobFile)).bind(3, key).bind(4, f.size).bind(5, f.mtime_ns);
  cache_->put_file.bind_null(6).run();
  Statement& t = cache_->put_telemetry;
  t.bind(1, key).bind(2, f.path).bind(3, std::int64_t(s.complete)).bind(4, s.start_unix_ms).bind(5, s.end_unix_ms);
  t.bind(6, std::int64_t(s.nodes)).bind(7, std::int64_t(s.gpus_reported)).bind(8, s.gpu_util_mean);
  t.bind(9, std::int64_t(s.idle_gpus)).bind(10, std::int64_t(s.steps)).bind(11, s.step_p50_ms);
  t.bind(12, s.data_wait_fraction).bind(13, s.allreduce_fraction).bind(14, std::int64_t(s.input_bound));
  t.bind(15, std::int64_t(s.stragglers)).bind(16, std::int64_t(s.owner_uid)).run();
}

void JobIndex::put_record(const FileStamp& f, const std::string& key, const NodeJobRecord& r) {
  cache_->put_file.bind(1, f.path).bind(2, std::int64_t(kRecord)).bind(3, key).bind(4, f.size).bind(5, f.mtime_ns);
  cache_->put_file.bind_null(6).run();
  cache_->put_record.bind(1, f.path).bind(2, key).bind(3, to_json(r)).run();
}

void JobIndex::put_skipped(const FileStamp& f, const std::string& key, const std::string& reason) {
  const bool record = f.path.size() >= 5 && f.path.compare(f.path.size() - 5, 5, ".json") == 0;
  cache_->put_file.bind(1, f.path).bind(2, std::int64_t(record ? kRecord : kJobFile)).bind(3, key);
  cache_->put_file.bind(4, f.size).bind(5, f.mtime_ns).bind(6, reason).run();
  // What the file said before it became unreadable no longer counts.
  cache_->del_record.bind(1, f.path).run();
  cache_->del_telemetry.bind(1, f.path).run();
}

void JobIndex::forget_file(const std::string& path) {
  cache_->forget_file.bind(1, path).run();
  cache_->del_record.bind(1, path).run();
  cache_->del_telemetry.bind(1, path).run();
}

std::vector<std::string> JobIndex::refresh_jobs(const std::set<std::string>& keys) {
  std::vector<std::string> notes;
  for (const std::string& key : keys) {
    std::vector<NodeJobRecord> nodes;
    Statement& rq = cache_->records_of;
    rq.bind(1, key);
    while (rq.step()) {
      try {
        nodes.push_back(parse_node_record(rq.text(1), rq.text(0)));
      } catch (const JobRecordError&) {
        // Validated when it was read; a record the index itself mangled is left out.
      }
    }
    rq.reset();
    std::optional<JobRecord> rec;
    if (!nodes.empty()) rec = merge_node_records(nodes);

    // A job file only counts when the job's user (or root) wrote it: anyone can write a
    // job-<id>.h5 into the shared directory. Otherwise the job is as without a job file.
    std::optional<JobFileSummary> tf;
    std::optional<std::string> unverified;
    std::optional<std::int64_t> unverified_owner;
    Statement& tq = cache_->telemetry_of;
    tq.bind(1, key);
    if (tq.step()) {
      JobFileSummary s;
      s.complete = tq.int64(0) != 0;
      s.start_unix_ms = tq.int64(1);
      s.end_unix_ms = tq.int64(2);
      s.nodes = std::uint32_t(tq.int64(3));
      s.gpus_reported = std::uint32_t(tq.int64(4));
      s.gpu_util_mean = tq.opt_real(5);
      s.idle_gpus = std::uint32_t(tq.int64(6));
      s.steps = std::uint64_t(tq.int64(7));
      s.step_p50_ms = tq.real(8);
      s.data_wait_fraction = tq.real(9);
      s.allreduce_fraction = tq.real(10);
      s.input_bound = tq.int64(11) != 0;
      s.stragglers = std::uint32_t(tq.int64(12));
      s.owner_uid = std::uint32_t(tq.int64(13));
      if (rec && !job_file_attributable(s.owner_uid, *rec)) {
        unverified = tq.text(14);
        unverified_owner = s.owner_uid;
      } else {
        tf = s;
      }
    }
    tq.reset();

    if (!rec && !tf) {
      cache_->del_job.bind(1, key).run();
      continue;
    }
    // The record knows who, what was allocated and when (earliest prolog, latest epilog over
    // the nodes); the job file what was used. Without a record: the GPUs the file reports, and
    // its samples' time span.
    std::int64_t start = rec && rec->start_unix_ms > 0 ? rec->start_unix_ms : tf ? tf->start_unix_ms : 0;
    std::optional<std::int64_t> end = rec ? rec->end_unix_ms : std::optional<std::int64_t>(tf->end_unix_ms);
    std::optional<std::string> note;
    if (end && *end < start) {
      note = fmt::format("job {}: ends {:.1f} s before it starts (clock skew between nodes?): counted as 0 s", key,
                         double(start - *end) / 1000.0);
      notes.push_back(*note);
      end = start;
    }
    const std::uint32_t gpus = rec ? rec->gpus : tf->gpus_reported;
    std::optional<double> alloc_h, used_h, idle_h;
    if (end) {
      const double hours = double(*end - start) / 3.6e6;
      alloc_h = gpus * hours;
      if (tf && tf->gpu_util_mean) used_h = *alloc_h * *tf->gpu_util_mean / 100.0;
      if (tf && tf->gpus_reported) idle_h = std::min<double>(tf->idle_gpus, gpus) * hours;
    }
    Statement& j = cache_->put_job;
    j.bind(1, key);
    if (rec) {
      j.bind(2, non_empty(rec->user)).bind(3, non_empty(rec->account)).bind(4, non_empty(rec->partition));
      j.bind(5, non_empty(rec->cluster)).bind(6, rec->state());
    }
    j.bind(7, start).bind(8, end);
    j.bind(9, std::int64_t(rec ? std::max(rec->nodes.size(), rec->nodes_recorded.size()) : tf->nodes));
    j.bind(10, std::int64_t(gpus));
    if (rec) j.bind(11, std::int64_t(rec->cpus));
    j.bind(13, alloc_h).bind(14, used_h).bind(15, idle_h);
    if (tf) {
      j.bind(12, tf->gpu_util_mean).bind(16, std::int64_t(tf->idle_gpus)).bind(17, std::int64_t(tf->steps));
      j.bind(18, tf->step_p50_ms).bind(19, tf->data_wait_fraction).bind(20, tf->allreduce_fraction);
      j.bind(21, std::int64_t(tf->input_bound)).bind(22, std::int64_t(tf->stragglers));
      j.bind(23, std::int64_t(tf->complete));
    } else {
      j.bind(21, std::int64_t(0)).bind(22, std::int64_t(0));
    }
    j.bind(24, std::int64_t(rec.has_value())).bind(25, std::int64_t(tf.has_value())).bind(26, note);
    if (rec) j.bind(27, std::int64_t(rec->uid));
    j.bind(28, unverified).bind(29, unverified_owner);
    j.run();
  }
  return notes;
}

std::vector<SkippedFile> JobIndex::skipped_files() {
  std::vector<SkippedFile> out;
  Statement q = prepare("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path");
  while (q.step()) out.push_back({(telemetry_dir_ / q.text(0)).string(), q.text(1)});
  return out;
}

std::vector<UnverifiedFile> JobIndex::unverified_files() {
  std::vector<UnverifiedFile> out;
  Statement q = prepare(
      "SELECT job_id, unverified_file, unverified_owner_uid, uid, \"user\" FROM jobs WHERE unverified_file IS NOT NULL "
      "ORDER BY job_id");
  while (q.step())
    out.push_back({q.text(0), (telemetry_dir_ / q.text(1)).string(), std::uint32_t(q.int64(2)),
                   std::uint32_t(q.opt_int64(3).value_or(0)), q.opt_text(4).value_or("")});
  return out;
}

std::int64_t JobIndex::job_count() {
  Statement q = prepare("SELECT count(*) FROM jobs");
  return q.step() ? q.int64(0) : 0;
}

UpdateStats JobIndex::update(const fs::path& telemetry_dir) {
  std::error_code ec;
  if (!fs::is_directory(telemetry_dir, ec))
    throw Error("the telemetry directory '" + telemetry_dir.string() + "' " +
                (fs::exists(telemetry_dir, ec) ? "is not a directory" : "does not exist"));
  const std::string canonical = fs::weakly_canonical(telemetry_dir, ec).string();
  UpdateStats stats;
  // Lock first, then look: a concurrent update finished before we compare stamps.
  begin();
  try {
    // The files table holds paths relative to the directory (so "." and its absolute name are
    // the same files); an index last updated from another directory starts over.
    {
      Statement q = prepare("SELECT value FROM meta WHERE key = 'telemetry_dir'");
      const std::optional<std::string> last = q.step() ? q.opt_text(0) : std::nullopt;
      if (last != canonical) {
        for (const char* t : {"files", "records", "telemetry", "jobs"}) exec(std::string("DELETE FROM ") + t);
        prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('telemetry_dir', ?1)").bind(1, canonical).run();
      }
    }
    struct Known {
      std::int64_t size, mtime_ns;
      std::string key;
    };
    std::unordered_map<std::string, Known> known;
    {
      Statement q = prepare("SELECT path, size, mtime_ns, job_key FROM files");
      while (q.step()) known.emplace(q.text(0), Known{q.int64(1), q.int64(2), q.text(3)});
    }
    std::set<std::string> dirty;
    // readdir + fstatat: the unchanged case stats every file, so no path is built for it.
    auto scan = [&](const fs::path& dir, const std::string& prefix, bool records) {
      std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
      if (!d) {
        if (records && errno == ENOENT) return;  // no plugin: no records
        throw SystemError("cannot list the directory '" + dir.string() + "'", errno);
      }
      while (const dirent* e = ::readdir(d.get())) {
        const std::string_view name = e->d_name;
        const std::optional<std::string> key = records ? job_key_of_record(name) : job_key_of_job_file(name);
        if (!key) continue;
        struct stat st{};
        // Links are not followed: a link planted in the shared directory would make the report
        // read (as its caller) a file its planter may not.
        if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        const FileStamp stamp{prefix + e->d_name, std::int64_t(st.st_size),
                              std::int64_t(st.st_mtim.tv_sec) * 1000000000 + std::int64_t(st.st_mtim.tv_nsec)};
        ++stats.files_seen;
        if (auto k = known.find(stamp.path); k != known.end()) {
          const bool same = k->second.size == stamp.size && k->second.mtime_ns == stamp.mtime_ns;
          known.erase(k);
          if (same) continue;
        }
        ++stats.files_read;
        dirty.insert(*key);
        const fs::path file = dir / e->d_name;
        try {
          if (records) {
            NodeJobRecord r = read_node_record_file(file);
            if (std::to_string(r.job_id) != *key)
              throw JobRecordError(file.string(), "holds job " + std::to_string(r.job_id) + ", not " + *key);
            put_record(stamp, *key, r);
          } else {
            // The owner from the descriptor read (fstat), not from the stat above.
            JobFileOrigin origin;
            JobTelemetry job = read_job_file(file, &origin);
            put_job_file(stamp, *key, summarize_job_file(job, origin.owner_uid));
          }
        } catch (const IndexError&) {
          throw;
        } catch (const std::exception& err) {  // JobFileError, JobRecordError: skip and say why
          put_skipped(stamp, *key, err.what());
        }
      }
    };
    scan(telemetry_dir, "", false);
    // Records count only from a directory that root (or the caller) owns alone; otherwise they
    // are all left out (as if removed) and the report says why.
    std::error_code no_dir;
    const fs::path record_dir = job_record_dir(telemetry_dir);
    std::string untrusted;
    if (!fs::exists(fs::symlink_status(record_dir, no_dir)) || trusted_record_dir(record_dir, &untrusted))
      scan(record_dir, std::string(kJobRecordDirName) + "/", true);
    for (const auto& [path, k] : known) {  // not seen: removed
      forget_file(path);
      dirty.insert(k.key);
      ++stats.files_removed;
    }
    stats.notes = refresh_jobs(dirty);
    if (!untrusted.empty()) stats.notes.insert(stats.notes.begin(), untrusted);
    stats.jobs_updated = dirty.size();
    commit();
  } catch (...) {
    rollback();
    throw;
  }
  telemetry_dir_ = telemetry_dir;
  stats.skipped = skipped_files();
  stats.unverified = unverified_files();
  return stats;
}

}  // namespace sluice::monitor::report
