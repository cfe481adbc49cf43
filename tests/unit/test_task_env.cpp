// What the SPANK plugin applies to a task: step GPUs from the environment, the CPU check,
// and plan_task's environment and binding. Placements worked out by hand from the XML (see
// test_placement.cpp for the Lassen facts): with 4 tasks pack on Lassen, task j gets GPU j,
// CPUs 8-47, 48-87, 96-135, 136-175 and mlx5_j.
#define BOOST_TEST_MODULE task_env
#include <boost/test/unit_test.hpp>

#include "plugin_config.hpp"
#include "task_env.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/placement_record.hpp>
#include <sluice/common/topology.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

using sluice::CpuSet;
using sluice::Policy;
using sluice::spank::CpuEmulation;
using sluice::spank::PluginConfig;
using sluice::spank::TaskSetup;
using sluice::topo::Topology;

namespace {

std::string topo_path(const std::string& name) { return std::string(SLUICE_TOPOLOGIES) + "/" + name; }
Topology load(const std::string& name) { return Topology::from_xml(topo_path(name)); }

sluice::spank::Getenv env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// The value of `name` in the task environment; nullopt if unset. Fails on duplicates.
std::optional<std::string> env(const TaskSetup& s, const std::string& name) {
  std::optional<std::string> v;
  int n = 0;
  for (const auto& [k, val] : s.env)
    if (k == name) {
      v = val;
      ++n;
    }
  BOOST_TEST(n <= 1, name << " set " << n << " times");
  return v;
}

PluginConfig cfg(CpuEmulation mode) {
  PluginConfig c;
  c.cpu_emulation = mode;
  return c;
}

void expect_invalid_naming(const std::map<std::string, std::string>& vars, const std::string& var) {
  try {
    (void)sluice::spank::step_gpus(env_of(vars));
    BOOST_ERROR("no exception for " << var << "=" << vars.at(var));
  } catch (const sluice::InvalidArgument& e) {
    BOOST_TEST_CONTEXT("message " << e.what()) { BOOST_TEST(std::string(e.what()).find(var) != std::string::npos); }
  } catch (const std::exception& e) {
    BOOST_ERROR("wrong exception type: " << e.what());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// step_gpus
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(step_gpus_precedence) {
  using sluice::spank::step_gpus;
  auto all = env_of({{"SLURM_STEP_GPUS", "2,3"}, {"SLURM_JOB_GPUS", "0-3"}, {"CUDA_VISIBLE_DEVICES", "0"}});
  BOOST_TEST(step_gpus(all).value() == (std::vector<int>{2, 3}), boost::test_tools::per_element());
  auto job = env_of({{"SLURM_JOB_GPUS", "0-3"}, {"CUDA_VISIBLE_DEVICES", "0"}});
  BOOST_TEST(step_gpus(job).value() == (std::vector<int>{0, 1, 2, 3}), boost::test_tools::per_element());
  auto cvd = env_of({{"CUDA_VISIBLE_DEVICES", "1,3"}});
  BOOST_TEST(step_gpus(cvd).value() == (std::vector<int>{1, 3}), boost::test_tools::per_element());
  // Nothing set: no GPUs allocated.
  BOOST_TEST(!step_gpus(env_of({})).has_value());
  BOOST_TEST(!step_gpus(env_of({{"ROCR_VISIBLE_DEVICES", "0"}})).has_value());
  // An empty variable does not hide the next one.
  auto empty_step = env_of({{"SLURM_STEP_GPUS", ""}, {"SLURM_JOB_GPUS", "5"}});
  BOOST_TEST(step_gpus(empty_step).value() == std::vector<int>{5}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(step_gpus_no_dev_files) {
  using sluice::spank::step_gpus;
  // Slurm's value for GRES without device files: GPUs allocated, none to name.
  auto v = step_gpus(env_of({{"CUDA_VISIBLE_DEVICES", "NoDevFiles"}}));
  BOOST_TEST_REQUIRE(v.has_value());
  BOOST_TEST(v->empty());
  auto s = step_gpus(env_of({{"SLURM_STEP_GPUS", "NoDevFiles"}, {"SLURM_JOB_GPUS", "0"}}));
  BOOST_TEST_REQUIRE(s.has_value());
  BOOST_TEST(s->empty());
}

BOOST_AUTO_TEST_CASE(step_gpus_hostile_values) {
  for (const char* bad : {"0-999999999", "../../etc", "1;rm", "1;rm -rf /", "$(reboot)", "0,,1", "-1", "1 2",
                          "GPU-8a3b"}) {
    BOOST_TEST_CONTEXT("value " << bad) {
      expect_invalid_naming({{"SLURM_STEP_GPUS", bad}}, "SLURM_STEP_GPUS");
      expect_invalid_naming({{"SLURM_JOB_GPUS", bad}}, "SLURM_JOB_GPUS");
      expect_invalid_naming({{"CUDA_VISIBLE_DEVICES", bad}}, "CUDA_VISIBLE_DEVICES");
      // A bad value is an error, not a reason to fall back to the next variable.
      expect_invalid_naming({{"SLURM_STEP_GPUS", bad}, {"SLURM_JOB_GPUS", "0"}}, "SLURM_STEP_GPUS");
    }
  }
}

// ---------------------------------------------------------------------------------------
// check_cpus_match
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cpus_must_match_unless_emulated) {
  using sluice::spank::check_cpus_match;
  Topology t = load("coral-lassen.xml");
  // Lassen's PUs are 8-87,96-175: a dev VM's CPUs 0,1 are not among them.
  try {
    check_cpus_match(t, CpuSet::parse("0-1"), CpuEmulation::none);
    BOOST_ERROR("no exception");
  } catch (const sluice::TopologyError& e) {
    BOOST_TEST_CONTEXT("message " << e.what()) {
      BOOST_TEST(std::string(e.what()).find(topo_path("coral-lassen.xml")) != std::string::npos);
    }
  }
  // 88 is offline on Lassen (only in complete_cpuset).
  BOOST_CHECK_THROW(check_cpus_match(t, CpuSet::parse("8-15,88"), CpuEmulation::none), sluice::TopologyError);
  // A cgroup inside the topology is fine, as is anything under block emulation.
  BOOST_CHECK_NO_THROW(check_cpus_match(t, CpuSet::parse("8-15,96-99"), CpuEmulation::none));
  BOOST_CHECK_NO_THROW(check_cpus_match(t, t.cpus(), CpuEmulation::none));
  BOOST_CHECK_NO_THROW(check_cpus_match(t, CpuSet::parse("0-1"), CpuEmulation::block));
  BOOST_CHECK_NO_THROW(check_cpus_match(t, CpuSet::parse("0-511"), CpuEmulation::block));
}

// ---------------------------------------------------------------------------------------
// plan_task
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lassen_pack_emulated_on_two_cpus) {
  Topology t = load("coral-lassen.xml");
  const CpuSet real = CpuSet::parse("0-1");
  const std::vector<int> gpus = {0, 1, 2, 3};
  // Block mapping of 160 PUs onto {0,1}: package 0 (8-87) -> 0, package 1 (96-175) -> 1.
  const std::vector<std::string> bound = {"0", "0", "1", "1"};
  const std::vector<std::string> topo_cpus = {"8-47", "48-87", "96-135", "136-175"};
  for (int task = 0; task < 4; ++task) {
    BOOST_TEST_CONTEXT("task " << task) {
      TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::pack, gpus, 4, task, real,
                                             "lassen7", std::nullopt);
      // GPU j for task j; Lassen has NVIDIA GPUs only, CUDA index = vendor index.
      BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == std::to_string(task));
      BOOST_TEST(!env(s, "ROCR_VISIBLE_DEVICES").has_value());
      // Slurm's GPU_DEVICE_ORDINAL follows the same list on a single-vendor node.
      BOOST_TEST(env(s, "GPU_DEVICE_ORDINAL").value_or("<unset>") == std::to_string(task));
      // mlx5_j, port 1; NCCL's '=' prefix for exact names.
      const std::string nic = "mlx5_" + std::to_string(task) + ":1";
      BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == nic);
      BOOST_TEST(env(s, "NCCL_IB_HCA").value_or("<unset>") == "=" + nic);
      BOOST_TEST(!env(s, "NCCL_SOCKET_IFNAME").has_value());
      BOOST_TEST(s.bind.to_string() == bound[task]);
      // The record: every task's topology CPUs and emulated binding.
      BOOST_TEST(s.node.cpu_mode == "emulated");
      BOOST_TEST(s.node.node == "lassen7");
      BOOST_TEST(s.node.policy == "pack");
      BOOST_TEST_REQUIRE(s.node.tasks.size() == 4u);
      for (int j = 0; j < 4; ++j) {
        BOOST_TEST(s.node.tasks[j].cpus == topo_cpus[j]);
        BOOST_TEST(s.node.tasks[j].bound_cpus == bound[j]);
      }
      // SLUICE_PLACEMENT is the record as JSON, and says the same.
      std::optional<std::string> rec = env(s, "SLUICE_PLACEMENT");
      BOOST_TEST_REQUIRE(rec.has_value());
      nlohmann::json doc = nlohmann::json::parse(*rec);  // throws (test error) if not JSON
      BOOST_TEST(doc.at("node") == "lassen7");
      BOOST_TEST(doc.at("cpu_mode") == "emulated");
      BOOST_TEST_REQUIRE(doc.at("tasks").size() == 4u);
      BOOST_TEST(doc["tasks"][task].at("task") == task);
      BOOST_TEST(doc["tasks"][task].at("gpus") == nlohmann::json::array({task}));
      BOOST_TEST(doc["tasks"][task].at("cpus") == topo_cpus[task]);
      BOOST_TEST(doc["tasks"][task].at("bound_cpus") == bound[task]);
      sluice::NodePlacement back = sluice::NodePlacement::from_json(*rec);
      BOOST_TEST_REQUIRE(back.find_task(task) != nullptr);
      BOOST_TEST(back.find_task(task)->nics == std::vector<std::string>{"mlx5_" + std::to_string(task)},
                 boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(lassen_native_binds_topology_cpus) {
  Topology t = load("coral-lassen.xml");
  // Slurm gave the step package 0 only (8-87) and GPUs 0,1: 2 tasks pack split package 0's
  // 20 cores in halves; native mode binds those very CPUs.
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, {0, 1}, 2, 1,
                                         CpuSet::range(8, 87), "lassen7", std::nullopt);
  BOOST_TEST(s.node.cpu_mode == "native");
  BOOST_TEST(s.bind.to_string() == "48-87");
  BOOST_TEST_REQUIRE(s.node.tasks.size() == 2u);
  BOOST_TEST(s.node.tasks[0].bound_cpus == "8-47");
  BOOST_TEST(s.node.tasks[1].bound_cpus == "48-87");
  BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "1");
  BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == "mlx5_1:1");
  BOOST_TEST(env(s, "NCCL_IB_HCA").value_or("<unset>") == "=mlx5_1:1");
}

BOOST_AUTO_TEST_CASE(lassen_two_gpus_per_task_two_nics) {
  Topology t = load("coral-lassen.xml");
  // 2 tasks pack: task 1 has GPUs 2,3 and mlx5_2, mlx5_3.
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::pack, {0, 1, 2, 3}, 2, 1,
                                         CpuSet::parse("0-3"), "n1", std::nullopt);
  BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "2,3");
  BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == "mlx5_2:1,mlx5_3:1");
  BOOST_TEST(env(s, "NCCL_IB_HCA").value_or("<unset>") == "=mlx5_2:1,mlx5_3:1");
  // Task 1's CPUs are package 1 (96-175): the second half of the PUs -> real CPUs 2,3.
  BOOST_TEST(s.bind.to_string() == "2-3");
}

BOOST_AUTO_TEST_CASE(slurm_renumbered_cuda_visible_devices) {
  Topology t = load("nvidiaDGX2.xml");
  const CpuSet real = CpuSet::parse("0-1,24-25");  // the whole (restricted) DGX-2
  const std::vector<int> gpus = {4, 5, 6, 7};
  // All GPUs NV6: pack chain 4,5,6,7, one per task; task 1 has GPU 5, the step's 2nd GPU.
  // Under ConstrainDevices Slurm renumbers: CUDA_VISIBLE_DEVICES=0,1,2,3 -> task 1 sees "1".
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 4, 1, real, "dgx",
                                         std::string("0,1,2,3"));
  BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "1");
  // Without Slurm's value: the node index (vendor index) 5.
  TaskSetup n = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 4, 1, real, "dgx",
                                         std::nullopt);
  BOOST_TEST(env(n, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "5");
  // Slurm's value not renumbered (node indices): the same answer.
  TaskSetup same = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 4, 3, real, "dgx",
                                            std::string("4,5,6,7"));
  BOOST_TEST(env(same, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "7");
  // 2 tasks: task 0 has GPUs 4,5 = renumbered 0,1; task 1 has 6,7 = 2,3.
  TaskSetup t0 = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 2, 0, real, "dgx",
                                          std::string("0,1,2,3"));
  BOOST_TEST(env(t0, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "0,1");
  TaskSetup t1 = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 2, 1, real, "dgx",
                                          std::string("0,1,2,3"));
  BOOST_TEST(env(t1, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "2,3");
  // Slurm lists the step GPUs in any order: positions refer to the sorted step GPUs.
  TaskSetup u = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, {7, 6, 5, 4}, 4, 2, real,
                                         "dgx", std::string("0,1,2,3"));
  BOOST_TEST(env(u, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "2");
  // The DGX-2 export has no NICs: no network variables.
  BOOST_TEST(!env(s, "UCX_NET_DEVICES").has_value());
  BOOST_TEST(!env(s, "NCCL_IB_HCA").has_value());
  BOOST_TEST(!env(s, "NCCL_SOCKET_IFNAME").has_value());
  BOOST_TEST(env(s, "SLUICE_PLACEMENT").has_value());
  // GPUs 4-7 are local to package 0 (PUs 0,1): 4 tasks share 2 PUs round-robin; task 1 -> 1.
  BOOST_TEST(s.bind.to_string() == "1");
}

BOOST_AUTO_TEST_CASE(amd_gpus_use_rocr_visible_devices) {
  Topology t = load("epyc-corona.xml");
  // AMD only: spread order 0,1,2,3 (all SYS); task 2 has GPU2 = AMD index 2.
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::spread, {0, 1, 2, 3}, 4, 2, t.cpus(),
                                         "corona1", std::nullopt);
  BOOST_TEST(env(s, "ROCR_VISIBLE_DEVICES").value_or("<unset>") == "2");
  BOOST_TEST(env(s, "GPU_DEVICE_ORDINAL").value_or("<unset>") == "2");
  BOOST_TEST(!env(s, "CUDA_VISIBLE_DEVICES").has_value());
  BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == "mlx5_0:1");
  // GPU2's NUMA node P#5: PUs 30-35,78-83.
  BOOST_TEST(s.bind.to_string() == "30-35,78-83");

  // Mixed machine, GPUs 2 (NVIDIA, 3rd NVIDIA) and 3 (AMD, 1st AMD) in one task.
  Topology m = load("32em64t-2n8c2t-pci-normalio.xml");
  TaskSetup x = sluice::spank::plan_task(m, cfg(CpuEmulation::none), Policy::pack, {2, 3}, 1, 0, m.cpus(), "conan",
                                         std::nullopt);
  BOOST_TEST(env(x, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "2");
  BOOST_TEST(env(x, "ROCR_VISIBLE_DEVICES").value_or("<unset>") == "0");
  // Two vendors: one ordinal list cannot name both, so it is left as Slurm set it.
  BOOST_TEST(!env(x, "GPU_DEVICE_ORDINAL").has_value());
  BOOST_TEST(env(x, "UCX_NET_DEVICES").value_or("<unset>") == "mlx5_0:1");
  BOOST_TEST(x.bind.to_string() == "8-15,24-31");  // package 1
}

BOOST_AUTO_TEST_CASE(policy_none_sets_only_the_record) {
  Topology t = load("coral-lassen.xml");
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::none, {0, 1, 2, 3}, 4, 2,
                                         CpuSet::parse("0-1"), "lassen7", std::nullopt);
  BOOST_TEST_REQUIRE(s.env.size() == 1u);
  BOOST_TEST(s.env[0].first == "SLUICE_PLACEMENT");
  BOOST_TEST(s.bind.empty());  // Slurm's binding stays
  sluice::NodePlacement rec = sluice::NodePlacement::from_json(s.env[0].second);
  BOOST_TEST(rec.policy == "none");
  BOOST_TEST(rec.node == "lassen7");
  BOOST_TEST_REQUIRE(rec.tasks.size() == 4u);
  BOOST_TEST(rec.tasks[2].bound_cpus.empty());
}

BOOST_AUTO_TEST_CASE(task_id_out_of_range) {
  Topology t = load("coral-lassen.xml");
  for (int task : {4, 5, -1}) {
    BOOST_TEST_CONTEXT("task " << task) {
      BOOST_CHECK_THROW(sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::pack, {0, 1, 2, 3}, 4, task,
                                                 CpuSet::parse("0-1"), "n", std::nullopt),
                        sluice::InvalidArgument);
    }
  }
  BOOST_CHECK_THROW(sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::none, {0}, 1, 1,
                                             CpuSet::parse("0-1"), "n", std::nullopt),
                    sluice::InvalidArgument);
  // A GPU the node lacks is an InvalidArgument too (from place()).
  BOOST_CHECK_THROW(sluice::spank::plan_task(t, cfg(CpuEmulation::block), Policy::pack, {0, 9}, 1, 0,
                                             CpuSet::parse("0-1"), "n", std::nullopt),
                    sluice::InvalidArgument);
}

// ---------------------------------------------------------------------------------------
// What the transports read on Slingshot, EFA and 1 GbE nodes (docs/placement.md). The
// placements are those of test_placement.cpp.
// ---------------------------------------------------------------------------------------

// Frontier-like, 8 tasks pack: task 5 has GCD 5 and hsn2. Slingshot is a network interface
// (UCX's tcp, NCCL/RCCL's sockets) and libfabric's cxi device cxi2; no verbs variables.
// AMD only: ROCR_VISIBLE_DEVICES (and GPU_DEVICE_ORDINAL), no CUDA variables.
BOOST_AUTO_TEST_CASE(frontier_slingshot_and_rocr) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  const std::vector<int> gpus = {0, 1, 2, 3, 4, 5, 6, 7};
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 8, 5, t.cpus(), "frontier1",
                                         std::nullopt, std::string("0,1,2,3,4,5,6,7"));
  BOOST_TEST(env(s, "ROCR_VISIBLE_DEVICES").value_or("<unset>") == "5");
  BOOST_TEST(env(s, "GPU_DEVICE_ORDINAL").value_or("<unset>") == "5");
  BOOST_TEST(!env(s, "CUDA_VISIBLE_DEVICES").has_value());
  BOOST_TEST(!env(s, "CUDA_DEVICE_ORDER").has_value());
  BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == "hsn2");
  BOOST_TEST(env(s, "NCCL_SOCKET_IFNAME").value_or("<unset>") == "=hsn2");
  BOOST_TEST(env(s, "FI_CXI_DEVICE_NAME").value_or("<unset>") == "cxi2");
  BOOST_TEST(!env(s, "NCCL_IB_HCA").has_value());
  BOOST_TEST(!env(s, "FI_EFA_IFACE").has_value());
  BOOST_TEST(s.bind.to_string() == "8-15,72-79");
  // Task 2 has GCD 6 (pack follows xGMI: 0,1,6,7,...): ROCR index 6, hsn3.
  TaskSetup s2 = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 8, 2, t.cpus(), "frontier1",
                                          std::nullopt, std::nullopt);
  BOOST_TEST(env(s2, "ROCR_VISIBLE_DEVICES").value_or("<unset>") == "6");
  BOOST_TEST(env(s2, "FI_CXI_DEVICE_NAME").value_or("<unset>") == "cxi3");
}

// p4d, 8 tasks pack: task 2 has GPU 2 and rdmap32s27. EFA is driven by libfabric's efa
// provider (Open MPI's ofi MTL, aws-ofi-nccl): FI_EFA_IFACE; UCX and NCCL's own IB transport
// do not drive EFA, so neither UCX_NET_DEVICES nor NCCL_IB_HCA is set.
BOOST_AUTO_TEST_CASE(p4d_efa_env) {
  Topology t = load("aws-p4d-efa.xml");
  const std::vector<int> gpus = {0, 1, 2, 3, 4, 5, 6, 7};
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 8, 2, t.cpus(), "p4d1",
                                         std::nullopt);
  BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "2");
  BOOST_TEST(env(s, "FI_EFA_IFACE").value_or("<unset>") == "rdmap32s27");
  BOOST_TEST(!env(s, "UCX_NET_DEVICES").has_value());
  BOOST_TEST(!env(s, "NCCL_IB_HCA").has_value());
  BOOST_TEST(!env(s, "NCCL_SOCKET_IFNAME").has_value());
  BOOST_TEST(!env(s, "FI_CXI_DEVICE_NAME").has_value());
}

// R750xa: the HCA as on any InfiniBand node; with the site's nics=eno* the 1 GbE port's
// Ethernet variables (task 1 gets eno2).
BOOST_AUTO_TEST_CASE(r750xa_hca_env_and_nics_override) {
  Topology t = load("r750xa-ib-1gbe.xml");
  const std::vector<int> gpus = {0, 1, 2, 3};
  TaskSetup s = sluice::spank::plan_task(t, cfg(CpuEmulation::none), Policy::pack, gpus, 4, 1, t.cpus(), "r750", std::nullopt);
  BOOST_TEST(env(s, "UCX_NET_DEVICES").value_or("<unset>") == "mlx5_0:1");
  BOOST_TEST(env(s, "NCCL_IB_HCA").value_or("<unset>") == "=mlx5_0:1");
  BOOST_TEST(!env(s, "NCCL_SOCKET_IFNAME").has_value());
  PluginConfig c = cfg(CpuEmulation::none);
  c.nics.allow = {"eno*"};
  TaskSetup e = sluice::spank::plan_task(t, c, Policy::pack, gpus, 4, 1, t.cpus(), "r750", std::nullopt);
  BOOST_TEST(env(e, "UCX_NET_DEVICES").value_or("<unset>") == "eno2");
  BOOST_TEST(env(e, "NCCL_SOCKET_IFNAME").value_or("<unset>") == "=eno2");
  BOOST_TEST(!env(e, "NCCL_IB_HCA").has_value());
  BOOST_TEST(!env(e, "FI_CXI_DEVICE_NAME").has_value());  // eno2 is no Slingshot NIC
  // Every NIC excluded: no NIC variables at all.
  c.nics = {{}, {"*"}};
  TaskSetup none = sluice::spank::plan_task(t, c, Policy::pack, gpus, 4, 1, t.cpus(), "r750", std::nullopt);
  for (const char* v : {"UCX_NET_DEVICES", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "FI_EFA_IFACE", "FI_CXI_DEVICE_NAME"})
    BOOST_TEST(!env(none, v).has_value(), v);
}
