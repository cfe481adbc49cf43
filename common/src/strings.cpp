#include <sluice/common/strings.hpp>

#include <sluice/common/error.hpp>

#include <cctype>
#include <charconv>
#include <cmath>

namespace sluice {

std::uint64_t parse_byte_size(std::string_view text, std::string_view what) {
  auto bad = [&](const std::string& why) -> InvalidArgument {
    return InvalidArgument(std::string(what) + " '" + quote_input(text) + "': " + why +
                           " (a byte count such as 500G, 64MiB or 1073741824)");
  };
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) throw bad("not a size");
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || end != text.data() + i) throw bad("not a number");
  std::string unit(text.substr(i));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, int> kUnits[] = {{"", 0},   {"B", 0},   {"K", 1},   {"KB", 1},  {"KIB", 1},
                                                       {"M", 2},  {"MB", 2},  {"MIB", 2}, {"G", 3},   {"GB", 3},
                                                       {"GIB", 3}, {"T", 4},  {"TB", 4},  {"TIB", 4}, {"P", 5},
                                                       {"PB", 5}, {"PIB", 5}};
  for (const auto& [name, power] : kUnits) {
    if (unit != name) continue;
    const double bytes = value * std::pow(1024.0, power);
    if (!(bytes < 1.8e19)) throw bad("too large");
    if (power == 0 && value != std::floor(value)) throw bad("a byte count must be whole");
    return static_cast<std::uint64_t>(bytes);
  }
  throw bad("unknown unit '" + std::string(text.substr(i)) + "'");
}

}  // namespace sluice
