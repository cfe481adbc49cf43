// Small string helpers shared by the CLI, the reports and the plugin.
#pragma once

#include <sstream>
#include <string>

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

}  // namespace sluice
