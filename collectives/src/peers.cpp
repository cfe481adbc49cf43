#include "peers.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace sluice::coll {

bool process_alive(pid_t pid) noexcept {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A killed process stays a zombie until its parent (orted, slurmstepd) reaps it.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = 0;
  // "pid (comm) S ...": the state follows the last ')'.
  const char* p = nullptr;
  for (ssize_t i = n - 1; i >= 0; --i)
    if (buf[i] == ')') { p = buf + i; break; }
  if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) return false;
  return true;
}

}  // namespace sluice::coll
