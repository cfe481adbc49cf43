// The digest sluice records for a staged file: XXH3-64.
//   - A file of at most one chunk: XXH3_64bits(whole content).
//   - A file copied in chunks of C bytes (C recorded in the manifest as chunk_size):
//     XXH3_64bits(d0 d1 ... dn-1), the concatenation of each chunk's XXH3_64bits digest as
//     8 little-endian bytes. Chunks are hashed in parallel, by the workers that copy them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::staging {

std::uint64_t hash_bytes(const void* data, std::size_t len);
std::uint64_t combine_chunk_digests(const std::vector<std::uint64_t>& digests);

// Hashes LEN bytes of FD from OFFSET (pread); NAME is for messages. Throws SystemError,
// or Error when the file is shorter than asked.
std::uint64_t hash_range(int fd, std::uint64_t offset, std::uint64_t len, const std::string& name);

// The recorded digest of a whole file of SIZE bytes (chunk_size 0: not chunked).
std::uint64_t hash_file(int fd, std::uint64_t size, std::uint64_t chunk_size, const std::string& name);

std::string to_hex(std::uint64_t h);
std::uint64_t from_hex(const std::string& s);  // InvalidArgument when not 16 hex digits

}  // namespace sluice::staging
