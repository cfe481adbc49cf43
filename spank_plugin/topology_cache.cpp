#include "topology_cache.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>

namespace sluice::spank {
namespace {

constexpr off_t kMaxSnapshotBytes = 16 << 20;

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Owned by root (or, in unit tests, by whoever runs them) and writable by nobody else.
bool trusted(const struct stat& st) {
  bool owner = st.st_uid == 0 || st.st_uid == ::getuid();
  return owner && !(st.st_mode & (S_IWGRP | S_IWOTH));
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

topo::Topology read_topology(const PluginConfig& cfg) {
  return cfg.topology_xml.empty() ? topo::Topology::from_system() : topo::Topology::from_xml(cfg.topology_xml);
}

std::string snapshot_path(const PluginConfig& cfg) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(cfg.topology_xml.empty() ? "live" : cfg.topology_xml)));
  return cfg.run_dir + "/topology-" + hex + ".snapshot";
}

std::string source_stamp(const PluginConfig& cfg) {
  if (cfg.topology_xml.empty()) return "live boot " + read_first_line("/proc/sys/kernel/random/boot_id");
  struct stat st {};
  if (::stat(cfg.topology_xml.c_str(), &st) < 0) return "missing " + cfg.topology_xml;
  return "xml " + cfg.topology_xml + " size " + std::to_string(st.st_size) + " mtime " +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

void write_snapshot(const PluginConfig& cfg, const topo::Topology& t, const std::string& stamp) {
  if (::mkdir(cfg.run_dir.c_str(), 0755) < 0 && errno != EEXIST) throw SystemError("mkdir " + cfg.run_dir, errno);
  struct stat st {};
  if (::lstat(cfg.run_dir.c_str(), &st) < 0) throw SystemError("lstat " + cfg.run_dir, errno);
  if (!S_ISDIR(st.st_mode) || !trusted(st))
    throw TopologyError("run_dir " + cfg.run_dir + " must be a directory owned by root and writable by no one else");
  const std::string path = snapshot_path(cfg);
  std::string tmp = path + ".XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) throw SystemError("create " + tmp, errno);
  const std::string body = stamp + "\n" + t.to_snapshot() + "\n";
  bool ok = ::fchmod(fd.get(), 0644) == 0;
  for (std::size_t off = 0; ok && off < body.size();) {
    ssize_t n = ::write(fd.get(), body.data() + off, body.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = ENOSPC;  // write() made no progress: the usual cause
    ok = n > 0;
    if (ok) off += std::size_t(n);
  }
  int err = errno;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) < 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("write " + path, err);
  }
}

LoadedTopology load_topology(const PluginConfig& cfg) {
  const std::string path = snapshot_path(cfg);
  struct stat dir {};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  bool usable = fd && ::lstat(cfg.run_dir.c_str(), &dir) == 0 && S_ISDIR(dir.st_mode) && trusted(dir) &&
                ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && trusted(st) && st.st_size < kMaxSnapshotBytes;
  if (usable) {
    std::string body(std::size_t(st.st_size), '\0');
    std::size_t got = 0;
    while (got < body.size()) {
      ssize_t n = ::read(fd.get(), body.data() + got, body.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += std::size_t(n);
    }
    auto nl = body.find('\n');
    if (got == body.size() && nl != std::string::npos && body.compare(0, nl, source_stamp(cfg)) == 0) {
      try {
        return {topo::Topology::from_snapshot(std::string_view(body).substr(nl + 1)), true};
      } catch (const std::exception&) {
        // A damaged snapshot costs a fresh read, never a failed step.
      }
    }
  }
  return {read_topology(cfg), false};
}

}  // namespace sluice::spank
