#include <sluice/common/root_files.hpp>

#include <sluice/common/error.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <random>

namespace sluice {

UniqueFd open_owned_dir(const std::string& dir, const std::string& what, bool private_dir) {
  if (::mkdir(dir.c_str(), private_dir ? 0700 : 0755) != 0 && errno != EEXIST)
    throw SystemError("cannot create " + what + " " + quote_input(dir), errno);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dfd) throw SystemError("cannot open " + what + " " + quote_input(dir), errno);
  struct stat st {};
  if (::fstat(dfd.get(), &st) != 0) throw SystemError("cannot stat " + quote_input(dir), errno);
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    throw Error(what + " " + quote_input(dir) + " must belong to uid " + std::to_string(::geteuid()) +
                " and not be group/other writable");
  if (private_dir && (st.st_mode & 077) != 0 && ::fchmod(dfd.get(), 0700) != 0)
    throw SystemError("cannot make " + what + " " + quote_input(dir) + " private (0700)", errno);
  return dfd;
}

std::optional<std::string> read_owned_file(int dir_fd, const std::string& dir, const std::string& name,
                                           std::size_t max_bytes) {
  const std::string shown = quote_input(dir + "/" + name);
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("cannot open " + shown, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SystemError("cannot stat " + shown, errno);
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid())
    throw Error(shown + " is not a regular file of uid " + std::to_string(::geteuid()) + "; not trusted");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) throw Error(shown + " is larger than " + std::to_string(max_bytes) + " bytes");
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("cannot read " + shown, errno);
    if (n == 0) break;
    off += static_cast<std::size_t>(n);
  }
  text.resize(off);
  return text;
}

void replace_file_at(int dir_fd, const std::string& dir, const std::string& name, std::string_view text,
                     mode_t mode, std::optional<uid_t> owner) {
  std::random_device rd;
  const std::string tmp = "." + name + ".tmp" + std::to_string(rd());
  UniqueFd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) throw SystemError("cannot create " + quote_input(dir + "/" + tmp), errno);
  auto fail = [&](const std::string& what, int err) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    throw SystemError(what + " " + quote_input(dir + "/" + name), err);
  };
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", errno);
    }
    off += static_cast<std::size_t>(n);
  }
  if (owner && ::geteuid() == 0 && ::fchown(fd.get(), *owner, static_cast<gid_t>(-1)) != 0) fail("cannot chown", errno);
  if (::fsync(fd.get()) != 0) fail("cannot fsync", errno);
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) fail("cannot rename into", errno);
}

}  // namespace sluice
