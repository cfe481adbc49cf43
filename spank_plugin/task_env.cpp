#include "task_env.hpp"

#include <sluice/common/error.hpp>

#include <algorithm>

namespace sluice::spank {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace

std::optional<std::vector<int>> step_gpus(const Getenv& getenv) {
  for (const char* var : {"SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"}) {
    std::optional<std::string> v = getenv(var);
    if (!v || v->empty()) continue;
    if (*v == "NoDevFiles") return std::vector<int>{};  // Slurm: GRES without device files
    return CpuSet::parse(*v, std::string(var) + " (GPU index list)").indices();
  }
  return std::nullopt;
}

void check_cpus_match(const topo::Topology& t, const CpuSet& real_cpus, CpuEmulation mode) {
  if (mode == CpuEmulation::block) return;
  const CpuSet all = t.cpus();
  if (!all.contains(real_cpus))
    throw TopologyError("the topology " + t.source() + " does not describe this node: Slurm lets this step use CPUs " +
                        real_cpus.to_string() + ", the topology has CPUs " + all.to_string() +
                        " (wrong topology_xml= in plugstack.conf? cpu_emulation=block is for dev clusters only)");
}

TaskSetup plan_task(const topo::Topology& t, const PluginConfig& cfg, Policy policy, const std::vector<int>& gpus,
                    int local_tasks, int task, const CpuSet& real_cpus, const std::string& node_name,
                    const std::optional<std::string>& slurm_cuda_visible) {
  if (task < 0 || task >= local_tasks)
    throw InvalidArgument("local task id " + std::to_string(task) + " is outside 0.." + std::to_string(local_tasks - 1));
  const bool emulate = cfg.cpu_emulation == CpuEmulation::block;
  PlacementRequest req;
  req.gpus = gpus;
  req.tasks = local_tasks;
  req.policy = policy;
  req.allowed_cpus = emulate ? t.cpus() : real_cpus;

  TaskSetup s;
  s.node = place(t, req);
  s.node.node = node_name;
  s.node.cpu_mode = emulate ? "emulated" : "native";
  if (policy == Policy::none) {
    s.env.emplace_back("SLUICE_PLACEMENT", s.node.to_json());
    return s;
  }
  const CpuSet topo_cpus = t.cpus();
  for (TaskPlacement& tp : s.node.tasks) {
    CpuSet cpus = CpuSet::parse(tp.cpus);
    tp.bound_cpus = (emulate ? emulate_cpus(topo_cpus, cpus, real_cpus) : cpus).to_string();
  }
  const TaskPlacement& me = s.node.tasks.at(task);
  s.bind = CpuSet::parse(me.bound_cpus);

  // Slurm's CUDA_VISIBLE_DEVICES may already be renumbered (e.g. under ConstrainDevices):
  // when it has one entry per step GPU, entry k stands for the k-th step GPU.
  std::vector<std::string> slurm_cvd;
  if (slurm_cuda_visible) {
    std::string v = *slurm_cuda_visible;
    for (std::size_t at = 0; at <= v.size();) {
      std::size_t c = std::min(v.find(',', at), v.size());
      slurm_cvd.push_back(v.substr(at, c - at));
      at = c + 1;
    }
  }
  std::vector<int> sorted_gpus = gpus;
  std::sort(sorted_gpus.begin(), sorted_gpus.end());
  bool step_has[2] = {false, false};
  for (int g : sorted_gpus) step_has[int(t.gpus().at(g).vendor)] = true;
  std::vector<std::string> cuda, rocr;
  for (int g : me.gpus) {
    const topo::Gpu& gpu = t.gpus().at(g);
    if (gpu.vendor == topo::GpuVendor::amd) {
      rocr.push_back(std::to_string(gpu.vendor_index));
      continue;
    }
    auto pos = std::find(sorted_gpus.begin(), sorted_gpus.end(), g) - sorted_gpus.begin();
    bool renumbered = !step_has[int(topo::GpuVendor::amd)] && slurm_cvd.size() == sorted_gpus.size();
    cuda.push_back(renumbered ? slurm_cvd[pos] : std::to_string(gpu.vendor_index));
  }
  const bool nvidia = step_has[int(topo::GpuVendor::nvidia)], amd = step_has[int(topo::GpuVendor::amd)];
  if (nvidia) s.env.emplace_back("CUDA_VISIBLE_DEVICES", join(cuda));
  if (amd) s.env.emplace_back("ROCR_VISIBLE_DEVICES", join(rocr));
  // Slurm sets GPU_DEVICE_ORDINAL (OpenCL, ROCm) to the same list; keep it consistent.
  if (nvidia != amd) s.env.emplace_back("GPU_DEVICE_ORDINAL", join(nvidia ? cuda : rocr));

  std::vector<std::string> ucx, hca;
  bool ethernet = false;
  for (const std::string& name : me.nics) {
    auto it = std::find_if(t.nics().begin(), t.nics().end(), [&](const topo::Nic& n) { return n.name == name; });
    if (it->kind == topo::NicKind::openfabrics) {
      ucx.push_back(name + ":" + std::to_string(it->port));
      hca.push_back(name + ":" + std::to_string(it->port));
    } else {
      ucx.push_back(name);
      hca.push_back(name);
      ethernet = true;
    }
  }
  if (!ucx.empty()) {
    s.env.emplace_back("UCX_NET_DEVICES", join(ucx));
    // '=' makes NCCL match names exactly (mlx5_1 must not also select mlx5_10).
    s.env.emplace_back(ethernet ? "NCCL_SOCKET_IFNAME" : "NCCL_IB_HCA", "=" + join(hca));
  }
  s.env.emplace_back("SLUICE_PLACEMENT", s.node.to_json());
  return s;
}

}  // namespace sluice::spank
