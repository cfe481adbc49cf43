#define BOOST_TEST_MODULE nvml
#include <boost/test/unit_test.hpp>

#include <sluice/common/nvml.hpp>
#include <sluice/common/topology.hpp>

#include <cstdlib>

using sluice::nvml::Library;
using sluice::topo::DeviceRef;

BOOST_AUTO_TEST_CASE(absent_library_means_no_gpus) {
  BOOST_TEST(!Library::load("libnvidia-ml-does-not-exist.so.1").has_value());
}

BOOST_AUTO_TEST_CASE(init_failure_means_no_gpus) {
  setenv("FAKE_NVML_INIT_FAIL", "1", 1);
  BOOST_TEST(!Library::load(FAKE_NVML_PATH).has_value());
  unsetenv("FAKE_NVML_INIT_FAIL");
}

BOOST_AUTO_TEST_CASE(reads_devices_and_nvlinks) {
  auto lib = Library::load(FAKE_NVML_PATH);
  BOOST_REQUIRE(lib.has_value());
  BOOST_TEST(lib->device_count() == 2);
  // NVML's 8-digit domain and upper-case hex become hwloc's form.
  BOOST_TEST(lib->pci_bus_id(0) == "0000:04:00.0");
  BOOST_TEST(lib->pci_bus_id(1) == "0000:07:00.0");
  auto remotes = lib->nvlink_remotes(0);
  BOOST_TEST(remotes.size() == 4u);  // links 0-3 active, link 4 inactive, 5 absent
  for (const auto& r : remotes) BOOST_TEST(r == "0000:07:00.0");
}

BOOST_AUTO_TEST_CASE(nvml_links_fill_a_topology_without_nvlink_data) {
  // cts1-pascal.xml has no NVLinkBandwidth: its two P100s show their PCIe path (one switch).
  auto t = sluice::topo::Topology::from_xml(std::string(SLUICE_TOPOLOGIES) + "/cts1-pascal.xml");
  BOOST_TEST(!t.has_nvlink_data());
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::gpu(1)).to_string() == "PIX");
  auto lib = Library::load(FAKE_NVML_PATH);
  BOOST_REQUIRE(lib.has_value());
  t.add_nvlinks(*lib);
  BOOST_TEST(t.has_nvlink_data());
  BOOST_TEST(t.nvlinks(0, 1) == 4);
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::gpu(1)).to_string() == "NV4");
  t.add_nvlinks(*lib);  // counted once, not twice
  BOOST_TEST(t.nvlinks(1, 0) == 4);
}
