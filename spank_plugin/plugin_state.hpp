// State shared by the plugin's per-context files. slurmstepd loads one copy of the plugin
// per step and forks tasks from it, so what user_init computes reaches task_init.
#pragma once

#include "job_staging.hpp"
#include "plugin_config.hpp"

#include <sluice/common/cpu_set.hpp>
#include <sluice/common/placement.hpp>
#include <sluice/common/topology.hpp>

// spank.h declares the slurm_spank_* entry points without C linkage.
extern "C" {
#include <slurm/spank.h>
}

#include <optional>

namespace sluice::spank {

struct PluginState {
  PluginConfig config;
  std::optional<Policy> requested;       // --gpu-topo, when the user gave it
  std::optional<topo::Topology> topology; // loaded once per step in user_init
  CpuSet step_cpus;                       // CPUs slurmstepd may use: the step's allocation
  bool placing = false;                   // user_init decided to place this step's tasks
  // Why user_init could not place this step. Reported once there; each task then fails
  // in task_init, because Slurm 22.05's srun exits 0 when a step fails in user_init.
  std::string failure;

  JobStaging staging;                     // --stage-in/--stage-out/--stage-mode (sbatch, salloc, srun)
  // Why this job's stage-in failed on this node (from its status record); each task fails.
  std::string stage_failure;

  Policy policy() const { return requested.value_or(config.default_policy); }
};

PluginState& state();

// Registers the options (--gpu-topo, --stage-in, --stage-out, --stage-mode) in every context that parses them.
int register_options(spank_t sp);

// Allocator/local context, after the options: hands the staging request to the prolog.
int allocator_post_opt(spank_t sp);

// Job script context (slurmd's prolog/epilog helper, root).
int job_prolog(spank_t sp);
int job_epilog(spank_t sp);

// slurmd context: at slurmd start, snapshot the node's topology for the steps.
int slurmd_init();

// Remote context (slurmstepd).
int remote_user_init(spank_t sp);
int remote_task_init(spank_t sp);

}  // namespace sluice::spank
