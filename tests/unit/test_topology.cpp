// Topology reading: GPUs, NICs, NUMA nodes, device locality and the `nvidia-smi topo -m`
// path classes, for every shared topology. Every expectation below was worked out by hand
// from the XML (lstopo-no-graphics -i FILE -v, --distances, hwloc-calc, grep), not copied
// from the program's output; the comment next to it says why it holds.
#define BOOST_TEST_MODULE topology
#include <boost/test/unit_test.hpp>

#include <sluice/common/cpu_set.hpp>
#include <sluice/common/error.hpp>
#include <sluice/common/topology.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>
#include <vector>

using sluice::CpuSet;
using namespace sluice::topo;

namespace {

std::string topo_path(const std::string& name) { return std::string(SLUICE_TOPOLOGIES) + "/" + name; }
Topology load(const std::string& name) { return Topology::from_xml(topo_path(name)); }

struct GpuExp {
  std::string pci;
  GpuVendor vendor;
  int vendor_index;
};

void check_gpus(const Topology& t, const std::vector<GpuExp>& exp) {
  BOOST_TEST_REQUIRE(t.gpus().size() == exp.size());
  for (std::size_t i = 0; i < exp.size(); ++i) {
    BOOST_TEST_CONTEXT("GPU " << i) {
      const Gpu& g = t.gpus()[i];
      BOOST_TEST(g.index == int(i));
      BOOST_TEST(g.pci.to_string() == exp[i].pci);
      BOOST_TEST(std::string(to_string(g.vendor)) == std::string(to_string(exp[i].vendor)));
      BOOST_TEST(g.vendor_index == exp[i].vendor_index);
    }
  }
}

struct NicExp {
  std::string name, netdev, pci;
  int port;
};

void check_nics(const Topology& t, const std::vector<NicExp>& exp) {
  BOOST_TEST_REQUIRE(t.nics().size() == exp.size());
  for (std::size_t i = 0; i < exp.size(); ++i) {
    BOOST_TEST_CONTEXT("NIC " << i) {
      const Nic& n = t.nics()[i];
      BOOST_TEST(n.index == int(i));
      BOOST_TEST(n.name == exp[i].name);
      BOOST_TEST(n.netdev == exp[i].netdev);
      BOOST_TEST(n.pci.to_string() == exp[i].pci);
      BOOST_TEST(n.port == exp[i].port);
      BOOST_TEST((n.kind == NicKind::openfabrics));
    }
  }
}

void check_numa(const Topology& t, const std::vector<std::pair<int, std::string>>& exp) {
  BOOST_TEST_REQUIRE(t.numa_nodes().size() == exp.size());
  for (std::size_t i = 0; i < exp.size(); ++i) {
    BOOST_TEST_CONTEXT("NUMA node " << i) {
      BOOST_TEST(t.numa_nodes()[i].os_index == exp[i].first);
      BOOST_TEST(t.numa_nodes()[i].cpus.to_string() == exp[i].second);
    }
  }
}

// devices: the rows/columns; m[i][j]: the expected class of path(devices[i], devices[j]).
void check_matrix(const Topology& t, const std::vector<DeviceRef>& devices, const std::vector<std::vector<std::string>>& m,
                  bool via_nvlink = true) {
  BOOST_TEST_REQUIRE(m.size() == devices.size());
  auto name = [](DeviceRef d) { return std::string(d.kind == DeviceRef::Kind::gpu ? "GPU" : "NIC") + std::to_string(d.index); };
  for (std::size_t i = 0; i < devices.size(); ++i)
    for (std::size_t j = 0; j < devices.size(); ++j)
      BOOST_TEST_CONTEXT(name(devices[i]) << " -> " << name(devices[j]) << (via_nvlink ? "" : " (PCIe only)")) {
        BOOST_TEST(t.path(devices[i], devices[j], via_nvlink).to_string() == m[i][j]);
      }
}

std::vector<DeviceRef> gpus_then_nics(int ngpu, int nnic) {
  std::vector<DeviceRef> v;
  for (int i = 0; i < ngpu; ++i) v.push_back(DeviceRef::gpu(i));
  for (int i = 0; i < nnic; ++i) v.push_back(DeviceRef::nic(i));
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Path class basics
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(path_names_and_ranks) {
  // Names as `nvidia-smi topo -m` prints them.
  BOOST_TEST((Path{PathClass::self, 0}.to_string()) == "X");
  BOOST_TEST((Path{PathClass::nvlink, 6}.to_string()) == "NV6");
  BOOST_TEST((Path{PathClass::pix, 0}.to_string()) == "PIX");
  BOOST_TEST((Path{PathClass::pxb, 0}.to_string()) == "PXB");
  BOOST_TEST((Path{PathClass::phb, 0}.to_string()) == "PHB");
  BOOST_TEST((Path{PathClass::node, 0}.to_string()) == "NODE");
  BOOST_TEST((Path{PathClass::sys, 0}.to_string()) == "SYS");
  // Lower rank is closer: X < NV6 < NV2 (more links are closer) < PIX < PXB < PHB < NODE < SYS.
  std::vector<Path> best_first = {{PathClass::self, 0}, {PathClass::nvlink, 6}, {PathClass::nvlink, 2},
                                  {PathClass::pix, 0},  {PathClass::pxb, 0},    {PathClass::phb, 0},
                                  {PathClass::node, 0}, {PathClass::sys, 0}};
  for (std::size_t i = 0; i + 1 < best_first.size(); ++i)
    BOOST_TEST_CONTEXT(best_first[i].to_string() << " vs " << best_first[i + 1].to_string()) {
      BOOST_TEST(best_first[i].rank() < best_first[i + 1].rank());
    }
  const PciAddress a{4, 4, 0, 0}, b{0, 0xb7, 0x1f, 7};
  BOOST_TEST(a.to_string() == "0004:04:00.0");
  BOOST_TEST(b.to_string() == "0000:b7:1f.7");
}

// ---------------------------------------------------------------------------------------
// coral-lassen.xml: IBM AC922, 2 POWER9 packages (P#0, P#8), 4 V100, 4 mlx5
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lassen_devices) {
  Topology t = load("coral-lassen.xml");
  BOOST_TEST(t.source() == topo_path("coral-lassen.xml"));
  // 10de:1db1 class 0302 at 0004:04:00.0, 0004:05:00.0 (HostBridge 0004, package 0) and
  // 0035:03:00.0, 0035:04:00.0 (HostBridge 0035, package 1). 0002:02:00.0 is an ASPEED VGA
  // (vendor 1a03): not a GPU.
  check_gpus(t, {{"0004:04:00.0", GpuVendor::nvidia, 0},
                 {"0004:05:00.0", GpuVendor::nvidia, 1},
                 {"0035:03:00.0", GpuVendor::nvidia, 2},
                 {"0035:04:00.0", GpuVendor::nvidia, 3}});
  // cuda0's GPUModel attribute.
  BOOST_TEST(t.gpus()[0].model == "Tesla V100-SXM2-16GB");
  // OpenFabrics mlx5_0..3 on 0003:01:00.0/.1 and 0033:01:00.0/.1, each with Port1State=4
  // (active) and a Net "hsiN" on the same PCI function. The Broadcom Ethernet ports
  // (enP5p1s0f0/1) are not used since OpenFabrics devices exist.
  check_nics(t, {{"mlx5_0", "hsi0", "0003:01:00.0", 1},
                 {"mlx5_1", "hsi1", "0003:01:00.1", 1},
                 {"mlx5_2", "hsi2", "0033:01:00.0", 1},
                 {"mlx5_3", "hsi3", "0033:01:00.1", 1}});
  // NUMANode P#0 in package 0 (PUs 8-87), NUMANode P#8 in package 1 (PUs 96-175); PUs 0-7
  // and 88-95 are only in complete_cpuset (offline), so not in the topology.
  check_numa(t, {{0, "8-87"}, {8, "96-175"}});
  BOOST_TEST(t.cpus().to_string() == "8-87,96-175");
  BOOST_TEST(t.cpus().size() == 160u);
  // The GPUs' and NICs' first non-I/O ancestor is their package.
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "8-87");
  BOOST_TEST(t.gpus()[0].numa == std::vector<int>{0});
  BOOST_TEST(t.gpus()[1].cpus.to_string() == "8-87");
  BOOST_TEST(t.gpus()[2].cpus.to_string() == "96-175");
  BOOST_TEST(t.gpus()[3].numa == std::vector<int>{8});
  BOOST_TEST(t.nics()[1].cpus.to_string() == "8-87");
  BOOST_TEST(t.nics()[1].numa == std::vector<int>{0});
  BOOST_TEST(t.nics()[2].cpus.to_string() == "96-175");
  BOOST_TEST(t.nics()[2].numa == std::vector<int>{8});
  // The export has only the NUMALatency matrix, no NVLinkBandwidth.
  BOOST_TEST(!t.has_nvlink_data());
  BOOST_TEST(!t.gpus_behind_nvswitch());
  BOOST_TEST(t.nvlinks(0, 1) == 0);
}

BOOST_AUTO_TEST_CASE(lassen_shape_and_cores) {
  Topology t = load("coral-lassen.xml");
  // 2 packages, 40 cores (20 per package), 160 PUs: SMT4.
  CpuShape s = t.shape();
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 20);
  BOOST_TEST(s.threads_per_core == 4);
  std::vector<CpuSet> cores = t.cores();
  BOOST_TEST_REQUIRE(cores.size() == 40u);
  BOOST_TEST(cores[0].to_string() == "8-11");      // Core L#0: PU P#8-11
  BOOST_TEST(cores[19].to_string() == "84-87");    // Core L#19, last of package 0
  BOOST_TEST(cores[20].to_string() == "96-99");    // Core L#20, first of package 1
  BOOST_TEST(cores[39].to_string() == "172-175");  // Core L#39
}

BOOST_AUTO_TEST_CASE(lassen_path_matrix) {
  Topology t = load("coral-lassen.xml");
  // GPU0 0004:04:00.0 and GPU1 0004:05:00.0 sit under downstream ports 0004:02:0a.0 and
  // 0004:02:0b.0 of one PLX switch (upstream 0004:01:00.0): PIX. Same for GPU2/GPU3 under
  // 0035:01:00.0. mlx5_0/mlx5_1 are two functions right under root port 0003:00:00.0: PIX.
  // GPU0/1 and mlx5_0/1 are under different host bridges (0004, 0003) in package 0 whose
  // only NUMA node is P#0: NODE. Anything between package 0 and package 1: SYS.
  // No NVLink data in this export, so no NV#.
  const std::vector<std::vector<std::string>> m = {
      //  G0      G1      G2      G3      N0      N1      N2      N3
      {"X", "PIX", "SYS", "SYS", "NODE", "NODE", "SYS", "SYS"},   // GPU0
      {"PIX", "X", "SYS", "SYS", "NODE", "NODE", "SYS", "SYS"},   // GPU1
      {"SYS", "SYS", "X", "PIX", "SYS", "SYS", "NODE", "NODE"},   // GPU2
      {"SYS", "SYS", "PIX", "X", "SYS", "SYS", "NODE", "NODE"},   // GPU3
      {"NODE", "NODE", "SYS", "SYS", "X", "PIX", "SYS", "SYS"},   // mlx5_0
      {"NODE", "NODE", "SYS", "SYS", "PIX", "X", "SYS", "SYS"},   // mlx5_1
      {"SYS", "SYS", "NODE", "NODE", "SYS", "SYS", "X", "PIX"},   // mlx5_2
      {"SYS", "SYS", "NODE", "NODE", "SYS", "SYS", "PIX", "X"}};  // mlx5_3
  check_matrix(t, gpus_then_nics(4, 4), m);
  check_matrix(t, gpus_then_nics(4, 4), m, /*via_nvlink=*/false);  // nothing NVLink to remove
}

// ---------------------------------------------------------------------------------------
// power8gpudistances.xml: POWER8 Minsky, 4 P100-SXM2, NVLink pairs + NVLink to packages
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(power8_devices) {
  Topology t = load("power8gpudistances.xml");
  // 10de:15f9 class 0302 under four host bridges: 0002, 0003 (package 0), 000a, 000b (package 1).
  check_gpus(t, {{"0002:01:00.0", GpuVendor::nvidia, 0},
                 {"0003:01:00.0", GpuVendor::nvidia, 1},
                 {"000a:01:00.0", GpuVendor::nvidia, 2},
                 {"000b:01:00.0", GpuVendor::nvidia, 3}});
  BOOST_TEST(t.gpus()[2].model == "Tesla P100-SXM2-16GB");
  // No OpenFabrics and no network device at all.
  check_nics(t, {});
  // Package 0 cpuset 0x03030303 = PUs 0,1,8,9,16,17,24,25; package 1 PUs 80,81,88,89,96,97,104,105.
  check_numa(t, {{0, "0-1,8-9,16-17,24-25"}, {1, "80-81,88-89,96-97,104-105"}});
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "0-1,8-9,16-17,24-25");
  BOOST_TEST(t.gpus()[1].numa == std::vector<int>{0});
  BOOST_TEST(t.gpus()[3].cpus.to_string() == "80-81,88-89,96-97,104-105");
  BOOST_TEST(t.gpus()[3].numa == std::vector<int>{1});
  // 8 cores of 2 PUs, 4 per package.
  CpuShape s = t.shape();
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 4);
  BOOST_TEST(s.threads_per_core == 2);
}

BOOST_AUTO_TEST_CASE(power8_nvlinks_and_paths) {
  Topology t = load("power8gpudistances.xml");
  // NVLinkBandwidth: nvml0<->nvml1 and nvml2<->nvml3 40000; P100 is NVLink1 (20000 per
  // link): 2 links. The Package:N columns are CPU links, not NVSwitches (not PCI devices).
  // The diagonal (1000000) is the GPU itself.
  BOOST_TEST(t.has_nvlink_data());
  BOOST_TEST(!t.gpus_behind_nvswitch());
  BOOST_TEST(t.nvlinks(0, 1) == 2);
  BOOST_TEST(t.nvlinks(1, 0) == 2);
  BOOST_TEST(t.nvlinks(2, 3) == 2);
  BOOST_TEST(t.nvlinks(0, 2) == 0);
  BOOST_TEST(t.nvlinks(1, 3) == 0);
  // Not linked pairs: GPU0/1 are in package 0 (NUMA 0), GPU2/3 in package 1: SYS.
  check_matrix(t, gpus_then_nics(4, 0),
               {{"X", "NV2", "SYS", "SYS"},
                {"NV2", "X", "SYS", "SYS"},
                {"SYS", "SYS", "X", "NV2"},
                {"SYS", "SYS", "NV2", "X"}});
  // PCIe only: GPU0 (host bridge 0002) and GPU1 (host bridge 0003) are different host
  // bridges in the same single NUMA node: NODE.
  check_matrix(t, gpus_then_nics(4, 0),
               {{"X", "NODE", "SYS", "SYS"},
                {"NODE", "X", "SYS", "SYS"},
                {"SYS", "SYS", "X", "NODE"},
                {"SYS", "SYS", "NODE", "X"}},
               /*via_nvlink=*/false);
}

// ---------------------------------------------------------------------------------------
// nvidiaDGX2.xml: 16 V100-SXM3 behind NVSwitches, restricted export (PUs 0,1,24,25)
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(dgx2_devices) {
  Topology t = load("nvidiaDGX2.xml");
  // 10de:1db8 class 0302, PCI order = nvml0..15. The NVSwitches (10de:1ac2 class 0680, and
  // one 0000:0000 class 0000) are not GPUs.
  check_gpus(t, {{"0000:34:00.0", GpuVendor::nvidia, 0},  {"0000:36:00.0", GpuVendor::nvidia, 1},
                 {"0000:39:00.0", GpuVendor::nvidia, 2},  {"0000:3b:00.0", GpuVendor::nvidia, 3},
                 {"0000:57:00.0", GpuVendor::nvidia, 4},  {"0000:59:00.0", GpuVendor::nvidia, 5},
                 {"0000:5c:00.0", GpuVendor::nvidia, 6},  {"0000:5e:00.0", GpuVendor::nvidia, 7},
                 {"0000:b7:00.0", GpuVendor::nvidia, 8},  {"0000:b9:00.0", GpuVendor::nvidia, 9},
                 {"0000:bc:00.0", GpuVendor::nvidia, 10}, {"0000:be:00.0", GpuVendor::nvidia, 11},
                 {"0000:e0:00.0", GpuVendor::nvidia, 12}, {"0000:e2:00.0", GpuVendor::nvidia, 13},
                 {"0000:e5:00.0", GpuVendor::nvidia, 14}, {"0000:e7:00.0", GpuVendor::nvidia, 15}});
  BOOST_TEST(t.gpus()[0].model == "Tesla V100-SXM3-32GB-H");
  check_nics(t, {});  // no network device exported
  // Package 0: PUs 0,1 (NUMA P#0); package 1: PUs 24,25 (NUMA P#1).
  check_numa(t, {{0, "0-1"}, {1, "24-25"}});
  BOOST_TEST(t.gpus()[7].cpus.to_string() == "0-1");
  BOOST_TEST(t.gpus()[7].numa == std::vector<int>{0});
  BOOST_TEST(t.gpus()[8].cpus.to_string() == "24-25");
  BOOST_TEST(t.gpus()[8].numa == std::vector<int>{1});
  CpuShape s = t.shape();  // 2 packages x 2 cores x 1 PU
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 2);
  BOOST_TEST(s.threads_per_core == 1);
}

BOOST_AUTO_TEST_CASE(dgx2_nvswitch_and_paths) {
  Topology t = load("nvidiaDGX2.xml");
  // Each GPU has 25000 (1 V100 link) to 6 NVSwitches (PCI devices, not GPUs): 6 links to
  // switches each, so every pair of GPUs is min(6, 6) = NV6, across baseboards too.
  BOOST_TEST(t.has_nvlink_data());
  BOOST_TEST(t.gpus_behind_nvswitch());
  for (int a = 0; a < 16; ++a)
    for (int b = 0; b < 16; ++b)
      BOOST_TEST_CONTEXT("GPU" << a << " -> GPU" << b) {
        if (a == b) {
          BOOST_TEST(t.path(DeviceRef::gpu(a), DeviceRef::gpu(b)).to_string() == "X");
        } else {
          BOOST_TEST(t.nvlinks(a, b) == 6);
          BOOST_TEST(t.path(DeviceRef::gpu(a), DeviceRef::gpu(b)).to_string() == "NV6");
        }
      }
  // PCIe only, spot checks:
  auto pcie = [&](int a, int b) { return t.path(DeviceRef::gpu(a), DeviceRef::gpu(b), false).to_string(); };
  // GPU0 34:00.0 and GPU1 36:00.0 under downstream ports 33:00.0 / 33:10.0 of switch 32:00.0.
  BOOST_TEST(pcie(0, 1) == "PIX");
  BOOST_TEST(pcie(14, 15) == "PIX");  // e5:00.0 / e7:00.0 under e4:00.0 / e4:10.0 of switch e3:00.0
  // GPU0 and GPU2 (39:00.0) meet at 2c:00.0; GPU0 goes 33:00.0, 32:00.0, 2d:04.0 to get there.
  BOOST_TEST(pcie(0, 2) == "PXB");
  BOOST_TEST(pcie(9, 11) == "PXB");   // b9:00.0 / be:00.0 meet at af:00.0
  // GPU0 (host bridge 2b) and GPU4 (host bridge 4e), both in package 0 / NUMA 0.
  BOOST_TEST(pcie(0, 4) == "NODE");
  BOOST_TEST(pcie(8, 12) == "NODE");  // host bridges ae and d7 in package 1
  BOOST_TEST(pcie(0, 8) == "SYS");
  BOOST_TEST(pcie(7, 15) == "SYS");
  BOOST_TEST(pcie(3, 3) == "X");
}

// ---------------------------------------------------------------------------------------
// cts1-pascal.xml: 2 P100-PCIe and mlx5_0 behind one PLX switch in package 0
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cts1_devices_and_paths) {
  Topology t = load("cts1-pascal.xml");
  // 10de:15f8 class 0302 at 0000:04:00.0 and 0000:07:00.0; the ASPEED VGA is not a GPU.
  check_gpus(t, {{"0000:04:00.0", GpuVendor::nvidia, 0}, {"0000:07:00.0", GpuVendor::nvidia, 1}});
  BOOST_TEST(t.gpus()[1].model == "Tesla P100-PCIE-16GB");
  // mlx5_0 (Port1State=4) on 0000:08:00.0 with Net hsi0; the I350 Ethernet ports are unused.
  check_nics(t, {{"mlx5_0", "hsi0", "0000:08:00.0", 1}});
  // NUMA P#0 = package 0: PUs 0-17 and their siblings 36-53; P#1: 18-35,54-71.
  check_numa(t, {{0, "0-17,36-53"}, {1, "18-35,54-71"}});
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "0-17,36-53");
  BOOST_TEST(t.gpus()[1].numa == std::vector<int>{0});
  BOOST_TEST(t.nics()[0].cpus.to_string() == "0-17,36-53");
  BOOST_TEST(t.nics()[0].numa == std::vector<int>{0});
  CpuShape s = t.shape();  // 36 cores, 72 PUs, 2 packages
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 18);
  BOOST_TEST(s.threads_per_core == 2);
  BOOST_TEST(!t.has_nvlink_data());
  // GPU0 (downstream port 03:04.0), GPU1 (03:10.0) and mlx5_0 (03:14.0) all hang off one
  // downstream port each of the PLX switch 02:00.0: PIX everywhere.
  check_matrix(t, gpus_then_nics(2, 1),
               {{"X", "PIX", "PIX"},
                {"PIX", "X", "PIX"},
                {"PIX", "PIX", "X"}});
}

// ---------------------------------------------------------------------------------------
// epyc-corona.xml: AMD EPYC, 8 NUMA nodes, 4 AMD Vega 20, mlx5_0
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(epyc_devices_and_paths) {
  Topology t = load("epyc-corona.xml");
  // 1002:66a1 class 0300 at 13, 23, 53, 73:00.0; the 1002:14a0/14a1 devices are PCI bridges
  // (class 0604) and 0000:05:00.0 is an ASPEED VGA: not GPUs. AMD only: vendor_index = index.
  check_gpus(t, {{"0000:13:00.0", GpuVendor::amd, 0},
                 {"0000:23:00.0", GpuVendor::amd, 1},
                 {"0000:53:00.0", GpuVendor::amd, 2},
                 {"0000:73:00.0", GpuVendor::amd, 3}});
  // mlx5_0 (ConnectX-6, Port1State=4) on 0000:33:00.0 with Net hsi0.
  check_nics(t, {{"mlx5_0", "hsi0", "0000:33:00.0", 1}});
  check_numa(t, {{0, "0-5,48-53"},
                 {1, "6-11,54-59"},
                 {2, "12-17,60-65"},
                 {3, "18-23,66-71"},
                 {4, "24-29,72-77"},
                 {5, "30-35,78-83"},
                 {6, "36-41,84-89"},
                 {7, "42-47,90-95"}});
  // Each GPU's first non-I/O ancestor is a Group0 holding one NUMA node.
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "6-11,54-59");
  BOOST_TEST(t.gpus()[0].numa == std::vector<int>{1});
  BOOST_TEST(t.gpus()[1].numa == std::vector<int>{2});
  BOOST_TEST(t.gpus()[2].cpus.to_string() == "30-35,78-83");
  BOOST_TEST(t.gpus()[2].numa == std::vector<int>{5});
  BOOST_TEST(t.gpus()[3].numa == std::vector<int>{7});
  BOOST_TEST(t.nics()[0].cpus.to_string() == "18-23,66-71");
  BOOST_TEST(t.nics()[0].numa == std::vector<int>{3});
  CpuShape s = t.shape();  // 48 cores, 96 PUs, 2 packages
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 24);
  BOOST_TEST(s.threads_per_core == 2);
  // Every GPU and the NIC sit in a different NUMA node: SYS between all of them.
  check_matrix(t, gpus_then_nics(4, 1),
               {{"X", "SYS", "SYS", "SYS", "SYS"},
                {"SYS", "X", "SYS", "SYS", "SYS"},
                {"SYS", "SYS", "X", "SYS", "SYS"},
                {"SYS", "SYS", "SYS", "X", "SYS"},
                {"SYS", "SYS", "SYS", "SYS", "X"}});
}

// ---------------------------------------------------------------------------------------
// 32em64t-2n8c2t-pci-normalio.xml: 2-socket Xeon, 3 NVIDIA + 1 AMD GPU, mlx5_0
// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(mixed_vendor_devices_and_paths) {
  Topology t = load("32em64t-2n8c2t-pci-normalio.xml");
  // 10de:1094 class 0302 at 03:00.0, 83:00.0, 84:00.0; 1002:6798 class 0300 at 84:00.1.
  // The Matrox VGA (102b) at 05:03.0 is not a GPU. vendor_index counts per vendor.
  check_gpus(t, {{"0000:03:00.0", GpuVendor::nvidia, 0},
                 {"0000:83:00.0", GpuVendor::nvidia, 1},
                 {"0000:84:00.0", GpuVendor::nvidia, 2},
                 {"0000:84:00.1", GpuVendor::amd, 0}});
  // GPU0 has no OS device: its model is the PCI device name.
  BOOST_TEST(t.gpus()[0].model == "Tesla M2075 Dual-Slot Computing Processor Module");
  // mlx5_0 (Port1State=4) with Net ib0, on a PCI function exported as 0000:04:00.0 although it
  // hangs below root port 0000:80:03.0 (package 1). eth0/eth1 are unused.
  check_nics(t, {{"mlx5_0", "ib0", "0000:04:00.0", 1}});
  check_numa(t, {{0, "0-7,16-23"}, {1, "8-15,24-31"}});
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "0-7,16-23");
  BOOST_TEST(t.gpus()[0].numa == std::vector<int>{0});
  BOOST_TEST(t.gpus()[3].cpus.to_string() == "8-15,24-31");
  BOOST_TEST(t.gpus()[3].numa == std::vector<int>{1});
  BOOST_TEST(t.nics()[0].cpus.to_string() == "8-15,24-31");
  BOOST_TEST(t.nics()[0].numa == std::vector<int>{1});
  CpuShape s = t.shape();  // 2n8c2t
  BOOST_TEST(s.sockets == 2);
  BOOST_TEST(s.cores_per_socket == 8);
  BOOST_TEST(s.threads_per_core == 2);
  // GPU0 is in package 0, everything else in package 1: SYS. GPU1 (root port 80:02.0) and
  // the devices under root port 80:03.0 meet at host bridge L#4: PHB. GPU2, GPU3 and mlx5_0
  // are all directly under root port 80:03.0 (a PCI bridge, zero bridges in between): PIX.
  check_matrix(t, gpus_then_nics(4, 1),
               {{"X", "SYS", "SYS", "SYS", "SYS"},
                {"SYS", "X", "PHB", "PHB", "PHB"},
                {"SYS", "PHB", "X", "PIX", "PIX"},
                {"SYS", "PHB", "PIX", "X", "PIX"},
                {"SYS", "PHB", "PIX", "PIX", "X"}});
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

namespace {
void expect_topology_error_naming(const std::string& path) {
  try {
    (void)Topology::from_xml(path);
    BOOST_ERROR("no exception for " << path);
  } catch (const sluice::TopologyError& e) {
    BOOST_TEST_CONTEXT("message: " << e.what()) { BOOST_TEST(std::string(e.what()).find(path) != std::string::npos); }
  } catch (const std::exception& e) {
    BOOST_ERROR("wrong exception type for " << path << ": " << e.what());
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(missing_file_is_a_topology_error) {
  expect_topology_error_naming(topo_path("no-such-machine.xml"));
  expect_topology_error_naming("/nonexistent-dir/topo.xml");
}

BOOST_AUTO_TEST_CASE(directory_is_a_topology_error) { expect_topology_error_naming(std::string(SLUICE_TOPOLOGIES)); }

BOOST_AUTO_TEST_CASE(non_xml_file_is_a_topology_error) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("sluice-test-topology-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path bad = dir / "not-a-topology.xml";
  {
    std::ofstream out(bad);
    out << "this is not XML at all\n{\"tasks\": []}\n";
  }
  fs::path empty = dir / "empty.xml";
  { std::ofstream out(empty); }
  expect_topology_error_naming(bad.string());
  expect_topology_error_naming(empty.string());
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------
// Topologies written for the tests (topologies/README.md): NIC families and classes, xGMI.
// Facts from each file's header comment and lstopo-no-graphics -i FILE -v / --distances.
// ---------------------------------------------------------------------------------------

namespace {

struct AnyNicExp {
  std::string name, netdev, pci;
  NicFamily family;
  NicClass cls;
};

void check_all_nics(const Topology& t, const std::vector<AnyNicExp>& exp) {
  BOOST_TEST_REQUIRE(t.all_nics().size() == exp.size());
  for (std::size_t i = 0; i < exp.size(); ++i) {
    BOOST_TEST_CONTEXT("NIC " << i << " of all_nics()") {
      const Nic& n = t.all_nics()[i];
      BOOST_TEST(n.index == int(i));
      BOOST_TEST(n.name == exp[i].name);
      BOOST_TEST(n.netdev == exp[i].netdev);
      BOOST_TEST(n.pci.to_string() == exp[i].pci);
      BOOST_TEST(std::string(to_string(n.family)) == std::string(to_string(exp[i].family)));
      BOOST_TEST(std::string(to_string(n.nic_class)) == std::string(to_string(exp[i].cls)));
    }
  }
}

std::vector<std::string> names(const std::vector<Nic>& nics) {
  std::vector<std::string> v;
  for (const Nic& n : nics) v.push_back(n.name);
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(xgmi_path_names_and_ranks) {
  // XGMI as rocm-smi --showtopo names the link type; xGMI paths rank below every PCIe path,
  // fewer hops first, then more links (NVLink and xGMI never meet in one node).
  Path x4{PathClass::xgmi, 0}, x2{PathClass::xgmi, 0}, x1{PathClass::xgmi, 0};
  x4.xgmi_links = 4, x4.xgmi_hops = 1;
  x2.xgmi_links = 2, x2.xgmi_hops = 1;
  x1.xgmi_links = 1, x1.xgmi_hops = 1;
  BOOST_TEST(x4.to_string() == "XGMI");
  BOOST_TEST(x4.rank() < x2.rank());
  BOOST_TEST(x2.rank() < x1.rank());
  BOOST_TEST(x1.rank() < (Path{PathClass::pix, 0}.rank()));
  BOOST_TEST((Path{PathClass::self, 0}.rank()) < x4.rank());
}

// frontier-mi250x-slingshot.xml: 1 EPYC 7A53 (NPS4), 8 MI250X GCDs, 4 Slingshot, 1 I210.
BOOST_AUTO_TEST_CASE(frontier_devices_and_nic_classes) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  // 1002:740c class 0380 at c1, c6, c9, ce, d1, d6, d9, de (bus order = rsmi0..7).
  check_gpus(t, {{"0000:c1:00.0", GpuVendor::amd, 0}, {"0000:c6:00.0", GpuVendor::amd, 1},
                 {"0000:c9:00.0", GpuVendor::amd, 2}, {"0000:ce:00.0", GpuVendor::amd, 3},
                 {"0000:d1:00.0", GpuVendor::amd, 4}, {"0000:d6:00.0", GpuVendor::amd, 5},
                 {"0000:d9:00.0", GpuVendor::amd, 6}, {"0000:de:00.0", GpuVendor::amd, 7}});
  // No OpenFabrics device at all: every NIC is a network interface. 17db:0501 (Cassini) is
  // Slingshot, a fabric; the I210 (8086:1533, PCIe 0.5 GB/s) is other Ethernet. PCI order.
  check_all_nics(t, {{"hsn0", "hsn0", "0000:c5:00.0", NicFamily::slingshot, NicClass::fabric},
                     {"hsn1", "hsn1", "0000:cd:00.0", NicFamily::slingshot, NicClass::fabric},
                     {"hsn2", "hsn2", "0000:d5:00.0", NicFamily::slingshot, NicClass::fabric},
                     {"enp215s0", "enp215s0", "0000:d7:00.0", NicFamily::ethernet, NicClass::ethernet},
                     {"hsn3", "hsn3", "0000:dd:00.0", NicFamily::slingshot, NicClass::fabric}});
  BOOST_TEST(t.all_nics()[0].pci_vendor == 0x17dbu);
  BOOST_TEST(t.all_nics()[0].pci_device == 0x0501u);
  BOOST_TEST(t.all_nics()[0].pcie_gbps == 31.507692f, boost::test_tools::tolerance(1e-4f));
  BOOST_TEST(t.all_nics()[3].pcie_gbps == 0.5f, boost::test_tools::tolerance(1e-4f));
  // Placement's NICs: the fabric class only, renumbered; the management port is not there.
  BOOST_TEST(names(t.nics()) == (std::vector<std::string>{"hsn0", "hsn1", "hsn2", "hsn3"}), boost::test_tools::per_element());
  for (int i = 0; i < 4; ++i) BOOST_TEST(t.nics()[i].index == i);
  BOOST_TEST((t.nics()[0].kind == NicKind::ethernet));
  // GCD 4,5 (NUMA 0) share a root complex with hsn2 and the I210: PHB to both; the I210 is
  // what PCIe distance alone would have tied with hsn2.
  BOOST_TEST(t.gpus()[4].numa == std::vector<int>{0});
  BOOST_TEST(t.path(DeviceRef::gpu(4), DeviceRef::any_nic(2)).to_string() == "PHB");
  BOOST_TEST(t.path(DeviceRef::gpu(4), DeviceRef::any_nic(3)).to_string() == "PHB");
  BOOST_TEST(t.path(DeviceRef::gpu(4), DeviceRef::nic(2)).to_string() == "PHB");  // nics()[2] is hsn2
  BOOST_TEST(t.path(DeviceRef::gpu(4), DeviceRef::nic(3)).to_string() == "SYS");  // nics()[3] is hsn3
  BOOST_TEST(t.path(DeviceRef::nic(3), DeviceRef::any_nic(4)).to_string() == "X");  // the same NIC
  // GCD k's locality (OLCF's node diagram): 0,1 NUMA 3; 2,3 NUMA 1; 4,5 NUMA 0; 6,7 NUMA 2.
  BOOST_TEST(t.gpus()[0].cpus.to_string() == "48-63,112-127");
  BOOST_TEST(t.gpus()[2].numa == std::vector<int>{1});
  BOOST_TEST(t.gpus()[6].numa == std::vector<int>{2});
  CpuShape s = t.shape();
  BOOST_TEST(s.sockets == 1);
  BOOST_TEST(s.cores_per_socket == 64);
  BOOST_TEST(s.threads_per_core == 2);
}

BOOST_AUTO_TEST_CASE(frontier_xgmi) {
  Topology t = load("frontier-mi250x-slingshot.xml");
  BOOST_TEST(t.has_xgmi_data());
  BOOST_TEST(!t.has_nvlink_data());
  // XGMIBandwidth / 50000 MB/s: 4 within an MI250X (0-1, 2-3, 4-5, 6-7), 2 on the ring
  // 1-6, 7-4, 5-2, 3-0, 1 for 0-4, 1-5, 2-6, 3-7, else 0. -1: not looked at (self).
  const std::vector<std::vector<int>> links = {
      {-1, 4, 0, 2, 1, 0, 0, 0}, {4, -1, 0, 0, 0, 1, 2, 0}, {0, 0, -1, 4, 0, 2, 1, 0}, {2, 0, 4, -1, 0, 0, 0, 1},
      {1, 0, 0, 0, -1, 4, 0, 2}, {0, 1, 2, 0, 4, -1, 0, 0}, {0, 2, 1, 0, 0, 0, -1, 4}, {0, 0, 0, 1, 2, 0, 4, -1}};
  for (int a = 0; a < 8; ++a)
    for (int b = 0; b < 8; ++b) {
      if (a == b) continue;
      BOOST_TEST_CONTEXT("GPU" << a << " - GPU" << b) {
        BOOST_TEST(t.xgmi_links(a, b) == links[a][b]);
        BOOST_TEST(t.nvlinks(a, b) == 0);
        // Linked pairs: XGMI; others: their PCIe path (one root complex per MI250X, so SYS).
        BOOST_TEST(t.path(DeviceRef::gpu(a), DeviceRef::gpu(b)).to_string() == (links[a][b] > 0 ? "XGMI" : "SYS"));
      }
    }
  const Path p01 = t.path(DeviceRef::gpu(0), DeviceRef::gpu(1)), p03 = t.path(DeviceRef::gpu(0), DeviceRef::gpu(3)),
             p04 = t.path(DeviceRef::gpu(0), DeviceRef::gpu(4));
  BOOST_TEST(p01.xgmi_links == 4);
  BOOST_TEST(p01.xgmi_hops == 1);  // XGMIHops 1 for every linked pair
  BOOST_TEST(p01.rank() < p03.rank());
  BOOST_TEST(p03.rank() < p04.rank());
  // PCIe only: GCDs of one MI250X share a root complex (PHB).
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::gpu(1), /*via_nvlink=*/false).to_string() == "PHB");
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::gpu(3), false).to_string() == "SYS");
  BOOST_CHECK_THROW(t.xgmi_links(0, 8), sluice::InvalidArgument);
}

BOOST_AUTO_TEST_CASE(nvidia_topologies_have_no_xgmi) {
  for (const char* f : {"coral-lassen.xml", "nvidiaDGX2.xml", "aws-p4d-efa.xml", "epyc-corona.xml"}) {
    BOOST_TEST_CONTEXT(f) {
      Topology t = load(f);
      BOOST_TEST(!t.has_xgmi_data());
      for (const Gpu& a : t.gpus())
        for (const Gpu& b : t.gpus()) BOOST_TEST(t.xgmi_links(a.index, b.index) == 0);
    }
  }
}

// aws-p4d-efa.xml: 2 Xeon 8275CL, 8 A100 behind 6 NVSwitches, 4 EFA, ENA eth0.
BOOST_AUTO_TEST_CASE(p4d_efa_nics) {
  Topology t = load("aws-p4d-efa.xml");
  // EFA (1d0f:efa0) are verbs devices without an IP interface on their function; the ENA
  // (1d0f:ec20) is a network interface: high-speed Ethernet by its ID (link speed 0).
  check_all_nics(t, {{"eth0", "eth0", "0000:00:05.0", NicFamily::ethernet, NicClass::fast_ethernet},
                     {"rdmap16s27", "", "0000:10:1b.0", NicFamily::efa, NicClass::fabric},
                     {"rdmap32s27", "", "0000:20:1b.0", NicFamily::efa, NicClass::fabric},
                     {"rdmap144s27", "", "0000:90:1b.0", NicFamily::efa, NicClass::fabric},
                     {"rdmap160s27", "", "0000:a0:1b.0", NicFamily::efa, NicClass::fabric}});
  check_nics(t, {{"rdmap16s27", "", "0000:10:1b.0", 1},
                 {"rdmap32s27", "", "0000:20:1b.0", 1},
                 {"rdmap144s27", "", "0000:90:1b.0", 1},
                 {"rdmap160s27", "", "0000:a0:1b.0", 1}});
  BOOST_TEST(t.all_nics()[1].pcie_gbps == 0.0f);
  // Each EFA shares a PCIe switch with a GPU pair (PIX); NV12 between every GPU pair.
  check_matrix(t, {DeviceRef::gpu(0), DeviceRef::gpu(1), DeviceRef::gpu(2), DeviceRef::nic(0), DeviceRef::nic(1)},
               {{"X", "NV12", "NV12", "PIX", "NODE"},
                {"NV12", "X", "NV12", "PIX", "NODE"},
                {"NV12", "NV12", "X", "NODE", "PIX"},
                {"PIX", "PIX", "NODE", "X", "NODE"},
                {"NODE", "NODE", "PIX", "NODE", "X"}});
}

// r750xa-ib-1gbe.xml: 2 Xeon Gold 6326, 4 A100 PCIe, ConnectX-6 on package 1, BCM5720 on 0.
BOOST_AUTO_TEST_CASE(r750xa_ib_and_1gbe) {
  Topology t = load("r750xa-ib-1gbe.xml");
  // BCM5720 (14e4:165f, PCIe 0.5 GB/s) ports: other Ethernet; mlx5_0 with its ib0: fabric.
  check_all_nics(t, {{"eno1", "eno1", "0000:04:00.0", NicFamily::ethernet, NicClass::ethernet},
                     {"eno2", "eno2", "0000:04:00.1", NicFamily::ethernet, NicClass::ethernet},
                     {"mlx5_0", "ib0", "0000:98:00.0", NicFamily::infiniband, NicClass::fabric}});
  check_nics(t, {{"mlx5_0", "ib0", "0000:98:00.0", 1}});
  // For GPU 0 the 1 GbE port is nearer (NODE) than the HCA (SYS).
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::any_nic(0)).to_string() == "NODE");
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::any_nic(2)).to_string() == "SYS");
  BOOST_TEST(t.path(DeviceRef::gpu(0), DeviceRef::nic(0)).to_string() == "SYS");
  BOOST_TEST(t.path(DeviceRef::gpu(2), DeviceRef::nic(0)).to_string() == "NODE");
  BOOST_CHECK_THROW(t.path(DeviceRef::gpu(0), DeviceRef::nic(1)), sluice::InvalidArgument);
  BOOST_CHECK_THROW(t.path(DeviceRef::gpu(0), DeviceRef::any_nic(3)), sluice::InvalidArgument);
}
