// Slurm host lists ("node[1-3,07],gpu-a1"): expanded in the prolog to find this node's index
// among the job's nodes (shard staging), without linking libslurm.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// Expands a host list in Slurm's order; ranges keep their zero padding ("n[08-10]" gives
// n08 n09 n10). One bracket group per name, as Slurm writes node lists. Throws
// InvalidArgument naming the list when it is malformed or expands past MAX_HOSTS.
std::vector<std::string> expand_hostlist(std::string_view list, std::size_t max_hosts = 1 << 20);

}  // namespace sluice
