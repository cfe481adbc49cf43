// Placement of a node's tasks inside what Slurm allocated there: GPUs, the closest NIC,
// and a CPU set in the GPU's NUMA domain. Pure computation over a Topology: tests run it
// on servers nobody has here, and sluice-topo prints exactly what the plugin applies.
#pragma once

#include <sluice/common/cpu_set.hpp>
#include <sluice/common/nic_policy.hpp>
#include <sluice/common/placement_record.hpp>
#include <sluice/common/topology.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

enum class Policy { pack, spread, none };
Policy parse_policy(std::string_view text);  // throws InvalidArgument listing the valid values
const char* to_string(Policy p);

struct PlacementRequest {
  // Node GPU indices (PCI order) Slurm allocated; nullopt: every GPU of the topology.
  std::optional<std::vector<int>> gpus;
  int tasks = 1;          // local task count
  Policy policy = Policy::pack;
  // CPUs the tasks may use, as OS indices of the topology; empty: every PU of the topology.
  CpuSet allowed_cpus;
  // Which NICs tasks may get (the site's nics=/exclude_nics=); empty: the automatic ranking.
  topo::NicPolicy nics;
};

// Throws InvalidArgument (bad GPU index, tasks < 1, a nics= allow list that names none of the
// node's NICs) or TopologyError (no usable CPUs).
NodePlacement place(const topo::Topology& topology, const PlacementRequest& request);

// Maps the topology's PUs onto the CPUs this process may really use, for a dev cluster whose
// topology describes another machine: PU k (in OS order) goes to real CPU floor(k*R/T), so
// sockets and NUMA domains stay apart as far as the real CPU count allows.
CpuSet emulate_cpus(const CpuSet& topology_cpus, const CpuSet& task_cpus, const CpuSet& real_cpus);

}  // namespace sluice
