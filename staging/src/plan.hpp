// Internal: the plan of a stage, made before any byte moves: which files to
// copy, skip or verify, and which final names may be replaced.
#pragma once

#include <sluice/staging/manifest.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::staging::detail {

struct PlannedFile {
  enum class Action { Copy, Skip, Verify, Link };  // Link: from the node cache
  std::string rel;     // relative to the destination root
  std::string source;  // absolute
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  Action action = Action::Copy;
  bool replace = false;       // the final name is ours (manifest) and may be replaced
  bool must_match = false;    // an unknown file of the same size is there: commit only if identical
  std::uint64_t existing_size = 0;
  std::uint64_t staged_digest = 0, staged_chunk = 0;  // from the manifest (Skip/Verify), the cache (Link)
};

struct Plan {
  std::vector<std::string> dirs;  // relative, parents first
  std::vector<PlannedFile> files;
  std::vector<std::string> other_shards;  // relative paths of the files left to other nodes
};

// Walks SOURCE (a directory mirrored at ROOT, or a file copied to ROOT/FILE_NAME), keeps
// the files of share SHARD_INDEX of SHARD_COUNT (shard.hpp), and decides each against
// MANIFEST and what ROOT holds. Removes temporary files left by a killed stage. Throws Error
// naming the first conflict, symlink or special file. THREADS list and stat the source
// tree in parallel; the plan is the same for any number.
Plan make_plan(const std::string& source, int root, const std::string& file_name, const Manifest& manifest,
               unsigned shard_index = 0, unsigned shard_count = 1, const std::string& source_label = "",
               unsigned threads = 1);

std::int64_t mtime_ns(const struct stat& st);
std::int64_t ctime_ns(const struct stat& st);

}  // namespace sluice::staging::detail
