#include <sluice/staging/hash.hpp>

#include <sluice/common/error.hpp>

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <memory>

namespace sluice::staging {

std::uint64_t hash_bytes(const void* data, std::size_t len) { return XXH3_64bits(data, len); }

std::uint64_t combine_chunk_digests(const std::vector<std::uint64_t>& digests) {
  std::vector<unsigned char> le(digests.size() * 8);
  for (std::size_t i = 0; i < digests.size(); ++i)
    for (int b = 0; b < 8; ++b) le[i * 8 + b] = static_cast<unsigned char>(digests[i] >> (8 * b));
  return XXH3_64bits(le.data(), le.size());
}

std::uint64_t hash_range(int fd, std::uint64_t offset, std::uint64_t len, const std::string& name) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  if (!st) throw std::bad_alloc();
  XXH3_64bits_reset(st.get());
  constexpr std::size_t kBuf = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kBuf]);
  while (len > 0) {
    std::size_t want = len < kBuf ? static_cast<std::size_t>(len) : kBuf;
    ssize_t n = ::pread(fd, buf.get(), want, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SystemError("read " + name, errno);
    }
    if (n == 0) throw Error(name + ": shorter than expected (ends at byte " + std::to_string(offset) + ")");
    XXH3_64bits_update(st.get(), buf.get(), static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
    len -= static_cast<std::uint64_t>(n);
  }
  return XXH3_64bits_digest(st.get());
}

std::uint64_t hash_file(int fd, std::uint64_t size, std::uint64_t chunk_size, const std::string& name) {
  if (chunk_size == 0 || size <= chunk_size) return hash_range(fd, 0, size, name);
  std::vector<std::uint64_t> digests;
  for (std::uint64_t off = 0; off < size; off += chunk_size)
    digests.push_back(hash_range(fd, off, std::min(chunk_size, size - off), name));
  return combine_chunk_digests(digests);
}

std::string to_hex(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::uint64_t from_hex(const std::string& s) {
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw InvalidArgument("'" + s + "' is not a 16-digit hex xxh3-64 digest");
  return std::stoull(s, nullptr, 16);
}

}  // namespace sluice::staging
