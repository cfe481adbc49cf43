// The machine's topology as sluice's placement needs it: GPUs, high-speed NICs, NUMA
// nodes, cores and the PCIe tree, read with hwloc from the live machine or an XML export.
#pragma once

#include <sluice/common/cpu_set.hpp>

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::nvml {
class Library;
}

namespace sluice::topo {

struct PciAddress {
  std::uint32_t domain = 0;
  std::uint32_t bus = 0, device = 0, function = 0;
  std::string to_string() const;  // "0004:04:00.0"
  auto operator<=>(const PciAddress&) const = default;
};

enum class GpuVendor { nvidia, amd };
const char* to_string(GpuVendor v);

struct Gpu {
  int index = 0;          // node index in PCI bus order (CUDA_DEVICE_ORDER=PCI_BUS_ID, gres.conf)
  int vendor_index = 0;   // index among this vendor's GPUs: what CUDA/ROCR_VISIBLE_DEVICES use
  GpuVendor vendor = GpuVendor::nvidia;
  PciAddress pci;
  std::string model;      // "Tesla V100-SXM2-16GB", or the PCI device name
  CpuSet cpus;            // PUs local to the device (its non-I/O ancestor)
  std::vector<int> numa;  // OS indices of the NUMA nodes local to it
};

// The hwloc OS device a NIC is named by: a verbs device ("mlx5_0") or a network interface.
enum class NicKind { openfabrics, ethernet };

// What a NIC is, which decides what its transports read (UCX, NCCL/RCCL, libfabric).
enum class NicFamily {
  infiniband,  // a verbs device other than EFA: InfiniBand, RoCE, iWARP, Omni-Path
  efa,         // AWS Elastic Fabric Adapter (verbs device of PCI 1d0f:efaX; libfabric's efa provider)
  slingshot,   // HPE Slingshot (Cassini, PCI vendor 17db): a network interface, libfabric's cxi provider
  ethernet,    // any other network interface
};
const char* to_string(NicFamily f);  // "InfiniBand/RoCE", "EFA", "Slingshot", "Ethernet"

// Placement's ranking of NICs, best first: tasks get NICs of the best class the node has, so a
// management port never serves a task while a high-speed NIC exists.
enum class NicClass {
  fabric,         // RDMA or HPC fabric: a verbs device, Slingshot
  fast_ethernet,  // a network interface of a high-speed part (Mellanox/NVIDIA, AWS ENA, Broadcom
                  // BCM575xx/57608, Intel E810, an InfiniBand controller) or on a PCIe link of
                  // at least kFastNicPcieGBps
  ethernet,       // other Ethernet: 1 GbE ports, links hwloc does not report
};
const char* to_string(NicClass c);  // "fabric", "high-speed Ethernet", "other Ethernet"

// PCIe Gen3 x4 (3.94 GB/s) or Gen2 x8: no 1 GbE part has such a link, 10 GbE and faster do.
constexpr float kFastNicPcieGBps = 3.9f;

struct Nic {
  int index = 0;           // in PCI bus order (among nics(), or among all_nics())
  std::string name;        // "mlx5_0" (OpenFabrics) or "eth0"
  std::string netdev;      // the IP interface on the same PCI function ("ib0", "hsi0"), if any
  int port = 1;            // active port (OpenFabrics); UCX names a device "mlx5_0:1"
  NicKind kind = NicKind::openfabrics;
  PciAddress pci;
  CpuSet cpus;
  std::vector<int> numa;
  NicFamily family = NicFamily::infiniband;
  NicClass nic_class = NicClass::fabric;
  unsigned pci_vendor = 0, pci_device = 0;
  float pcie_gbps = 0;     // PCIe link bandwidth hwloc reports (GB/s); 0 when not reported
};

struct NumaNode {
  int os_index = 0;
  CpuSet cpus;
};

// Path between two devices, as `nvidia-smi topo -m` names it (xgmi: as `rocm-smi --showtopo`
// names the link type), best first except xgmi, which ranks with nvlink (appended last so the
// other values stay).
enum class PathClass { self, nvlink, pix, pxb, phb, node, sys, xgmi };

struct Path {
  PathClass cls = PathClass::sys;
  int nvlinks = 0;               // with PathClass::nvlink
  std::string to_string() const; // "X", "NV6", "XGMI", "PIX", "PXB", "PHB", "NODE", "SYS"
  // Lower is closer; NVLink paths with more links are closer than fewer; xGMI paths with fewer
  // hops, then more links, are closer. Both are closer than any PCIe path.
  int rank() const;
  int xgmi_links = 0;            // with PathClass::xgmi: width in xGMI links (bandwidth / 50 GB/s)
  int xgmi_hops = 0;             // with PathClass::xgmi: hops (XGMIHops; 1 when not exported)
};

struct DeviceRef {
  enum class Kind { gpu, nic, any_nic } kind;
  int index;
  static DeviceRef gpu(int i) { return {Kind::gpu, i}; }
  static DeviceRef nic(int i) { return {Kind::nic, i}; }          // index into nics()
  static DeviceRef any_nic(int i) { return {Kind::any_nic, i}; }  // index into all_nics()
};

struct CpuShape {  // what slurm.conf's NodeName line needs
  int sockets = 0, cores_per_socket = 0, threads_per_core = 0;
};

class Topology {
 public:
  // Reads an hwloc XML export (format 1.x or 2.x). Throws TopologyError naming the file.
  static Topology from_xml(const std::string& path);
  // Discovers this machine, with I/O devices.
  static Topology from_system();
  // A snapshot written by to_snapshot(): the whole model, no hwloc needed to read it, so a
  // step reads it in well under a millisecond. Throws TopologyError when malformed.
  static Topology from_snapshot(std::string_view json);
  std::string to_snapshot() const;

  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;
  ~Topology();

  const std::string& source() const;  // the XML path, or "this machine"
  const std::vector<Gpu>& gpus() const;
  // The NICs placement uses with no site override: those of the best NicClass present.
  const std::vector<Nic>& nics() const;
  // Every NIC found (verbs devices, and network interfaces on PCI functions without one), PCI
  // order; Nic::index is the position here. select_nics() (nic_policy.hpp) picks among them.
  const std::vector<Nic>& all_nics() const;
  const std::vector<NumaNode>& numa_nodes() const;
  CpuSet cpus() const;                       // every PU of the machine
  std::vector<CpuSet> cores() const;         // PUs of each core, in logical (Slurm) order
  CpuShape shape() const;

  // With via_nvlink=false, the PCIe/SMP path only (what host I/O between them crosses): no
  // NVLink, no xGMI.
  Path path(DeviceRef a, DeviceRef b, bool via_nvlink = true) const;
  int nvlinks(int gpu_a, int gpu_b) const;   // 0 when no NVLink data or not linked
  bool has_nvlink_data() const;
  // xGMI width between two AMD GPUs, in links of 50 GB/s (hwloc's XGMIBandwidth / 50000 MB/s,
  // at least 1 for a linked pair); 0 when not linked or no XGMIBandwidth data.
  int xgmi_links(int gpu_a, int gpu_b) const;
  bool has_xgmi_data() const;
  bool gpus_behind_nvswitch() const;         // any GPU whose links end at an NVSwitch

  // Counts NVLinks from NVML, for topologies that carry no NVLinkBandwidth data (hwloc built
  // without its NVML plugin). from_system() does this itself when NVML loads. Needs the
  // hwloc topology: throws TopologyError on a snapshot.
  void add_nvlinks(const nvml::Library& nvml);
  // Things discovery could not do, worth telling an admin (not errors).
  const std::vector<std::string>& warnings() const;

 private:
  struct Impl;
  explicit Topology(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::topo
