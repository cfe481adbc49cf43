#include <sluice/common/cpu_set.hpp>
#include <sluice/common/error.hpp>

#include <algorithm>
#include <iterator>

namespace sluice {
namespace {

// Largest CPU index accepted from text: far above any real machine, low enough that a
// hostile "0-999999999" is refused before anything is allocated inside slurmstepd.
constexpr int kMaxCpuIndex = 1 << 16;

}  // namespace

// Decimal only ("010" is ten, not octal), ascending ranges, nothing chained ("0-1-2").
CpuSet CpuSet::parse(std::string_view list, std::string_view what_) {
  const std::string what(what_);
  auto fail = [&](const std::string& why) -> InvalidArgument {
    return InvalidArgument("invalid " + what + " '" + quote_input(list) + "'" + (why.empty() ? "" : ": " + why));
  };
  std::vector<int> cpus;
  std::size_t at = 0;
  auto number = [&]() {
    std::size_t start = at;
    long v = 0;
    while (at < list.size() && list[at] >= '0' && list[at] <= '9') {
      v = v * 10 + (list[at] - '0');
      if (v > kMaxCpuIndex) throw fail("index above " + std::to_string(kMaxCpuIndex));
      ++at;
    }
    if (at == start) throw fail(at < list.size() ? "only digits, ',' and '-' are allowed" : "");
    return int(v);
  };
  while (at < list.size()) {
    int first = number(), last = first;
    if (at < list.size() && list[at] == '-') {
      ++at;
      last = number();
      if (last < first) throw fail("range " + std::to_string(first) + "-" + std::to_string(last) + " runs backwards");
    }
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    if (at < list.size()) {
      if (list[at] != ',') throw fail("only digits, ',' and '-' are allowed");
      if (++at == list.size()) throw fail("trailing ','");
    }
  }
  return from_indices(std::move(cpus));
}

CpuSet CpuSet::from_indices(std::vector<int> cpus) {
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  if (!cpus.empty() && cpus.front() < 0)
    throw InvalidArgument("negative CPU index " + std::to_string(cpus.front()));
  CpuSet s;
  s.cpus_ = std::move(cpus);
  return s;
}

CpuSet CpuSet::range(int first, int last) {
  std::vector<int> v;
  for (int i = first; i <= last; ++i) v.push_back(i);
  return from_indices(std::move(v));
}

std::string CpuSet::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < cpus_.size();) {
    std::size_t j = i;
    while (j + 1 < cpus_.size() && cpus_[j + 1] == cpus_[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus_[i]);
    if (j > i) out += '-' + std::to_string(cpus_[j]);
    i = j + 1;
  }
  return out;
}

bool CpuSet::contains(int cpu) const { return std::binary_search(cpus_.begin(), cpus_.end(), cpu); }

bool CpuSet::contains(const CpuSet& o) const {
  return std::includes(cpus_.begin(), cpus_.end(), o.cpus_.begin(), o.cpus_.end());
}

bool CpuSet::intersects(const CpuSet& o) const { return !(*this & o).empty(); }

CpuSet CpuSet::operator&(const CpuSet& o) const {
  CpuSet r;
  std::set_intersection(cpus_.begin(), cpus_.end(), o.cpus_.begin(), o.cpus_.end(),
                        std::back_inserter(r.cpus_));
  return r;
}

CpuSet CpuSet::operator|(const CpuSet& o) const {
  CpuSet r;
  std::set_union(cpus_.begin(), cpus_.end(), o.cpus_.begin(), o.cpus_.end(), std::back_inserter(r.cpus_));
  return r;
}

CpuSet CpuSet::operator-(const CpuSet& o) const {
  CpuSet r;
  std::set_difference(cpus_.begin(), cpus_.end(), o.cpus_.begin(), o.cpus_.end(),
                      std::back_inserter(r.cpus_));
  return r;
}

}  // namespace sluice
