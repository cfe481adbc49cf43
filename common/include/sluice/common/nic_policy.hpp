// Which of a node's NICs placement may use: the automatic ranking (NicClass, best class
// present) within what the site allows (plugstack.conf nics=/exclude_nics=, sluice-topo
// --nics/--exclude-nics). Pure over Topology::all_nics(), so a snapshot needs no hwloc.
#pragma once

#include <sluice/common/topology.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace sluice::topo {

struct NicPolicy {
  // Shell glob patterns (fnmatch) on a NIC's name or its IP interface ("hsn*", "mlx5_[0-3]",
  // "ib0"). allow empty: every NIC may be used.
  std::vector<std::string> allow;    // nics=
  std::vector<std::string> exclude;  // exclude_nics=
};

// "hsn*,mlx5_*": at most 32 comma-separated patterns of 1-64 characters from [A-Za-z0-9_.:-]
// and the glob characters * ? [ ] !, brackets closed. Throws InvalidArgument that starts with
// `what` (e.g. "plugstack.conf argument nics=") and says what is wrong.
std::vector<std::string> parse_nic_patterns(std::string_view list, std::string_view what);

bool nic_matches(const Nic& nic, const std::string& pattern);  // name or netdev

struct NicSelection {
  std::vector<int> used;               // all_nics() indices placement may use, PCI order
  std::vector<std::string> left_out;   // per all_nics() index: why it is not used ("" if used)
  bool allow_matched_nothing = false;  // policy.allow is set and names none of the NICs
};

// The allowed NICs (matching allow, when given, and no exclude pattern) of the best class
// among them.
NicSelection select_nics(const std::vector<Nic>& all, const NicPolicy& policy);

}  // namespace sluice::topo
