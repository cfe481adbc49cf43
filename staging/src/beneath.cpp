#include <sluice/staging/beneath.hpp>

#include <sluice/common/error.hpp>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <random>

namespace sluice::staging {
namespace {

constexpr const char* kTempMarker = ".sluice-tmp.";

int sys_openat2(int dirfd, const char* path, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<unsigned>(flags) | O_CLOEXEC;
  // The kernel refuses a mode without O_CREAT/O_TMPFILE.
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

void check_rel(int root, const std::string& rel) {
  if (rel.empty() || rel.front() == '/')
    throw InvalidArgument("path '" + rel + "' beneath " + fd_path(root) + ": must be relative and non-empty");
  for (std::size_t i = 0; i <= rel.size();) {
    std::size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    if (rel.compare(i, j - i, "..") == 0)
      throw InvalidArgument("path '" + rel + "' beneath " + fd_path(root) + ": '..' component");
    i = j + 1;
  }
}

[[noreturn]] void fail_open(int root, const std::string& rel, int err) {
  std::string why = "open " + fd_path(root) + "/" + rel + " (beneath " + fd_path(root) + ", no symlinks)";
  if (err == ELOOP || err == EXDEV || err == ENOTDIR) why += ": a component is a symlink, not a directory, or leaves the root";
  throw SystemError(why, err);
}

UniqueFd walk(int root, const std::string& rel, int flags, mode_t mode) {
  UniqueFd cur;
  int at = root;
  std::size_t i = 0;
  for (;;) {
    std::size_t j = rel.find('/', i);
    std::string c = rel.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (c.empty()) c = ".";
    if (j == std::string::npos) {
      int fd = ::openat(at, c.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
      if (fd < 0) fail_open(root, rel, errno);
      return UniqueFd(fd);
    }
    int fd = ::openat(at, c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail_open(root, rel, errno);
    cur.reset(fd);
    at = fd;
    i = j + 1;
  }
}

std::string random_suffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(6, 'x');
  for (char& c : s) c = alphabet[rng() % 36];
  return s;
}

std::string new_temp_name(const std::string& final_name) {
  // Keep the temporary name within NAME_MAX however long the final name is.
  return "." + final_name.substr(0, NAME_MAX - 32) + kTempMarker + random_suffix();
}

}  // namespace

std::string fd_path(int fd) {
  char buf[PATH_MAX];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "fd " + std::to_string(fd);
  return std::string(buf, static_cast<std::size_t>(n));
}

namespace detail {

bool openat2_available() {
  static const bool available = [] {
    int fd = sys_openat2(AT_FDCWD, ".", O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    return errno != ENOSYS && errno != EPERM;
  }();
  return available;
}

UniqueFd open_beneath(int root, const std::string& rel, int flags, mode_t mode, Resolver how) {
  check_rel(root, rel);
  if (how == Resolver::Auto && openat2_available()) {
    int fd;
    do fd = sys_openat2(root, rel.c_str(), flags, mode);
    while (fd < 0 && errno == EAGAIN);  // RESOLVE_* may ask to retry after a concurrent rename
    if (fd < 0) fail_open(root, rel, errno);
    return UniqueFd(fd);
  }
  return walk(root, rel, flags, mode);
}

}  // namespace detail

UniqueFd open_beneath(int root, const std::string& rel, int flags, mode_t mode) {
  return detail::open_beneath(root, rel, flags, mode, detail::Resolver::Auto);
}

UniqueFd make_dirs_beneath(int root, const std::string& rel, mode_t mode) {
  UniqueFd cur = open_beneath(root, ".", O_RDONLY | O_DIRECTORY);
  if (rel == ".") return cur;
  std::size_t i = 0;
  for (;;) {
    std::size_t j = rel.find('/', i);
    std::string c = rel.substr(i, j == std::string::npos ? std::string::npos : j - i);
    // mkdirat never follows a symlink in its last component (EEXIST); open_beneath then
    // refuses it, so a planted link is an error, not a redirect.
    if (::mkdirat(cur.get(), c.c_str(), mode) != 0 && errno != EEXIST)
      throw SystemError("mkdir " + fd_path(cur.get()) + "/" + c, errno);
    cur = open_beneath(cur.get(), c, O_RDONLY | O_DIRECTORY);
    if (j == std::string::npos) return cur;
    i = j + 1;
  }
}

UniqueFd open_root(const std::string& path, bool create) {
  if (create) {  // mkdir -p, new directories 0700: the destination is the user's own
    std::string prefix;
    for (const auto& c : std::filesystem::path(path)) {
      prefix = (std::filesystem::path(prefix) / c).string();
      if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) throw SystemError("create directory " + prefix, errno);
    }
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SystemError("open directory " + path, errno);
  return UniqueFd(fd);
}

bool is_temp_name(const std::string& name) {
  auto p = name.rfind(kTempMarker);
  return !name.empty() && name.front() == '.' && p != std::string::npos &&
         name.size() == p + std::char_traits<char>::length(kTempMarker) + 6;
}

TempFile::TempFile(UniqueFd dir, std::string final_name, mode_t mode)
    : TempFile(std::make_shared<const UniqueFd>(std::move(dir)), std::move(final_name), mode) {}

TempFile::TempFile(std::shared_ptr<const UniqueFd> dir, std::string final_name, mode_t mode)
    : dir_(std::move(dir)), final_(std::move(final_name)) {
  if (final_.empty() || final_.find('/') != std::string::npos || final_ == "." || final_ == "..")
    throw InvalidArgument("temporary file for '" + final_ + "': not one path component");
  create(mode);
}

void TempFile::create(mode_t mode) {
  for (int attempt = 0;; ++attempt) {
    temp_ = new_temp_name(final_);
    // One component relative to a directory opened beneath the root: O_CREAT | O_EXCL never
    // follows a symlink (EEXIST), O_NOFOLLOW says so again. O_RDWR: read back to hash.
    int fd = ::openat(dir_->get(), temp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) {
      fd_.reset(fd);
      return;
    }
    if (errno != EEXIST || attempt == 100) fail_open(dir_->get(), temp_, errno);
  }
}

std::string link_temp(int from_dir, const std::string& from_name, int dir, const std::string& final_name) {
  for (int attempt = 0;; ++attempt) {
    std::string temp = new_temp_name(final_name);
    // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target; the
    // caller checks what it linked before committing it.
    if (::linkat(from_dir, from_name.c_str(), dir, temp.c_str(), 0) == 0) return temp;
    if (errno != EEXIST || attempt == 100)
      throw SystemError("link " + fd_path(from_dir) + "/" + from_name + " to " + fd_path(dir) + "/" + temp, errno);
  }
}

void commit_temp(int d, const std::string& temp, const std::string& final_name, bool replace) {
  auto target = [&] { return fd_path(d) + "/" + final_name; };  // for messages only
  if (replace) {
    // renameat replaces a symlink at the final name; it never follows it.
    if (::renameat(d, temp.c_str(), d, final_name.c_str()) != 0)
      throw SystemError("rename " + temp + " to " + target(), errno);
  } else if (::renameat2(d, temp.c_str(), d, final_name.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err != EINVAL && err != ENOSYS) throw SystemError("rename " + temp + " to " + target(), err);
    // Some network file systems lack RENAME_NOREPLACE; link() refuses an existing name too.
    if (::linkat(d, temp.c_str(), d, final_name.c_str(), 0) != 0)
      throw SystemError("link " + temp + " to " + target(), errno);
    ::unlinkat(d, temp.c_str(), 0);
  }
}

TempFile::~TempFile() {
  if (!committed_ && dir_ && *dir_ && !temp_.empty()) ::unlinkat(dir_->get(), temp_.c_str(), 0);
}

void TempFile::close() {
  if (::close(fd_.release()) != 0 && errno != EINTR) throw SystemError("close " + temp_, errno);
}

void TempFile::commit(bool replace) {
  commit_temp(dir_->get(), temp_, final_, replace);
  committed_ = true;
}

}  // namespace sluice::staging
