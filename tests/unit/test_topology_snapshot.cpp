#define BOOST_TEST_MODULE topology_snapshot
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/common/placement.hpp>
#include <sluice/common/topology.hpp>

#include <string>
#include <vector>

using namespace sluice;
using topo::DeviceRef;
using topo::Topology;

namespace {

const std::vector<std::string> kTopologies = {"coral-lassen.xml", "cts1-pascal.xml", "epyc-corona.xml",
                                              "nvidiaDGX2.xml", "power8gpudistances.xml",
                                              "32em64t-2n8c2t-pci-normalio.xml", "frontier-mi250x-slingshot.xml",
                                              "aws-p4d-efa.xml", "r750xa-ib-1gbe.xml"};

std::string xml(const std::string& name) { return std::string(SLUICE_TOPOLOGIES) + "/" + name; }

}  // namespace

// A snapshot must answer every question exactly as the hwloc topology it came from.
BOOST_AUTO_TEST_CASE(snapshot_round_trip_is_exact_for_every_topology) {
  for (const auto& name : kTopologies) {
    BOOST_TEST_CONTEXT(name) {
      Topology a = Topology::from_xml(xml(name));
      Topology b = Topology::from_snapshot(a.to_snapshot());
      BOOST_TEST(b.source() == a.source());
      BOOST_TEST(b.cpus().to_string() == a.cpus().to_string());
      BOOST_REQUIRE(b.cores().size() == a.cores().size());
      for (std::size_t c = 0; c < a.cores().size(); ++c) BOOST_TEST(b.cores()[c].to_string() == a.cores()[c].to_string());
      BOOST_TEST(b.shape().sockets == a.shape().sockets);
      BOOST_TEST(b.shape().threads_per_core == a.shape().threads_per_core);
      BOOST_REQUIRE(b.gpus().size() == a.gpus().size());
      BOOST_REQUIRE(b.nics().size() == a.nics().size());
      BOOST_TEST(b.numa_nodes().size() == a.numa_nodes().size());
      for (std::size_t i = 0; i < a.gpus().size(); ++i) {
        BOOST_TEST(b.gpus()[i].pci.to_string() == a.gpus()[i].pci.to_string());
        BOOST_TEST(b.gpus()[i].cpus.to_string() == a.gpus()[i].cpus.to_string());
        BOOST_TEST(b.gpus()[i].numa == a.gpus()[i].numa, boost::test_tools::per_element());
        BOOST_TEST(int(b.gpus()[i].vendor) == int(a.gpus()[i].vendor));
      }
      for (std::size_t i = 0; i < a.nics().size(); ++i) {
        BOOST_TEST(b.nics()[i].name == a.nics()[i].name);
        BOOST_TEST(b.nics()[i].port == a.nics()[i].port);
      }
      // Every NIC, with what it is: the site's nics= may pick one the default leaves out.
      BOOST_REQUIRE(b.all_nics().size() == a.all_nics().size());
      for (std::size_t i = 0; i < a.all_nics().size(); ++i) {
        BOOST_TEST(b.all_nics()[i].name == a.all_nics()[i].name);
        BOOST_TEST(int(b.all_nics()[i].family) == int(a.all_nics()[i].family));
        BOOST_TEST(int(b.all_nics()[i].nic_class) == int(a.all_nics()[i].nic_class));
        BOOST_TEST(b.all_nics()[i].pci_vendor == a.all_nics()[i].pci_vendor);
        BOOST_TEST(b.all_nics()[i].pcie_gbps == a.all_nics()[i].pcie_gbps);
      }
      BOOST_TEST(b.has_xgmi_data() == a.has_xgmi_data());
      for (const auto& g : a.gpus())
        for (const auto& h : a.gpus()) BOOST_TEST(b.xgmi_links(g.index, h.index) == a.xgmi_links(g.index, h.index));
      std::vector<DeviceRef> devs;
      for (std::size_t i = 0; i < a.gpus().size(); ++i) devs.push_back(DeviceRef::gpu(int(i)));
      for (std::size_t i = 0; i < a.nics().size(); ++i) devs.push_back(DeviceRef::nic(int(i)));
      for (std::size_t i = 0; i < a.all_nics().size(); ++i) devs.push_back(DeviceRef::any_nic(int(i)));
      for (auto x : devs)
        for (auto y : devs)
          for (bool nv : {true, false}) BOOST_TEST(b.path(x, y, nv).to_string() == a.path(x, y, nv).to_string());
      for (auto policy : {Policy::pack, Policy::spread}) {
        PlacementRequest req;
        req.tasks = std::max<int>(1, int(a.gpus().size()));
        req.policy = policy;
        BOOST_TEST(place(b, req).to_json() == place(a, req).to_json());
        req.nics.exclude = {"hsn0", "mlx5_0", "rdmap16s27"};  // the next NIC, or the next class
        BOOST_TEST(place(b, req).to_json() == place(a, req).to_json());
      }
    }
  }
}

// A version 1 snapshot (before NIC classes and xGMI) is refused, so a step reads the
// topology itself rather than place on a model without them.
BOOST_AUTO_TEST_CASE(version_1_snapshots_are_refused) {
  std::string s = Topology::from_xml(xml("frontier-mi250x-slingshot.xml")).to_snapshot();
  const auto at = s.find("\"version\":2");
  BOOST_TEST_REQUIRE(at != std::string::npos);
  s.replace(at, 11, "\"version\":1");
  BOOST_CHECK_THROW(Topology::from_snapshot(s), TopologyError);
}

BOOST_AUTO_TEST_CASE(malformed_snapshots_are_refused_with_a_reason) {
  std::string good = Topology::from_xml(xml("coral-lassen.xml")).to_snapshot();
  BOOST_CHECK_THROW(Topology::from_snapshot("not json"), TopologyError);
  BOOST_CHECK_THROW(Topology::from_snapshot("{}"), TopologyError);
  BOOST_CHECK_THROW(Topology::from_snapshot(R"({"format":"sluice-topology","version":9})"), TopologyError);
  // Truncated: the writer died half way.
  BOOST_CHECK_THROW(Topology::from_snapshot(good.substr(0, good.size() / 2)), TopologyError);
  // A path class nobody knows.
  std::string bad = good;
  bad.replace(bad.find("\"PIX\""), 5, "\"PIQ\"");
  try {
    Topology::from_snapshot(bad);
    BOOST_FAIL("no exception");
  } catch (const TopologyError& e) {
    BOOST_TEST(std::string(e.what()).find("PIQ") != std::string::npos);
  }
}

// Under spread, a task's GPUs come from different sockets, but CUDA numbers them in PCI
// order: the record lists them that way so CUDA device 0 is the task's lowest GPU.
BOOST_AUTO_TEST_CASE(task_gpus_are_listed_in_pci_order) {
  Topology t = Topology::from_xml(xml("coral-lassen.xml"));
  PlacementRequest req;
  req.tasks = 1;
  req.policy = Policy::spread;
  NodePlacement np = place(t, req);
  BOOST_TEST(np.tasks[0].gpus == (std::vector<int>{0, 1, 2, 3}), boost::test_tools::per_element());
}

// gpu_pci carries each task GPU's PCI address, in the same order as gpus, so a task can
// check that CUDA device i is the GPU it was given (examples/whereami.cpp does).
BOOST_AUTO_TEST_CASE(records_carry_gpu_pci_addresses) {
  Topology t = Topology::from_xml(xml("coral-lassen.xml"));
  PlacementRequest req;
  req.tasks = 2;
  NodePlacement np = place(t, req);
  // Lassen: GPU0 0004:04:00.0, GPU1 0004:05:00.0 (socket 0); GPU2 0035:03:00.0, GPU3 0035:04:00.0.
  BOOST_TEST(np.tasks[0].gpu_pci == (std::vector<std::string>{"0004:04:00.0", "0004:05:00.0"}), boost::test_tools::per_element());
  BOOST_TEST(np.tasks[1].gpu_pci == (std::vector<std::string>{"0035:03:00.0", "0035:04:00.0"}), boost::test_tools::per_element());
}
