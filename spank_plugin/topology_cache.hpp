// The node's topology for the plugin. Reading hwloc XML (or discovering the machine) costs
// ~10 ms on a small VM and far more on a big node, in every step on every node; the node
// does not change while slurmd runs. So slurmd writes a snapshot once at start (as root)
// and steps read it, unless it is missing, stale or not trustworthy.
#pragma once

#include "plugin_config.hpp"

#include <sluice/common/topology.hpp>

#include <string>

namespace sluice::spank {

// run_dir/topology-<hash of the source>.snapshot
std::string snapshot_path(const PluginConfig& cfg);

// Identity of the topology's source: the XML's path, size and mtime, or this boot.
std::string source_stamp(const PluginConfig& cfg);

// Writes the snapshot atomically (temp file + rename). Creates run_dir (0755) if missing;
// refuses a run_dir that is not a directory owned by us and writable by nobody else.
// Throws SystemError/TopologyError naming the path.
// `stamp` is source_stamp() taken BEFORE `t` was read, so an XML that changes during the
// read leaves a snapshot that is already stale.
void write_snapshot(const PluginConfig& cfg, const topo::Topology& t, const std::string& stamp);

struct LoadedTopology {
  topo::Topology topology;
  bool from_snapshot;
};

// The snapshot when it is present, matches source_stamp() and is owned by root (or by the
// real uid, for tests) in a directory nobody else may write; a fresh read otherwise.
LoadedTopology load_topology(const PluginConfig& cfg);

// A fresh read from the configured source (topology_xml= or this machine).
topo::Topology read_topology(const PluginConfig& cfg);

}  // namespace sluice::spank
