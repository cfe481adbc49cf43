#include <sluice/common/error.hpp>
#include <sluice/common/nvml.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace sluice::nvml {
namespace {

// The few NVML declarations we use, so the build needs no nvml.h (see NVML API reference).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kSuccess = 0;
constexpr int kFeatureEnabled = 1;
constexpr unsigned kMaxLinks = 18;  // NVML_NVLINK_MAX_LINKS as of Hopper
struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};
struct nvmlUtilization_t {
  unsigned gpu, memory;
};
struct nvmlMemory_t {
  unsigned long long total, free, used;
};

std::string normalize(const nvmlPciInfo_t& p) {
  // NVML prints an 8-digit domain ("00000000:04:00.0"); hwloc and sysfs use 4.
  char buf[32];
  unsigned dev = p.device, fn = 0;
  if (std::sscanf(p.busId, "%*x:%*x:%x.%x", &dev, &fn) != 2) fn = 0;
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", p.domain, p.bus, dev, fn);
  return buf;
}

}  // namespace

struct Library::Api {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*count)(unsigned*);
  nvmlReturn_t (*handle)(unsigned, nvmlDevice_t*);
  nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t*);
  nvmlReturn_t (*link_state)(nvmlDevice_t, unsigned, int*);
  nvmlReturn_t (*link_remote)(nvmlDevice_t, unsigned, nvmlPciInfo_t*);
  // Optional (telemetry): null when the library lacks them.
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned*);  // milliwatts
};

std::optional<Library> Library::load(const std::string& path) {
  UniqueDl dl(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!dl) return std::nullopt;
  auto* api = new Api{};
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(dl.get(), name));
    return fn != nullptr;
  };
  bool ok = sym(api->init, "nvmlInit_v2") && sym(api->shutdown, "nvmlShutdown") &&
            sym(api->count, "nvmlDeviceGetCount_v2") && sym(api->handle, "nvmlDeviceGetHandleByIndex_v2") &&
            sym(api->pci, "nvmlDeviceGetPciInfo_v3") && sym(api->link_state, "nvmlDeviceGetNvLinkState") &&
            sym(api->link_remote, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
  if (!ok) {
    delete api;
    throw Error("NVML at '" + path + "' lacks a required function (driver older than the NVML v2/v3 API?)");
  }
  sym(api->utilization, "nvmlDeviceGetUtilizationRates");
  sym(api->memory, "nvmlDeviceGetMemoryInfo");
  sym(api->power, "nvmlDeviceGetPowerUsage");
  if (api->init() != kSuccess) {  // library present, no driver or no GPU: nothing visible
    delete api;
    return std::nullopt;
  }
  return Library(std::move(dl), api);
}

Library::Library(UniqueDl dl, Api* api) : dl_(std::move(dl)), api_(api) {}
Library::Library(Library&& o) noexcept : dl_(std::move(o.dl_)), api_(std::exchange(o.api_, nullptr)) {}
Library::~Library() {
  if (api_) {
    api_->shutdown();
    delete api_;
  }
}

int Library::device_count() const {
  unsigned n = 0;
  return api_->count(&n) == kSuccess ? int(n) : 0;
}

std::string Library::pci_bus_id(int device) const {
  nvmlDevice_t d = nullptr;
  nvmlPciInfo_t p{};
  if (api_->handle(unsigned(device), &d) != kSuccess || api_->pci(d, &p) != kSuccess)
    throw Error("NVML cannot read the PCI address of GPU " + std::to_string(device));
  return normalize(p);
}

std::vector<std::string> Library::nvlink_remotes(int device) const {
  std::vector<std::string> out;
  nvmlDevice_t d = nullptr;
  if (api_->handle(unsigned(device), &d) != kSuccess) return out;
  for (unsigned link = 0; link < kMaxLinks; ++link) {
    int active = 0;
    nvmlPciInfo_t p{};
    if (api_->link_state(d, link, &active) != kSuccess) continue;  // link absent on this GPU
    if (active == kFeatureEnabled && api_->link_remote(d, link, &p) == kSuccess) out.push_back(normalize(p));
  }
  return out;
}

std::optional<Library::Utilization> Library::utilization(int device) const {
  nvmlDevice_t d = nullptr;
  nvmlUtilization_t u{};
  if (!api_->utilization || api_->handle(unsigned(device), &d) != kSuccess || api_->utilization(d, &u) != kSuccess)
    return std::nullopt;
  return Utilization{u.gpu, u.memory};
}

std::optional<Library::Memory> Library::memory(int device) const {
  nvmlDevice_t d = nullptr;
  nvmlMemory_t m{};
  if (!api_->memory || api_->handle(unsigned(device), &d) != kSuccess || api_->memory(d, &m) != kSuccess)
    return std::nullopt;
  return Memory{m.total, m.free, m.used};
}

std::optional<double> Library::power_watts(int device) const {
  nvmlDevice_t d = nullptr;
  unsigned mw = 0;
  if (!api_->power || api_->handle(unsigned(device), &d) != kSuccess || api_->power(d, &mw) != kSuccess)
    return std::nullopt;
  return mw / 1000.0;
}

}  // namespace sluice::nvml
