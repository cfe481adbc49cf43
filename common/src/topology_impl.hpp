// The Topology's insides, shared by its hwloc reader (topology.cpp) and its snapshot
// format (topology_snapshot.cpp). Private to common/.
#pragma once

#include <sluice/common/topology.hpp>
#include <sluice/common/unique_handle.hpp>

#include <hwloc.h>

#include <string>
#include <vector>

namespace sluice::topo {

struct HwlocTraits {
  static hwloc_topology_t invalid() noexcept { return nullptr; }
  static void close(hwloc_topology_t t) noexcept { hwloc_topology_destroy(t); }
};
using HwlocTopology = UniqueHandle<hwloc_topology_t, HwlocTraits>;

struct Topology::Impl {
  HwlocTopology topo;                          // null in a snapshot
  std::string source;
  std::vector<Gpu> gpus;
  std::vector<Nic> all_nics;                   // every NIC found, PCI order
  std::vector<Nic> nics;                       // the default selection (renumbered)
  std::vector<int> nic_slot;                   // nics[i] is all_nics[nic_slot[i]]
  std::vector<NumaNode> numa;
  CpuSet all_cpus;
  std::vector<CpuSet> cores;                   // logical (Slurm) order
  CpuShape shape;
  std::vector<std::vector<Path>> pcie;         // [slot][slot], slots: GPUs then all_nics
  std::vector<hwloc_obj_t> gpu_obj, nic_obj;  // PCI device of each (nic_obj: per all_nics); empty in a snapshot
  std::vector<std::vector<int>> nvlink;        // [gpu][gpu] link count
  std::vector<int> nvswitch_links;             // per GPU: links that end at an NVSwitch
  bool nvlink_data = false;
  std::vector<std::vector<int>> xgmi;          // [gpu][gpu] xGMI width in links, 0: not linked
  std::vector<std::vector<int>> xgmi_hops;     // [gpu][gpu] hops where linked
  bool xgmi_data = false;
  std::vector<std::string> warnings;

  void discover();
  void discover_gpus();
  void discover_nics();
  void read_nvlinks();
  void read_xgmi();
  void choose_default_nics();  // nics and nic_slot from all_nics
  void connect_through_switches();
  Path pcie_path(hwloc_obj_t a, hwloc_obj_t b) const;
  std::size_t device_slot(DeviceRef d) const {
    if (d.kind == DeviceRef::Kind::gpu) return std::size_t(d.index);
    return gpus.size() + std::size_t(d.kind == DeviceRef::Kind::nic ? nic_slot.at(d.index) : d.index);
  }
};

}  // namespace sluice::topo
