#include "plan.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/shard.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace sluice::staging::detail {
namespace {

using Action = PlannedFile::Action;

std::string join(const std::string& dir, const std::string& name) { return dir == "." ? name : dir + "/" + name; }

std::vector<std::string> list_dir(int dirfd, const std::string& name) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SystemError("open directory " + name, errno);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    throw SystemError("open directory " + name, err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) throw SystemError("read directory " + name, err);
  std::sort(names.begin(), names.end());
  return names;
}

// Directories are listed, and their entries stat'ed, by several threads: on a cold source
// each stat may wait for a disk read of its inode, and a thread waiting is a core idle.
// Work items are a directory's listing or a slice of its entries (kSliceEntries), taken
// last-in first-out so the walk stays depth-first and few directories are open at once.
// Results land in a tree in name order, flattened at the end, so the plan (and the
// shards, which every node must compute alike) is what a one-thread walk would give.
constexpr std::size_t kSliceEntries = 256;

class Planner {
 public:
  Planner(int root, const Manifest& m, std::string source_prefix)
      : root_(root), manifest_(m), source_prefix_(std::move(source_prefix)) {
    if (::fstat(root, &root_st_) != 0) throw SystemError("stat " + fd_path(root), errno);
  }

  // Lists a file; decide() judges it once the shares are known.
  void file(const std::string& src, const struct stat& st, const std::string& rel, int dest_dir) {
    listed_.push_back(listed(src, st, rel, dest_dir));
  }

  // Walks the source directory SRC_FD (at path SRC) with THREADS threads.
  void tree(int src_fd, const std::string& src, unsigned threads) {
    DirNode top;
    top.src = src;
    top.rel = ".";
    {
      std::lock_guard lk(mu_);
      todo_.push_back({&top, 0, src_fd});
    }
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
      try {
        pool.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        break;  // no more threads: the walk needs none
      }
    }
    work();
    for (auto& th : pool) th.join();
    listed_.reserve(listed_.size() + entries_.load());
    flatten(top);
  }

  void remove_stale_temps(int dest_dir, const std::string& rel) {
    for (const std::string& name : list_dir(dest_dir, fd_path(root_) + "/" + rel))
      if (is_temp_name(name)) ::unlinkat(dest_dir, name.c_str(), 0);  // best effort
  }

  void finish(unsigned shard_index, unsigned shard_count) {
    std::vector<unsigned> share;
    if (shard_count > 1) {
      std::vector<ShardFile> listing;
      listing.reserve(listed_.size());
      for (const Listed& l : listed_) listing.push_back({l.f.rel, l.f.size});
      share = assign_shards(listing, shard_count);
    }
    plan.files.reserve(listed_.size());
    for (std::size_t i = 0; i < listed_.size(); ++i) {
      if (!share.empty() && share[i] != shard_index) {
        plan.other_shards.push_back(std::move(listed_[i].f.rel));
        continue;
      }
      decide(listed_[i]);
    }
    listed_.clear();
    if (conflicts_ > 1) first_conflict_ += " (and " + std::to_string(conflicts_ - 1) + " more conflicting files)";
    if (conflicts_ > 0) throw Error(first_conflict_);
  }

  Plan plan;

 private:
  struct Listed {
    PlannedFile f;
    bool exists = false;
    struct stat dst {};
    int stat_errno = 0;
  };

  void decide(Listed& l) {
    PlannedFile& f = l.f;
    const std::string& rel = f.rel;
    const std::string& src = f.source;
    if (l.stat_errno != 0) throw SystemError("stat " + fd_path(root_) + "/" + rel, l.stat_errno);
    auto it = manifest_.files.find(rel);
    const bool ours = it != manifest_.files.end() && it->second.source == source_prefix_ + src;
    if (l.exists) {
      if (!S_ISREG(l.dst.st_mode))
        throw Error("destination " + fd_path(root_) + "/" + rel + " exists and is not a regular file");
      f.existing_size = static_cast<std::uint64_t>(l.dst.st_size);
    }
    if (!l.exists) {
      f.action = Action::Copy;
    } else if (ours && it->second.state == ManifestEntry::State::Staged && it->second.size == f.size &&
               it->second.mtime_ns == f.mtime_ns && f.existing_size == f.size) {
      f.action = Action::Skip;  // upgraded to Verify by the caller when asked
      f.staged_digest = it->second.xxh3;
      f.staged_chunk = it->second.chunk_size;
    } else if (ours) {
      f.replace = true;
    } else if (f.existing_size == f.size) {
      f.must_match = true;
    } else if (conflicts_++ == 0) {
      first_conflict_ = "destination " + fd_path(root_) + "/" + rel + " exists with different content and was not staged from " +
                        src + " (no manifest entry); remove it or stage elsewhere";
    }
    plan.files.push_back(std::move(f));
  }

  struct DirNode;
  struct Entry {
    std::string name;
    std::unique_ptr<DirNode> dir;  // a subdirectory, else a file
    Listed file;
    std::exception_ptr error;
  };
  struct DirNode {
    std::string src, rel;
    UniqueFd fd, dest;  // open while its slices are worked on
    std::vector<Entry> entries;  // in name order
    std::atomic<std::size_t> slices_left{0};
    std::exception_ptr error;  // opening or listing it
  };
  struct Item {
    DirNode* dir;
    std::size_t slice;  // 0: list the directory; k: stat entries [(k-1)*kSliceEntries, ...)
    int fd = -1;        // the source root (already open) when listing "."
  };

  static Listed listed(const std::string& src, const struct stat& st, const std::string& rel, int dest_dir) {
    Listed l;
    PlannedFile& f = l.f;
    f.rel = rel;
    f.source = src;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.mtime_ns = mtime_ns(st);
    f.ctime_ns = ctime_ns(st);
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.mode = st.st_mode;
    const std::string name = rel.substr(rel.rfind('/') + 1);
    l.exists = dest_dir >= 0 && ::fstatat(dest_dir, name.c_str(), &l.dst, AT_SYMLINK_NOFOLLOW) == 0;
    if (!l.exists && dest_dir >= 0 && errno != ENOENT) l.stat_errno = errno;
    return l;
  }

  void work() {
    for (;;) {
      Item it;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return !todo_.empty() || busy_ == 0; });
        if (todo_.empty()) return;
        it = todo_.back();
        todo_.pop_back();
        ++busy_;
      }
      std::vector<Item> more;
      if (it.slice == 0) {
        try {
          list(*it.dir, it.fd, more);
        } catch (...) {
          it.dir->error = std::current_exception();
          it.dir->fd.reset();
          it.dir->dest.reset();
        }
      } else {
        stat_slice(*it.dir, it.slice - 1, more);
        if (--it.dir->slices_left == 0) {  // the last slice closes the directory
          it.dir->fd.reset();
          it.dir->dest.reset();
        }
      }
      std::lock_guard lk(mu_);
      --busy_;
      // Reversed, so the first slice and the first subdirectory are taken first.
      todo_.insert(todo_.end(), more.rbegin(), more.rend());
      if (!more.empty() || busy_ == 0) cv_.notify_all();
    }
  }

  void list(DirNode& d, int given_fd, std::vector<Item>& more) {
    int src_fd = given_fd;
    if (src_fd < 0) {  // beneath the source root, no symlink followed (one may have been swapped in)
      try {
        d.fd = staging::open_beneath(source_root_, d.rel, O_RDONLY | O_DIRECTORY);
      } catch (const SystemError& e) {
        throw SystemError("open directory " + d.src, e.code());
      }
      src_fd = d.fd.get();
    }
    struct stat st {};
    if (::fstat(src_fd, &st) != 0) throw SystemError("stat " + d.src, errno);
    if (st.st_dev == root_st_.st_dev && st.st_ino == root_st_.st_ino)
      throw InvalidArgument("destination " + fd_path(root_) + " is inside the source " + d.src);
    if (given_fd >= 0) source_root_ = given_fd;
    try {
      d.dest = staging::open_beneath(root_, d.rel, O_RDONLY | O_DIRECTORY);
    } catch (const SystemError& e) {
      if (e.code() != ENOENT) throw;
    }
    if (d.dest) remove_stale_temps(d.dest.get(), d.rel);
    std::vector<std::string> names = list_dir(src_fd, d.src);
    d.entries.reserve(names.size());
    entries_ += names.size();
    for (std::string& name : names) {
      if (d.rel == "." && name == kManifestName) continue;  // a staged tree staged again
      if (is_temp_name(name)) continue;
      d.entries.push_back({std::move(name), nullptr, {}, nullptr});
    }
    if (given_fd >= 0) {  // keep the caller's descriptor out of reach of reset()
      d.fd.reset(::dup(given_fd));
      if (!d.fd) throw SystemError("dup " + d.src, errno);
    }
    const std::size_t slices = (d.entries.size() + kSliceEntries - 1) / kSliceEntries;
    d.slices_left = slices;
    if (slices == 0) {
      d.fd.reset();
      d.dest.reset();
    }
    for (std::size_t k = 0; k < slices; ++k) more.push_back({&d, k + 1});
  }

  void stat_slice(DirNode& d, std::size_t slice, std::vector<Item>& more) {
    const std::size_t end = std::min(d.entries.size(), (slice + 1) * kSliceEntries);
    for (std::size_t i = slice * kSliceEntries; i < end; ++i) {
      Entry& e = d.entries[i];
      const std::string path = d.src + "/" + e.name;
      try {
        struct stat cst {};
        if (::fstatat(d.fd.get(), e.name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) throw SystemError("stat " + path, errno);
        if (S_ISLNK(cst.st_mode))
          throw Error("source " + path + " is a symlink; sluice does not follow symlinks inside a source tree "
                      "(stage its target, or replace the link by a copy)");
        if (S_ISDIR(cst.st_mode)) {
          e.dir = std::make_unique<DirNode>();
          e.dir->src = path;
          e.dir->rel = join(d.rel, e.name);
          more.push_back({e.dir.get(), 0});
        } else if (S_ISREG(cst.st_mode)) {
          e.file = listed(path, cst, join(d.rel, e.name), d.dest ? d.dest.get() : -1);
        } else {
          throw Error("source " + path + " is not a regular file or a directory (device, FIFO or socket)");
        }
      } catch (...) {
        e.error = std::current_exception();
      }
    }
  }

  // Depth first, in name order; the first error in that order is the one a one-thread walk
  // would have met.
  void flatten(DirNode& d) {
    if (d.error) std::rethrow_exception(d.error);
    if (d.rel != ".") plan.dirs.push_back(d.rel);
    for (Entry& e : d.entries) {
      if (e.error) std::rethrow_exception(e.error);
      if (e.dir) flatten(*e.dir);
      else listed_.push_back(std::move(e.file));
    }
    d.entries.clear();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> todo_;
  unsigned busy_ = 0;
  std::atomic<std::size_t> entries_{0};  // listed so far (files and directories)
  int source_root_ = -1;
  std::vector<Listed> listed_;
  int root_;
  struct stat root_st_ {};
  const Manifest& manifest_;
  const std::string source_prefix_;  // "LABEL:" (StageRequest::source_label) or ""
  std::size_t conflicts_ = 0;
  std::string first_conflict_;
};

}  // namespace

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::int64_t ctime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
}

Plan make_plan(const std::string& source, int root, const std::string& file_name, const Manifest& manifest,
               unsigned shard_index, unsigned shard_count, const std::string& source_label, unsigned threads) {
  Planner p(root, manifest, source_label.empty() ? "" : source_label + ":");
  int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO must not hang us
  if (fd < 0) throw SystemError("open source " + source, errno);
  UniqueFd src(fd);
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) throw SystemError("stat " + source, errno);
  if (S_ISDIR(st.st_mode)) {
    p.tree(src.get(), source, threads);
  } else if (S_ISREG(st.st_mode)) {
    p.remove_stale_temps(root, ".");
    p.file(source, st, file_name, root);
  } else {
    throw Error("source " + source + " is not a regular file or a directory");
  }
  p.finish(shard_index, shard_count);
  return std::move(p.plan);
}

}  // namespace sluice::staging::detail
