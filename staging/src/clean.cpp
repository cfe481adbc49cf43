#include <sluice/staging/clean.hpp>

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace sluice::staging {
namespace {

// DIR_FD is owned by the caller; PATH only names it in messages. DEV: the tree's file system.
void clean_dir(int dir_fd, const std::string& path, dev_t dev, CleanResult& result, int depth) {
  if (depth > 4096) throw Error(quote_input(path) + ": directories nested too deep");
  const int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) throw SystemError("cannot read the directory " + quote_input(path), errno);
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dup_fd), ::closedir);
  if (!dir) {
    ::close(dup_fd);
    throw SystemError("cannot read the directory " + quote_input(path), errno);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  if (errno != 0) throw SystemError("cannot read the directory " + quote_input(path), errno);
  for (const std::string& name : names) {
    const std::string child = path + "/" + name;
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      throw SystemError("cannot stat " + quote_input(child), errno);
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) throw Error(quote_input(child) + " is another file system (a mount point); left in place");
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) throw SystemError("cannot open the directory " + quote_input(child), errno);
      clean_dir(sub.get(), child, dev, result, depth + 1);
      if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) throw SystemError("cannot remove " + quote_input(child), errno);
      ++result.dirs;
    } else {
      if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
        throw SystemError("cannot remove " + quote_input(child), errno);
      ++result.files;
    }
  }
}

}  // namespace

CleanResult clean_tree(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw SystemError("cannot open the directory " + quote_input(dir), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SystemError("cannot stat " + quote_input(dir), errno);
  CleanResult result;
  clean_dir(fd.get(), dir, st.st_dev, result, 0);
  return result;
}

}  // namespace sluice::staging
