#include <sluice/common/error.hpp>
#include <sluice/common/nic_policy.hpp>
#include <sluice/common/strings.hpp>

#include <fnmatch.h>

#include <algorithm>
#include <cctype>

namespace sluice::topo {
namespace {

constexpr std::size_t kMaxPatterns = 32, kMaxPatternChars = 64;

bool pattern_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_.:-*?[]!").find(c) != std::string_view::npos;
}

}  // namespace

std::vector<std::string> parse_nic_patterns(std::string_view list, std::string_view what) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(std::string(what) + quote_input(list) + ": " + why +
                           " (a comma-separated list of NIC name patterns such as hsn*,mlx5_[0-3],ib0)");
  };
  std::vector<std::string> out;
  for (std::size_t at = 0; at <= list.size();) {
    std::size_t comma = std::min(list.find(',', at), list.size());
    std::string p(list.substr(at, comma - at));
    at = comma + 1;
    if (p.empty()) throw bad("an empty pattern");
    if (p.size() > kMaxPatternChars) throw bad("a pattern longer than " + std::to_string(kMaxPatternChars) + " characters");
    for (char c : p)
      if (!pattern_char(c)) throw bad("pattern '" + quote_input(p) + "' has a character NIC names do not have");
    // A '[' must close, or fnmatch would read it as a literal and never match what was meant.
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i] == ']') throw bad("pattern '" + p + "' has a ']' without '['");
      if (p[i] != '[') continue;
      std::size_t close = p.find(']', i + 1);
      if (close == std::string::npos || close == i + 1 || p.find('[', i + 1) < close)
        throw bad("pattern '" + p + "' has a '[' without its ']'");
      i = close;
    }
    out.push_back(std::move(p));
    if (out.size() > kMaxPatterns) throw bad("more than " + std::to_string(kMaxPatterns) + " patterns");
  }
  return out;
}

bool nic_matches(const Nic& nic, const std::string& pattern) {
  return ::fnmatch(pattern.c_str(), nic.name.c_str(), 0) == 0 ||
         (!nic.netdev.empty() && ::fnmatch(pattern.c_str(), nic.netdev.c_str(), 0) == 0);
}

NicSelection select_nics(const std::vector<Nic>& all, const NicPolicy& policy) {
  NicSelection s;
  s.left_out.assign(all.size(), "");
  std::vector<int> allowed;
  bool any_allowed_match = false;
  for (int i = 0; i < int(all.size()); ++i) {
    const Nic& n = all[i];
    auto ex = std::find_if(policy.exclude.begin(), policy.exclude.end(), [&](const std::string& p) { return nic_matches(n, p); });
    bool in_allow = policy.allow.empty() ||
                    std::any_of(policy.allow.begin(), policy.allow.end(), [&](const std::string& p) { return nic_matches(n, p); });
    if (!policy.allow.empty() && in_allow) any_allowed_match = true;
    if (ex != policy.exclude.end()) s.left_out[i] = "excluded by exclude_nics=" + *ex;
    else if (!in_allow) s.left_out[i] = "not in nics=" + join(policy.allow);
    else allowed.push_back(i);
  }
  s.allow_matched_nothing = !policy.allow.empty() && !any_allowed_match;
  if (allowed.empty()) return s;
  NicClass best = NicClass::ethernet;
  for (int i : allowed) best = std::min(best, all[i].nic_class);
  for (int i : allowed) {
    if (all[i].nic_class == best) s.used.push_back(i);
    else s.left_out[i] = std::string(to_string(all[i].nic_class)) + ", while " + to_string(best) + " NICs exist";
  }
  return s;
}

}  // namespace sluice::topo
