// The plugin's options, registered from one table. A bad value fails here, in sbatch,
// salloc or srun, before the job is queued.
#include "plugin_state.hpp"

#include <sluice/common/error.hpp>

#include <iterator>

namespace sluice::spank {
namespace {

int on_gpu_topo(int, const char* optarg, int) noexcept {
  try {
    state().requested = parse_policy(optarg ? optarg : "");
    return 0;
  } catch (const InvalidArgument&) {
    slurm_error("sluice: invalid --gpu-topo value '%s' (valid: pack, spread, none)", quote_input(optarg ? optarg : "").c_str());
  } catch (...) {
    slurm_error("sluice: --gpu-topo: unexpected failure");
  }
  return -1;
}

spank_option options[] = {
    {const_cast<char*>("gpu-topo"), const_cast<char*>("pack|spread|none"),
     const_cast<char*>("[sluice] Place each task on its GPUs, the closest NIC and CPUs of its GPU's NUMA domain. "
                       "pack: best-connected GPUs together (NVLink first); spread: across sockets and PCIe "
                       "switches (I/O- or memory-bound jobs); none: leave Slurm's binding alone. Sets "
                       "CUDA_VISIBLE_DEVICES (or ROCR_VISIBLE_DEVICES), UCX_NET_DEVICES, NCCL_IB_HCA (or "
                       "NCCL_SOCKET_IFNAME), CPU affinity and SLUICE_PLACEMENT (the whole node's placement)."),
     1, 0, on_gpu_topo},
};

}  // namespace

int register_options(spank_t sp) {
  for (spank_option& o : options) {
    if (spank_option_register(sp, &o) != ESPANK_SUCCESS) {
      slurm_error("sluice: cannot register option --%s", o.name);
      return -1;
    }
  }
  return 0;
}

}  // namespace sluice::spank
