#include <sluice/common/strings.hpp>
#include <sluice/common/topology_report.hpp>

#include <fmt/format.h>

namespace sluice::topo {
namespace {


}  // namespace

std::string format_matrix(const Topology& t) {
  std::vector<DeviceRef> devs;
  std::vector<std::string> names;
  for (const Gpu& g : t.gpus()) { devs.push_back(DeviceRef::gpu(g.index)); names.push_back("GPU" + std::to_string(g.index)); }
  for (const Nic& n : t.nics()) { devs.push_back(DeviceRef::nic(n.index)); names.push_back(n.name); }

  std::size_t w = 6, wc = 16;
  for (const auto& n : names) w = std::max(w, n.size() + 1);
  for (const Gpu& g : t.gpus()) wc = std::max(wc, g.cpus.to_string().size() + 2);
  for (const Nic& n : t.nics()) wc = std::max(wc, n.cpus.to_string().size() + 2);
  std::string out = fmt::format("Topology: {}\n{:<{}}", t.source(), "", w);
  for (const auto& n : names) out += fmt::format("{:<{}}", n, w);
  out += fmt::format("{:<{}}{}\n", "CPU Affinity", wc, "NUMA Affinity");
  for (std::size_t i = 0; i < devs.size(); ++i) {
    out += fmt::format("{:<{}}", names[i], w);
    for (std::size_t j = 0; j < devs.size(); ++j) out += fmt::format("{:<{}}", t.path(devs[i], devs[j]).to_string(), w);
    const CpuSet& cpus = devs[i].kind == DeviceRef::Kind::gpu ? t.gpus()[devs[i].index].cpus : t.nics()[devs[i].index].cpus;
    const auto& numa = devs[i].kind == DeviceRef::Kind::gpu ? t.gpus()[devs[i].index].numa : t.nics()[devs[i].index].numa;
    out += fmt::format("{:<{}}{}\n", cpus.to_string(), wc, join(numa, ",", "N/A"));
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
  for (const std::string& note : t.warnings()) out += "\nNote: " + note + "\n";
  if (!t.gpus().empty() && !t.has_nvlink_data())
    out += "\nNote: the topology carries no NVLinkBandwidth data; GPU pairs show their PCIe path.\n";
  if (!t.nics().empty()) {
    out += "\nNIC Legend:\n\n";
    for (const Nic& n : t.nics())
      out += fmt::format("  {}: {}{} ({})\n", n.name, n.pci.to_string(), n.netdev.empty() || n.netdev == n.name ? "" : " " + n.netdev,
                         n.kind == NicKind::openfabrics ? fmt::format("OpenFabrics, port {}", n.port) : "Ethernet");
  }
  return out;
}

}  // namespace sluice::topo
