// The copy engine: stage_tree() copies a file or a directory tree into a destination with
// a pool of worker threads, resuming from the destination's manifest.
//
// What it guarantees (see docs in staging/README.md):
//   - A file appears under its final name only complete: written as
//     ".NAME.sluice-tmp.XXXXXX" in its final directory, made durable, then renamed.
//     Files copied in chunks are fdatasync'ed one by one; other files are committed in
//     batches per worker (256 files, 64 MiB or 1 s): one syncfs() of the destination,
//     then the batch's renames, then their manifest entries become "staged". A failure
//     or cancel before the commit leaves no final name (failure: temporaries removed).
//   - Everything in the destination is created beneath its root without following
//     symlinks (beneath.hpp); symlinks in the *source* tree are refused, never followed.
//   - An existing final name is replaced only if the manifest records it as staged from the
//     same source file (or identical content); otherwise the stage fails naming it.
//   - A source file that changes while copied (size or mtime) fails the stage, naming it.
//   - Modes: files keep their owner bits (source mode & 0700), directories are 0700; the
//     destination belongs to the job's user. Files get the source mtime.
#pragma once

#include <sluice/common/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace sluice::staging {

struct Progress {
  std::uint64_t bytes_done = 0, bytes_total = 0;  // bytes to copy in this run
  std::uint64_t files_done = 0, files_total = 0;  // files done includes skipped ones
  double seconds = 0;
};

struct StageRequest {
  // Absolute path of a file or a directory. Symlinks inside a directory tree are refused;
  // the path itself may go through symlinks (it is the caller's choice, as with cp).
  std::string source;
  // For a directory source: the directory that mirrors it (created if missing).
  // For a file source: the copy's path, or an existing directory to copy it into.
  std::string destination;
  unsigned jobs = 0;                           // worker threads; 0: min(8, 2 x hardware threads)
  std::uint64_t chunk_size = 64ull << 20;      // files larger than this are copied in chunks
  bool verify = false;                         // re-hash staged files before skipping them
  bool verify_after_copy = false;              // re-read each source after its copy and compare
  bool buffered_only = false;                  // never copy_file_range (tests; odd file systems)
  // Ranges of 4 MiB or more are read and written with O_DIRECT where both file systems allow
  // it (else copy_file_range, else pread/pwrite): no page cache, so a cold dataset is read
  // once from disk and the writes are not throttled as dirty pages. false: always buffered.
  bool direct_io = true;
  std::chrono::milliseconds manifest_interval{2000};
  std::size_t manifest_every_files = 10000;
  // Bytes available in the destination, given its root directory; default fstatvfs.
  std::function<std::uint64_t(int dir_fd)> free_space;
  // Called on the calling thread about every progress_interval, and once at the end.
  std::function<void(const Progress&)> on_progress;
  std::chrono::milliseconds progress_interval{100};
  const std::atomic<bool>* cancel = nullptr;   // set (e.g. from a signal handler) to stop
  std::size_t stop_after_files = 0;            // test hook: stop after this many copied files
  std::function<void(const std::string& source)> after_copy;  // test hook: runs before the "after" stat

  // Node cache (cache.hpp): a file whose source identity (path, size, mtime, inode, ctime)
  // has an entry there is hard-linked instead of copied; copied files are added to it.
  // Empty: no cache. cache_max bounds its bytes (LRU eviction); 0: unbounded.
  std::string cache_dir;
  std::uint64_t cache_max = 0;

  // Shard mode: stage only the share of SOURCE's files that belongs to node shard_index of
  // shard_count (a split every node computes alike from the same listing).
  unsigned shard_index = 0, shard_count = 1;

  // Recorded in the manifest as LABEL:PATH instead of PATH. Several nodes staging out into
  // one destination have the same burst-buffer paths; labelled by node, one node's file is
  // never taken for another's (a clash is then a conflict, not a silent replacement).
  std::string source_label;
  // How long to wait for another stage into the same destination to finish (0: fail at once).
  std::chrono::milliseconds lock_wait{0};
};

struct StageResult {
  std::uint64_t files = 0;           // regular files in the source (in shard mode: in this node's share)
  std::uint64_t files_copied = 0;
  std::uint64_t files_skipped = 0;   // unchanged since a previous stage (and verified with verify)
  std::uint64_t files_repaired = 0;  // verify found the staged copy corrupt; copied again
  std::uint64_t bytes_copied = 0;
  std::uint64_t bytes_skipped = 0;
  std::uint64_t bytes_direct_io = 0;  // of bytes_copied, moved with O_DIRECT
  std::uint64_t dirs = 0;
  std::uint64_t files_from_cache = 0;  // linked from the node cache instead of copied
  std::uint64_t bytes_from_cache = 0;
  std::uint64_t files_other_shards = 0;  // left to other nodes (shard mode)
  double seconds = 0;
  std::string note;  // why the node cache was not (fully) used, e.g. on another file system; usually empty
};

// The stage stopped on request (cancel flag, stop_after_files); the manifest records what
// was staged, so running it again resumes.
class Cancelled : public Error {
 public:
  using Error::Error;
};

StageResult stage_tree(const StageRequest& request);

unsigned default_jobs();

}  // namespace sluice::staging
