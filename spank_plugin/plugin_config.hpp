// plugstack.conf arguments of the sluice SPANK plugin. Free of Slurm types so unit tests
// drive it directly.
#pragma once

#include <sluice/common/placement.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::spank {

enum class CpuEmulation {
  none,   // real cluster: the topology must describe this node's CPUs
  block,  // dev cluster: map the topology's PUs onto the real CPUs (see emulate_cpus)
};

struct PluginConfig {
  Policy default_policy = Policy::none;  // jobs that do not pass --gpu-topo are left alone
  std::string topology_xml;              // "" = discover this machine with hwloc
  CpuEmulation cpu_emulation = CpuEmulation::none;
  std::string run_dir = "/run/sluice";   // root-owned; holds the node's topology snapshot

  // Staging (docs/staging.md). bb_root: node-local directory holding job_ID (each job's
  // burst buffer), .status (per-job records) and .cache (one per user).
  std::string bb_root = "/var/tmp/sluice";
  std::uint64_t cache_max = 0;           // bytes of each user's node cache; 0: no cache
  std::string stage_tool = SLUICE_STAGE_TOOL_DEFAULT;  // sluice-stage, run as the job's user
  unsigned stage_jobs = 0;               // copy workers per stage; 0: sluice-stage's default
};

// Parses "key=value" arguments; throws InvalidArgument naming the bad argument and
// listing the valid keys.
PluginConfig parse_plugin_args(const std::vector<std::string>& args);

}  // namespace sluice::spank
