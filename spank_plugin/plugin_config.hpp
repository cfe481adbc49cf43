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

// sluice-stage beside the plugin: PREFIX/bin/sluice-stage for a plugin loaded from
// PREFIX/LIBDIR/slurm (the package's layout, wherever it was installed), else the configured
// install path. Resolved from where the loaded plugin file is, which the admin chose.
std::string default_stage_tool();

struct PluginConfig {
  Policy default_policy = Policy::none;  // jobs that do not pass --gpu-topo are left alone
  std::string topology_xml;              // "" = discover this machine with hwloc
  CpuEmulation cpu_emulation = CpuEmulation::none;
  // nics= / exclude_nics=: NIC name patterns placement may use / must not use (docs/placement.md).
  topo::NicPolicy nics;
  std::string run_dir = "/run/sluice";   // root-owned; holds the node's topology snapshot

  // Staging (docs/staging.md). bb_root: node-local directory holding job_ID (each job's
  // burst buffer), .status (per-job records) and .cache (one per user).
  std::string bb_root = "/var/tmp/sluice";
  std::uint64_t cache_max = 0;           // bytes of each user's node cache; 0: no cache
  std::string stage_tool = default_stage_tool();  // sluice-stage, run as the job's user
  unsigned stage_jobs = 0;               // copy workers per stage; 0: sluice-stage's default
  // Deadlines (seconds) of a node's whole stage-in and stage-out: then the stage is stopped;
  // stage-in fails the job with the reason, stage-out keeps the files and records it. Keep
  // them under slurm.conf's PrologEpilogTimeout, or slurmd drains the node first.
  unsigned stage_in_timeout_s = 3600;
  unsigned stage_out_timeout_s = 3600;

  // Telemetry (docs/telemetry.md). telemetry_dir: shared directory of the job files (written by
  // the jobs, exported as SLUICE_TELEMETRY_DIR) and of records/ (the job records root writes).
  // prometheus_dir: node_exporter's textfile directory (SLUICE_PROMETHEUS_DIR). "": off.
  std::string telemetry_dir;
  std::string prometheus_dir;
};

// Parses "key=value" arguments; throws InvalidArgument naming the bad argument and
// listing the valid keys.
PluginConfig parse_plugin_args(const std::vector<std::string>& args);

// "90", "90s", "15m", "2h": seconds, from 1 s to 7 days. Throws InvalidArgument naming WHAT.
unsigned parse_duration_s(const std::string& text, const std::string& what);

}  // namespace sluice::spank
