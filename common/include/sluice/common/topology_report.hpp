// Text views of a Topology for admins: the `nvidia-smi topo -m` matrix and gres.conf.
#pragma once

#include <sluice/common/nic_policy.hpp>
#include <sluice/common/topology.hpp>

#include <string>

namespace sluice::topo {

// The matrix `nvidia-smi topo -m` prints: GPUs and the NICs placement uses under `nics` (the
// site's nics=/exclude_nics=), CPU and NUMA affinity, legend; then every NIC found, marked
// "used" or "left out" with the reason.
std::string format_matrix(const Topology& t, const NicPolicy& nics = {});

struct GresConfOptions {
  std::string nodes;        // NodeName= prefix of every line; "" for none
  std::string device_dir;   // where File= points; "" means /dev
};

// gres.conf lines (Name=gpu File=... Cores=... Links=...) and, as a comment, the NodeName
// CPU shape slurm.conf needs. Links= counts NVLinks (NVSwitch-connected GPUs count as fully
// linked; Slurm's own NVML autodetect reports zero there) and, between AMD GPUs, xGMI links
// (XGMIBandwidth / 50 GB/s).
std::string format_gres_conf(const Topology& t, const GresConfOptions& opt);

}  // namespace sluice::topo
