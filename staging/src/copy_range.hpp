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
  std::atomic<bool> cfr_unsupported{false};  // learnt once per stage: skip copy_file_range
  std::atomic<std::uint64_t> bytes_done{0};
};

// Copies [offset, offset+len) of IN to the same offset of OUT. copy_file_range where the
// file systems allow it (the digest then comes from reading OUT back), pread/pwrite
// otherwise (the digest of the buffer). A source that ends early has changed: Error.
std::uint64_t copy_range(int in, int out, std::uint64_t offset, std::uint64_t len, CopyContext& ctx,
                         const std::string& src_name, const std::string& dst_name);

}  // namespace sluice::staging::detail
