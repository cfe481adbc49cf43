#include <sluice/common/error.hpp>
#include <sluice/common/placement.hpp>
#include <sluice/common/strings.hpp>

#include <algorithm>

namespace sluice {

using topo::DeviceRef;
using topo::Topology;

Policy parse_policy(std::string_view text) {
  if (text == "pack") return Policy::pack;
  if (text == "spread") return Policy::spread;
  if (text == "none") return Policy::none;
  throw InvalidArgument("invalid placement policy '" + quote_input(text) + "' (valid: pack, spread, none)");
}

const char* to_string(Policy p) {
  switch (p) {
    case Policy::pack: return "pack";
    case Policy::spread: return "spread";
    case Policy::none: return "none";
  }
  return "?";
}

namespace {

int gpu_rank(const Topology& t, int a, int b) { return t.path(DeviceRef::gpu(a), DeviceRef::gpu(b)).rank(); }

// PCIe/memory distance only: NVLink does not help a job bound by host I/O.
int pcie_rank(const Topology& t, int a, int b) {
  return t.path(DeviceRef::gpu(a), DeviceRef::gpu(b), /*via_nvlink=*/false).rank();
}

// Orders GPUs greedily from the lowest index: each step appends the unplaced GPU with the
// lowest cost(order, candidate); ties go to the lowest index.
template <typename Cost>
std::vector<int> greedy_order(std::vector<int> gpus, Cost cost) {
  std::vector<int> order;
  while (!gpus.empty()) {
    auto best = gpus.begin();
    if (!order.empty())
      best = std::min_element(gpus.begin(), gpus.end(), [&](int x, int y) {
        auto cx = cost(order, x), cy = cost(order, y);
        return cx != cy ? cx < cy : x < y;
      });
    order.push_back(*best);
    gpus.erase(best);
  }
  return order;
}

// pack: a nearest-neighbour chain, so consecutive tasks (ring neighbours) and the GPUs
// of one task are as close as the machine allows, NVLink first.
std::vector<int> pack_order(const Topology& t, std::vector<int> gpus) {
  return greedy_order(std::move(gpus), [&](const std::vector<int>& order, int g) { return gpu_rank(t, order.back(), g); });
}

// spread: farthest-first over the PCIe tree and sockets (farthest from the last pick, then
// from all picks), so consecutive tasks and the GPUs of one task sit apart.
std::vector<int> spread_order(const Topology& t, std::vector<int> gpus) {
  return greedy_order(std::move(gpus), [&](const std::vector<int>& order, int g) {
    int sum = 0;
    for (int p : order) sum += pcie_rank(t, p, g);
    return std::pair{-pcie_rank(t, order.back(), g), -sum};
  });
}

// Splits `cpus` fairly among `n` tasks: whole cores when there are enough, else PUs.
std::vector<CpuSet> split_fairly(const CpuSet& cpus, const std::vector<CpuSet>& cores, int n) {
  std::vector<CpuSet> units;
  for (const CpuSet& c : cores)
    if (CpuSet u = c & cpus; !u.empty()) units.push_back(u);
  if (int(units.size()) < n) {
    units.clear();
    for (int cpu : cpus.indices()) units.push_back(CpuSet::from_indices({cpu}));
  }
  std::vector<CpuSet> out(n);
  const int m = int(units.size());
  if (m == 0) return out;
  if (m < n) {  // more tasks than PUs: tasks share PUs round-robin
    for (int j = 0; j < n; ++j) out[j] = units[j % m];
    return out;
  }
  for (int j = 0; j < n; ++j)
    for (int u = j * m / n; u < (j + 1) * m / n; ++u) out[j] = out[j] | units[u];
  return out;
}

std::vector<int> numa_of_cpus(const Topology& t, const CpuSet& cpus) {
  std::vector<int> out;
  for (const auto& n : t.numa_nodes())
    if (n.cpus.intersects(cpus)) out.push_back(n.os_index);
  return out;
}

// NICs, one per GPU of the task (deduplicated): the nearest, and among equally near
// ones the least used so far, so two GPUs never share a NIC while an equal one idles.
// `candidates` are all_nics() indices (PCI order); `use` counts per all_nics() index.
std::vector<std::string> pick_nics(const Topology& t, const std::vector<int>& candidates, const std::vector<int>& task_gpus,
                                   const std::vector<int>& task_numa, std::vector<int>& use) {
  std::vector<std::string> out;
  const auto& nics = t.all_nics();
  if (candidates.empty()) return out;
  auto take = [&](auto rank_of) {
    int best = -1;
    for (int n : candidates) {
      if (best < 0) { best = n; continue; }
      int rn = rank_of(n), rb = rank_of(best);
      if (rn < rb || (rn == rb && use[n] < use[best])) best = n;
    }
    ++use[best];
    if (std::find(out.begin(), out.end(), nics[best].name) == out.end()) out.push_back(nics[best].name);
  };
  if (task_gpus.empty()) {
    take([&](int n) {
      for (int d : nics[n].numa)
        if (std::find(task_numa.begin(), task_numa.end(), d) != task_numa.end()) return 0;
      return 1;
    });
  } else {
    for (int g : task_gpus) take([&](int n) { return t.path(DeviceRef::gpu(g), DeviceRef::any_nic(n)).rank(); });
  }
  return out;
}

}  // namespace

NodePlacement place(const Topology& t, const PlacementRequest& req) {
  if (req.tasks < 1) throw InvalidArgument("task count must be at least 1 (got " + std::to_string(req.tasks) + ")");
  const int ngpu_node = int(t.gpus().size());
  std::vector<int> gpus;
  if (req.gpus) gpus = *req.gpus;
  else
    for (int i = 0; i < ngpu_node; ++i) gpus.push_back(i);
  for (int g : gpus)
    if (g < 0 || g >= ngpu_node)
      throw InvalidArgument("GPU index " + std::to_string(g) + " is not on this node: " + t.source() + " has " +
                            std::to_string(ngpu_node) + " GPU(s)");
  std::sort(gpus.begin(), gpus.end());
  if (std::adjacent_find(gpus.begin(), gpus.end()) != gpus.end())
    throw InvalidArgument("GPU list names a GPU twice");
  const CpuSet all = t.cpus();
  const CpuSet allowed = req.allowed_cpus.empty() ? all : req.allowed_cpus & all;
  if (allowed.empty())
    throw TopologyError("none of the allowed CPUs (" + req.allowed_cpus.to_string() + ") exists in the topology " +
                        t.source() + " (CPUs " + all.to_string() + ")");

  NodePlacement np;
  np.policy = to_string(req.policy);
  np.topology = t.source();
  np.cpu_mode = "native";
  const int n = req.tasks;
  np.tasks.resize(n);
  for (int j = 0; j < n; ++j) np.tasks[j].task = j;
  if (req.policy == Policy::none) return np;  // leave Slurm's binding alone

  const topo::NicSelection nic_choice = topo::select_nics(t.all_nics(), req.nics);
  if (nic_choice.allow_matched_nothing) {
    std::vector<std::string> names;
    for (const topo::Nic& nic : t.all_nics()) names.push_back(nic.name);
    throw InvalidArgument("nics=" + join(req.nics.allow) + " names none of the NICs of " + t.source() + " (" +
                          join(names, ", ", "none") + ")");
  }

  // 1. GPUs per task.
  std::vector<std::vector<int>> task_gpus(n);
  std::vector<int> order = req.policy == Policy::pack ? pack_order(t, gpus) : spread_order(t, gpus);
  const int g = int(order.size());
  if (g > 0 && n <= g) {  // consecutive slices of the order; the first g % n tasks get one more
    for (int j = 0, at = 0; j < n; ++j) {
      int k = g / n + (j < g % n ? 1 : 0);
      task_gpus[j].assign(order.begin() + at, order.begin() + at + k);
      at += k;
    }
  } else if (g > 0) {  // more tasks than GPUs: pack puts neighbours on one GPU, spread deals
    for (int j = 0; j < n; ++j)
      task_gpus[j] = {req.policy == Policy::pack ? order[j * g / n] : order[j % g]};
  }

  // Within a task, PCI order: CUDA device 0 is then the task's lowest-numbered GPU.
  for (auto& tg : task_gpus) std::sort(tg.begin(), tg.end());

  // 2. Home CPUs: the NUMA domains local to the task's GPUs, within the allowed CPUs.
  //    Without GPUs, tasks fill NUMA domains in order (pack) or round-robin (spread).
  std::vector<CpuSet> home(n);
  const auto& numa = t.numa_nodes();
  for (int j = 0; j < n; ++j) {
    CpuSet h;
    for (int gi : task_gpus[j]) h = h | t.gpus()[gi].cpus;
    if (task_gpus[j].empty() && !numa.empty()) {
      std::vector<CpuSet> domains;
      for (const auto& d : numa)
        if (d.cpus.intersects(allowed)) domains.push_back(d.cpus);
      if (!domains.empty()) {
        int nd = int(domains.size());
        h = domains[req.policy == Policy::pack ? j * nd / n : j % nd];
      }
    }
    h = h & allowed;
    home[j] = h.empty() ? allowed : h;  // no allowed CPU near the GPU: use any allowed CPU
  }

  // 3. Every NUMA domain (its allowed CPUs) is split fairly, in task order, among the
  //    tasks whose home includes it; a task's CPUs are its shares. So tasks whose homes
  //    overlap without being equal (spread: one task on both sockets, another on one)
  //    never share CPUs, and a task spanning two domains gets some of each.
  std::vector<CpuSet> pieces;
  CpuSet covered;
  for (const auto& d : numa)
    if (CpuSet p = d.cpus & allowed; !p.empty()) {
      pieces.push_back(p);
      covered = covered | p;
    }
  if (CpuSet rest = allowed - covered; !rest.empty()) pieces.push_back(rest);  // CPUs of no NUMA node
  const std::vector<CpuSet> cores = t.cores();
  std::vector<CpuSet> share(n);
  for (const CpuSet& piece : pieces) {
    std::vector<int> tasks;
    for (int j = 0; j < n; ++j)
      if (home[j].intersects(piece)) tasks.push_back(j);
    if (tasks.empty()) continue;
    std::vector<CpuSet> parts = split_fairly(piece, cores, int(tasks.size()));
    for (std::size_t k = 0; k < tasks.size(); ++k) share[tasks[k]] = share[tasks[k]] | parts[k];
  }
  for (int j = 0; j < n; ++j) {
    np.tasks[j].cpus = share[j].to_string();
    np.tasks[j].numa = numa_of_cpus(t, share[j]);
  }

  // 4. GPUs and NICs into the record, tasks in order so NIC sharing is balanced.
  std::vector<int> nic_use(t.all_nics().size(), 0);
  for (int j = 0; j < n; ++j) {
    TaskPlacement& tp = np.tasks[j];
    tp.gpus = task_gpus[j];
    for (int gi : tp.gpus) tp.gpu_pci.push_back(t.gpus()[gi].pci.to_string());
    tp.nics = pick_nics(t, nic_choice.used, tp.gpus, tp.numa, nic_use);
  }
  return np;
}

CpuSet emulate_cpus(const CpuSet& topology_cpus, const CpuSet& task_cpus, const CpuSet& real_cpus) {
  const auto& all = topology_cpus.indices();
  const auto& real = real_cpus.indices();
  if (real.empty() || all.empty()) return {};
  std::vector<int> out;
  for (int cpu : task_cpus.indices()) {
    auto it = std::lower_bound(all.begin(), all.end(), cpu);
    if (it == all.end() || *it != cpu) continue;
    std::size_t k = std::size_t(it - all.begin());
    out.push_back(real[k * real.size() / all.size()]);
  }
  return CpuSet::from_indices(std::move(out));
}

}  // namespace sluice
