// Small string helpers shared by the CLI, the reports and the plugin.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace sluice {

// "a,b,c" from any range whose elements stream with <<; `empty` when there are none.
template <typename Range>
std::string join(const Range& items, const std::string& sep = ",", const std::string& empty = "") {
  std::ostringstream out;
  bool first = true;
  for (const auto& x : items) {
    if (!first) out << sep;
    out << x;
    first = false;
  }
  return first ? empty : out.str();
}

// "512", "64K", "1.5G", "2TiB", "100MB": bytes, with binary multiples (K = KiB = 1024) as
// Slurm and most HPC tools use them. Throws InvalidArgument naming WHAT and the value.
std::uint64_t parse_byte_size(std::string_view text, std::string_view what);

}  // namespace sluice
