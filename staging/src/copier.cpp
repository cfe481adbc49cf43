#include <sluice/staging/copier.hpp>

#include <sluice/staging/beneath.hpp>
#include <sluice/staging/hash.hpp>
#include <sluice/staging/manifest.hpp>

#include "copy_range.hpp"
#include "plan.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
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

struct Task {
  std::size_t file;
  std::size_t chunk;  // index into a ChunkedFile's chunks; 0 for whole files
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
  explicit Stage(const StageRequest& r) : req_(r) { ctx_.buffered_only = r.buffered_only; }

  StageResult run() {
    const auto t0 = Clock::now();
    open_destination();
    if (::flock(root_.get(), LOCK_EX | LOCK_NB) != 0)
      throw SystemError("lock " + root_name_ + " (is another sluice-stage writing into it?)", errno);
    manifest_ = Manifest::load(root_.get());
    plan_ = detail::make_plan(req_.source, root_.get(), file_name_, manifest_);
    result_.files = plan_.files.size();
    result_.dirs = plan_.dirs.size();

    std::uint64_t need = 0, replaced = 0;
    for (PlannedFile& f : plan_.files) {
      if (f.action == Action::Skip && req_.verify) f.action = Action::Verify;
      if (f.action == Action::Skip) {
        ++result_.files_skipped;
        result_.bytes_skipped += f.size;
        files_done_++;
      } else if (f.action == Action::Copy) {
        need += f.size;
        if (f.replace || f.must_match) replaced += f.existing_size;
        if (!f.must_match)  // records that the final name, if it appears, is ours
          manifest_.files[f.rel] = {f.source, f.size, f.mtime_ns, 0, chunk_of(f), ManifestEntry::State::Pending};
        dirty_ = true;
      }
    }
    bytes_total_ = need;
    check_space(need > replaced ? need - replaced : 0);

    for (const std::string& d : plan_.dirs) make_dirs_beneath(root_.get(), d, 0700);
    if (dirty_) flush_manifest();
    make_tasks();
    run_pool();

    result_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    report_progress();
    return result_;
  }

 private:
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
    for (std::size_t i = 0; i < plan_.files.size(); ++i)
      if (plan_.files[i].action != Action::Skip && !chunked_[i]) tasks_.push_back({i, 0});
  }

  void run_pool() {
    unsigned jobs = req_.jobs ? req_.jobs : default_jobs();
    jobs = static_cast<unsigned>(std::min<std::size_t>(jobs, std::max<std::size_t>(tasks_.size(), 1)));
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
    if (result_.files_copied > 0) {
      for (const std::string& d : plan_.dirs) sync_dir(d);
      sync_dir(".");
    }
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

  void sync_dir(const std::string& rel) {
    UniqueFd d = open_beneath(root_.get(), rel, O_RDONLY | O_DIRECTORY);
    if (::fsync(d.get()) != 0) throw SystemError("fsync " + root_name_ + "/" + rel, errno);
  }

  void worker() {
    while (!stop_) {
      const std::size_t i = next_.fetch_add(1);
      if (i >= tasks_.size()) break;
      const PlannedFile& f = plan_.files[tasks_[i].file];
      try {
        run_task(tasks_[i]);
      } catch (const Error&) {
        fail(std::current_exception());
      } catch (const std::exception& e) {
        fail(std::make_exception_ptr(Error("staging " + f.source + ": " + e.what())));
      }
    }
    std::lock_guard lk(mu_);
    if (--active_ == 0) cv_.notify_all();
  }

  void fail(std::exception_ptr e) {
    std::lock_guard lk(mu_);
    if (!error_) error_ = e;
    stop_ = true;
  }

  void run_task(const Task& t) {
    PlannedFile& f = plan_.files[t.file];
    if (f.action == Action::Verify) return verify(f);
    if (chunked_[t.file]) return copy_chunk(f, *chunked_[t.file], t.chunk);
    copy_whole(f);
  }

  std::string dst_name(const PlannedFile& f) const { return root_name_ + "/" + f.rel; }

  UniqueFd open_source(const PlannedFile& f) {
    int fd = ::open(f.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw SystemError("open " + f.source, errno);
    UniqueFd src(fd);
    check_unchanged(f, src.get());
    return src;
  }

  // The stat of the plan is "before"; this is "during" or "after".
  void check_unchanged(const PlannedFile& f, int src) {
    struct stat st {};
    if (::fstat(src, &st) != 0) throw SystemError("stat " + f.source, errno);
    if (st.st_dev != f.dev || st.st_ino != f.ino || static_cast<std::uint64_t>(st.st_size) != f.size ||
        detail::mtime_ns(st) != f.mtime_ns)
      throw Error("source " + f.source + " changed while it was copied (size " + std::to_string(f.size) + " -> " +
                  std::to_string(st.st_size) + ", or its mtime or inode changed); stage it again");
  }

  TempFile make_temp(const PlannedFile& f) {
    return TempFile(open_beneath(root_.get(), parent_of(f.rel), O_RDONLY | O_DIRECTORY), base_of(f.rel), 0600);
  }

  void copy_whole(PlannedFile& f) {
    UniqueFd src = open_source(f);
    TempFile tmp = make_temp(f);
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
    finalize(f, tmp, src.get(), digest);
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

  void finalize(PlannedFile& f, TempFile& tmp, int src, std::uint64_t digest) {
    const std::string dst = dst_name(f);
    const std::uint64_t chunk = chunk_of(f);
    if (req_.after_copy) req_.after_copy(f.source);
    check_unchanged(f, src);
    if (req_.verify_after_copy && hash_file(src, f.size, chunk, f.source) != digest)
      throw Error("verification failed: " + dst + " differs from " + f.source + " after the copy");
    if (f.must_match) {
      UniqueFd old = open_beneath(tmp.dir(), tmp.final_name(), O_RDONLY);
      if (hash_file(old.get(), f.existing_size, chunk, dst) != digest)
        throw Error("destination " + dst + " exists with different content and was not staged from " + f.source +
                    " (no manifest entry); remove it or stage elsewhere");
    }
    if (::fchmod(tmp.fd(), f.mode & 0700) != 0) throw SystemError("chmod " + dst, errno);
    const timespec times[2] = {{0, UTIME_OMIT}, {f.mtime_ns / 1000000000, f.mtime_ns % 1000000000}};
    if (::futimens(tmp.fd(), times) != 0) throw SystemError("set mtime of " + dst, errno);
    if (::fdatasync(tmp.fd()) != 0) throw SystemError("fsync " + dst, errno);
    try {
      tmp.commit(f.replace || f.must_match);
    } catch (const SystemError& e) {
      if (e.code() != EEXIST) throw;
      throw Error("destination " + dst + " appeared while staging " + f.source + "; not overwritten");
    }
    std::size_t copied;
    {
      std::lock_guard lk(mu_);
      manifest_.files[f.rel] = {f.source, f.size, f.mtime_ns, digest, chunk, ManifestEntry::State::Staged};
      dirty_ = true;
      ++since_flush_;
      copied = ++result_.files_copied;
      result_.bytes_copied += f.size;
    }
    files_done_++;
    if (req_.stop_after_files && copied >= req_.stop_after_files) {
      cancelled_ = true;
      stop_ = true;
    }
  }

  void verify(PlannedFile& f) {
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
    copy_whole(f);
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
  const Clock::time_point start_ = Clock::now();
  UniqueFd root_;
  std::string root_name_, file_name_;
  detail::Plan plan_;
  std::vector<std::unique_ptr<ChunkedFile>> chunked_;
  std::vector<Task> tasks_;
  detail::CopyContext ctx_;
  std::uint64_t bytes_total_ = 0;
  std::atomic<std::uint64_t> files_done_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stop_{false}, cancelled_{false};

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
  return Stage(request).run();
}

}  // namespace sluice::staging
