#define BOOST_TEST_MODULE visible_devices
#include <boost/test/unit_test.hpp>

#include "task_env.hpp"

#include <optional>
#include <string>
#include <vector>

using namespace sluice;
using sluice::spank::visible_list;
using topo::GpuVendor;
using topo::Topology;

namespace {

const Topology& lassen() {  // 4 NVIDIA V100, node indices 0-3 in PCI order
  static Topology t = Topology::from_xml(std::string(SLUICE_TOPOLOGIES) + "/coral-lassen.xml");
  return t;
}

std::vector<std::string> cuda(const std::vector<int>& step, const std::vector<int>& task,
                              std::optional<std::string> slurm) {
  return visible_list(lassen(), step, task, GpuVendor::nvidia, slurm);
}

using V = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(without_slurm_numbering_node_indices_are_used) {
  BOOST_TEST(cuda({2, 3}, {3}, std::nullopt) == (V{"3"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_full_list_maps_position_by_position) {
  // Not renumbered: Slurm lists the node indices of the step's GPUs.
  BOOST_TEST(cuda({2, 3}, {3}, "2,3") == (V{"3"}), boost::test_tools::per_element());
  // Renumbered under ConstrainDevices: CUDA sees the step's two GPUs as 0 and 1.
  BOOST_TEST(cuda({2, 3}, {3}, "0,1") == (V{"1"}), boost::test_tools::per_element());
  // UUIDs (or MIG names) are passed through by position.
  BOOST_TEST(cuda({2, 3}, {2, 3}, "GPU-aaa,GPU-bbb") == (V{"GPU-aaa", "GPU-bbb"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_renumbered_per_task_subset_counts_over_the_step) {
  // --gpus-per-task / --gpu-bind with ConstrainDevices: Slurm gave this task "1" (not a
  // node index of the step {2,3}), so CUDA numbers the step's GPUs 0,1: GPU 3 is 1.
  BOOST_TEST(cuda({2, 3}, {3}, "1") == (V{"1"}), boost::test_tools::per_element());
  BOOST_TEST(cuda({2, 3}, {2}, "1") == (V{"0"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(plan_task_sets_device_order_and_numeric_ordinals_only) {
  spank::PluginConfig cfg;
  cfg.cpu_emulation = spank::CpuEmulation::block;
  auto env = [](const spank::TaskSetup& s, const std::string& k) -> std::optional<std::string> {
    for (const auto& [n, v] : s.env)
      if (n == k) return v;
    return std::nullopt;
  };
  spank::TaskSetup s = spank::plan_task(lassen(), cfg, Policy::pack, {2, 3}, 2, 1, CpuSet::parse("0-1"), "n1", "0,1");
  BOOST_TEST(env(s, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "1");
  BOOST_TEST(env(s, "CUDA_DEVICE_ORDER").value_or("<unset>") == "PCI_BUS_ID");
  BOOST_TEST(env(s, "GPU_DEVICE_ORDINAL").value_or("<unset>") == "1");
  spank::TaskSetup u = spank::plan_task(lassen(), cfg, Policy::pack, {2, 3}, 2, 1, CpuSet::parse("0-1"), "n1",
                                        "GPU-aaa,GPU-bbb");
  BOOST_TEST(env(u, "CUDA_VISIBLE_DEVICES").value_or("<unset>") == "GPU-bbb");
  BOOST_TEST(!env(u, "GPU_DEVICE_ORDINAL").has_value());  // it takes numbers only
}
