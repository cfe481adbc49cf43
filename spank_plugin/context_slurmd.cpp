// slurmd context: runs once when slurmd starts, as root. Snapshots the node's topology so
// that steps need not parse hwloc XML (or rediscover the machine) every time.
#include "plugin_state.hpp"
#include "topology_cache.hpp"

#include <sluice/common/error.hpp>

namespace sluice::spank {

int slurmd_init() {
  const PluginConfig& cfg = state().config;
  try {
    const std::string stamp = source_stamp(cfg);
    topo::Topology t = read_topology(cfg);
    for (const std::string& w : t.warnings()) slurm_info("sluice: %s", w.c_str());
    write_snapshot(cfg, t, stamp);
    slurm_info("sluice: topology of %s (%zu GPUs, %zu NICs) snapshot in %s", t.source().c_str(), t.gpus().size(),
               t.nics().size(), snapshot_path(cfg).c_str());
  } catch (const std::exception& e) {
    // Steps still work without the snapshot (they read the source themselves), so a
    // failure here must not stop slurmd; the admin sees it in the slurmd log.
    slurm_error("sluice: no topology snapshot, steps will read the topology themselves: %s", e.what());
  }
  return 0;
}

}  // namespace sluice::spank
