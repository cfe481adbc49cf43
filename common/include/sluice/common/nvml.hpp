// NVML, loaded with dlopen at run time: never a link dependency. No library means no
// NVIDIA GPUs are visible, which is not an error.
#pragma once

#include <sluice/common/unique_handle.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sluice::nvml {

class Library {
 public:
  // Loads and initializes NVML (default: libnvidia-ml.so.1 from the loader's path).
  // std::nullopt when the library is absent or nvmlInit fails (no driver): no NVIDIA GPUs.
  static std::optional<Library> load(const std::string& path = "libnvidia-ml.so.1");

  Library(Library&&) noexcept;
  Library& operator=(Library&&) = delete;
  ~Library();  // nvmlShutdown

  int device_count() const;
  std::string pci_bus_id(int device) const;  // "0000:04:00.0", lower case
  // The PCI bus id at the far end of each active NVLink of `device`: a GPU, an NVSwitch
  // or a CPU (POWER). One entry per link.
  std::vector<std::string> nvlink_remotes(int device) const;

  // Live metrics for the telemetry sampler. std::nullopt when the driver lacks the call or
  // the GPU does not support it (e.g. power on some boards): a missing value, not an error.
  struct Utilization {
    unsigned gpu_percent;     // time a kernel was running over the last sample period
    unsigned memory_percent;  // time device memory was being read or written
  };
  struct Memory {
    unsigned long long total_bytes, free_bytes, used_bytes;
  };
  std::optional<Utilization> utilization(int device) const;
  std::optional<Memory> memory(int device) const;
  std::optional<double> power_watts(int device) const;

 private:
  struct Api;
  Library(UniqueDl dl, Api* api);
  UniqueDl dl_;
  Api* api_;
};

}  // namespace sluice::nvml
