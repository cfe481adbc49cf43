// The plugin's options, registered from one table. A bad value fails here, in sbatch,
// salloc or srun, before the job is queued.
#include "plugin_state.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/spec.hpp>

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

// Staging options are parsed where the user submits (sbatch, salloc, srun), as the user:
// '@MANIFEST' is read there. slurmstepd also sees the values but never acts on them.
bool submitting() {
  const spank_context_t ctx = spank_context();
  return ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL;
}

template <typename F>
int staging_option(const char* name, const char* optarg, F&& apply) noexcept {
  if (!submitting()) return 0;
  try {
    apply(std::string(optarg ? optarg : ""));
    return 0;
  } catch (const std::exception& e) {
    slurm_error("sluice: --%s: %s", name, escape_text(e.what()).c_str());
  } catch (...) {
    slurm_error("sluice: --%s: unexpected failure", name);
  }
  return -1;
}

int on_stage_in(int, const char* optarg, int) noexcept {
  return staging_option("stage-in", optarg, [](const std::string& v) {
    auto& in = state().staging.in;
    for (auto& spec : staging::parse_spec_arg(v)) {
      if (in.size() >= staging::kMaxSpecs) throw InvalidArgument("more than " + std::to_string(staging::kMaxSpecs) + " specs");
      in.push_back(std::move(spec));
    }
    check_request_size(state().staging);  // here, where the user typed it, not at the node
  });
}

int on_stage_out(int, const char* optarg, int) noexcept {
  return staging_option("stage-out", optarg, [](const std::string& v) {
    auto& out = state().staging.out;
    if (out.size() >= staging::kMaxSpecs) throw InvalidArgument("more than " + std::to_string(staging::kMaxSpecs) + " specs");
    out.push_back(staging::parse_out_spec(v));
    check_request_size(state().staging);
  });
}

int on_stage_mode(int, const char* optarg, int) noexcept {
  return staging_option("stage-mode", optarg,
                        [](const std::string& v) { state().staging.async = parse_stage_mode_async(v); });
}

spank_option options[] = {
    {const_cast<char*>("gpu-topo"), const_cast<char*>("pack|spread|none"),
     const_cast<char*>("[sluice] Place each task on its GPUs, the closest NIC and CPUs of its GPU's NUMA domain. "
                       "pack: best-connected GPUs together (NVLink or xGMI first); spread: across sockets and PCIe "
                       "switches (I/O- or memory-bound jobs); none: leave Slurm's binding alone. Sets "
                       "CUDA_VISIBLE_DEVICES (or ROCR_VISIBLE_DEVICES), UCX_NET_DEVICES, NCCL_IB_HCA (or "
                       "NCCL_SOCKET_IFNAME; FI_CXI_DEVICE_NAME on Slingshot, FI_EFA_IFACE on EFA), CPU affinity and SLUICE_PLACEMENT (the whole node's placement)."),
     1, 0, on_gpu_topo},
    {const_cast<char*>("stage-in"), const_cast<char*>("SRC[:DST][:shard]|@FILE"),
     const_cast<char*>("[sluice] Copy SRC (an absolute file or directory path) into the job's node-local burst "
                       "buffer $SLUICE_BB on every node before the tasks start, as DST (relative; default: SRC's "
                       "last component). ':shard' gives each node only its share of SRC's files. Repeatable; "
                       "@FILE reads one spec per line. Where the site set a node cache (cache_max), later jobs staging the same data are served from it."),
     1, 0, on_stage_in},
    {const_cast<char*>("stage-out"), const_cast<char*>("SRC:DST"),
     const_cast<char*>("[sluice] At job end (also after a failure, timeout or scancel), copy SRC (relative to "
                       "$SLUICE_BB) to DST (absolute) on every node that has SRC, verified; %N in DST is the node's "
                       "name, %j the job id. The burst buffer is removed only when this succeeded. Repeatable."),
     1, 0, on_stage_out},
    {const_cast<char*>("stage-mode"), const_cast<char*>("sync|async"),
     const_cast<char*>("[sluice] sync (default): tasks start once stage-in is complete. async: tasks start at "
                       "once; each staged file appears complete under its final name when ready, and "
                       "$SLUICE_BB/<DST>/.sluice-manifest.json says which are."),
     1, 0, on_stage_mode},
};

}  // namespace

int allocator_post_opt(spank_t sp) {
  const JobStaging& staging = state().staging;
  if (staging.empty()) return 0;
  try {
    check_request_size(staging);
  } catch (const std::exception& e) {
    slurm_error("sluice: %s", e.what());
    return -1;
  }
  for (const auto& [name, value] : job_control_env(staging)) {
    if (spank_job_control_setenv(sp, name.c_str(), value.c_str(), 1) != ESPANK_SUCCESS) {
      slurm_error("sluice: cannot pass the staging request to the job (%s, %zu bytes)", name.c_str(), value.size());
      return -1;
    }
  }
  return 0;
}

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
