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

enum class NicKind { openfabrics, ethernet };

struct Nic {
  int index = 0;           // in PCI bus order
  std::string name;        // "mlx5_0" (OpenFabrics) or "eth0"
  std::string netdev;      // the IP interface on the same PCI function ("ib0", "hsi0"), if any
  int port = 1;            // active port (OpenFabrics); UCX names a device "mlx5_0:1"
  NicKind kind = NicKind::openfabrics;
  PciAddress pci;
  CpuSet cpus;
  std::vector<int> numa;
};

struct NumaNode {
  int os_index = 0;
  CpuSet cpus;
};

// Path between two devices, as `nvidia-smi topo -m` names it, best first.
enum class PathClass { self, nvlink, pix, pxb, phb, node, sys };

struct Path {
  PathClass cls = PathClass::sys;
  int nvlinks = 0;               // with PathClass::nvlink
  std::string to_string() const; // "X", "NV6", "PIX", "PXB", "PHB", "NODE", "SYS"
  // Lower is closer; NVLink paths with more links are closer than fewer.
  int rank() const;
};

struct DeviceRef {
  enum class Kind { gpu, nic } kind;
  int index;
  static DeviceRef gpu(int i) { return {Kind::gpu, i}; }
  static DeviceRef nic(int i) { return {Kind::nic, i}; }
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
  const std::vector<Nic>& nics() const;
  const std::vector<NumaNode>& numa_nodes() const;
  CpuSet cpus() const;                       // every PU of the machine
  std::vector<CpuSet> cores() const;         // PUs of each core, in logical (Slurm) order
  CpuShape shape() const;

  // With via_nvlink=false, the PCIe/SMP path only (what host I/O between them crosses).
  Path path(DeviceRef a, DeviceRef b, bool via_nvlink = true) const;
  int nvlinks(int gpu_a, int gpu_b) const;   // 0 when no NVLink data or not linked
  bool has_nvlink_data() const;
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
