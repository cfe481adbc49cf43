// The topology snapshot: the whole model as JSON, readable without hwloc. The plugin writes
// one per node at slurmd start; each step reads it instead of parsing hwloc XML again.
#include <sluice/common/error.hpp>

#include "topology_impl.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace sluice::topo {
namespace {

using nlohmann::json;
constexpr int kSnapshotVersion = 2;  // 2: every NIC with its class, xGMI

PathClass parse_class(const std::string& s) {
  if (s == "X") return PathClass::self;
  if (s == "PIX") return PathClass::pix;
  if (s == "PXB") return PathClass::pxb;
  if (s == "PHB") return PathClass::phb;
  if (s == "NODE") return PathClass::node;
  if (s == "SYS") return PathClass::sys;
  throw TopologyError("topology snapshot has an unknown PCIe path class '" + s + "'");
}

PciAddress parse_pci(const std::string& s) {
  PciAddress p;
  if (std::sscanf(s.c_str(), "%x:%x:%x.%x", &p.domain, &p.bus, &p.device, &p.function) != 4)
    throw TopologyError("topology snapshot has a malformed PCI address '" + s + "'");
  return p;
}

const char* family_name(NicFamily f) {
  switch (f) {
    case NicFamily::infiniband: return "infiniband";
    case NicFamily::efa: return "efa";
    case NicFamily::slingshot: return "slingshot";
    case NicFamily::ethernet: return "ethernet";
  }
  return "?";
}

NicFamily parse_family(const std::string& s) {
  for (NicFamily f : {NicFamily::infiniband, NicFamily::efa, NicFamily::slingshot, NicFamily::ethernet})
    if (s == family_name(f)) return f;
  throw TopologyError("topology snapshot has an unknown NIC family '" + quote_input(s) + "'");
}

NicClass parse_nic_class(int c) {
  if (c < int(NicClass::fabric) || c > int(NicClass::ethernet)) throw TopologyError("topology snapshot has an unknown NIC class");
  return NicClass(c);
}

std::vector<std::vector<int>> square(const json& j, std::size_t n, const char* what) {
  auto m = j.get<std::vector<std::vector<int>>>();
  if (m.size() != n) throw TopologyError(std::string("topology snapshot: ") + what + " matrix does not match the GPU count");
  for (const auto& row : m)
    if (row.size() != n) throw TopologyError(std::string("topology snapshot: ") + what + " matrix row of the wrong size");
  return m;
}

}  // namespace

std::string Topology::to_snapshot() const {
  const Impl& m = *impl_;
  json gpus = json::array(), nics = json::array(), numa = json::array(), cores = json::array(), pcie = json::array();
  for (const Gpu& g : m.gpus)
    gpus.push_back({{"pci", g.pci.to_string()}, {"vendor", to_string(g.vendor)}, {"vendor_index", g.vendor_index},
                    {"model", g.model}, {"cpus", g.cpus.to_string()}, {"numa", g.numa}});
  for (const Nic& n : m.all_nics)
    nics.push_back({{"name", n.name}, {"netdev", n.netdev}, {"port", n.port},
                    {"kind", n.kind == NicKind::openfabrics ? "openfabrics" : "ethernet"}, {"pci", n.pci.to_string()},
                    {"cpus", n.cpus.to_string()}, {"numa", n.numa}, {"family", family_name(n.family)},
                    {"class", int(n.nic_class)}, {"vendor", n.pci_vendor}, {"device", n.pci_device},
                    {"pcie_gbps", n.pcie_gbps}});
  for (const NumaNode& n : m.numa) numa.push_back({{"os_index", n.os_index}, {"cpus", n.cpus.to_string()}});
  for (const CpuSet& c : m.cores) cores.push_back(c.to_string());
  for (const auto& row : m.pcie) {
    json r = json::array();
    for (const Path& p : row) r.push_back(p.to_string());
    pcie.push_back(std::move(r));
  }
  json doc{{"format", "sluice-topology"}, {"version", kSnapshotVersion}, {"source", m.source},
           {"cpus", m.all_cpus.to_string()}, {"cores", cores},
           {"shape", {m.shape.sockets, m.shape.cores_per_socket, m.shape.threads_per_core}},
           {"numa", numa}, {"gpus", gpus}, {"nics", nics}, {"pcie", pcie}, {"nvlink", m.nvlink},
           {"nvswitch_links", m.nvswitch_links}, {"nvlink_data", m.nvlink_data}, {"xgmi", m.xgmi},
           {"xgmi_hops", m.xgmi_hops}, {"xgmi_data", m.xgmi_data}, {"warnings", m.warnings}};
  // Paths and model strings may hold non-UTF-8 bytes: replace them rather than throw.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

Topology Topology::from_snapshot(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  try {
    if (doc.is_discarded() || !doc.is_object() || doc.value("format", "") != "sluice-topology")
      throw TopologyError("not a sluice topology snapshot");
    if (doc.value("version", 0) != kSnapshotVersion)
      throw TopologyError("topology snapshot version " + std::to_string(doc.value("version", 0)) + " is not " +
                          std::to_string(kSnapshotVersion));
    auto m = std::make_unique<Impl>();
    m->source = doc.at("source").get<std::string>();
    m->all_cpus = CpuSet::parse(doc.at("cpus").get<std::string>());
    for (const auto& c : doc.at("cores")) m->cores.push_back(CpuSet::parse(c.get<std::string>()));
    auto shape = doc.at("shape").get<std::vector<int>>();
    if (shape.size() != 3) throw TopologyError("topology snapshot: shape needs 3 numbers");
    m->shape = {shape[0], shape[1], shape[2]};
    for (const auto& n : doc.at("numa")) m->numa.push_back({n.at("os_index").get<int>(), CpuSet::parse(n.at("cpus").get<std::string>())});
    int per_vendor[2] = {0, 0};
    for (const auto& j : doc.at("gpus")) {
      Gpu g;
      g.index = int(m->gpus.size());
      const std::string vendor = j.at("vendor").get<std::string>();
      if (vendor != "nvidia" && vendor != "amd") throw TopologyError("topology snapshot: unknown GPU vendor '" + quote_input(vendor) + "'");
      g.vendor = vendor == "amd" ? GpuVendor::amd : GpuVendor::nvidia;
      g.vendor_index = j.at("vendor_index").get<int>();
      if (g.vendor_index != per_vendor[int(g.vendor)]++) throw TopologyError("topology snapshot: GPU vendor indices out of order");
      g.pci = parse_pci(j.at("pci").get<std::string>());
      g.model = j.at("model").get<std::string>();
      g.cpus = CpuSet::parse(j.at("cpus").get<std::string>());
      g.numa = j.at("numa").get<std::vector<int>>();
      m->gpus.push_back(std::move(g));
    }
    for (const auto& j : doc.at("nics")) {
      Nic n;
      n.index = int(m->all_nics.size());
      n.name = j.at("name").get<std::string>();
      n.netdev = j.at("netdev").get<std::string>();
      n.port = j.at("port").get<int>();
      const std::string kind = j.at("kind").get<std::string>();
      if (kind != "ethernet" && kind != "openfabrics") throw TopologyError("topology snapshot: unknown NIC kind '" + quote_input(kind) + "'");
      n.kind = kind == "ethernet" ? NicKind::ethernet : NicKind::openfabrics;
      n.pci = parse_pci(j.at("pci").get<std::string>());
      n.cpus = CpuSet::parse(j.at("cpus").get<std::string>());
      n.numa = j.at("numa").get<std::vector<int>>();
      n.family = parse_family(j.at("family").get<std::string>());
      n.nic_class = parse_nic_class(j.at("class").get<int>());
      n.pci_vendor = j.at("vendor").get<unsigned>();
      n.pci_device = j.at("device").get<unsigned>();
      n.pcie_gbps = j.at("pcie_gbps").get<float>();
      if (!(n.pcie_gbps >= 0 && n.pcie_gbps < 1e6f)) throw TopologyError("topology snapshot: a NIC's PCIe speed is out of range");
      m->all_nics.push_back(std::move(n));
    }
    m->choose_default_nics();
    const std::size_t slots = m->gpus.size() + m->all_nics.size();
    for (const auto& row : doc.at("pcie")) {
      std::vector<Path> r;
      for (const auto& c : row) r.push_back({parse_class(c.get<std::string>()), 0});
      if (r.size() != slots) throw TopologyError("topology snapshot: path matrix row of the wrong size");
      m->pcie.push_back(std::move(r));
    }
    if (m->pcie.size() != slots) throw TopologyError("topology snapshot: path matrix of the wrong size");
    m->nvlink = doc.at("nvlink").get<std::vector<std::vector<int>>>();
    m->nvswitch_links = doc.at("nvswitch_links").get<std::vector<int>>();
    if (m->nvlink.size() != m->gpus.size() || m->nvswitch_links.size() != m->gpus.size())
      throw TopologyError("topology snapshot: NVLink matrix does not match the GPU count");
    for (const auto& row : m->nvlink)
      if (row.size() != m->gpus.size()) throw TopologyError("topology snapshot: NVLink matrix row of the wrong size");
    m->nvlink_data = doc.at("nvlink_data").get<bool>();
    m->xgmi = square(doc.at("xgmi"), m->gpus.size(), "xGMI");
    m->xgmi_hops = square(doc.at("xgmi_hops"), m->gpus.size(), "xGMI hops");
    m->xgmi_data = doc.at("xgmi_data").get<bool>();
    m->warnings = doc.value("warnings", std::vector<std::string>{});
    return Topology(std::move(m));
  } catch (const json::exception& e) {
    throw TopologyError(std::string("malformed topology snapshot: ") + e.what());
  } catch (const InvalidArgument& e) {
    throw TopologyError(std::string("malformed topology snapshot: ") + e.what());
  }
}

}  // namespace sluice::topo
