// Internal: moving one byte range from a source file to a destination file, returning the
// XXH3-64 of the data as written.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::staging::detail {

struct CopyContext {
  bool buffered_only = false;
  bool direct_io = true;                      // big ranges bypass the page cache (O_DIRECT)
  // Bytes per O_DIRECT read and write (one buffer per worker), a multiple of 4 KiB. 4 GiB
  // staged here: 8 MiB blocks 7.2-10.8 s, 32 MiB blocks 5.6-6.8 s (fewer, longer requests).
  std::size_t direct_block = 32 << 20;
  std::atomic<bool> cfr_unsupported{false};   // learnt once per stage: skip copy_file_range
  std::atomic<bool> direct_unsupported{false};  // learnt once per stage: skip O_DIRECT
  std::atomic<std::uint64_t> bytes_done{0};
  std::atomic<std::uint64_t> bytes_direct{0};  // of bytes_done, through O_DIRECT
};

// Ranges at least this long go through O_DIRECT (where the context allows it).
constexpr std::uint64_t kDirectMinBytes = 4ull << 20;

// Copies [offset, offset+len) of IN to the same offset of OUT, in the first way that works:
//   1. direct I/O (ranges of kDirectMinBytes or more, offset 4 KiB-aligned): the source and
//      the destination reopened with O_DIRECT, blocks of direct_block bytes read, hashed from
//      the buffer and written; the unaligned tail (under 4 KiB, at end of file) goes through 3. No page
//      cache: a cold source is read once from its disk, the destination's writes are not
//      throttled as dirty pages, and the CPU copies nothing in the kernel.
//   2. copy_file_range (the digest then comes from reading OUT back);
//   3. pread/pwrite (the digest of the buffer).
// A source that ends early has changed: Error.
std::uint64_t copy_range(int in, int out, std::uint64_t offset, std::uint64_t len, CopyContext& ctx,
                         const std::string& src_name, const std::string& dst_name);

}  // namespace sluice::staging::detail
