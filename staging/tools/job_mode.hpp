// What sluice-stage does for the SPANK plugin, which runs it as the job's user: a
// destination that must stay inside the job's burst buffer (--beneath), machine-readable
// progress for the job's status record (--progress-json), and emptying the burst buffer
// at job end (`clean`).
#pragma once

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/copier.hpp>
#include <sluice/staging/spec.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace sluice::staging::cli {

// DST inside ROOT, every directory from ROOT down created (0700) beneath it without
// following a symlink. `path()` names it through /proc/self/fd, so the copy engine opens
// exactly the directory checked here even if a path component is swapped afterwards.
class BeneathDestination {
 public:
  BeneathDestination(const std::string& root, const std::string& dst, bool source_is_dir) {
    if (root.empty() || root.front() != '/') throw InvalidArgument("--beneath needs an absolute directory");
    std::string rel;
    if (dst == root) {
      rel = ".";
    } else if (dst.size() > root.size() && dst.compare(0, root.size(), root) == 0 && dst[root.size()] == '/') {
      rel = normalize_relative(dst.substr(root.size() + 1), "DST");
    } else {
      throw InvalidArgument("DST " + quote_input(dst) + " is not inside " + quote_input(root));
    }
    root_ = open_root(root, false);
    if (rel == ".") {
      if (!source_is_dir) throw InvalidArgument("a file cannot be staged onto the directory " + quote_input(root));
      path_ = "/proc/self/fd/" + std::to_string(root_.get());
      return;
    }
    const std::size_t slash = rel.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : rel.substr(0, slash);
    const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    parent_ = parent == "." ? UniqueFd(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0)) : make_dirs_beneath(root_.get(), parent, 0700);
    if (!parent_) throw SystemError("cannot open " + quote_input(root), errno);
    if (source_is_dir) {
      if (::mkdirat(parent_.get(), name.c_str(), 0700) != 0 && errno != EEXIST)
        throw SystemError("cannot create " + quote_input(dst), errno);
      dir_ = open_beneath(parent_.get(), name, O_RDONLY | O_DIRECTORY);  // refuses a symlink
      path_ = "/proc/self/fd/" + std::to_string(dir_.get());
    } else {
      path_ = "/proc/self/fd/" + std::to_string(parent_.get()) + "/" + name;
    }
  }
  const std::string& path() const { return path_; }

 private:
  UniqueFd root_, parent_, dir_;
  std::string path_;
};

// One JSON object per line on stdout, at most twice a second and once at the end.
class JsonProgress {
 public:
  void operator()(const Progress& p, bool final = false) {
    if (!final && p.seconds - last_ < 0.5) return;
    last_ = p.seconds;
    std::printf("{\"bytes_done\":%llu,\"bytes_total\":%llu,\"files_done\":%llu,\"files_total\":%llu,\"seconds\":%.3f}\n",
                static_cast<unsigned long long>(p.bytes_done), static_cast<unsigned long long>(p.bytes_total),
                static_cast<unsigned long long>(p.files_done), static_cast<unsigned long long>(p.files_total),
                p.seconds);
    std::fflush(stdout);
  }

 private:
  double last_ = -1;
};

}  // namespace sluice::staging::cli
