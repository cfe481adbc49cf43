// gres.conf generation. Expected lines worked out by hand from the XML: Cores= lists the Slurm
// logical core indices (core 0 = first core of the first socket) whose PUs all lie in the
// GPU's local cpuset; Links= counts NVLinks to every GPU in order, -1 for the GPU itself.
#define BOOST_TEST_MODULE gres_conf
#include <boost/test/unit_test.hpp>

#include <sluice/common/topology.hpp>
#include <sluice/common/topology_report.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace sluice::topo;

namespace {

std::string topo_path(const std::string& name) { return std::string(SLUICE_TOPOLOGIES) + "/" + name; }

std::vector<std::string> lines_of(const std::string& text, bool comments) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty() && (l[0] == '#') == comments) out.push_back(l);
  return out;
}

std::string gres(const std::string& topo, const std::string& nodes = "", const std::string& dir = "") {
  Topology t = Topology::from_xml(topo_path(topo));
  return format_gres_conf(t, GresConfOptions{nodes, dir});
}

void check_lines(const std::string& text, const std::vector<std::string>& exp) {
  std::vector<std::string> got = lines_of(text, false);
  BOOST_TEST_CONTEXT("gres.conf:\n" << text) { BOOST_TEST(got == exp, boost::test_tools::per_element()); }
}

}  // namespace

BOOST_AUTO_TEST_CASE(lassen) {
  // Package 0 = cores 0-19 (PUs 8-87), package 1 = cores 20-39 (PUs 96-175); GPU0/1 are in
  // package 0, GPU2/3 in package 1. The export has no NVLink matrix: every Links entry 0.
  // /dev/nvidiaN numbered in PCI order.
  std::string out = gres("coral-lassen.xml");
  check_lines(out, {"Name=gpu File=/dev/nvidia0 Cores=0-19 Links=-1,0,0,0",
                    "Name=gpu File=/dev/nvidia1 Cores=0-19 Links=0,-1,0,0",
                    "Name=gpu File=/dev/nvidia2 Cores=20-39 Links=0,0,-1,0",
                    "Name=gpu File=/dev/nvidia3 Cores=20-39 Links=0,0,0,-1"});
  // The slurm.conf shape as a comment: 2 sockets, 20 cores each, SMT4, 4 GPUs.
  std::vector<std::string> comments = lines_of(out, true);
  bool found = false;
  for (const std::string& c : comments)
    if (c.rfind("# NodeName=", 0) == 0) {
      found = true;
      BOOST_TEST(c.find("Sockets=2 CoresPerSocket=20 ThreadsPerCore=4 Gres=gpu:4") != std::string::npos);
    }
  BOOST_TEST(found);
}

BOOST_AUTO_TEST_CASE(lassen_with_node_names_and_device_dir) {
  std::string out = gres("coral-lassen.xml", "lassen[1-4]", "/tmp/devcluster/dev");
  check_lines(out, {"NodeName=lassen[1-4] Name=gpu File=/tmp/devcluster/dev/nvidia0 Cores=0-19 Links=-1,0,0,0",
                    "NodeName=lassen[1-4] Name=gpu File=/tmp/devcluster/dev/nvidia1 Cores=0-19 Links=0,-1,0,0",
                    "NodeName=lassen[1-4] Name=gpu File=/tmp/devcluster/dev/nvidia2 Cores=20-39 Links=0,0,-1,0",
                    "NodeName=lassen[1-4] Name=gpu File=/tmp/devcluster/dev/nvidia3 Cores=20-39 Links=0,0,0,-1"});
  std::vector<std::string> comments = lines_of(out, true);
  bool found = false;
  for (const std::string& c : comments)
    if (c == "# NodeName=lassen[1-4] Sockets=2 CoresPerSocket=20 ThreadsPerCore=4 Gres=gpu:4") found = true;
  BOOST_TEST(found, "NodeName comment line in:\n" << out);
}

BOOST_AUTO_TEST_CASE(dgx2_nvswitch_counts_as_six_links) {
  // Every GPU reaches 6 NVSwitches with one link each: 6 links to every other GPU.
  // Restricted export: package 0 has cores 0,1 (PUs 0,1), package 1 cores 2,3 (PUs 24,25).
  std::string out = gres("nvidiaDGX2.xml");
  std::vector<std::string> exp;
  for (int g = 0; g < 16; ++g) {
    std::string links;
    for (int o = 0; o < 16; ++o) links += (o ? "," : "") + std::string(o == g ? "-1" : "6");
    exp.push_back("Name=gpu File=/dev/nvidia" + std::to_string(g) + " Cores=" + (g < 8 ? "0-1" : "2-3") +
                  " Links=" + links);
  }
  check_lines(out, exp);
  bool found = false;
  for (const std::string& c : lines_of(out, true))
    if (c.rfind("# NodeName=", 0) == 0) {
      found = true;
      BOOST_TEST(c.find("Sockets=2 CoresPerSocket=2 ThreadsPerCore=1 Gres=gpu:16") != std::string::npos);
    }
  BOOST_TEST(found);
}

BOOST_AUTO_TEST_CASE(power8_nvlink_pairs) {
  // NVLinkBandwidth 40000 between nvml0-nvml1 and nvml2-nvml3, P100 (20000 per link): 2 links.
  // Package 0: cores 0-3 (PUs 0,1,8,9,16,17,24,25); package 1: cores 4-7.
  check_lines(gres("power8gpudistances.xml"), {"Name=gpu File=/dev/nvidia0 Cores=0-3 Links=-1,2,0,0",
                                               "Name=gpu File=/dev/nvidia1 Cores=0-3 Links=2,-1,0,0",
                                               "Name=gpu File=/dev/nvidia2 Cores=4-7 Links=0,0,-1,2",
                                               "Name=gpu File=/dev/nvidia3 Cores=4-7 Links=0,0,2,-1"});
}

BOOST_AUTO_TEST_CASE(cts1) {
  // Both P100 in package 0: its 18 cores are 0-17.
  check_lines(gres("cts1-pascal.xml"),
              {"Name=gpu File=/dev/nvidia0 Cores=0-17 Links=-1,0", "Name=gpu File=/dev/nvidia1 Cores=0-17 Links=0,-1"});
}

BOOST_AUTO_TEST_CASE(amd_gpus_use_render_nodes) {
  // AMD GPUs are DRM render nodes from renderD128. Each Vega 20 sits in one NUMA node of 6
  // cores: NUMA 1 = cores 6-11, NUMA 2 = 12-17, NUMA 5 = 30-35, NUMA 7 = 42-47.
  check_lines(gres("epyc-corona.xml"), {"Name=gpu File=/dev/dri/renderD128 Cores=6-11 Links=-1,0,0,0",
                                        "Name=gpu File=/dev/dri/renderD129 Cores=12-17 Links=0,-1,0,0",
                                        "Name=gpu File=/dev/dri/renderD130 Cores=30-35 Links=0,0,-1,0",
                                        "Name=gpu File=/dev/dri/renderD131 Cores=42-47 Links=0,0,0,-1"});
  // Mixed machine: three NVIDIA (nvidia0-2, numbered among NVIDIA GPUs) and one AMD
  // (renderD128). GPU0 is in package 0 (cores 0-7), the others in package 1 (cores 8-15).
  check_lines(gres("32em64t-2n8c2t-pci-normalio.xml"), {"Name=gpu File=/dev/nvidia0 Cores=0-7 Links=-1,0,0,0",
                                                        "Name=gpu File=/dev/nvidia1 Cores=8-15 Links=0,-1,0,0",
                                                        "Name=gpu File=/dev/nvidia2 Cores=8-15 Links=0,0,-1,0",
                                                        "Name=gpu File=/dev/dri/renderD128 Cores=8-15 Links=0,0,0,-1"});
}

// AMD: Links= counts xGMI links (XGMIBandwidth / 50 GB/s), so cons_tres can co-schedule
// linked GCDs. Frontier-like node: 4 links within an MI250X (0-1, 2-3, 4-5, 6-7), 2 on the
// ring 1-6, 7-4, 5-2, 3-0, 1 for 0-4, 1-5, 2-6, 3-7. Render nodes from 128 in PCI order.
// Cores=: GCD k's NUMA domain (0,1 -> cores 48-63; 2,3 -> 16-31; 4,5 -> 0-15; 6,7 -> 32-47).
BOOST_AUTO_TEST_CASE(frontier_amd_xgmi_links) {
  check_lines(gres("frontier-mi250x-slingshot.xml"),
              {"Name=gpu File=/dev/dri/renderD128 Cores=48-63 Links=-1,4,0,2,1,0,0,0",
               "Name=gpu File=/dev/dri/renderD129 Cores=48-63 Links=4,-1,0,0,0,1,2,0",
               "Name=gpu File=/dev/dri/renderD130 Cores=16-31 Links=0,0,-1,4,0,2,1,0",
               "Name=gpu File=/dev/dri/renderD131 Cores=16-31 Links=2,0,4,-1,0,0,0,1",
               "Name=gpu File=/dev/dri/renderD132 Cores=0-15 Links=1,0,0,0,-1,4,0,2",
               "Name=gpu File=/dev/dri/renderD133 Cores=0-15 Links=0,1,2,0,4,-1,0,0",
               "Name=gpu File=/dev/dri/renderD134 Cores=32-47 Links=0,2,1,0,0,0,-1,4",
               "Name=gpu File=/dev/dri/renderD135 Cores=32-47 Links=0,0,0,1,2,0,4,-1"});
}

// An AMD node whose export has no XGMIBandwidth matrix (epyc-corona.xml) keeps Links=0.
BOOST_AUTO_TEST_CASE(amd_without_xgmi_data) {
  for (const std::string& l : lines_of(gres("epyc-corona.xml"), false)) BOOST_TEST(l.find(" Links=") != std::string::npos);
  BOOST_TEST(gres("epyc-corona.xml").find("Links=-1,0,0,0") != std::string::npos);
}
