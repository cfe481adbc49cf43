#include <sluice/common/hostlist.hpp>

#include <sluice/common/error.hpp>

#include <charconv>

namespace sluice {
namespace {

[[noreturn]] void bad(std::string_view list, const std::string& why) {
  throw InvalidArgument("host list " + quote_input(list) + ": " + why);
}

unsigned long parse_number(std::string_view list, std::string_view digits) {
  unsigned long v = 0;
  if (digits.empty() || digits.size() > 9) bad(list, "bad range bound " + quote_input(digits));
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size()) bad(list, "bad range bound " + quote_input(digits));
  return v;
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view list, std::size_t max_hosts) {
  std::vector<std::string> hosts;
  std::size_t i = 0;
  while (i < list.size()) {
    // One name: PREFIX[RANGES]SUFFIX up to a comma outside brackets.
    std::size_t end = i;
    int depth = 0;
    while (end < list.size() && (depth > 0 || list[end] != ',')) {
      if (list[end] == '[') ++depth;
      if (list[end] == ']') --depth;
      if (depth < 0 || depth > 1) bad(list, "unbalanced brackets");
      ++end;
    }
    if (depth != 0) bad(list, "unbalanced brackets");
    const std::string_view item = list.substr(i, end - i);
    if (item.empty()) bad(list, "empty host name");
    const std::size_t open = item.find('[');
    if (open == std::string_view::npos) {
      hosts.emplace_back(item);
    } else {
      const std::size_t close = item.find(']', open);
      const std::string_view prefix = item.substr(0, open), ranges = item.substr(open + 1, close - open - 1),
                             suffix = item.substr(close + 1);
      if (suffix.find('[') != std::string_view::npos) bad(list, "more than one bracket group in a name");
      std::size_t r = 0;
      while (r <= ranges.size()) {
        std::size_t comma = ranges.find(',', r);
        if (comma == std::string_view::npos) comma = ranges.size();
        const std::string_view range = ranges.substr(r, comma - r);
        const std::size_t dash = range.find('-');
        const std::string_view lo_text = range.substr(0, dash);
        const std::string_view hi_text = dash == std::string_view::npos ? lo_text : range.substr(dash + 1);
        const unsigned long lo = parse_number(list, lo_text), hi = parse_number(list, hi_text);
        if (hi < lo) bad(list, "descending range " + quote_input(range));
        if (hosts.size() + (hi - lo + 1) > max_hosts) bad(list, "more than " + std::to_string(max_hosts) + " hosts");
        const std::size_t width = lo_text.size();
        for (unsigned long v = lo; v <= hi; ++v) {
          std::string num = std::to_string(v);
          if (num.size() < width) num.insert(0, width - num.size(), '0');
          hosts.push_back(std::string(prefix) + num + std::string(suffix));
        }
        r = comma + 1;
      }
    }
    if (hosts.size() > max_hosts) bad(list, "more than " + std::to_string(max_hosts) + " hosts");
    i = end + 1;
    if (end + 1 == list.size() && list[end] == ',') bad(list, "empty host name");
  }
  return hosts;
}

}  // namespace sluice
