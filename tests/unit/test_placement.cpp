// place() and emulate_cpus() on the shared topologies. Every expected placement was worked
// out by hand from the XML and the rules in placement.hpp/.cpp (pack: nearest-neighbour chain
// from the lowest GPU; spread: farthest-first over PCIe; same-home tasks split the home's
// cores in contiguous blocks [j*m/n, (j+1)*m/n); NIC per GPU: nearest, then least used, then
// lowest index), not copied from the program's output.
//
// Facts used throughout, from `lstopo-no-graphics -i coral-lassen.xml -v`:
//   GPU0 0004:04:00.0, GPU1 0004:05:00.0 (PLX switch, package 0, PUs 8-87, NUMA P#0)
//   GPU2 0035:03:00.0, GPU3 0035:04:00.0 (PLX switch, package 1, PUs 96-175, NUMA P#8)
//   GPU0-GPU1 and GPU2-GPU3 PIX, other GPU pairs SYS (no NVLink data in the export)
//   mlx5_0/1 in package 0 (NODE to GPU0/1, SYS to GPU2/3), mlx5_2/3 in package 1
//   20 cores of 4 PUs per package: core c of package 0 = PUs 8+4c..11+4c.
#define BOOST_TEST_MODULE placement
#include <boost/test/unit_test.hpp>

#include <sluice/common/cpu_set.hpp>
#include <sluice/common/error.hpp>
#include <sluice/common/placement.hpp>
#include <sluice/common/topology.hpp>

#include <algorithm>
#include <string>
#include <vector>

using sluice::CpuSet;
using sluice::NodePlacement;
using sluice::PlacementRequest;
using sluice::Policy;
using sluice::TaskPlacement;
using sluice::topo::Topology;

namespace {

std::string topo_path(const std::string& name) { return std::string(SLUICE_TOPOLOGIES) + "/" + name; }
Topology load(const std::string& name) { return Topology::from_xml(topo_path(name)); }

struct Exp {
  std::vector<int> gpus;
  std::string cpus;
  std::vector<int> numa;
  std::vector<std::string> nics;
};

void check(const NodePlacement& np, const std::vector<Exp>& exp) {
  BOOST_TEST_REQUIRE(np.tasks.size() == exp.size());
  for (std::size_t j = 0; j < exp.size(); ++j) {
    BOOST_TEST_CONTEXT("task " << j) {
      const TaskPlacement& tp = np.tasks[j];
      BOOST_TEST(tp.task == int(j));
      BOOST_TEST(tp.gpus == exp[j].gpus, boost::test_tools::per_element());
      BOOST_TEST(tp.cpus == exp[j].cpus);
      BOOST_TEST(tp.numa == exp[j].numa, boost::test_tools::per_element());
      BOOST_TEST(tp.nics == exp[j].nics, boost::test_tools::per_element());
      BOOST_TEST(tp.bound_cpus.empty());  // place() never binds
    }
  }
}

NodePlacement run(const Topology& t, int tasks, Policy p, std::optional<std::vector<int>> gpus = std::nullopt,
                  CpuSet allowed = {}) {
  PlacementRequest r;
  r.tasks = tasks;
  r.policy = p;
  r.gpus = std::move(gpus);
  r.allowed_cpus = std::move(allowed);
  return sluice::place(t, r);
}

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}
std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(policy_names) {
  BOOST_TEST((sluice::parse_policy("pack") == Policy::pack));
  BOOST_TEST((sluice::parse_policy("spread") == Policy::spread));
  BOOST_TEST((sluice::parse_policy("none") == Policy::none));
  BOOST_TEST(std::string(sluice::to_string(Policy::spread)) == "spread");
  BOOST_CHECK_THROW(sluice::parse_policy("tight"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(sluice::parse_policy(""), sluice::InvalidArgument);
  BOOST_CHECK_THROW(sluice::parse_policy("Pack"), sluice::InvalidArgument);
}

BOOST_AUTO_TEST_CASE(record_metadata) {
  Topology t = load("coral-lassen.xml");
  NodePlacement np = run(t, 4, Policy::spread);
  BOOST_TEST(np.version == 1);
  BOOST_TEST(np.policy == "spread");
  BOOST_TEST(np.topology == topo_path("coral-lassen.xml"));
  BOOST_TEST(np.cpu_mode == "native");
}

// ---------------------------------------------------------------------------------------
// Lassen, pack
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lassen_pack_4_tasks) {
  Topology t = load("coral-lassen.xml");
  // Chain: 0 -> 1 (PIX) -> {2,3} both SYS from 1, lowest = 2 -> 3. One GPU per task.
  // Tasks 0,1 share home 8-87 (20 cores): cores 0-9 = 8-47, cores 10-19 = 48-87.
  // Tasks 2,3 share 96-175: 96-135, 136-175.
  // NICs: GPU0 -> mlx5_0/mlx5_1 tie (NODE), both unused -> mlx5_0; GPU1 -> mlx5_1 (less used);
  // GPU2 -> mlx5_2; GPU3 -> mlx5_3.
  check(run(t, 4, Policy::pack), {{{0}, "8-47", {0}, {"mlx5_0"}},
                                  {{1}, "48-87", {0}, {"mlx5_1"}},
                                  {{2}, "96-135", {8}, {"mlx5_2"}},
                                  {{3}, "136-175", {8}, {"mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_pack_2_tasks) {
  Topology t = load("coral-lassen.xml");
  // Chain 0,1,2,3 cut in two: {0,1} (one PLX switch, package 0) and {2,3} (package 1).
  // Different homes, so each task gets its whole package.
  check(run(t, 2, Policy::pack), {{{0, 1}, "8-87", {0}, {"mlx5_0", "mlx5_1"}},
                                  {{2, 3}, "96-175", {8}, {"mlx5_2", "mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_pack_1_task) {
  Topology t = load("coral-lassen.xml");
  // Every GPU, the union of both packages, one NIC per GPU: GPU0 mlx5_0, GPU1 mlx5_1 (the
  // NODE tie goes to the unused one), GPU2 mlx5_2, GPU3 mlx5_3.
  check(run(t, 1, Policy::pack), {{{0, 1, 2, 3}, "8-87,96-175", {0, 8}, {"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_pack_8_tasks) {
  Topology t = load("coral-lassen.xml");
  // More tasks than GPUs: task j gets order[j*4/8] = GPU j/2 (neighbouring tasks share a GPU).
  // 4 tasks share each package's 20 cores: 5 cores (20 PUs) each.
  // NICs in task order: t0 GPU0 mlx5_0; t1 GPU0 mlx5_1 (tie, less used); t2 GPU1 mlx5_0
  // (both used once, lowest index); t3 GPU1 mlx5_1; same on package 1.
  check(run(t, 8, Policy::pack), {{{0}, "8-27", {0}, {"mlx5_0"}},
                                  {{0}, "28-47", {0}, {"mlx5_1"}},
                                  {{1}, "48-67", {0}, {"mlx5_0"}},
                                  {{1}, "68-87", {0}, {"mlx5_1"}},
                                  {{2}, "96-115", {8}, {"mlx5_2"}},
                                  {{2}, "116-135", {8}, {"mlx5_3"}},
                                  {{3}, "136-155", {8}, {"mlx5_2"}},
                                  {{3}, "156-175", {8}, {"mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_pack_gpu_subset) {
  Topology t = load("coral-lassen.xml");
  // GPUs {2,3} (package 1): one each; both share home 96-175, split 10 cores each.
  check(run(t, 2, Policy::pack, std::vector<int>{2, 3}),
        {{{2}, "96-135", {8}, {"mlx5_2"}}, {{3}, "136-175", {8}, {"mlx5_3"}}});
  // The order Slurm lists the GPUs in does not matter.
  check(run(t, 2, Policy::pack, std::vector<int>{3, 2}),
        {{{2}, "96-135", {8}, {"mlx5_2"}}, {{3}, "136-175", {8}, {"mlx5_3"}}});
  // GPUs {1,2}: chain 1 -> 2; different packages, each task its whole package.
  check(run(t, 2, Policy::pack, std::vector<int>{1, 2}),
        {{{1}, "8-87", {0}, {"mlx5_0"}}, {{2}, "96-175", {8}, {"mlx5_2"}}});
}

BOOST_AUTO_TEST_CASE(lassen_allowed_cpus_fallback) {
  Topology t = load("coral-lassen.xml");
  // Only package 0's PUs allowed: tasks 2,3 (GPUs 2,3 on package 1) have no allowed CPU near
  // their GPU and fall back to the allowed CPUs, 8-87; all four tasks then share that home:
  // 20 cores / 4 = 5 cores each. GPUs and NICs are chosen as without the restriction.
  check(run(t, 4, Policy::pack, std::nullopt, CpuSet::range(8, 87)), {{{0}, "8-27", {0}, {"mlx5_0"}},
                                                                     {{1}, "28-47", {0}, {"mlx5_1"}},
                                                                     {{2}, "48-67", {0}, {"mlx5_2"}},
                                                                     {{3}, "68-87", {0}, {"mlx5_3"}}});
  // Allowed CPUs partly outside the topology (0-7 do not exist) and only part of package 1:
  // home of GPU2/3 tasks = 96-175 & (0-15,96-103) = 96-103 (2 cores), one core each;
  // GPU0/1 tasks: 8-15 (2 cores), one core each.
  check(run(t, 4, Policy::pack, std::nullopt, CpuSet::parse("0-15,96-103")), {{{0}, "8-11", {0}, {"mlx5_0"}},
                                                                             {{1}, "12-15", {0}, {"mlx5_1"}},
                                                                             {{2}, "96-99", {8}, {"mlx5_2"}},
                                                                             {{3}, "100-103", {8}, {"mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(allowed_cpus_outside_topology_is_an_error) {
  Topology t = load("coral-lassen.xml");
  // PUs 0-7 are not in the Lassen topology (offline): nothing usable.
  PlacementRequest r;
  r.tasks = 2;
  r.allowed_cpus = CpuSet::range(0, 7);
  BOOST_CHECK_THROW(sluice::place(t, r), sluice::TopologyError);
}

// ---------------------------------------------------------------------------------------
// Lassen, spread
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lassen_spread_4_tasks) {
  Topology t = load("coral-lassen.xml");
  // Farthest-first over PCIe from GPU0: GPU2/3 SYS (lowest: 2); then from {0,2}: GPU1 and
  // GPU3 are each PIX to one of them, lowest: 1; then 3. Order 0,2,1,3.
  // Homes: t0 (GPU0) and t2 (GPU1) share 8-87 in task order; t1, t3 share 96-175.
  // NICs in task order: t0 GPU0 mlx5_0; t1 GPU2 mlx5_2; t2 GPU1 mlx5_1 (mlx5_0 already used);
  // t3 GPU3 mlx5_3.
  check(run(t, 4, Policy::spread), {{{0}, "8-47", {0}, {"mlx5_0"}},
                                    {{2}, "96-135", {8}, {"mlx5_2"}},
                                    {{1}, "48-87", {0}, {"mlx5_1"}},
                                    {{3}, "136-175", {8}, {"mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_spread_2_tasks) {
  Topology t = load("coral-lassen.xml");
  // Order 0,2,1,3 cut in two: {0,2} and {1,3}, one GPU on each package per task. Both homes
  // span both NUMA domains, so each domain is split between the two tasks: NUMA 0's 20 cores
  // (8-87) into 8-47 and 48-87, NUMA 8's (96-175) into 96-135 and 136-175; each task gets
  // half of each, local to both its GPUs.
  // NICs: t0 GPU0 mlx5_0, GPU2 mlx5_2; t1 GPU1 mlx5_1, GPU3 mlx5_3 (the used ones lose ties).
  check(run(t, 2, Policy::spread), {{{0, 2}, "8-47,96-135", {0, 8}, {"mlx5_0", "mlx5_2"}},
                                    {{1, 3}, "48-87,136-175", {0, 8}, {"mlx5_1", "mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_spread_1_task) {
  Topology t = load("coral-lassen.xml");
  // One task gets every GPU and the whole machine; the order inside the task is not
  // specified by the rules, so compare as sets.
  NodePlacement np = run(t, 1, Policy::spread);
  BOOST_TEST_REQUIRE(np.tasks.size() == 1u);
  BOOST_TEST(sorted(np.tasks[0].gpus) == (std::vector<int>{0, 1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(np.tasks[0].cpus == "8-87,96-175");
  BOOST_TEST(np.tasks[0].numa == (std::vector<int>{0, 8}), boost::test_tools::per_element());
  BOOST_TEST(sorted(np.tasks[0].nics) == (std::vector<std::string>{"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(lassen_spread_8_tasks) {
  Topology t = load("coral-lassen.xml");
  // More tasks than GPUs: spread deals order 0,2,1,3 round-robin: t_j gets order[j % 4].
  // Package 0 home: tasks 0,2,4,6 (GPUs 0,1,0,1), 5 cores each in task order; package 1: 1,3,5,7.
  // NICs: t0 mlx5_0, t1 mlx5_2, t2 mlx5_1, t3 mlx5_3, t4 GPU0 (mlx5_0/1 used once each: lowest)
  // mlx5_0, t5 mlx5_2, t6 GPU1 (mlx5_0 used twice) mlx5_1, t7 mlx5_3.
  check(run(t, 8, Policy::spread), {{{0}, "8-27", {0}, {"mlx5_0"}},
                                    {{2}, "96-115", {8}, {"mlx5_2"}},
                                    {{1}, "28-47", {0}, {"mlx5_1"}},
                                    {{3}, "116-135", {8}, {"mlx5_3"}},
                                    {{0}, "48-67", {0}, {"mlx5_0"}},
                                    {{2}, "136-155", {8}, {"mlx5_2"}},
                                    {{1}, "68-87", {0}, {"mlx5_1"}},
                                    {{3}, "156-175", {8}, {"mlx5_3"}}});
}

BOOST_AUTO_TEST_CASE(lassen_spread_gpu_subset) {
  Topology t = load("coral-lassen.xml");
  // {0,1,2}, 3 tasks: from 0 the farthest is 2 (SYS), then 1. t0 GPU0, t1 GPU2, t2 GPU1.
  // Package 0 home shared by t0, t2 (10 cores each); t1 alone on package 1.
  check(run(t, 3, Policy::spread, std::vector<int>{0, 1, 2}),
        {{{0}, "8-47", {0}, {"mlx5_0"}}, {{2}, "96-175", {8}, {"mlx5_2"}}, {{1}, "48-87", {0}, {"mlx5_1"}}});
}

// ---------------------------------------------------------------------------------------
// CPU-only steps
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cpu_only_placement) {
  Topology t = load("coral-lassen.xml");
  // No GPUs: pack fills NUMA domains in order (task j -> domain j*2/4: 0,0,8,8), spread deals
  // them round-robin (0,8,0,8). Tasks sharing a domain split its 20 cores. The NIC is one in
  // the task's NUMA node, least used first.
  check(run(t, 4, Policy::pack, std::vector<int>{}), {{{}, "8-47", {0}, {"mlx5_0"}},
                                                     {{}, "48-87", {0}, {"mlx5_1"}},
                                                     {{}, "96-135", {8}, {"mlx5_2"}},
                                                     {{}, "136-175", {8}, {"mlx5_3"}}});
  check(run(t, 4, Policy::spread, std::vector<int>{}), {{{}, "8-47", {0}, {"mlx5_0"}},
                                                       {{}, "96-135", {8}, {"mlx5_2"}},
                                                       {{}, "48-87", {0}, {"mlx5_1"}},
                                                       {{}, "136-175", {8}, {"mlx5_3"}}});
  // Only package 1 allowed: only NUMA P#8 intersects, both tasks share it.
  check(run(t, 2, Policy::pack, std::vector<int>{}, CpuSet::range(96, 175)),
        {{{}, "96-135", {8}, {"mlx5_2"}}, {{}, "136-175", {8}, {"mlx5_3"}}});
}

// ---------------------------------------------------------------------------------------
// NVLink and NVSwitch machines
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(power8_pack_groups_nvlink_pairs) {
  Topology t = load("power8gpudistances.xml");
  // Chain from 0: GPU1 is NV2, GPU2/3 SYS -> 1; from 1: 2, 3 both SYS -> 2; then 3.
  // {0,1} and {2,3} are the NVLink pairs, each on its own package. No NICs in the export.
  check(run(t, 2, Policy::pack), {{{0, 1}, "0-1,8-9,16-17,24-25", {0}, {}},
                                  {{2, 3}, "80-81,88-89,96-97,104-105", {1}, {}}});
  // 4 tasks: two per package, 2 cores (of 2 PUs) each.
  check(run(t, 4, Policy::pack), {{{0}, "0-1,8-9", {0}, {}},
                                  {{1}, "16-17,24-25", {0}, {}},
                                  {{2}, "80-81,88-89", {1}, {}},
                                  {{3}, "96-97,104-105", {1}, {}}});
}

BOOST_AUTO_TEST_CASE(power8_spread_ignores_nvlink) {
  Topology t = load("power8gpudistances.xml");
  // PCIe only: GPU0-GPU1 NODE, GPU0-GPU2/3 SYS. From 0: 2 (SYS, lowest); then from {0,2}: 1
  // and 3 are each NODE to one of them -> 1; then 3. Order 0,2,1,3: {0,2} and {1,3}.
  // Both homes span both NUMA domains; each domain's 4 cores are split between the two
  // tasks: NUMA 0 {0-1,8-9 | 16-17,24-25}, NUMA 1 {80-81,88-89 | 96-97,104-105}.
  check(run(t, 2, Policy::spread), {{{0, 2}, "0-1,8-9,80-81,88-89", {0, 1}, {}},
                                    {{1, 3}, "16-17,24-25,96-97,104-105", {0, 1}, {}}});
}

BOOST_AUTO_TEST_CASE(dgx2_pack_16_tasks) {
  Topology t = load("nvidiaDGX2.xml");
  // Every pair is NV6 (NVSwitch): the chain is 0,1,...,15 (ties by lowest index), one GPU
  // per task. GPUs 0-7 share home {0,1}: 2 PUs for 8 tasks, so tasks share PUs round-robin
  // (placement.cpp: "more tasks than PUs"): 0,1,0,1,... GPUs 8-15: 24,25,24,25,...
  NodePlacement np = run(t, 16, Policy::pack);
  std::vector<Exp> exp;
  for (int j = 0; j < 16; ++j) {
    std::string cpu = j < 8 ? std::to_string(j % 2) : std::to_string(24 + j % 2);
    exp.push_back({{j}, cpu, {j < 8 ? 0 : 1}, {}});
  }
  check(np, exp);
}

BOOST_AUTO_TEST_CASE(dgx2_pack_4_tasks_of_4) {
  Topology t = load("nvidiaDGX2.xml");
  // Chain 0..15, slices of 4: {0-3}, {4-7} on package 0 ({0,1}), {8-11}, {12-15} on package 1.
  // Two tasks share each package's 2 cores: one core each.
  check(run(t, 4, Policy::pack), {{{0, 1, 2, 3}, "0", {0}, {}},
                                  {{4, 5, 6, 7}, "1", {0}, {}},
                                  {{8, 9, 10, 11}, "24", {1}, {}},
                                  {{12, 13, 14, 15}, "25", {1}, {}}});
}

// ---------------------------------------------------------------------------------------
// Other machines
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cts1_pack_2_tasks_share_one_nic) {
  Topology t = load("cts1-pascal.xml");
  // Both GPUs and mlx5_0 are in package 0 (PUs 0-17,36-53): 18 cores, 9 each.
  // Core c = PUs c and c+36. One NIC: both tasks use it.
  check(run(t, 2, Policy::pack), {{{0}, "0-8,36-44", {0}, {"mlx5_0"}}, {{1}, "9-17,45-53", {0}, {"mlx5_0"}}});
}

BOOST_AUTO_TEST_CASE(epyc_spread_4_tasks) {
  Topology t = load("epyc-corona.xml");
  // All GPU pairs are SYS (each GPU in its own NUMA node): spread order = 0,1,2,3 (ties by
  // lowest index). Each task alone on its GPU's NUMA node. The only NIC, mlx5_0, serves all.
  check(run(t, 4, Policy::spread), {{{0}, "6-11,54-59", {1}, {"mlx5_0"}},
                                    {{1}, "12-17,60-65", {2}, {"mlx5_0"}},
                                    {{2}, "30-35,78-83", {5}, {"mlx5_0"}},
                                    {{3}, "42-47,90-95", {7}, {"mlx5_0"}}});
}

BOOST_AUTO_TEST_CASE(nic_balancing) {
  Topology t = load("coral-lassen.xml");
  // GPU0 and GPU1 are both NODE to mlx5_0 and mlx5_1: the two GPUs get different NICs, in one
  // task or in two.
  NodePlacement one = run(t, 1, Policy::pack, std::vector<int>{0, 1});
  BOOST_TEST_REQUIRE(one.tasks.size() == 1u);
  BOOST_TEST(one.tasks[0].nics == (std::vector<std::string>{"mlx5_0", "mlx5_1"}), boost::test_tools::per_element());
  NodePlacement two = run(t, 2, Policy::pack, std::vector<int>{0, 1});
  BOOST_TEST_REQUIRE(two.tasks.size() == 2u);
  BOOST_TEST(two.tasks[0].nics == std::vector<std::string>{"mlx5_0"}, boost::test_tools::per_element());
  BOOST_TEST(two.tasks[1].nics == std::vector<std::string>{"mlx5_1"}, boost::test_tools::per_element());
  // GPU3 alone: mlx5_2 and mlx5_3 tie (NODE), both unused -> the lower index.
  NodePlacement g3 = run(t, 1, Policy::pack, std::vector<int>{3});
  BOOST_TEST(g3.tasks[0].nics == std::vector<std::string>{"mlx5_2"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(policy_none_leaves_tasks_empty) {
  Topology t = load("coral-lassen.xml");
  NodePlacement np = run(t, 3, Policy::none);
  BOOST_TEST(np.policy == "none");
  BOOST_TEST_REQUIRE(np.tasks.size() == 3u);
  for (int j = 0; j < 3; ++j) {
    BOOST_TEST(np.tasks[j].task == j);
    BOOST_TEST(np.tasks[j].gpus.empty());
    BOOST_TEST(np.tasks[j].cpus.empty());
    BOOST_TEST(np.tasks[j].nics.empty());
  }
}

// ---------------------------------------------------------------------------------------
// Invalid requests
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(invalid_requests) {
  Topology t = load("coral-lassen.xml");
  BOOST_CHECK_THROW(run(t, 0, Policy::pack), sluice::InvalidArgument);
  BOOST_CHECK_THROW(run(t, -3, Policy::spread), sluice::InvalidArgument);
  BOOST_CHECK_THROW(run(t, 0, Policy::none), sluice::InvalidArgument);
  // Lassen has GPUs 0-3.
  BOOST_CHECK_THROW(run(t, 1, Policy::pack, std::vector<int>{4}), sluice::InvalidArgument);
  BOOST_CHECK_THROW(run(t, 1, Policy::pack, std::vector<int>{-1}), sluice::InvalidArgument);
  BOOST_CHECK_THROW(run(t, 2, Policy::pack, std::vector<int>{1, 1}), sluice::InvalidArgument);
  BOOST_CHECK_THROW(run(t, 2, Policy::spread, std::vector<int>{0, 2, 0}), sluice::InvalidArgument);
  try {
    run(t, 1, Policy::pack, std::vector<int>{7});
    BOOST_FAIL("no exception");
  } catch (const sluice::InvalidArgument& e) {
    BOOST_TEST(std::string(e.what()).find('7') != std::string::npos);  // names the bad index
  }
  // A machine without GPUs in its request is fine, one with GPUs that it lacks is not.
  Topology p8 = load("power8gpudistances.xml");
  BOOST_CHECK_THROW(run(p8, 1, Policy::pack, std::vector<int>{0, 4}), sluice::InvalidArgument);
}

// ---------------------------------------------------------------------------------------
// emulate_cpus
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(emulate_onto_two_cpus) {
  Topology t = load("coral-lassen.xml");
  const CpuSet all = t.cpus(), real = CpuSet::parse("0-1");
  // 160 topology PUs, 2 real CPUs: PU k (k-th in OS order) -> real[k*2/160]: the first 80
  // (8-87, package 0) -> 0, the last 80 (96-175, package 1) -> 1.
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(8, 47), real).to_string() == "0");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(8, 87), real).to_string() == "0");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(96, 135), real).to_string() == "1");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(136, 175), real).to_string() == "1");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::parse("87,96"), real).to_string() == "0-1");
  BOOST_TEST(sluice::emulate_cpus(all, all, real).to_string() == "0-1");
  // Real CPUs need not start at 0 nor be contiguous.
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(96, 99), CpuSet::parse("5,9")).to_string() == "9");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(8, 11), CpuSet::parse("5,9")).to_string() == "5");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(8, 11), CpuSet{}).empty());
}

BOOST_AUTO_TEST_CASE(emulate_onto_three_cpus) {
  Topology t = load("coral-lassen.xml");
  const CpuSet all = t.cpus(), real = CpuSet::parse("4-6");
  // k*3/160: k 0..53 -> 4, 54..106 -> 5, 107..159 -> 6. k-th PU: 8+k for k < 80, k+16 after.
  // So PUs 8-61 -> 4, 62-87 and 96-122 -> 5, 123-175 -> 6.
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(8, 61), real).to_string() == "4");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::parse("61-62"), real).to_string() == "4-5");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::parse("62-87,96-122"), real).to_string() == "5");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::parse("122-123"), real).to_string() == "5-6");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(123, 175), real).to_string() == "6");
  // Lassen pack 4 tasks (8-47, 48-87, 96-135, 136-175) onto 3 CPUs: 4, 4-5, 5-6, 6.
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(48, 87), real).to_string() == "4-5");
  BOOST_TEST(sluice::emulate_cpus(all, CpuSet::range(96, 135), real).to_string() == "5-6");
}

// Homes that overlap without being equal: with 3 tasks on Lassen under spread, task 0 gets
// GPUs {0,2} (both sockets), task 1 GPU 1 (socket 0), task 2 GPU 3 (socket 1). Socket 0's
// 20 cores go to tasks 0 and 1 (10 each), socket 1's to tasks 0 and 2: no CPU is shared.
BOOST_AUTO_TEST_CASE(overlapping_homes_never_share_cpus) {
  Topology t = load("coral-lassen.xml");
  NodePlacement np = run(t, 3, Policy::spread);
  BOOST_TEST_REQUIRE(np.tasks.size() == 3u);
  BOOST_TEST(np.tasks[0].cpus == "8-47,96-135");
  BOOST_TEST(np.tasks[1].cpus == "48-87");
  BOOST_TEST(np.tasks[2].cpus == "136-175");
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      BOOST_TEST(!CpuSet::parse(np.tasks[a].cpus).intersects(CpuSet::parse(np.tasks[b].cpus)));
}

// ---------------------------------------------------------------------------------------
// Topologies written for the tests (topologies/README.md). Facts from test_topology.cpp:
// frontier-mi250x-slingshot.xml: GCD k on NUMA 3,3,1,1,0,0,2,2; NUMA n = cores 16n..16n+15,
//   core c = PUs c, c+64; xGMI widths 4 (0-1, 2-3, 4-5, 6-7), 2 (1-6, 7-4, 5-2, 3-0), 1
//   (0-4, 1-5, 2-6, 3-7); non-linked GCD pairs SYS; hsn0..3 PHB to GCDs 0-1, 2-3, 4-5,
//   6-7; the I210 enp215s0 PHB to GCDs 4-5 too.
// r750xa-ib-1gbe.xml: GPUs 0,1 NUMA 0 (cores 0-15, PUs c, c+32), 2,3 NUMA 1; NODE within a
//   package, SYS across; mlx5_0 (ib0) NODE to GPUs 2,3 and SYS to 0,1; eno1/eno2 (one
//   BCM5720) NODE to GPUs 0,1 and SYS to 2,3.
// aws-p4d-efa.xml: GPUs 0-3 NUMA 0 (cores 0-23), 4-7 NUMA 1 (24-47), core c = PUs c, c+48;
//   NV12 between every pair; EFA rdmap16s27/32s27/144s27/160s27 PIX to GPU pairs 0-1, 2-3,
//   4-5, 6-7.
// ---------------------------------------------------------------------------------------

namespace {

NodePlacement run_nics(const Topology& t, int tasks, sluice::topo::NicPolicy nics) {
  PlacementRequest r;
  r.tasks = tasks;
  r.policy = Policy::pack;
  r.nics = std::move(nics);
  return sluice::place(t, r);
}

}  // namespace

// pack chains GCDs along xGMI: from GCD 0 the widest link is 1 (4 links); from 1, 6 (2 links,
// better than 5's 1); from 6, 7 (4); from 7, 4 (2, better than 3's 1); 4 -> 5 (4); 5 -> 2
// (2); 2 -> 3 (4). PCIe alone would have given 0..7 (SYS ties go to the lowest index).
// Each NUMA domain's 16 cores split between its two tasks, 8 each. NICs: each GCD's PHB
// Slingshot NIC; GCD 5 ties hsn2 and the I210, and must get hsn2 though hsn2 is used.
BOOST_AUTO_TEST_CASE(frontier_pack_follows_xgmi_and_never_the_management_port) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  check(run(t, 8, Policy::pack), {{{0}, "48-55,112-119", {3}, {"hsn0"}},
                                  {{1}, "56-63,120-127", {3}, {"hsn0"}},
                                  {{6}, "32-39,96-103", {2}, {"hsn3"}},
                                  {{7}, "40-47,104-111", {2}, {"hsn3"}},
                                  {{4}, "0-7,64-71", {0}, {"hsn2"}},
                                  {{5}, "8-15,72-79", {0}, {"hsn2"}},
                                  {{2}, "16-23,80-87", {1}, {"hsn1"}},
                                  {{3}, "24-31,88-95", {1}, {"hsn1"}}});
  // 4 tasks of 2 GCDs: consecutive pairs of the chain, (0,1) (6,7) (4,5) (2,3): each an MI250X.
  // One NIC per GCD, deduplicated: both GCDs of a package share its NIC.
  check(run(t, 4, Policy::pack), {{{0, 1}, "48-63,112-127", {3}, {"hsn0"}},
                                  {{6, 7}, "32-47,96-111", {2}, {"hsn3"}},
                                  {{4, 5}, "0-15,64-79", {0}, {"hsn2"}},
                                  {{2, 3}, "16-31,80-95", {1}, {"hsn1"}}});
  // Two tasks on GCDs 4 and 5 only: both PHB to hsn2 and to the I210; both get hsn2.
  NodePlacement two = run(t, 2, Policy::pack, std::vector<int>{4, 5});
  BOOST_TEST_REQUIRE(two.tasks.size() == 2u);
  for (const TaskPlacement& tp : two.tasks) BOOST_TEST(tp.nics == std::vector<std::string>{"hsn2"}, boost::test_tools::per_element());
  // Every policy, every task count: never enp215s0.
  for (Policy p : {Policy::pack, Policy::spread})
    for (int n = 1; n <= 16; ++n)
      for (const TaskPlacement& tp : run(t, n, p).tasks)
        BOOST_TEST((std::find(tp.nics.begin(), tp.nics.end(), "enp215s0") == tp.nics.end()));
}

// spread is PCIe-only, so xGMI changes nothing there: on GCDs {0,1,3}, farthest-first from
// GCD 0 takes 3 (SYS) before 1 (PHB, same root complex), though 0-1 is the widest xGMI pair.
BOOST_AUTO_TEST_CASE(frontier_spread_ignores_xgmi) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  NodePlacement np = run(t, 3, Policy::spread, std::vector<int>{0, 1, 3});
  BOOST_TEST_REQUIRE(np.tasks.size() == 3u);
  BOOST_TEST(np.tasks[0].gpus == std::vector<int>{0}, boost::test_tools::per_element());
  BOOST_TEST(np.tasks[1].gpus == std::vector<int>{3}, boost::test_tools::per_element());
  BOOST_TEST(np.tasks[2].gpus == std::vector<int>{1}, boost::test_tools::per_element());
}

// The site's override: exclude_nics=hsn2 leaves GCDs 4,5 with SYS to every Slingshot NIC
// (least used, then lowest index); the I210 is still left out (a fabric NIC exists).
BOOST_AUTO_TEST_CASE(frontier_exclude_nics) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  NodePlacement np = run_nics(t, 8, {{}, {"hsn2"}});
  // Tasks in order 0,1,6,7 take hsn0, hsn0, hsn3, hsn3; GCD 4 (task 4): SYS to hsn0, hsn1,
  // hsn3 with use 2, 0, 2 -> hsn1; GCD 5: use 2, 1, 2 -> hsn1; GCDs 2, 3: PHB hsn1.
  const std::vector<std::vector<std::string>> exp = {{"hsn0"}, {"hsn0"}, {"hsn3"}, {"hsn3"},
                                                     {"hsn1"}, {"hsn1"}, {"hsn1"}, {"hsn1"}};
  BOOST_TEST_REQUIRE(np.tasks.size() == 8u);
  for (int j = 0; j < 8; ++j)
    BOOST_TEST_CONTEXT("task " << j) { BOOST_TEST(np.tasks[j].nics == exp[j], boost::test_tools::per_element()); }
}

// One HCA for four GPUs: all share mlx5_0 though the 1 GbE port is nearer to GPUs 0 and 1.
// pack: 0 -> 1 (NODE), -> 2 (SYS, lowest), -> 3 (NODE); each NUMA's 16 cores split 8/8.
BOOST_AUTO_TEST_CASE(r750xa_hca_not_the_1gbe_port) {
  Topology t = load("r750xa-ib-1gbe.xml");
  check(run(t, 4, Policy::pack), {{{0}, "0-7,32-39", {0}, {"mlx5_0"}},
                                  {{1}, "8-15,40-47", {0}, {"mlx5_0"}},
                                  {{2}, "16-23,48-55", {1}, {"mlx5_0"}},
                                  {{3}, "24-31,56-63", {1}, {"mlx5_0"}}});
}

BOOST_AUTO_TEST_CASE(r750xa_nics_overrides) {
  Topology t = load("r750xa-ib-1gbe.xml");
  // nics=eno*: both BCM5720 ports, equally near: GPU 0 eno1, GPU 1 eno2 (least used), GPUs
  // 2, 3 (SYS to both) eno1, eno2.
  const std::vector<std::vector<std::string>> eno = {{"eno1"}, {"eno2"}, {"eno1"}, {"eno2"}};
  for (const sluice::topo::NicPolicy& p : {sluice::topo::NicPolicy{{"eno*"}, {}},
                                           sluice::topo::NicPolicy{{}, {"mlx5_0"}},  // next class down
                                           sluice::topo::NicPolicy{{}, {"ib0"}}}) {  // by IP interface
    NodePlacement np = run_nics(t, 4, p);
    BOOST_TEST_REQUIRE(np.tasks.size() == 4u);
    for (int j = 0; j < 4; ++j)
      BOOST_TEST_CONTEXT("task " << j) { BOOST_TEST(np.tasks[j].nics == eno[j], boost::test_tools::per_element()); }
  }
  // nics=eno2: one port only.
  for (const TaskPlacement& tp : run_nics(t, 4, {{"eno2"}, {}}).tasks)
    BOOST_TEST(tp.nics == std::vector<std::string>{"eno2"}, boost::test_tools::per_element());
  // Everything excluded: tasks get no NIC (and so no NIC variables), not an error.
  for (const TaskPlacement& tp : run_nics(t, 4, {{}, {"eno*", "mlx5_*"}}).tasks) BOOST_TEST(tp.nics.empty());
  // An allow list that names none of the node's NICs is the site's mistake: say so.
  try {
    (void)run_nics(t, 4, {{"hsn*"}, {}});
    BOOST_ERROR("no exception for nics=hsn*");
  } catch (const sluice::InvalidArgument& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("nics=hsn*") != std::string::npos, msg);
    BOOST_TEST(msg.find("eno1, eno2, mlx5_0") != std::string::npos, msg);
  }
}

// EFA: the verbs devices, one per GPU pair on its PCIe switch; never the ENA. NV12 ties
// everywhere, so pack keeps PCI order; each NUMA's 24 cores split 6 per task.
BOOST_AUTO_TEST_CASE(p4d_efa) {
  Topology t = load("aws-p4d-efa.xml");
  check(run(t, 8, Policy::pack), {{{0}, "0-5,48-53", {0}, {"rdmap16s27"}},
                                  {{1}, "6-11,54-59", {0}, {"rdmap16s27"}},
                                  {{2}, "12-17,60-65", {0}, {"rdmap32s27"}},
                                  {{3}, "18-23,66-71", {0}, {"rdmap32s27"}},
                                  {{4}, "24-29,72-77", {1}, {"rdmap144s27"}},
                                  {{5}, "30-35,78-83", {1}, {"rdmap144s27"}},
                                  {{6}, "36-41,84-89", {1}, {"rdmap160s27"}},
                                  {{7}, "42-47,90-95", {1}, {"rdmap160s27"}}});
}

BOOST_AUTO_TEST_CASE(nic_patterns) {
  using sluice::topo::parse_nic_patterns;
  BOOST_TEST(parse_nic_patterns("hsn*,mlx5_[0-3],ib0", "x") == (std::vector<std::string>{"hsn*", "mlx5_[0-3]", "ib0"}),
             boost::test_tools::per_element());
  auto bad = [](const std::string& list, const std::string& fragment) {
    try {
      (void)parse_nic_patterns(list, "plugstack.conf argument nics=");
      BOOST_ERROR("no exception for " << list);
    } catch (const sluice::InvalidArgument& e) {
      const std::string msg = e.what();
      BOOST_TEST(msg.find("plugstack.conf argument nics=") == 0u, msg);
      BOOST_TEST(msg.find(fragment) != std::string::npos, msg);
    }
  };
  bad("hsn*,", "an empty pattern");
  bad(",hsn*", "an empty pattern");
  bad("hsn 0", "has a character NIC names do not have");
  bad("hsn/0", "has a character");
  bad("mlx5_[0-3", "'[' without its ']'");
  bad("mlx5_]", "']' without '['");
  bad("mlx5_[]", "'[' without its ']'");
  bad(std::string(65, 'a'), "longer than 64");
  std::string many;
  for (int i = 0; i < 33; ++i) many += (i ? "," : "") + std::string("e") + std::to_string(i);
  bad(many, "more than 32 patterns");
}
