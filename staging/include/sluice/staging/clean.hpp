// Emptying a job's burst buffer at job end, as the job's user: every entry is removed
// through its parent's descriptor (unlinkat), so a symlink is removed, never followed,
// and a mount point inside (another file system) is left alone.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::staging {

struct CleanResult {
  std::uint64_t files = 0, dirs = 0;
};

// Removes everything inside DIR (DIR itself stays). Throws SystemError naming the entry
// that could not be removed; what was removed before stays removed.
CleanResult clean_tree(const std::string& dir);

}  // namespace sluice::staging
