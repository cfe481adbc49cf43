// slurmd context: runs once when slurmd starts, as root. Snapshots the node's topology so
// that steps need not parse hwloc XML (or rediscover the machine) every time.
#include "plugin_state.hpp"
#include "topology_cache.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/nic_policy.hpp>
#include <sluice/common/strings.hpp>

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
    // The NICs tasks will get, and why the others are left out, once per slurmd start.
    const topo::NicSelection sel = topo::select_nics(t.all_nics(), cfg.nics);
    std::vector<std::string> used, left;
    for (const topo::Nic& n : t.all_nics())
      (sel.left_out[n.index].empty() ? used : left)
          .push_back(sel.left_out[n.index].empty() ? n.name : n.name + " (" + sel.left_out[n.index] + ")");
    slurm_info("sluice: NICs for placement: %s; left out: %s", join(used, ", ", "none").c_str(), join(left, ", ", "none").c_str());
    if (sel.allow_matched_nothing)
      slurm_error("sluice: plugstack.conf argument nics=%s names none of this node's NICs; every placed step will fail",
                  join(cfg.nics.allow).c_str());
  } catch (const std::exception& e) {
    // Steps still work without the snapshot (they read the source themselves), so a
    // failure here must not stop slurmd; the admin sees it in the slurmd log.
    slurm_error("sluice: no topology snapshot, steps will read the topology themselves: %s", e.what());
  }
  return 0;
}

}  // namespace sluice::spank
