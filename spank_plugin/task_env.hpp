// What the plugin does to one task, computed without touching the process: the GPUs the
// step has, the environment to set, the CPUs to bind. The entry points only apply it.
#pragma once

#include "plugin_config.hpp"

#include <sluice/common/placement.hpp>
#include <sluice/common/topology.hpp>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::spank {

using Getenv = std::function<std::optional<std::string>(const std::string&)>;

// The node GPU indices (PCI order) this step may use: SLURM_STEP_GPUS, else SLURM_JOB_GPUS,
// else CUDA_VISIBLE_DEVICES; std::nullopt when none is set (no GPUs allocated). Throws
// InvalidArgument naming the variable when its value is not an index list.
std::optional<std::vector<int>> step_gpus(const Getenv& getenv);

// Checks that the CPUs Slurm lets this step use exist in the topology, unless emulated.
// Throws TopologyError describing the misconfiguration.
void check_cpus_match(const topo::Topology& t, const CpuSet& real_cpus, CpuEmulation mode);

struct TaskSetup {
  NodePlacement node;                                     // with bound_cpus filled in
  std::vector<std::pair<std::string, std::string>> env;  // variables to set in the task
  CpuSet bind;                                            // sched_setaffinity mask
};

// The placement of every local task, and what applies to `task`. slurm_cuda_visible and
// slurm_rocr_visible are what Slurm set in the task (see visible_list).
TaskSetup plan_task(const topo::Topology& t, const PluginConfig& cfg, Policy policy, const std::vector<int>& gpus,
                    int local_tasks, int task, const CpuSet& real_cpus, const std::string& node_name,
                    const std::optional<std::string>& slurm_cuda_visible,
                    const std::optional<std::string>& slurm_rocr_visible = std::nullopt);

// The {CUDA,ROCR}_VISIBLE_DEVICES entries for `task` GPUs of one vendor, in the numbering
// the task's runtime will see: Slurm's own entries when it listed one per step GPU (it may
// have renumbered them, or used UUIDs); positions among the step's GPUs when Slurm listed a
// renumbered subset (per-task binding under ConstrainDevices); else node vendor indices.
// Ambiguity: a per-task subset whose numbers are all step GPUs reads as node numbering.
std::vector<std::string> visible_list(const topo::Topology& t, const std::vector<int>& step_gpus_sorted,
                                      const std::vector<int>& task_gpus, topo::GpuVendor vendor,
                                      const std::optional<std::string>& slurm_value);

}  // namespace sluice::spank
