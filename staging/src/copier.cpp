#include <sluice/staging/copier.hpp>

#include <sluice/staging/beneath.hpp>
#include <sluice/staging/cache.hpp>
#include <sluice/staging/hash.hpp>
#include <sluice/staging/manifest.hpp>
#include <sluice/staging/shard.hpp>

#include "copy_range.hpp"
#include "plan.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

namespace sluice::staging {
namespace {

using detail::PlannedFile;
using Action = PlannedFile::Action;
using Clock = std::chrono::steady_clock;

// A file copied in chunks by several workers into one temporary file.
struct ChunkedFile {
  std::mutex m;
  std::optional<TempFile> tmp;
  UniqueFd src;
  std::vector<std::uint64_t> digests;
  std::atomic<std::size_t> remaining{0};
};

// Files up to this size are read into a worker's buffer once: written from it, hashed from
// it (no read-back of the destination), no copy_file_range.
constexpr std::uint64_t kSmallFile = 256 * 1024;

// Batched commits: files are written to their temporaries without a per-file fdatasync;
// when a worker's batch is full (or old, or the worker is done) one syncfs() of the
// destination makes all their data durable, and only then are they renamed to their
// final names. So a final name never shows data that a crash could lose.
constexpr std::size_t kBatchFiles = 256;
constexpr std::uint64_t kBatchBytes = 64ull << 20;
constexpr auto kBatchAge = std::chrono::seconds(1);

// The process umask, without changing it (Linux >= 4.7 shows it in /proc); -1: unknown.
int current_umask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Umask:", 0) == 0) {
      unsigned m = 0;
      if (std::sscanf(line.c_str() + 6, "%o", &m) == 1) return static_cast<int>(m);
    }
  return -1;
}

// Whole files are handed out in runs of consecutive files (one directory, mostly), so
// workers tend to write into different directories and rarely reopen one.
constexpr std::size_t kTaskFiles = 64;
constexpr std::uint64_t kTaskBytes = 16ull << 20;
// Small sources are opened (and their reads started: POSIX_FADV_WILLNEED) up to a whole
// task ahead, so a cold source is read with many requests in flight per worker: on this
// project's 2-core VM, 20,000 cold small files took 2.5 s with 8 ahead, 2.0-2.2 s with 64.
// Bounded by the descriptors the process may open (read_ahead()).
constexpr std::size_t kMaxReadAhead = kTaskFiles;

// Files opened ahead per worker: half of the descriptor limit (less a reserve) shared by
// JOBS workers, at most a task's files.
std::size_t read_ahead(unsigned jobs) {
  struct rlimit rl {};
  std::size_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) fds = rl.rlim_cur == RLIM_INFINITY ? 65536 : rl.rlim_cur;
  const std::size_t budget = fds > 256 ? (fds - 128) / 2 : fds / 4;
  return std::clamp<std::size_t>(budget / std::max(jobs, 1u), 1, kMaxReadAhead);
}

struct Task {
  std::size_t file;
  std::size_t chunk;      // index into a ChunkedFile's chunks; 0 for whole files
  std::size_t count = 1;  // whole files: indices file..file+count-1 of whole_
};

std::uint64_t default_free_space(int dir) {
  struct statvfs vfs {};
  if (::fstatvfs(dir, &vfs) != 0) throw SystemError("statvfs " + fd_path(dir), errno);
  return static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

std::string parent_of(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? "." : rel.substr(0, p);
}

std::string base_of(const std::string& rel) { return rel.substr(rel.rfind('/') + 1); }

class Stage {
 public:
  explicit Stage(const StageRequest& r) : req_(r) {
    ctx_.buffered_only = r.buffered_only;
    ctx_.direct_io = r.direct_io;
    // The workers' direct-I/O buffers together stay within 256 MiB (32 MiB each up to 8).
    const unsigned jobs = r.jobs ? r.jobs : default_jobs();
    ctx_.direct_block = std::clamp<std::size_t>((std::size_t{256} << 20) / jobs, std::size_t{4} << 20, std::size_t{32} << 20) /
                        4096 * 4096;
  }

  // The manifest's name for a source file (see StageRequest::source_label).
  std::string recorded(const std::string& source) const {
    return req_.source_label.empty() ? source : req_.source_label + ":" + source;
  }

  // One stage per destination: another one (a second node staging out into the same
  // directory) is waited for up to lock_wait, then it is an error.
  void lock_destination() {
    const auto deadline = Clock::now() + req_.lock_wait;
    while (::flock(root_.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err != EWOULDBLOCK || Clock::now() >= deadline || (req_.cancel && req_.cancel->load()))
        throw SystemError("cannot lock the destination " + escape_text(root_name_) + " within " +
                              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(req_.lock_wait).count()) +
                              " s (another process holds a flock on it: another sluice-stage writing into it, or any "
                              "process that can open it)",
                          err);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  StageResult run() {
    const auto t0 = Clock::now();
    open_destination();
    lock_destination();
    manifest_ = Manifest::load(root_.get());
    // The cache's index is read while the sources are listed.
    if (!req_.cache_dir.empty()) open_cache();
    plan_ = detail::make_plan(req_.source, root_.get(), file_name_, manifest_, req_.shard_index, req_.shard_count,
                              req_.source_label, req_.jobs ? req_.jobs : default_jobs());
    result_.files = plan_.files.size();
    result_.dirs = plan_.dirs.size();
    result_.files_other_shards = plan_.other_shards.size();
    // The manifest lists this node's files only: the runtime learns from it what is local.
    for (const std::string& rel : plan_.other_shards) dirty_ = manifest_.files.erase(rel) > 0 || dirty_;
    if (cache_ && !cache_off_) look_up_cached();

    std::uint64_t need = 0, replaced = 0;
    for (PlannedFile& f : plan_.files) {
      if (f.action == Action::Skip && req_.verify) f.action = Action::Verify;
      if (f.action == Action::Skip) {
        ++result_.files_skipped;
        result_.bytes_skipped += f.size;
        files_done_++;
      } else if (f.action == Action::Copy || f.action == Action::Link) {
        if (f.action == Action::Copy) need += f.size;  // a link takes no space
        if (f.action == Action::Copy && (f.replace || f.must_match)) replaced += f.existing_size;
        if (!f.must_match)  // records that the final name, if it appears, is ours
          manifest_.files[f.rel] = {recorded(f.source), f.size, f.mtime_ns, 0, chunk_of(f), ManifestEntry::State::Pending};
        dirty_ = true;
      }
    }
    bytes_total_ = need;
    check_space(need > replaced ? need - replaced : 0);

    for (const std::string& d : plan_.dirs) make_dirs_beneath(root_.get(), d, 0700);
    if (dirty_) flush_manifest();
    make_tasks();
    run_pool();
    if (cache_ && !cache_off_) {
      try {
        cache_->flush_index();
        // Only a stage that added entries can have pushed the cache past cache_max; a
        // stage served from the cache skips the scan of every entry.
        if (req_.cache_max > 0 && cache_grew_.load()) evict_cache(cache_->path(), req_.cache_max);
      } catch (const Error& e) {
        cache_note(std::string("updating the node cache failed: ") + e.what());
      }
    }

    result_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    result_.bytes_direct_io = ctx_.bytes_direct.load();
    result_.note = note_;
    report_progress();
    return result_;
  }

 private:
  // The node cache: opened beneath its path like the destination; unusable (another file
  // system, a refused link) means a note and a plain copy, never a failed stage.
  void open_cache() {
    try {
      cache_ = std::make_unique<NodeCache>(req_.cache_dir, /*create=*/true);
    } catch (const SystemError& e) {  // missing and not creatable, unreadable: copy without it
      cache_note(std::string("the node cache is unusable: ") + e.what());
      return;
    }  // a cache others may write (Error) fails the stage: it is a misconfiguration to fix
    struct stat a {}, b {};
    if (::fstat(cache_->fd(), &a) != 0) throw SystemError("stat " + req_.cache_dir, errno);
    if (::fstat(root_.get(), &b) != 0) throw SystemError("stat " + root_name_, errno);
    if (a.st_dev != b.st_dev) {
      cache_note("the node cache " + req_.cache_dir + " is not on the file system of " + root_name_ +
                 " (hard links cannot cross file systems)");
      return;
    }
    cache_->load_index_ahead();
  }

  void look_up_cached() {
    // Look up every file to copy (a new final name, or one that is ours), before
    // check_space (hits need no space); in parallel, for the entries the index lacks (a
    // record read each).
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < plan_.files.size(); ++i)
      if (plan_.files[i].action == Action::Copy && !plan_.files[i].must_match) todo.push_back(i);
    std::atomic<std::size_t> next{0};
    auto look = [&] {
      for (std::size_t k; !cache_off_ && (k = next.fetch_add(1)) < todo.size();) {
        PlannedFile& f = plan_.files[todo[k]];
        try {
          if (auto e = cache_->lookup(key_of(f))) {
            f.action = Action::Link;
            f.staged_digest = e->xxh3;
            f.staged_chunk = e->chunk_size;
          }
        } catch (const Error& e) {
          cache_note(std::string("the node cache is unreadable: ") + e.what());
        }
      }
    };
    const unsigned n = static_cast<unsigned>(std::min<std::size_t>(req_.jobs ? req_.jobs : default_jobs(), todo.size() / 256 + 1));
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < n; ++t) threads.emplace_back(look);
    look();
    for (auto& th : threads) th.join();
    if (cache_off_)  // half looked up: copy everything rather than trust a failing cache
      for (PlannedFile& f : plan_.files)
        if (f.action == Action::Link) f.action = Action::Copy;
  }

  static CacheKey key_of(const PlannedFile& f) {
    return {f.source, static_cast<std::uint64_t>(f.dev), static_cast<std::uint64_t>(f.ino), f.size, f.mtime_ns, f.ctime_ns};
  }

  // Turns the cache off for the rest of this stage, with the first reason as the note.
  void cache_note(const std::string& why) {
    std::lock_guard lk(note_mu_);
    cache_off_ = true;
    if (note_.empty()) note_ = why + "; copied without it";
  }

  // A committed copy into the cache. SRC_CTIME: the source's ctime after the copy; a
  // source changed since the plan (even with its mtime put back) is not cached.
  void cache_add(const PlannedFile& f, int dir, const std::string& name, std::uint64_t digest, std::int64_t src_ctime) {
    if (!cache_ || cache_off_ || src_ctime != f.ctime_ns || (req_.cache_max > 0 && f.size > req_.cache_max)) return;
    try {
      if (cache_->add({key_of(f), digest, chunk_of(f)}, dir, name)) cache_grew_.store(true, std::memory_order_relaxed);
    } catch (const SystemError& e) {
      if (e.code() == EMLINK) return;  // this file has too many links; others may not
      cache_note(std::string("the node cache could not take a link: ") + e.what());
    } catch (const Error& e) {
      cache_note(std::string("the node cache could not take a link: ") + e.what());
    }
  }

  std::uint64_t chunk_of(const PlannedFile& f) const {
    return req_.chunk_size > 0 && f.size > req_.chunk_size ? req_.chunk_size : 0;
  }

  void open_destination() {
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool dir_source = fs::is_directory(req_.source, ec);
    if (dir_source || (fs::is_directory(req_.destination, ec))) {
      root_name_ = req_.destination;
      file_name_ = dir_source ? "" : fs::path(req_.source).filename().string();
    } else {
      fs::path d(req_.destination);
      root_name_ = d.has_parent_path() ? d.parent_path().string() : ".";
      file_name_ = d.filename().string();
      if (file_name_.empty()) throw InvalidArgument("destination " + req_.destination + ": no file name");
    }
    root_ = open_root(root_name_, /*create=*/true);
  }

  void check_space(std::uint64_t need) {
    if (need == 0) return;
    const std::uint64_t avail = req_.free_space ? req_.free_space(root_.get()) : default_free_space(root_.get());
    if (need > avail)
      throw Error("not enough free space in " + root_name_ + ": " + std::to_string(need) + " bytes to copy, " +
                  std::to_string(avail) + " bytes available");
  }

  // Chunks of big files first, so they start early and spread over every worker.
  void make_tasks() {
    chunked_.resize(plan_.files.size());
    for (std::size_t i = 0; i < plan_.files.size(); ++i) {
      const PlannedFile& f = plan_.files[i];
      if (f.action != Action::Copy || chunk_of(f) == 0) continue;
      const std::size_t n = (f.size + req_.chunk_size - 1) / req_.chunk_size;
      chunked_[i] = std::make_unique<ChunkedFile>();
      chunked_[i]->digests.resize(n);
      chunked_[i]->remaining = n;
      for (std::size_t c = 0; c < n; ++c) tasks_.push_back({i, c});
    }
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < plan_.files.size(); ++i) {
      if (plan_.files[i].action == Action::Skip || chunked_[i]) continue;  // links too are whole-file tasks
      if (whole_tasks_ == 0 || tasks_.back().count >= kTaskFiles || bytes >= kTaskBytes) {
        tasks_.push_back({whole_.size(), 0, 0});
        ++whole_tasks_;
        bytes = 0;
      }
      whole_.push_back(i);
      ++tasks_.back().count;
      bytes += plan_.files[i].size;
    }
  }

  void run_pool() {
    unsigned jobs = req_.jobs ? req_.jobs : default_jobs();
    jobs = static_cast<unsigned>(std::min<std::size_t>(jobs, std::max<std::size_t>(tasks_.size(), 1)));
    read_ahead_ = read_ahead(jobs);
    std::vector<std::thread> threads;
    struct Joiner {  // joins on every path; on an early exit, tells workers to stop first
      std::vector<std::thread>& t;
      std::atomic<bool>& stop;
      ~Joiner() {
        stop = true;
        for (auto& th : t)
          if (th.joinable()) th.join();
      }
    } joiner{threads, stop_};
    active_ = jobs;
    for (unsigned i = 0; i < jobs; ++i) threads.emplace_back([this] { worker(); });

    auto last_flush = Clock::now();
    for (;;) {
      {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, req_.progress_interval, [this] { return active_ == 0; });
        if (active_ == 0) break;
      }
      if (req_.cancel && req_.cancel->load()) {
        cancelled_ = true;
        stop_ = true;
      }
      report_progress();
      if (Clock::now() - last_flush >= req_.manifest_interval || since_flush_ >= req_.manifest_every_files) {
        flush_manifest();
        last_flush = Clock::now();
      }
    }
    for (auto& th : threads) th.join();

    // Renames are durable once their directories are; then the manifest can say so.
    // One syncfs covers every directory of the destination. Links from the node cache
    // alone need none: their data is durable already, and a link lost in a crash is found
    // missing by the next run and made again (a second job's stage-in costs no flush).
    if (result_.files_copied > 0 && ::syncfs(root_.get()) != 0 && !error_)
      error_ = std::make_exception_ptr(SystemError("syncfs " + root_name_, errno));
    try {
      if (dirty_) flush_manifest();
    } catch (...) {
      if (!error_) throw;  // the worker's error says more
    }
    if (error_) std::rethrow_exception(error_);
    if (cancelled_)
      throw Cancelled("staging " + req_.source + " into " + root_name_ + " stopped after " +
                      std::to_string(result_.files_copied) + " files; run it again to resume");
  }

  // Files written and checked by one worker, waiting for their syncfs and rename.
  struct Pending {
    PlannedFile* f;
    TempFile tmp;
    std::uint64_t digest;
    std::int64_t src_ctime;  // after the copy (cache_add)
  };
  struct Worker {
    std::vector<Pending> batch;
    std::uint64_t batch_bytes = 0;
    Clock::time_point batch_start;
    std::string dir_rel;                    // the directory dir refers to
    std::shared_ptr<const UniqueFd> dir;    // opened beneath the root
    std::unique_ptr<char[]> buf;            // kSmallFile bytes
  };

  void worker() {
    Worker w;
    std::string failed_source;
    try {
      while (!stop_) {
        const std::size_t i = next_.fetch_add(1);
        if (i >= tasks_.size()) break;
        const Task& t = tasks_[i];
        if (i < tasks_.size() - whole_tasks_) {  // a chunk of a big file
          failed_source = plan_.files[t.file].source;
          copy_chunk(plan_.files[t.file], *chunked_[t.file], t.chunk);
          continue;
        }
        std::deque<UniqueFd> ahead;
        std::size_t opened = t.file;
        for (std::size_t k = t.file; k < t.file + t.count && !stop_; ++k) {
          for (; opened < t.file + t.count && opened < k + read_ahead_; ++opened) ahead.push_back(prefetch(plan_.files[whole_[opened]]));
          UniqueFd src = std::move(ahead.front());
          ahead.pop_front();
          PlannedFile& f = plan_.files[whole_[k]];
          failed_source = f.source;
          if (f.action == Action::Verify) verify(w, f);
          else if (f.action == Action::Link) link_cached(w, f);
          else copy_whole(w, f, std::move(src));
          if (!w.batch.empty() && (w.batch.size() >= kBatchFiles || w.batch_bytes >= kBatchBytes ||
                                   Clock::now() - w.batch_start >= kBatchAge))
            commit_batch(w);
        }
      }
      // Done, or cancelled: what is written and checked is committed. After an error
      // elsewhere it is dropped (the temporaries are removed).
      failed_source.clear();
      if (!error_) commit_batch(w);
    } catch (const Error&) {
      fail(std::current_exception());
    } catch (const std::exception& e) {
      fail(std::make_exception_ptr(Error("staging " + (failed_source.empty() ? req_.source : failed_source) + ": " + e.what())));
    }
    w.batch.clear();  // unlinks uncommitted temporaries
    std::lock_guard lk(mu_);
    if (--active_ == 0) cv_.notify_all();
  }

  // syncfs, then the renames, then the manifest records them as staged.
  void commit_batch(Worker& w) {
    if (w.batch.empty()) return;
    if (::syncfs(root_.get()) != 0) throw SystemError("syncfs " + root_name_, errno);
    std::size_t done = 0;
    try {
      for (; done < w.batch.size(); ++done) {
        Pending& p = w.batch[done];
        try {
          p.tmp.commit(p.f->replace || p.f->must_match);
        } catch (const SystemError& e) {
          if (e.code() != EEXIST) throw;
          throw Error("destination " + dst_name(*p.f) + " appeared while staging " + p.f->source + "; not overwritten");
        }
      }
    } catch (...) {
      record(w, done);
      w.batch.clear();  // unlinks the temporaries not renamed
      throw;
    }
    record(w, done);
    for (Pending& p : w.batch) cache_add(*p.f, p.tmp.dir(), p.tmp.final_name(), p.digest, p.src_ctime);
    w.batch.clear();
    w.batch_bytes = 0;
  }

  void record(Worker& w, std::size_t n) {
    std::lock_guard lk(mu_);
    for (std::size_t k = 0; k < n; ++k) {
      const PlannedFile& f = *w.batch[k].f;
      manifest_.files[f.rel] = {recorded(f.source), f.size, f.mtime_ns, w.batch[k].digest, chunk_of(f), ManifestEntry::State::Staged};
      ++result_.files_copied;
      result_.bytes_copied += f.size;
    }
    dirty_ = dirty_ || n > 0;
    since_flush_ += n;
    files_done_ += n;
  }

  void fail(std::exception_ptr e) {
    std::lock_guard lk(mu_);
    if (!error_) error_ = e;
    stop_ = true;
  }


  std::string dst_name(const PlannedFile& f) const { return root_name_ + "/" + f.rel; }

  UniqueFd open_source(const PlannedFile& f) {
    int fd = ::open(f.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw SystemError("open " + f.source, errno);
    UniqueFd src(fd);
    check_unchanged(f, src.get());
    return src;
  }

  // The stat of the plan is "before"; this is "during" or "after". Returns the ctime.
  std::int64_t check_unchanged(const PlannedFile& f, int src) {
    struct stat st {};
    if (::fstat(src, &st) != 0) throw SystemError("stat " + f.source, errno);
    if (st.st_dev != f.dev || st.st_ino != f.ino || static_cast<std::uint64_t>(st.st_size) != f.size ||
        detail::mtime_ns(st) != f.mtime_ns)
      throw Error("source " + f.source + " changed while it was copied (size " + std::to_string(f.size) + " -> " +
                  std::to_string(st.st_size) + ", or its mtime or inode changed); stage it again");
    return detail::ctime_ns(st);
  }

  TempFile make_temp(const PlannedFile& f) {
    return TempFile(open_beneath(root_.get(), parent_of(f.rel), O_RDONLY | O_DIRECTORY), base_of(f.rel), 0600);
  }

  // A temporary in F's directory, the directory opened beneath the root once per run of
  // files in it (files are planned directory by directory). Created with F's mode where
  // the umask leaves it intact (finalize checks).
  TempFile make_temp(Worker& w, const PlannedFile& f) { return TempFile(dir_of(w, f), base_of(f.rel), mode_at_create(f)); }

  const std::shared_ptr<const UniqueFd>& dir_of(Worker& w, const PlannedFile& f) {
    std::string dir = parent_of(f.rel);
    if (!w.dir || dir != w.dir_rel) {
      w.dir = std::make_shared<const UniqueFd>(open_beneath(root_.get(), dir, O_RDONLY | O_DIRECTORY));
      w.dir_rel = std::move(dir);
    }
    return w.dir;
  }

  // A cache hit: the entry's data linked and checked (cache.hpp); no syncfs, the data was
  // durable when it entered the cache and the final syncfs covers the link. A new final
  // name is linked directly (linkat never replaces, and the cache's file is always
  // complete); one that is ours goes through a temporary and a rename. With verify, it is
  // re-hashed before it counts. Falls back to a copy when the entry vanished or fails.
  void link_cached(Worker& w, PlannedFile& f) {
    // The cache is root's and shared by the user's jobs: a hit is served only if the user
    // can open the source now (a group removed since leaves the ctime unchanged).
    (void)open_source(f);
    const std::shared_ptr<const UniqueFd> dir = dir_of(w, f);
    const std::string final_name = base_of(f.rel);
    const bool direct = !f.replace;
    std::optional<std::string> linked;
    if (!cache_off_) {
      try {
        linked = cache_->link_into(cached_entry(f), dir->get(), final_name, f.mode & 0700, direct);
      } catch (const SystemError& e) {
        if (e.code() == EEXIST && direct)
          throw Error("destination " + dst_name(f) + " appeared while staging " + f.source + "; not overwritten");
        cache_note(std::string("linking from the node cache failed: ") + e.what());
      } catch (const Error& e) {
        cache_note(std::string("linking from the node cache failed: ") + e.what());
      }
    }
    struct Unlink {  // what was linked, until it counts
      int dir;
      std::string name;
      ~Unlink() {
        if (!name.empty()) ::unlinkat(dir, name.c_str(), 0);
      }
    } guard{dir->get(), linked.value_or("")};
    if (linked && req_.verify) {
      UniqueFd fd = open_beneath(dir->get(), *linked, O_RDONLY | O_NOFOLLOW);
      if (hash_file(fd.get(), f.size, f.staged_chunk, dst_name(f)) != f.staged_digest) {
        cache_->forget(key_of(f));
        linked.reset();
        ::unlinkat(dir->get(), guard.name.c_str(), 0);
        guard.name.clear();
      }
    }
    if (!linked) {
      f.action = Action::Copy;
      bytes_total_ += f.size;
      return copy_whole(w, f);
    }
    if (!direct) commit_temp(dir->get(), *linked, final_name, /*replace=*/true);
    guard.name.clear();
    std::lock_guard lk(mu_);
    manifest_.files[f.rel] = {recorded(f.source), f.size, f.mtime_ns, f.staged_digest, f.staged_chunk, ManifestEntry::State::Staged};
    dirty_ = true;
    ++since_flush_;
    ++result_.files_from_cache;
    result_.bytes_from_cache += f.size;
    files_done_++;
  }

  CacheEntry cached_entry(const PlannedFile& f) const { return {key_of(f), f.staged_digest, f.staged_chunk}; }

  mode_t mode_at_create(const PlannedFile& f) const {
    const mode_t want = f.mode & 0700;
    return umask_ >= 0 && (want & static_cast<mode_t>(umask_)) == 0 ? want : 0600;
  }

  bool is_small(const PlannedFile& f) const {
    return f.action == Action::Copy && chunk_of(f) == 0 && f.size <= kSmallFile;
  }

  // Opens a small source early and asks for its data; empty on any failure (copy_small
  // then opens it itself and reports the error).
  UniqueFd prefetch(const PlannedFile& f) {
    if (!is_small(f) || f.size == 0) return {};
    int fd = ::open(f.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return {};
    ::posix_fadvise(fd, 0, static_cast<off_t>(f.size), POSIX_FADV_WILLNEED);
    return UniqueFd(fd);
  }

  // Reads the whole (small) source once: the same bytes are written and hashed. SRC: the
  // source opened by prefetch, or empty.
  void copy_small(Worker& w, PlannedFile& f, UniqueFd src) {
    if (!src) {
      int fd = ::open(f.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) throw SystemError("open " + f.source, errno);
      src.reset(fd);
    }
    if (!w.buf) w.buf.reset(new char[kSmallFile]);
    char* buf = w.buf.get();
    std::size_t got = 0;
    while (got < f.size) {
      ssize_t n = ::read(src.get(), buf + got, static_cast<std::size_t>(f.size - got));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw SystemError("read " + f.source, errno);
      }
      if (n == 0)
        throw Error("source " + f.source + " changed while it was copied (it became shorter); stage it again");
      got += static_cast<std::size_t>(n);
    }
    const std::uint64_t digest = XXH3_64bits(buf, got);
    TempFile tmp = make_temp(w, f);
    for (std::size_t done = 0; done < got;) {
      ssize_t n = ::write(tmp.fd(), buf + done, got - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw SystemError("write " + dst_name(f), errno);
      }
      done += static_cast<std::size_t>(n);
    }
    ctx_.bytes_done.fetch_add(got, std::memory_order_relaxed);
    // The "after" stat of finalize also catches a source replaced before open (inode).
    finalize(f, tmp, src.get(), digest, &w);
  }

  void copy_whole(Worker& w, PlannedFile& f, UniqueFd pre = {}) {
    if (chunk_of(f) == 0 && f.size <= kSmallFile) return copy_small(w, f, std::move(pre));
    UniqueFd src = open_source(f);
    TempFile tmp = make_temp(w, f);
    const std::uint64_t chunk = chunk_of(f);
    std::uint64_t digest;
    if (chunk == 0) {
      digest = detail::copy_range(src.get(), tmp.fd(), 0, f.size, ctx_, f.source, dst_name(f));
    } else {  // a big file repaired after verify: same digest layout, one thread
      std::vector<std::uint64_t> d;
      for (std::uint64_t off = 0; off < f.size && !stop_; off += chunk)
        d.push_back(detail::copy_range(src.get(), tmp.fd(), off, std::min(chunk, f.size - off), ctx_, f.source, dst_name(f)));
      if (stop_) return;
      digest = combine_chunk_digests(d);
    }
    finalize(f, tmp, src.get(), digest, &w);
  }

  void copy_chunk(PlannedFile& f, ChunkedFile& cf, std::size_t chunk) {
    {
      std::lock_guard lk(cf.m);
      if (!cf.tmp) {
        cf.src = open_source(f);
        cf.tmp.emplace(make_temp(f));
        // Chunks land out of order: reserve the whole file now (ENOSPC now, not mid-way).
        if (::fallocate(cf.tmp->fd(), 0, 0, static_cast<off_t>(f.size)) != 0) {
          if (errno != EOPNOTSUPP && errno != ENOSYS) throw SystemError("fallocate " + dst_name(f), errno);
          if (::ftruncate(cf.tmp->fd(), static_cast<off_t>(f.size)) != 0)
            throw SystemError("ftruncate " + dst_name(f), errno);
        }
      }
    }
    const std::uint64_t off = chunk * req_.chunk_size;
    cf.digests[chunk] = detail::copy_range(cf.src.get(), cf.tmp->fd(), off, std::min(req_.chunk_size, f.size - off), ctx_,
                                           f.source, dst_name(f));
    if (cf.remaining.fetch_sub(1) == 1) {  // the last chunk in finishes the file
      finalize(f, *cf.tmp, cf.src.get(), combine_chunk_digests(cf.digests));
      cf.tmp.reset();
      cf.src.reset();
    }
  }

  // W: the worker whose batch commits the file; nullptr: fdatasync and rename now (files
  // copied in chunks).
  void finalize(PlannedFile& f, TempFile& tmp, int src, std::uint64_t digest, Worker* w = nullptr) {
    const std::string dst = dst_name(f);
    const std::uint64_t chunk = chunk_of(f);
    if (req_.after_copy) req_.after_copy(f.source);
    const std::int64_t src_ctime = check_unchanged(f, src);
    if (req_.verify_after_copy && hash_file(src, f.size, chunk, f.source) != digest)
      throw Error("verification failed: " + dst + " differs from " + f.source + " after the copy");
    if (f.must_match) {
      UniqueFd old = open_beneath(tmp.dir(), tmp.final_name(), O_RDONLY);
      if (hash_file(old.get(), f.existing_size, chunk, dst) != digest)
        throw Error("destination " + dst + " exists with different content and was not staged from " + f.source +
                    " (no manifest entry); remove it or stage elsewhere");
    }
    if ((!w || mode_at_create(f) != (f.mode & 0700)) && ::fchmod(tmp.fd(), f.mode & 0700) != 0)
      throw SystemError("chmod " + dst, errno);
    const timespec times[2] = {{0, UTIME_OMIT}, {f.mtime_ns / 1000000000, f.mtime_ns % 1000000000}};
    if (::futimens(tmp.fd(), times) != 0) throw SystemError("set mtime of " + dst, errno);
    if (w) {
      if (w->batch.empty()) w->batch_start = Clock::now();
      tmp.close();  // a batch may hold hundreds of files
      w->batch.push_back({&f, std::move(tmp), digest, src_ctime});
      w->batch_bytes += f.size;
      count_written();
      return;
    }
    if (::fdatasync(tmp.fd()) != 0) throw SystemError("fsync " + dst, errno);
    try {
      tmp.commit(f.replace || f.must_match);
    } catch (const SystemError& e) {
      if (e.code() != EEXIST) throw;
      throw Error("destination " + dst + " appeared while staging " + f.source + "; not overwritten");
    }
    {
      std::lock_guard lk(mu_);
      manifest_.files[f.rel] = {recorded(f.source), f.size, f.mtime_ns, digest, chunk, ManifestEntry::State::Staged};
      dirty_ = true;
      ++since_flush_;
      ++result_.files_copied;
      result_.bytes_copied += f.size;
    }
    files_done_++;
    cache_add(f, tmp.dir(), tmp.final_name(), digest, src_ctime);
    count_written();
  }

  // stop_after_files counts files written and checked (a batch's are committed on stop).
  void count_written() {
    const std::size_t n = ++written_;
    if (req_.stop_after_files && n >= req_.stop_after_files) {
      cancelled_ = true;
      stop_ = true;
    }
  }

  void verify(Worker& w, PlannedFile& f) {
    std::uint64_t got;
    {
      UniqueFd fd = open_beneath(root_.get(), f.rel, O_RDONLY);
      got = hash_file(fd.get(), f.size, f.staged_chunk, dst_name(f));
    }
    if (got == f.staged_digest) {
      std::lock_guard lk(mu_);
      ++result_.files_skipped;
      result_.bytes_skipped += f.size;
      files_done_++;
      return;
    }
    {
      std::lock_guard lk(mu_);
      ++result_.files_repaired;
    }
    f.replace = true;
    copy_whole(w, f);
  }

  void flush_manifest() {
    std::string text;
    {
      std::lock_guard lk(mu_);
      text = manifest_.to_json();
      dirty_ = false;
      since_flush_ = 0;
    }
    Manifest::save(root_.get(), text);
  }

  void report_progress() {
    if (!req_.on_progress) return;
    Progress p;
    p.bytes_done = ctx_.bytes_done.load();
    p.bytes_total = bytes_total_;
    p.files_done = files_done_.load();
    p.files_total = plan_.files.size();
    p.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    req_.on_progress(p);
  }

  const StageRequest& req_;
  std::unique_ptr<NodeCache> cache_;
  std::atomic<bool> cache_off_{false};
  std::atomic<bool> cache_grew_{false};
  std::size_t read_ahead_ = 1;  // small sources opened ahead per worker (run_pool)  // an entry was added: eviction may be due
  std::mutex note_mu_;
  std::string note_;
  const Clock::time_point start_ = Clock::now();
  UniqueFd root_;
  std::string root_name_, file_name_;
  detail::Plan plan_;
  std::vector<std::unique_ptr<ChunkedFile>> chunked_;
  std::vector<Task> tasks_;          // chunks of big files, then runs of whole files
  std::vector<std::size_t> whole_;   // indices into plan_.files of the whole files
  std::size_t whole_tasks_ = 0;
  detail::CopyContext ctx_;
  std::atomic<std::uint64_t> bytes_total_{0};
  std::atomic<std::uint64_t> files_done_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stop_{false}, cancelled_{false};
  std::atomic<std::size_t> written_{0};
  const int umask_ = current_umask();

  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  unsigned active_ = 0;
  std::exception_ptr error_;
  Manifest manifest_;
  bool dirty_ = false;
  std::atomic<std::size_t> since_flush_{0};
  StageResult result_;
};

}  // namespace

unsigned default_jobs() {
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return std::min(8u, 2 * hw);
}

StageResult stage_tree(const StageRequest& request) {
  if (request.source.empty() || request.source.front() != '/')
    throw InvalidArgument("source '" + request.source + "' must be an absolute path");
  if (request.destination.empty()) throw InvalidArgument("destination is empty");
  check_shard(request.shard_index, request.shard_count);
  return Stage(request).run();
}

}  // namespace sluice::staging
