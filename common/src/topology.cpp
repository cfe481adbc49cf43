#include <sluice/common/error.hpp>
#include <sluice/common/nic_policy.hpp>
#include <sluice/common/nvml.hpp>
#include <sluice/common/topology.hpp>
#include <sluice/common/unique_handle.hpp>

#include "topology_impl.hpp"

#include <hwloc.h>

#include <algorithm>
#include <iterator>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

namespace sluice::topo {
namespace {

constexpr unsigned kVendorNvidia = 0x10de;
constexpr unsigned kVendorAmd = 0x1002;
constexpr unsigned kClassVga = 0x0300, kClass3d = 0x0302, kClassDisplay = 0x0380;

// hwloc's NVML backend reports NVLinkBandwidth as links x per-link bandwidth (MB/s):
// 20000 for NVLink 1 (P100), 25000 for NVLink 2 and later (V100, A100, H100). The
// export does not record the NVLink version, so it is inferred from the GPU model.
constexpr std::uint64_t kNvlink1LinkMBps = 20000;
constexpr std::uint64_t kNvlink2LinkMBps = 25000;

// XGMIBandwidth is MB/s per GPU pair. One xGMI link of MI200/MI300 carries 50 GB/s: hwloc's AMD
// SMI backend reports 50000/100000/200000 for 1/2/4 links; its older ROCm SMI backend (hwloc
// 2.9) writes 100000 for every xGMI-linked pair.
constexpr std::uint64_t kXgmiLinkMBps = 50000;

// PCI vendors whose NICs are what hwloc alone cannot tell apart from a 1 GbE port.
constexpr unsigned kVendorMellanox = 0x15b3, kVendorCray = 0x17db, kVendorAmazon = 0x1d0f;
bool is_efa(unsigned vendor, unsigned device) { return vendor == kVendorAmazon && (device & 0xfff0) == 0xefa0; }
bool is_ena(unsigned vendor, unsigned device) {
  return vendor == kVendorAmazon && (device == 0xec20 || device == 0xec21 || device == 0x0ec2);
}
// Broadcom and Intel make 1 GbE ports too, so only their 100/200/400 GbE RDMA-capable parts
// count by ID (with their RDMA driver loaded they are verbs devices anyway): Broadcom
// BCM57502/57504/57508 and BCM57608 (Thor, Thor 2), Intel E810 (Columbiaville).
constexpr unsigned kVendorBroadcom = 0x14e4, kVendorIntel = 0x8086;
bool is_fast_part(unsigned vendor, unsigned device) {
  static constexpr unsigned broadcom[] = {0x1750, 0x1751, 0x1752, 0x1760};
  static constexpr unsigned intel[] = {0x1591, 0x1592, 0x1593, 0x159b};
  auto in = [&](const auto& ids) { return std::find(std::begin(ids), std::end(ids), device) != std::end(ids); };
  return (vendor == kVendorBroadcom && in(broadcom)) || (vendor == kVendorIntel && in(intel));
}
constexpr unsigned kClassInfiniband = 0x0207;  // PCI class of an InfiniBand controller

PciAddress pci_of(hwloc_obj_t o) {
  const auto& p = o->attr->pcidev;
  return {p.domain, p.bus, p.dev, p.func};
}

CpuSet cpuset_of(hwloc_const_bitmap_t bm) {
  std::vector<int> v;
  if (bm)
    for (int i = hwloc_bitmap_first(bm); i >= 0; i = hwloc_bitmap_next(bm, i)) v.push_back(i);
  return CpuSet::from_indices(std::move(v));
}

std::vector<int> numa_of(hwloc_topology_t t, hwloc_obj_t nonio) {
  std::vector<int> out;
  hwloc_obj_t n = nullptr;
  while ((n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n)))
    if (nonio->nodeset && hwloc_bitmap_isset(nonio->nodeset, n->os_index)) out.push_back(int(n->os_index));
  std::sort(out.begin(), out.end());
  return out;
}

const char* info(hwloc_obj_t o, const char* name) {
  const char* v = hwloc_obj_get_info_by_name(o, name);
  return v ? v : "";
}

bool is_gpu(hwloc_obj_t pci) {
  const auto& a = pci->attr->pcidev;
  bool vendor = a.vendor_id == kVendorNvidia || a.vendor_id == kVendorAmd;
  bool cls = a.class_id == kClassVga || a.class_id == kClass3d || a.class_id == kClassDisplay;
  return vendor && cls;
}

std::string gpu_model(hwloc_obj_t pci) {
  for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling)
    if (const char* m = hwloc_obj_get_info_by_name(c, "GPUModel")) return m;
  return info(pci, "PCIDevice");
}

// Number of PCI bridges strictly between a device and its ancestor `top`.
int bridges_between(hwloc_obj_t dev, hwloc_obj_t top) {
  int n = 0;
  for (hwloc_obj_t o = dev->parent; o && o != top; o = o->parent)
    if (o->type == HWLOC_OBJ_BRIDGE) ++n;
  return n;
}

// hwloc_get_common_ancestor_obj() compares depths, which are negative (special) for I/O
// objects, so walk the parent chains instead.
hwloc_obj_t common_ancestor(hwloc_obj_t a, hwloc_obj_t b) {
  std::vector<hwloc_obj_t> up;
  for (hwloc_obj_t o = a; o; o = o->parent) up.push_back(o);
  for (hwloc_obj_t o = b; o; o = o->parent)
    if (std::find(up.begin(), up.end(), o) != up.end()) return o;
  return nullptr;
}

}  // namespace

const char* to_string(GpuVendor v) { return v == GpuVendor::nvidia ? "nvidia" : "amd"; }

const char* to_string(NicFamily f) {
  switch (f) {
    case NicFamily::infiniband: return "InfiniBand/RoCE";
    case NicFamily::efa: return "EFA";
    case NicFamily::slingshot: return "Slingshot";
    case NicFamily::ethernet: return "Ethernet";
  }
  return "?";
}

const char* to_string(NicClass c) {
  switch (c) {
    case NicClass::fabric: return "fabric";
    case NicClass::fast_ethernet: return "high-speed Ethernet";
    case NicClass::ethernet: return "other Ethernet";
  }
  return "?";
}

std::string PciAddress::to_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device, function);
  return buf;
}

std::string Path::to_string() const {
  switch (cls) {
    case PathClass::self: return "X";
    case PathClass::nvlink: return "NV" + std::to_string(nvlinks);
    case PathClass::pix: return "PIX";
    case PathClass::pxb: return "PXB";
    case PathClass::phb: return "PHB";
    case PathClass::node: return "NODE";
    case PathClass::sys: return "SYS";
    case PathClass::xgmi: return "XGMI";
  }
  return "?";
}

int Path::rank() const {
  switch (cls) {
    case PathClass::self: return 0;
    case PathClass::nvlink: return 100 - std::min(nvlinks, 99);
    case PathClass::pix: return 200;
    case PathClass::pxb: return 300;
    case PathClass::phb: return 400;
    case PathClass::node: return 500;
    case PathClass::sys: return 600;
    case PathClass::xgmi: return 100 + 10 * std::clamp(xgmi_hops, 1, 9) - std::clamp(xgmi_links, 1, 9);
  }
  return 1000;
}

void Topology::Impl::discover() {
  hwloc_topology_t t = topo.get();
  hwloc_obj_t n = nullptr;
  while ((n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n)))
    numa.push_back({int(n->os_index), cpuset_of(n->cpuset)});
  discover_gpus();
  discover_nics();
  read_nvlinks();
  read_xgmi();
  all_cpus = cpuset_of(hwloc_topology_get_topology_cpuset(t));
  int ncores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
  if (ncores <= 0) {  // exports without Core objects: each PU is a core
    for (int cpu : all_cpus.indices()) cores.push_back(CpuSet::from_indices({cpu}));
  } else {
    for (int i = 0; i < ncores; ++i) cores.push_back(cpuset_of(hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, i)->cpuset));
  }
  int sockets = std::max(1, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE));
  int pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
  int nc = std::max<int>(1, int(cores.size()));
  shape = {sockets, std::max(1, nc / sockets), std::max(1, pus / nc)};
  // Every PCIe path once, so path() is a lookup and the model outlives hwloc (snapshots).
  std::vector<hwloc_obj_t> objs = gpu_obj;
  objs.insert(objs.end(), nic_obj.begin(), nic_obj.end());
  pcie.assign(objs.size(), std::vector<Path>(objs.size()));
  for (std::size_t a = 0; a < objs.size(); ++a)
    for (std::size_t b = 0; b < objs.size(); ++b) pcie[a][b] = a == b ? Path{PathClass::self, 0} : pcie_path(objs[a], objs[b]);
}

Path Topology::Impl::pcie_path(hwloc_obj_t oa, hwloc_obj_t ob) const {
  hwloc_topology_t t = topo.get();
  hwloc_obj_t common = common_ancestor(oa, ob);
  if (common == oa || common == ob) return {PathClass::pix, 0};  // functions of one device tree
  if (common->type == HWLOC_OBJ_BRIDGE) {
    if (common->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_HOST) return {PathClass::phb, 0};
    // A PCIe switch is an upstream port plus downstream ports: one bridge on each side
    // below the common ancestor is one switch (PIX); more means nested switches (PXB).
    int depth = std::max(bridges_between(oa, common), bridges_between(ob, common));
    return {depth <= 1 ? PathClass::pix : PathClass::pxb, 0};
  }
  // Different host bridges: same NUMA node (NODE) or across the SMP interconnect (SYS).
  hwloc_obj_t na = hwloc_get_non_io_ancestor_obj(t, oa), nb = hwloc_get_non_io_ancestor_obj(t, ob);
  bool same_numa = na->nodeset && nb->nodeset && hwloc_bitmap_isequal(na->nodeset, nb->nodeset) &&
                   hwloc_bitmap_weight(na->nodeset) == 1;
  if (na == nb && hwloc_bitmap_weight(na->nodeset) <= 1) same_numa = true;
  return {same_numa ? PathClass::node : PathClass::sys, 0};
}

void Topology::Impl::discover_gpus() {
  hwloc_topology_t t = topo.get();
  std::vector<hwloc_obj_t> found;
  for (hwloc_obj_t p = nullptr; (p = hwloc_get_next_pcidev(t, p));)
    if (is_gpu(p)) found.push_back(p);
  // PCI bus order is what CUDA_DEVICE_ORDER=PCI_BUS_ID and gres.conf use.
  std::sort(found.begin(), found.end(), [](hwloc_obj_t a, hwloc_obj_t b) { return pci_of(a) < pci_of(b); });
  int per_vendor[2] = {0, 0};
  for (hwloc_obj_t p : found) {
    Gpu g;
    g.index = int(gpus.size());
    g.vendor = p->attr->pcidev.vendor_id == kVendorNvidia ? GpuVendor::nvidia : GpuVendor::amd;
    g.vendor_index = per_vendor[int(g.vendor)]++;
    g.pci = pci_of(p);
    g.model = gpu_model(p);
    hwloc_obj_t nonio = hwloc_get_non_io_ancestor_obj(t, p);
    g.cpus = cpuset_of(nonio->cpuset);
    g.numa = numa_of(t, nonio);
    gpus.push_back(std::move(g));
    gpu_obj.push_back(p);
  }
}

void Topology::Impl::discover_nics() {
  hwloc_topology_t t = topo.get();
  struct Found { hwloc_obj_t pci; hwloc_obj_t osdev; NicKind kind; };
  std::vector<Found> found;
  for (hwloc_obj_t o = nullptr; (o = hwloc_get_next_osdev(t, o));) {
    hwloc_obj_t pci = nullptr;
    for (hwloc_obj_t up = o->parent; up; up = up->parent)
      if (up->type == HWLOC_OBJ_PCI_DEVICE) { pci = up; break; }
    if (!pci || !o->name) continue;  // virtual interfaces are no high-speed NIC
    if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS) found.push_back({pci, o, NicKind::openfabrics});
    else if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK) found.push_back({pci, o, NicKind::ethernet});
  }
  // A network interface on a PCI function that has a verbs device is that NIC's netdev, not
  // a NIC of its own.
  auto has_verbs = [&](hwloc_obj_t pci) {
    return std::any_of(found.begin(), found.end(), [&](const Found& f) { return f.pci == pci && f.kind == NicKind::openfabrics; });
  };
  found.erase(std::remove_if(found.begin(), found.end(),
                             [&](const Found& f) { return f.kind == NicKind::ethernet && has_verbs(f.pci); }),
              found.end());
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    if (pci_of(a.pci) != pci_of(b.pci)) return pci_of(a.pci) < pci_of(b.pci);
    return std::strcmp(a.osdev->name, b.osdev->name) < 0;
  });
  for (const Found& f : found) {
    Nic n;
    n.index = int(all_nics.size());
    n.name = f.osdev->name;
    n.kind = f.kind;
    n.pci = pci_of(f.pci);
    n.pci_vendor = f.pci->attr->pcidev.vendor_id;
    n.pci_device = f.pci->attr->pcidev.device_id;
    const float speed = f.pci->attr->pcidev.linkspeed;
    n.pcie_gbps = speed > 0 && speed < 1e6f ? speed : 0;
    if (f.kind == NicKind::openfabrics) {
      for (hwloc_obj_t s = f.pci->io_first_child; s; s = s->next_sibling)
        if (s->type == HWLOC_OBJ_OS_DEVICE && s->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK && s->name)
          n.netdev = s->name;
      // First port in state 4 (ACTIVE); port 1 when the export says nothing.
      for (int port = 1; port <= 4; ++port) {
        std::string key = "Port" + std::to_string(port) + "State";
        if (std::strcmp(info(f.osdev, key.c_str()), "4") == 0) { n.port = port; break; }
      }
      // Every verbs device is RDMA-capable; EFA's transports differ from InfiniBand's.
      n.family = is_efa(n.pci_vendor, n.pci_device) ? NicFamily::efa : NicFamily::infiniband;
      n.nic_class = NicClass::fabric;
    } else {
      n.netdev = n.name;
      // Cassini has no verbs device: its vendor is what says it is Slingshot.
      const bool slingshot = n.pci_vendor == kVendorCray;
      n.family = slingshot ? NicFamily::slingshot : NicFamily::ethernet;
      const bool fast = n.pci_vendor == kVendorMellanox || is_ena(n.pci_vendor, n.pci_device) ||
                        is_fast_part(n.pci_vendor, n.pci_device) || f.pci->attr->pcidev.class_id == kClassInfiniband ||
                        n.pcie_gbps >= kFastNicPcieGBps;
      n.nic_class = slingshot ? NicClass::fabric : fast ? NicClass::fast_ethernet : NicClass::ethernet;
    }
    hwloc_obj_t nonio = hwloc_get_non_io_ancestor_obj(t, f.pci);
    n.cpus = cpuset_of(nonio->cpuset);
    n.numa = numa_of(t, nonio);
    all_nics.push_back(std::move(n));
    nic_obj.push_back(f.pci);
  }
  choose_default_nics();
}

void Topology::Impl::choose_default_nics() {
  nics.clear();
  nic_slot.clear();
  for (int i : select_nics(all_nics, NicPolicy{}).used) {
    nic_slot.push_back(i);
    nics.push_back(all_nics[i]);
    nics.back().index = int(nics.size()) - 1;
  }
}

void Topology::Impl::read_nvlinks() {
  const std::size_t ng = gpus.size();
  nvlink.assign(ng, std::vector<int>(ng, 0));
  nvswitch_links.assign(ng, 0);
  unsigned nr = 0;
  hwloc_topology_t t = topo.get();
  if (hwloc_distances_get_by_name(t, "NVLinkBandwidth", &nr, nullptr, 0) < 0 || nr == 0) return;
  std::vector<hwloc_distances_s*> dists(nr);
  if (hwloc_distances_get_by_name(t, "NVLinkBandwidth", &nr, dists.data(), 0) < 0) return;
  for (unsigned d = 0; d < nr; ++d) {
    hwloc_distances_s* m = dists[d];
    // Each matrix object is a GPU (its OS device or PCI device), an NVSwitch (a PCI
    // device that is no GPU), or a CPU package (NVLink to POWER CPUs; not a GPU path).
    enum Role { other, gpu, nvswitch };
    std::vector<Role> role(m->nbobjs, other);
    std::vector<int> gi(m->nbobjs, -1);
    for (unsigned i = 0; i < m->nbobjs; ++i) {
      hwloc_obj_t o = m->objs[i];
      while (o && o->type == HWLOC_OBJ_OS_DEVICE) o = o->parent;
      if (!o || o->type != HWLOC_OBJ_PCI_DEVICE) continue;
      auto it = std::find(gpu_obj.begin(), gpu_obj.end(), o);
      if (it != gpu_obj.end()) { role[i] = gpu; gi[i] = int(it - gpu_obj.begin()); }
      else role[i] = nvswitch;
    }
    for (unsigned i = 0; i < m->nbobjs; ++i) {
      if (role[i] != gpu) continue;
      std::uint64_t per_link = gpus[gi[i]].model.find("P100") != std::string::npos ? kNvlink1LinkMBps : kNvlink2LinkMBps;
      for (unsigned j = 0; j < m->nbobjs; ++j) {
        if (i == j) continue;
        int links = int(m->values[i * m->nbobjs + j] / per_link);
        if (links <= 0) continue;
        nvlink_data = true;
        if (role[j] == gpu) nvlink[gi[i]][gi[j]] += links;
        else if (role[j] == nvswitch) nvswitch_links[gi[i]] += links;
      }
    }
    hwloc_distances_release(t, m);
  }
  connect_through_switches();
}

void Topology::Impl::connect_through_switches() {
  // NVSwitch systems connect every switch-attached GPU to every other one at the full
  // width of its links (the export does not list the trunks between switch boards).
  const std::size_t ng = gpus.size();
  for (std::size_t a = 0; a < ng; ++a)
    for (std::size_t b = 0; b < ng; ++b)
      if (a != b && nvswitch_links[a] > 0 && nvswitch_links[b] > 0)
        nvlink[a][b] += std::min(nvswitch_links[a], nvswitch_links[b]);
}

void Topology::Impl::read_xgmi() {
  const std::size_t ng = gpus.size();
  xgmi.assign(ng, std::vector<int>(ng, 0));
  xgmi_hops.assign(ng, std::vector<int>(ng, 0));
  hwloc_topology_t t = topo.get();
  // Each matrix object is an rsmi OS device of a GPU; map it to the GPU's PCI device.
  auto gpu_of = [&](hwloc_obj_t o) {
    while (o && o->type == HWLOC_OBJ_OS_DEVICE) o = o->parent;
    auto it = std::find(gpu_obj.begin(), gpu_obj.end(), o);
    return it == gpu_obj.end() ? -1 : int(it - gpu_obj.begin());
  };
  auto for_each_pair = [&](const char* name, auto f) {
    unsigned nr = 0;
    if (hwloc_distances_get_by_name(t, name, &nr, nullptr, 0) < 0 || nr == 0) return;
    std::vector<hwloc_distances_s*> dists(nr);
    if (hwloc_distances_get_by_name(t, name, &nr, dists.data(), 0) < 0) return;
    for (unsigned d = 0; d < nr; ++d) {
      hwloc_distances_s* m = dists[d];
      for (unsigned i = 0; i < m->nbobjs; ++i)
        for (unsigned j = 0; j < m->nbobjs; ++j) {
          int a = gpu_of(m->objs[i]), b = gpu_of(m->objs[j]);
          if (a >= 0 && b >= 0 && a != b) f(a, b, m->values[i * m->nbobjs + j]);
        }
      hwloc_distances_release(t, m);
    }
  };
  for_each_pair("XGMIBandwidth", [&](int a, int b, std::uint64_t mbps) {
    if (mbps == 0) return;
    // Round to whole links, at least one; capped, the export is not trusted.
    std::uint64_t links = std::max<std::uint64_t>(1, (mbps + kXgmiLinkMBps / 2) / kXgmiLinkMBps);
    xgmi[a][b] = int(std::min<std::uint64_t>(links, 64));
    xgmi_hops[a][b] = 1;
    xgmi_data = true;
  });
  for_each_pair("XGMIHops", [&](int a, int b, std::uint64_t hops) {
    if (xgmi[a][b] > 0 && hops > 0) xgmi_hops[a][b] = int(std::min<std::uint64_t>(hops, 64));
  });
}

namespace {

HwlocTopology init_topology() {
  hwloc_topology_t t = nullptr;
  if (hwloc_topology_init(&t) < 0) throw SystemError("hwloc_topology_init", errno);
  HwlocTopology h(t);
  // Keep GPUs, NICs and the bridges above them; drop the rest of the PCI noise.
  hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  return h;
}

}  // namespace

Topology::Topology(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;
Topology::~Topology() = default;

Topology Topology::from_xml(const std::string& path) {
  // Check the file ourselves: hwloc's own message for a missing file is vague.
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) throw TopologyError("cannot read topology XML '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw TopologyError("topology XML '" + path + "' is not a regular file");
  auto impl = std::make_unique<Impl>();
  impl->topo = init_topology();
  impl->source = path;
  if (hwloc_topology_set_xml(impl->topo.get(), path.c_str()) < 0)
    throw TopologyError("topology XML '" + path + "' is not a valid hwloc XML export: " + std::strerror(errno));
  if (hwloc_topology_load(impl->topo.get()) < 0)
    throw TopologyError("topology XML '" + path + "' could not be loaded by hwloc: " + std::strerror(errno));
  if (hwloc_get_nbobjs_by_type(impl->topo.get(), HWLOC_OBJ_PU) <= 0)
    throw TopologyError("topology XML '" + path + "' describes no CPUs");
  impl->discover();
  return Topology(std::move(impl));
}

Topology Topology::from_system() {
  auto impl = std::make_unique<Impl>();
  impl->topo = init_topology();
  impl->source = "this machine";
  // The whole node, also when slurmd itself is confined (CpuSpecList, systemd AllowedCPUs):
  // by default hwloc drops the CPUs its own cgroup may not use.
  hwloc_topology_set_flags(impl->topo.get(), HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  // GPUs are found by PCI vendor and class. The vendor backends would load OpenCL ICDs, the
  // CUDA driver or X11 inside slurmd and slurmstepd (threads, a display connection).
  for (const char* c : {"gl", "opencl", "cuda", "nvml", "rsmi", "levelzero"})
    hwloc_topology_set_components(impl->topo.get(), HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, c);
  if (hwloc_topology_load(impl->topo.get()) < 0) throw SystemError("hwloc_topology_load (this machine)", errno);
  impl->discover();
  Topology t(std::move(impl));
  bool any_nvidia = std::any_of(t.gpus().begin(), t.gpus().end(), [](const Gpu& g) { return g.vendor == GpuVendor::nvidia; });
  const auto amd = std::count_if(t.gpus().begin(), t.gpus().end(), [](const Gpu& g) { return g.vendor == GpuVendor::amd; });
  if (amd > 1)
    t.impl_->warnings.push_back("xGMI links are not read in live discovery (hwloc's rsmi backend is not loaded into "
                                "slurmd): AMD GPU pairs show PCIe paths; an lstopo --of xml export given as "
                                "topology_xml= carries them");
  if (!t.has_nvlink_data() && any_nvidia) {
    try {
      if (auto lib = nvml::Library::load()) t.add_nvlinks(*lib);
      else t.impl_->warnings.push_back("NVML (libnvidia-ml.so.1) not loadable: GPU pairs show PCIe paths only");
    } catch (const Error& e) {
      t.impl_->warnings.push_back(std::string("NVLink counts unavailable: ") + e.what());
    }
  }
  return t;
}

void Topology::add_nvlinks(const nvml::Library& lib) {
  Impl& m = *impl_;
  if (!m.topo) throw TopologyError("NVLink counts cannot be added to a topology snapshot (" + m.source + ")");
  if (m.nvlink_data) return;  // hwloc's NVLinkBandwidth already counted them
  auto gpu_at = [&](const std::string& bus_id) {
    for (const Gpu& g : m.gpus)
      if (g.pci.to_string() == bus_id) return g.index;
    return -1;
  };
  auto is_nvidia_pci = [&](const std::string& bus_id) {
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    if (std::sscanf(bus_id.c_str(), "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) return false;
    hwloc_obj_t o = hwloc_get_pcidev_by_busid(m.topo.get(), dom, bus, dev, fn);
    return o && o->attr->pcidev.vendor_id == kVendorNvidia;
  };
  for (int d = 0; d < lib.device_count(); ++d) {
    int a = gpu_at(lib.pci_bus_id(d));
    if (a < 0) continue;  // a GPU hwloc does not list (hidden by the cgroup, say)
    for (const std::string& remote : lib.nvlink_remotes(d)) {
      m.nvlink_data = true;
      if (int b = gpu_at(remote); b >= 0) ++m.nvlink[a][b];
      else if (is_nvidia_pci(remote)) ++m.nvswitch_links[a];  // an NVSwitch; CPU links are no GPU path
    }
  }
  m.connect_through_switches();
}

const std::vector<std::string>& Topology::warnings() const { return impl_->warnings; }

const std::string& Topology::source() const { return impl_->source; }
const std::vector<Gpu>& Topology::gpus() const { return impl_->gpus; }
const std::vector<Nic>& Topology::nics() const { return impl_->nics; }
const std::vector<Nic>& Topology::all_nics() const { return impl_->all_nics; }
const std::vector<NumaNode>& Topology::numa_nodes() const { return impl_->numa; }

CpuSet Topology::cpus() const { return impl_->all_cpus; }
std::vector<CpuSet> Topology::cores() const { return impl_->cores; }
CpuShape Topology::shape() const { return impl_->shape; }

int Topology::nvlinks(int a, int b) const {
  const int n = int(impl_->gpus.size());
  if (a < 0 || a >= n || b < 0 || b >= n)
    throw InvalidArgument("GPU " + std::to_string(a < 0 || a >= n ? a : b) + " is not in the topology " + impl_->source);
  return impl_->nvlink[a][b];
}
bool Topology::has_nvlink_data() const { return impl_->nvlink_data; }
int Topology::xgmi_links(int a, int b) const {
  const int n = int(impl_->gpus.size());
  if (a < 0 || a >= n || b < 0 || b >= n)
    throw InvalidArgument("GPU " + std::to_string(a < 0 || a >= n ? a : b) + " is not in the topology " + impl_->source);
  return impl_->xgmi[a][b];
}
bool Topology::has_xgmi_data() const { return impl_->xgmi_data; }
bool Topology::gpus_behind_nvswitch() const {
  return std::any_of(impl_->nvswitch_links.begin(), impl_->nvswitch_links.end(), [](int n) { return n > 0; });
}

Path Topology::path(DeviceRef a, DeviceRef b, bool via_nvlink) const {
  for (DeviceRef d : {a, b}) {
    const bool gpu = d.kind == DeviceRef::Kind::gpu;
    const std::size_t count = gpu ? impl_->gpus.size() : d.kind == DeviceRef::Kind::nic ? impl_->nics.size() : impl_->all_nics.size();
    if (d.index < 0 || d.index >= int(count))
      throw InvalidArgument(std::string(gpu ? "GPU " : "NIC ") + std::to_string(d.index) + " is not in the topology " + impl_->source);
  }
  if (impl_->device_slot(a) == impl_->device_slot(b))
    return {PathClass::self, 0};
  if (via_nvlink && a.kind == DeviceRef::Kind::gpu && b.kind == DeviceRef::Kind::gpu) {
    if (int n = nvlinks(a.index, b.index); n > 0) return {PathClass::nvlink, n};
    if (int x = impl_->xgmi[a.index][b.index]; x > 0) {
      Path p{PathClass::xgmi, 0};
      p.xgmi_links = x;
      p.xgmi_hops = impl_->xgmi_hops[a.index][b.index];
      return p;
    }
  }
  return impl_->pcie.at(impl_->device_slot(a)).at(impl_->device_slot(b));
}

}  // namespace sluice::topo
