#include <sluice/staging/shard.hpp>

#include <sluice/common/error.hpp>

#include <algorithm>
#include <numeric>
#include <queue>
#include <tuple>

namespace sluice::staging {

void check_shard(unsigned shard_index, unsigned shard_count) {
  if (shard_count == 0) throw InvalidArgument("shard count must be at least 1");
  if (shard_index >= shard_count)
    throw InvalidArgument("shard index " + std::to_string(shard_index) + " is out of range for " +
                          std::to_string(shard_count) + " shards (0 to " + std::to_string(shard_count - 1) + ")");
}

std::vector<unsigned> assign_shards(const std::vector<ShardFile>& files, unsigned shard_count) {
  check_shard(0, shard_count);
  std::vector<unsigned> node(files.size(), 0);
  if (shard_count == 1) return node;
  std::vector<std::size_t> order(files.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return files[a].size != files[b].size ? files[a].size > files[b].size : files[a].rel < files[b].rel;
  });
  // (weight, files, node): the least loaded on top.
  using Load = std::tuple<std::uint64_t, std::uint64_t, unsigned>;
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> loads;
  for (unsigned n = 0; n < shard_count; ++n) loads.emplace(0, 0, n);
  for (std::size_t i : order) {
    auto [weight, count, n] = loads.top();
    loads.pop();
    node[i] = n;
    loads.emplace(weight + files[i].size + kShardFileWeight, count + 1, n);
  }
  return node;
}

}  // namespace sluice::staging
