#include "task_env.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/strings.hpp>

#include <algorithm>

namespace sluice::spank {
namespace {

std::vector<std::string> split(const std::string& v) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at <= v.size();) {
    std::size_t c = std::min(v.find(',', at), v.size());
    out.push_back(v.substr(at, c - at));
    at = c + 1;
  }
  return out;
}

bool is_index(const std::string& x) { return !x.empty() && x.size() < 6 && x.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

std::vector<std::string> visible_list(const topo::Topology& t, const std::vector<int>& step, const std::vector<int>& task,
                                      topo::GpuVendor vendor, const std::optional<std::string>& slurm_value) {
  std::vector<int> mine;  // the step's GPUs of this vendor, PCI order
  for (int g : step)
    if (t.gpus().at(g).vendor == vendor) mine.push_back(g);
  const std::vector<std::string> slurm = slurm_value && !slurm_value->empty() ? split(*slurm_value) : std::vector<std::string>{};
  // Renumbered: Slurm names a device that is not one of the step's node indices (under
  // ConstrainDevices it counts 0..n-1 over the step's GPUs, per step or per task).
  bool renumbered = std::any_of(slurm.begin(), slurm.end(), [&](const std::string& x) {
    return !is_index(x) || std::find(mine.begin(), mine.end(), std::stoi(x)) == mine.end();
  });
  std::vector<std::string> out;
  for (int g : task) {
    if (t.gpus().at(g).vendor != vendor) continue;
    std::size_t pos = std::size_t(std::find(mine.begin(), mine.end(), g) - mine.begin());
    if (slurm.size() == mine.size())
      out.push_back(slurm[pos]);              // one entry per step GPU: entry k is the k-th (also UUIDs)
    else if (renumbered)
      out.push_back(std::to_string(pos));     // a per-task subset, renumbered over the step's GPUs
    else
      out.push_back(std::to_string(t.gpus().at(g).vendor_index));  // node numbering
  }
  return out;
}

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
                    const std::optional<std::string>& slurm_cuda_visible,
                    const std::optional<std::string>& slurm_rocr_visible) {
  if (task < 0 || task >= local_tasks)
    throw InvalidArgument("local task id " + std::to_string(task) + " is outside 0.." + std::to_string(local_tasks - 1));
  const bool emulate = cfg.cpu_emulation == CpuEmulation::block;
  PlacementRequest req;
  req.gpus = gpus;
  req.tasks = local_tasks;
  req.policy = policy;
  req.allowed_cpus = emulate ? t.cpus() : real_cpus;
  req.nics = cfg.nics;

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

  std::vector<int> sorted_gpus = gpus;
  std::sort(sorted_gpus.begin(), sorted_gpus.end());
  std::vector<std::string> cuda = visible_list(t, sorted_gpus, me.gpus, topo::GpuVendor::nvidia, slurm_cuda_visible);
  std::vector<std::string> rocr = visible_list(t, sorted_gpus, me.gpus, topo::GpuVendor::amd, slurm_rocr_visible);
  bool nvidia = false, amd = false;
  for (int g : sorted_gpus) (t.gpus().at(g).vendor == topo::GpuVendor::nvidia ? nvidia : amd) = true;
  if (nvidia) {
    s.env.emplace_back("CUDA_VISIBLE_DEVICES", join(cuda));
    // Indices above assume PCI bus order; CUDA's own default is fastest-first.
    s.env.emplace_back("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
  }
  if (amd) s.env.emplace_back("ROCR_VISIBLE_DEVICES", join(rocr));
  // Slurm sets GPU_DEVICE_ORDINAL (OpenCL, ROCm) to the same list; it takes numbers only.
  const std::vector<std::string>& ordinals = nvidia ? cuda : rocr;
  bool numeric = std::all_of(ordinals.begin(), ordinals.end(), [](const std::string& x) {
    return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
  });
  if (nvidia != amd && numeric) s.env.emplace_back("GPU_DEVICE_ORDINAL", join(ordinals));

  // What each transport reads, by what the NIC is (docs/placement.md, "What the transports read").
  std::vector<std::string> ucx, hca, ifname, efa, cxi;
  for (const std::string& name : me.nics) {
    auto it = std::find_if(t.all_nics().begin(), t.all_nics().end(), [&](const topo::Nic& n) { return n.name == name; });
    if (it == t.all_nics().end()) throw TopologyError("placement chose NIC " + name + ", which " + t.source() + " does not have");
    const std::string with_port = name + ":" + std::to_string(it->port);
    switch (it->family) {
      case topo::NicFamily::infiniband:  // verbs: UCX's rc/ud/dc, NCCL's IB transport
        ucx.push_back(with_port);
        hca.push_back(with_port);
        break;
      case topo::NicFamily::efa:  // libfabric's efa provider (Open MPI, aws-ofi-nccl); UCX and NCCL's IB do not drive EFA
        efa.push_back(name);
        break;
      case topo::NicFamily::slingshot:  // libfabric's cxi provider; the IP interface for UCX's tcp and NCCL's sockets
        ucx.push_back(name);
        ifname.push_back(name);
        // The cxi driver names device cxiN and its interface hsnN alike; other names give no cxi device.
        if (name.size() > 3 && name.compare(0, 3, "hsn") == 0 && name.find_first_not_of("0123456789", 3) == std::string::npos)
          cxi.push_back("cxi" + name.substr(3));
        break;
      case topo::NicFamily::ethernet:
        ucx.push_back(name);
        ifname.push_back(name);
        break;
    }
  }
  if (!ucx.empty()) s.env.emplace_back("UCX_NET_DEVICES", join(ucx));
  // '=' makes NCCL match names exactly (mlx5_1 must not also select mlx5_10).
  if (!hca.empty()) s.env.emplace_back("NCCL_IB_HCA", "=" + join(hca));
  if (!ifname.empty()) s.env.emplace_back("NCCL_SOCKET_IFNAME", "=" + join(ifname));
  if (!efa.empty()) s.env.emplace_back("FI_EFA_IFACE", join(efa));
  if (!cxi.empty()) s.env.emplace_back("FI_CXI_DEVICE_NAME", join(cxi));
  s.env.emplace_back("SLUICE_PLACEMENT", s.node.to_json());
  return s;
}

}  // namespace sluice::spank
