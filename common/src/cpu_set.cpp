#include <sluice/common/cpu_set.hpp>
#include <sluice/common/error.hpp>

#include <hwloc.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <memory>

namespace sluice {
namespace {

struct BitmapFree {
  void operator()(hwloc_bitmap_t b) const noexcept { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapFree>;

// Largest CPU index accepted from text: far above any real machine, low enough that a
// hostile "0-999999999" cannot make us allocate gigabytes inside slurmstepd.
constexpr int kMaxCpuIndex = 1 << 16;

}  // namespace

CpuSet CpuSet::parse(std::string_view list, std::string_view what_) {
  std::string text(list);
  const std::string what(what_);
  // hwloc's parser accepts trailing garbage and infinite ranges ("3-"); we do not.
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != ',' && c != '-')
      throw InvalidArgument("invalid " + what + " '" + text + "': only digits, ',' and '-' are allowed");
  }
  if (text.empty()) return {};
  if (text.front() == '-' || text.back() == '-' || text.back() == ',' || text.front() == ',' ||
      text.find(",,") != std::string::npos || text.find("--") != std::string::npos)
    throw InvalidArgument("invalid " + what + " '" + text + "'");
  Bitmap bm(hwloc_bitmap_alloc());
  if (!bm || hwloc_bitmap_list_sscanf(bm.get(), text.c_str()) < 0)
    throw InvalidArgument("invalid " + what + " '" + text + "'");
  if (hwloc_bitmap_weight(bm.get()) < 0 || hwloc_bitmap_last(bm.get()) > kMaxCpuIndex)
    throw InvalidArgument("invalid " + what + " '" + text + "': index above " + std::to_string(kMaxCpuIndex));
  CpuSet s;
  for (int i = hwloc_bitmap_first(bm.get()); i >= 0; i = hwloc_bitmap_next(bm.get(), i))
    s.cpus_.push_back(i);
  return s;
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
