#include <sluice/common/strings.hpp>
#include <sluice/common/topology_report.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace sluice::topo {
namespace {

std::string nic_description(const Nic& n) {
  std::string what = n.kind == NicKind::openfabrics ? fmt::format("OpenFabrics, port {}", n.port) : "network interface";
  what += fmt::format("; {}, {}", to_string(n.family), to_string(n.nic_class));
  if (n.pcie_gbps > 0) what += fmt::format(", PCIe {:.1f} GB/s", n.pcie_gbps);
  return what;
}

}  // namespace

std::string format_matrix(const Topology& t, const NicPolicy& policy) {
  const NicSelection sel = select_nics(t.all_nics(), policy);
  std::vector<DeviceRef> devs;
  std::vector<std::string> names;
  for (const Gpu& g : t.gpus()) { devs.push_back(DeviceRef::gpu(g.index)); names.push_back("GPU" + std::to_string(g.index)); }
  for (int i : sel.used) { devs.push_back(DeviceRef::any_nic(i)); names.push_back(t.all_nics()[i].name); }
  auto cpus_of = [&](DeviceRef d) -> const CpuSet& {
    return d.kind == DeviceRef::Kind::gpu ? t.gpus()[d.index].cpus : t.all_nics()[d.index].cpus;
  };
  auto numa_of = [&](DeviceRef d) -> const std::vector<int>& {
    return d.kind == DeviceRef::Kind::gpu ? t.gpus()[d.index].numa : t.all_nics()[d.index].numa;
  };

  std::size_t w = 6, wc = 16;
  for (const auto& n : names) w = std::max(w, n.size() + 1);
  for (DeviceRef d : devs) wc = std::max(wc, cpus_of(d).to_string().size() + 2);
  std::string out = fmt::format("Topology: {}\n{:<{}}", t.source(), "", w);
  for (const auto& n : names) out += fmt::format("{:<{}}", n, w);
  out += fmt::format("{:<{}}{}\n", "CPU Affinity", wc, "NUMA Affinity");
  for (std::size_t i = 0; i < devs.size(); ++i) {
    out += fmt::format("{:<{}}", names[i], w);
    for (std::size_t j = 0; j < devs.size(); ++j) out += fmt::format("{:<{}}", t.path(devs[i], devs[j]).to_string(), w);
    out += fmt::format("{:<{}}{}\n", cpus_of(devs[i]).to_string(), wc, join(numa_of(devs[i]), ",", "N/A"));
  }
  if (devs.empty()) out += "(no GPUs or high-speed NICs found)\n";
  out +=
      "\nLegend:\n\n"
      "  X    = Self\n"
      "  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)\n"
      "  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node\n"
      "  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)\n"
      "  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)\n"
      "  PIX  = Connection traversing at most a single PCIe bridge\n"
      "  NV#  = Connection traversing a bonded set of # NVLinks\n";
  if (t.has_xgmi_data())
    out += "  XGMI = Connection traversing AMD xGMI (Infinity Fabric) links, the link type rocm-smi --showtopo calls XGMI\n";
  for (const std::string& note : t.warnings()) out += "\nNote: " + note + "\n";
  const auto count = [&](GpuVendor v) {
    return std::count_if(t.gpus().begin(), t.gpus().end(), [&](const Gpu& g) { return g.vendor == v; });
  };
  if (count(GpuVendor::nvidia) > 0 && !t.has_nvlink_data())
    out += "\nNote: the topology carries no NVLinkBandwidth data; GPU pairs show their PCIe path.\n";
  if (count(GpuVendor::amd) > 1 && !t.has_xgmi_data())
    out += "\nNote: the topology carries no XGMIBandwidth data; AMD GPU pairs show their PCIe path.\n";
  if (sel.allow_matched_nothing)
    out += "\nNote: nics=" + join(policy.allow) + " names none of the NICs below; placement would refuse to place tasks.\n";
  if (!t.all_nics().empty()) {
    out += "\nNIC Legend:\n\n";
    for (const Nic& n : t.all_nics()) {
      const std::string& why = sel.left_out[n.index];
      out += fmt::format("  {}: {}{} ({}): {}\n", n.name, n.pci.to_string(),
                         n.netdev.empty() || n.netdev == n.name ? "" : " " + n.netdev, nic_description(n),
                         why.empty() ? "used" : "left out (" + why + ")");
    }
  }
  return out;
}

}  // namespace sluice::topo
