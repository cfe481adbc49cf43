#include "plan.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>

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
  Planner(int root, const Manifest& m) : root_(root), manifest_(m) {
    if (::fstat(root, &root_st_) != 0) throw SystemError("stat " + fd_path(root), errno);
  }

  void file(const std::string& src, const struct stat& st, const std::string& rel, int dest_dir) {
    PlannedFile f;
    f.rel = rel;
    f.source = src;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.mtime_ns = mtime_ns(st);
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.mode = st.st_mode;
    const std::string name = rel.substr(rel.rfind('/') + 1);
    struct stat dst {};
    bool exists = dest_dir >= 0 && ::fstatat(dest_dir, name.c_str(), &dst, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && dest_dir >= 0 && errno != ENOENT) throw SystemError("stat " + fd_path(root_) + "/" + rel, errno);
    auto it = manifest_.files.find(rel);
    const bool ours = it != manifest_.files.end() && it->second.source == src;
    if (exists) {
      if (!S_ISREG(dst.st_mode))
        throw Error("destination " + fd_path(root_) + "/" + rel + " exists and is not a regular file");
      f.existing_size = static_cast<std::uint64_t>(dst.st_size);
    }
    if (!exists) {
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

  void finish() {
    if (conflicts_ > 1) first_conflict_ += " (and " + std::to_string(conflicts_ - 1) + " more conflicting files)";
    if (conflicts_ > 0) throw Error(first_conflict_);
  }

  Plan plan;

 private:
  int root_;
  struct stat root_st_ {};
  const Manifest& manifest_;
  std::size_t conflicts_ = 0;
  std::string first_conflict_;
};

}  // namespace

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

Plan make_plan(const std::string& source, int root, const std::string& file_name, const Manifest& manifest) {
  Planner p(root, manifest);
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
  p.finish();
  return std::move(p.plan);
}

}  // namespace sluice::staging::detail
