// The node cache: files staged by earlier jobs on this node, kept as hard links so that a
// later job staging the same source files links them instead of copying (no data moves).
//
// One cache per user (the plugin makes BB_ROOT/.cache/uid_N, owned by the user, 0700); it
// must be on the destination's file system (hard links). Layout, everything opened beneath
// the cache root without following symlinks (beneath.hpp):
//
//   CACHE/ab/ab12...ef        the data: one more hard link of a staged file
//   CACHE/ab/ab12...ef.meta   its record: the source identity and the digest (text)
//   CACHE/index               all records and last uses, for fast lookups (below)
//
// The name is the XXH3-128 (hex) of the key: the source's absolute path, st_dev, st_ino,
// size, mtime and ctime (ns). Any change to the source (content, size, mtime, mode, owner,
// a rename over it) changes its ctime or inode, so a changed source never finds the old
// entry; old entries age out. A hit checks that the record's key is the lookup key (a hash
// collision or an edited record is a miss), and that what it linked is a regular file of
// ours with the key's size and mtime (a job that wrote into its hard link changed the
// mtime: a miss, and the entry is dropped).
//
// CACHE/index summarizes every record with its last use, so a stage reads one file instead
// of a record per hit (a cold cache pays a disk read per record); a stage rewrites it at its
// end (under CACHE/index.lock) with its hits and additions. An entry missing from it is
// read from its record. Last use (LRU): the index's time, else the record's mtime (set on
// add and on a hit through the record) - never the data's timestamps, which the jobs' links
// share. A hit updates the index only when the entry's last use there is over an hour old
// (as relatime does for atime), so a stage served from a warm cache writes nothing. Bytes
// are the data files' sizes; evicting unlinks the cache's names only, so a job
// directory holding a link keeps its data.
//
// Concurrent stages may share a cache: data is linked under its final name with linkat
// (which never replaces: EEXIST means someone else added it) and the record is created
// with O_EXCL, after the data. A reader that sees no record, or a half-written one, misses.
#pragma once

#include <sluice/common/unique_handle.hpp>

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace sluice::staging {
namespace detail {
struct LoadedIndex;
}

// A source file's identity, as stat'ed when planning.
struct CacheKey {
  std::string source;  // absolute path
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const CacheKey&) const = default;

  // The entry name: XXH3-128 of the key, 32 hex digits.
  std::string name() const;
};

struct CacheEntry {
  CacheKey key;
  std::uint64_t xxh3 = 0;        // the recorded digest (hash.hpp) of the data
  std::uint64_t chunk_size = 0;  // its chunk layout
};

struct CacheStats {
  std::uint64_t entries = 0, bytes = 0;
  std::int64_t oldest_use_ns = 0, newest_use_ns = 0;  // last use of the LRU / MRU entry (0: empty)
  std::uint64_t incomplete = 0;  // data without a readable record, records without data, temporaries
};

// An open cache (the root opened once). Thread-safe: a stage's workers share one.
class NodeCache {
 public:
  // Opens DIR, creating it (0700, with missing parents) when CREATE. Refuses a directory
  // that is not the caller's (euid) or that group or others may write: anyone who can
  // write into a cache can make its owner's jobs read their data.
  explicit NodeCache(const std::string& dir, bool create = true);
  ~NodeCache();
  NodeCache(const NodeCache&) = delete;
  NodeCache& operator=(const NodeCache&) = delete;

  const std::string& path() const noexcept { return path_; }
  int fd() const noexcept { return root_.get(); }

  // Starts reading CACHE/index in the background, so that it overlaps the stage's listing
  // of its sources; lookup() waits for it (and rethrows its error). Optional.
  void load_index_ahead();

  // The entry for KEY, its last use set to now; nullopt when there is none or its record
  // does not match KEY. Throws nothing for a damaged entry (a miss); SystemError for I/O.
  std::optional<CacheEntry> lookup(const CacheKey& key);

  // Hard-links ENTRY's data into DIR under a fresh temporary name for FINAL_NAME (see
  // beneath.hpp), or as FINAL_NAME itself when AS_FINAL (linkat never replaces: EEXIST),
  // and checks what it linked: a regular file owned by the caller with the key's size and
  // mtime and permission bits MODE. Returns the name linked; nullopt when the entry vanished
  // or was tampered with (then it is dropped, and the link removed). Throws SystemError
  // (EXDEV: another file system; EEXIST: FINAL_NAME exists).
  std::optional<std::string> link_into(const CacheEntry& entry, int dir, const std::string& final_name, mode_t mode,
                                       bool as_final = false);

  // Adds DIR/NAME (a committed, durable staged copy of ENTRY.key's source) as ENTRY.
  // Returns false when the entry exists already (another stage added it). Throws
  // SystemError: EXDEV/EPERM/EMLINK when the file system will not link it.
  bool add(const CacheEntry& entry, int dir, const std::string& name);

  // Drops KEY's entry (a verify found its data corrupt).
  void forget(const CacheKey& key);

  // Writes what this cache learnt (hits with their time, additions, entries found gone)
  // into CACHE/index, under CACHE/index.lock. A stage calls it once at its end.
  void flush_index();

 private:
  struct State;

  // CACHE/ab for entry NAME, opened once; null when absent and not CREATE.
  std::shared_ptr<const UniqueFd> fan_dir(const std::string& name, bool create);
  // CACHE/index, read once (load_index_ahead() or the first lookup).
  const detail::LoadedIndex& index();

  std::string path_;
  UniqueFd root_;
  uid_t euid_;
  std::int64_t opened_ns_;  // "now" for the last uses this stage sets
  std::mutex mu_;
  std::array<std::shared_ptr<const UniqueFd>, 256> fans_;
  std::unique_ptr<State> st_;
};

// Entries, bytes and last uses of the cache at DIR (which must exist).
CacheStats cache_stats(const std::string& cache_dir);

// Unlinks least recently used entries until the cache holds at most MAX_BYTES (0:
// unbounded, nothing evicted). Also removes what a killed stage left (records without
// data, data without a record, temporaries) once it is an hour old.
void evict_cache(const std::string& cache_dir, std::uint64_t max_bytes);

}  // namespace sluice::staging
