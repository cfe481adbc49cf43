// The machine-readable record of a node's placement. The SPANK plugin writes it into each
// task's environment (SLUICE_PLACEMENT); the runtime and `sluice-topo bind --json` share it.
// Kept free of hwloc and JSON types so the runtime's public headers stay light.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct TaskPlacement {
  int task = 0;                    // local task id (SLURM_LOCALID)
  std::vector<int> gpus;           // node GPU indices in PCI bus order
  std::vector<std::string> nics;   // "mlx5_0"
  std::string cpus;                // topology OS indices, list syntax ("0-19")
  std::vector<int> numa;           // NUMA nodes (OS index) of those CPUs
  std::string bound_cpus;          // what was applied with sched_setaffinity; "" if not applied
  std::vector<std::string> gpu_pci; // PCI addresses of `gpus` ("0004:04:00.0"), same order
  // New fields go last, so aggregate initializers in users' code keep compiling.
};

struct NodePlacement {
  int version = 1;
  std::string node;                // SLURMD_NODENAME, "" outside Slurm
  std::string policy;              // pack | spread | none
  std::string topology;            // where the topology came from
  std::string cpu_mode;            // "native" or "emulated" (dev cluster: see emulate_cpus)
  std::vector<TaskPlacement> tasks;

  std::string to_json() const;     // {"tasks":[{"task":0,"gpus":[0,1],...}], ...}
  // Accepts the JSON text itself; throws InvalidArgument saying what is malformed.
  static NodePlacement from_json(std::string_view text);
  const TaskPlacement* find_task(int task) const;
};

}  // namespace sluice
