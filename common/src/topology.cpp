#include <sluice/common/error.hpp>
#include <sluice/common/nvml.hpp>
#include <sluice/common/topology.hpp>
#include <sluice/common/unique_handle.hpp>

#include "topology_impl.hpp"

#include <hwloc.h>

#include <algorithm>
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
  std::vector<Found> ib, eth;
  for (hwloc_obj_t o = nullptr; (o = hwloc_get_next_osdev(t, o));) {
    hwloc_obj_t pci = nullptr;
    for (hwloc_obj_t up = o->parent; up; up = up->parent)
      if (up->type == HWLOC_OBJ_PCI_DEVICE) { pci = up; break; }
    if (!pci) continue;  // virtual interfaces are no high-speed NIC
    if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS) ib.push_back({pci, o, NicKind::openfabrics});
    else if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK) eth.push_back({pci, o, NicKind::ethernet});
  }
  // OpenFabrics devices (InfiniBand, RoCE) when there are any; Ethernet only otherwise.
  std::vector<Found>& chosen = ib.empty() ? eth : ib;
  std::stable_sort(chosen.begin(), chosen.end(), [](const Found& a, const Found& b) {
    if (pci_of(a.pci) != pci_of(b.pci)) return pci_of(a.pci) < pci_of(b.pci);
    return std::strcmp(a.osdev->name, b.osdev->name) < 0;
  });
  for (const Found& f : chosen) {
    Nic n;
    n.index = int(nics.size());
    n.name = f.osdev->name ? f.osdev->name : "";
    n.kind = f.kind;
    n.pci = pci_of(f.pci);
    if (f.kind == NicKind::openfabrics) {
      for (hwloc_obj_t s = f.pci->io_first_child; s; s = s->next_sibling)
        if (s->type == HWLOC_OBJ_OS_DEVICE && s->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK && s->name)
          n.netdev = s->name;
      // First port in state 4 (ACTIVE); port 1 when the export says nothing.
      for (int port = 1; port <= 4; ++port) {
        std::string key = "Port" + std::to_string(port) + "State";
        if (std::strcmp(info(f.osdev, key.c_str()), "4") == 0) { n.port = port; break; }
      }
    } else {
      n.netdev = n.name;
    }
    hwloc_obj_t nonio = hwloc_get_non_io_ancestor_obj(t, f.pci);
    n.cpus = cpuset_of(nonio->cpuset);
    n.numa = numa_of(t, nonio);
    nics.push_back(std::move(n));
    nic_obj.push_back(f.pci);
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
bool Topology::gpus_behind_nvswitch() const {
  return std::any_of(impl_->nvswitch_links.begin(), impl_->nvswitch_links.end(), [](int n) { return n > 0; });
}

Path Topology::path(DeviceRef a, DeviceRef b, bool via_nvlink) const {
  for (DeviceRef d : {a, b}) {
    const bool gpu = d.kind == DeviceRef::Kind::gpu;
    if (d.index < 0 || d.index >= int(gpu ? impl_->gpus.size() : impl_->nics.size()))
      throw InvalidArgument(std::string(gpu ? "GPU " : "NIC ") + std::to_string(d.index) + " is not in the topology " + impl_->source);
  }
  if (a.kind == b.kind && a.index == b.index) return {PathClass::self, 0};
  if (via_nvlink && a.kind == DeviceRef::Kind::gpu && b.kind == DeviceRef::Kind::gpu) {
    if (int n = nvlinks(a.index, b.index); n > 0) return {PathClass::nvlink, n};
  }
  return impl_->pcie.at(impl_->device_slot(a)).at(impl_->device_slot(b));
}

}  // namespace sluice::topo
