// A set of CPUs by OS index, written in hwloc/taskset list syntax ("0-3,8,10-11").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class CpuSet {
 public:
  CpuSet() = default;
  // Parses list syntax; throws InvalidArgument naming `what` and the text on error.
  // Also used for other index lists (GPUs), hence `what`.
  static CpuSet parse(std::string_view list, std::string_view what = "CPU list");
  static CpuSet from_indices(std::vector<int> cpus);
  static CpuSet range(int first, int last);  // inclusive

  std::string to_string() const;  // canonical list syntax; "" when empty
  const std::vector<int>& indices() const noexcept { return cpus_; }
  std::size_t size() const noexcept { return cpus_.size(); }
  bool empty() const noexcept { return cpus_.empty(); }
  bool contains(int cpu) const;
  bool contains(const CpuSet& other) const;
  bool intersects(const CpuSet& other) const;

  CpuSet operator&(const CpuSet& o) const;
  CpuSet operator|(const CpuSet& o) const;
  CpuSet operator-(const CpuSet& o) const;
  bool operator==(const CpuSet& o) const = default;

 private:
  std::vector<int> cpus_;  // sorted, unique
};

}  // namespace sluice
