#include "plan.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/shard.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

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

class Planner {
 public:
  Planner(int root, const Manifest& m, std::string source_prefix)
      : root_(root), manifest_(m), source_prefix_(std::move(source_prefix)) {
    if (::fstat(root, &root_st_) != 0) throw SystemError("stat " + fd_path(root), errno);
  }

  // Lists a file; decide() judges it once the shares are known.
  void file(const std::string& src, const struct stat& st, const std::string& rel, int dest_dir) {
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
    listed_.push_back(std::move(l));
  }

  void dir(int src_fd, const std::string& src, const std::string& rel) {
    struct stat st {};
    if (::fstat(src_fd, &st) != 0) throw SystemError("stat " + src, errno);
    if (st.st_dev == root_st_.st_dev && st.st_ino == root_st_.st_ino)
      throw InvalidArgument("destination " + fd_path(root_) + " is inside the source " + src);
    if (rel != ".") plan.dirs.push_back(rel);

    UniqueFd dest;
    try {
      dest = staging::open_beneath(root_, rel, O_RDONLY | O_DIRECTORY);
    } catch (const SystemError& e) {
      if (e.code() != ENOENT) throw;
    }
    if (dest) remove_stale_temps(dest.get(), rel);

    for (const std::string& name : list_dir(src_fd, src)) {
      const std::string path = src + "/" + name;
      if (rel == "." && name == kManifestName) continue;  // a staged tree staged again
      if (is_temp_name(name)) continue;
      struct stat cst {};
      if (::fstatat(src_fd, name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) throw SystemError("stat " + path, errno);
      if (S_ISLNK(cst.st_mode))
        throw Error("source " + path + " is a symlink; sluice does not follow symlinks inside a source tree "
                    "(stage its target, or replace the link by a copy)");
      if (S_ISDIR(cst.st_mode)) {
        int fd = ::openat(src_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) throw SystemError("open directory " + path, errno);
        UniqueFd child(fd);
        dir(child.get(), path, join(rel, name));
      } else if (S_ISREG(cst.st_mode)) {
        file(path, cst, join(rel, name), dest ? dest.get() : -1);
      } else {
        throw Error("source " + path + " is not a regular file or a directory (device, FIFO or socket)");
      }
    }
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
               unsigned shard_index, unsigned shard_count, const std::string& source_label) {
  Planner p(root, manifest, source_label.empty() ? "" : source_label + ":");
  int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO must not hang us
  if (fd < 0) throw SystemError("open source " + source, errno);
  UniqueFd src(fd);
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) throw SystemError("stat " + source, errno);
  if (S_ISDIR(st.st_mode)) {
    p.dir(src.get(), source, ".");
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
