// Shard mode: each of N nodes stages only its share of a source tree. The split is a pure
// function of the listing (relative path and size of every file), so every node computes
// the same one without talking to the others.
//
// Rule: each file weighs its size plus 4 KiB (a file costs an open and a create however
// small, so many empty files still spread). Files are taken heaviest first (ties: by
// relative path, bytewise) and each goes to the node with the least weight so far (ties:
// fewer files, then the lower index). The heaviest and lightest shares then differ by at
// most one file's weight; every file is in exactly one share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::staging {

inline constexpr std::uint64_t kShardFileWeight = 4096;

struct ShardFile {
  std::string rel;  // relative path (the identity every node agrees on)
  std::uint64_t size = 0;
};

// The node (0..shard_count-1) of each file of FILES, in FILES' order. Throws
// InvalidArgument when shard_count is 0.
std::vector<unsigned> assign_shards(const std::vector<ShardFile>& files, unsigned shard_count);

// Throws InvalidArgument unless shard_count >= 1 and shard_index < shard_count.
void check_shard(unsigned shard_index, unsigned shard_count);

}  // namespace sluice::staging
