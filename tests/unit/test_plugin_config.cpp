// plugstack.conf arguments of the SPANK plugin.
#define BOOST_TEST_MODULE plugin_config
#include <boost/test/unit_test.hpp>

#include "plugin_config.hpp"

#include <sluice/common/error.hpp>

#include <string>
#include <vector>

using sluice::Policy;
using sluice::spank::CpuEmulation;
using sluice::spank::parse_plugin_args;
using sluice::spank::PluginConfig;

namespace {

// Parsing `args` throws InvalidArgument whose message contains each of `fragments`.
void expect_invalid(const std::vector<std::string>& args, const std::vector<std::string>& fragments) {
  try {
    (void)parse_plugin_args(args);
    BOOST_ERROR("no exception for " << args.back());
  } catch (const sluice::InvalidArgument& e) {
    std::string msg = e.what();
    for (const std::string& f : fragments)
      BOOST_TEST_CONTEXT("message '" << msg << "' names '" << f << "'") { BOOST_TEST(msg.find(f) != std::string::npos); }
  } catch (const std::exception& e) {
    BOOST_ERROR("wrong exception type for " << args.back() << ": " << e.what());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  PluginConfig c = parse_plugin_args({});
  BOOST_TEST((c.default_policy == Policy::none));  // jobs without --gpu-topo are left alone
  BOOST_TEST(c.topology_xml.empty());              // discover this machine
  BOOST_TEST((c.cpu_emulation == CpuEmulation::none));
}

BOOST_AUTO_TEST_CASE(valid_keys) {
  PluginConfig c = parse_plugin_args(
      {"default_policy=pack", "topology_xml=/etc/sluice/coral-lassen.xml", "cpu_emulation=block"});
  BOOST_TEST((c.default_policy == Policy::pack));
  BOOST_TEST(c.topology_xml == "/etc/sluice/coral-lassen.xml");
  BOOST_TEST((c.cpu_emulation == CpuEmulation::block));

  BOOST_TEST((parse_plugin_args({"default_policy=spread"}).default_policy == Policy::spread));
  BOOST_TEST((parse_plugin_args({"default_policy=none"}).default_policy == Policy::none));
  BOOST_TEST((parse_plugin_args({"cpu_emulation=none"}).cpu_emulation == CpuEmulation::none));
  // Only the given key changes.
  PluginConfig p = parse_plugin_args({"default_policy=spread"});
  BOOST_TEST(p.topology_xml.empty());
  BOOST_TEST((p.cpu_emulation == CpuEmulation::none));
  // A later argument overrides an earlier one.
  BOOST_TEST((parse_plugin_args({"default_policy=pack", "default_policy=spread"}).default_policy == Policy::spread));
  // The value is everything after the first '='.
  BOOST_TEST(parse_plugin_args({"topology_xml=/opt/a=b.xml"}).topology_xml == "/opt/a=b.xml");
}

BOOST_AUTO_TEST_CASE(unknown_key) {
  expect_invalid({"policy=pack"}, {"policy=pack", "default_policy"});  // names it, lists valid keys
  expect_invalid({"default_policy=pack", "verbose=1"}, {"verbose=1"});
  expect_invalid({"Default_Policy=pack"}, {"Default_Policy=pack"});
}

BOOST_AUTO_TEST_CASE(missing_value) {
  expect_invalid({"default_policy"}, {"default_policy"});
  expect_invalid({"default_policy="}, {"default_policy="});
  expect_invalid({"topology_xml="}, {"topology_xml"});
  expect_invalid({"cpu_emulation"}, {"cpu_emulation"});
  expect_invalid({""}, {"plugstack.conf"});
}

BOOST_AUTO_TEST_CASE(relative_topology_xml) {
  expect_invalid({"topology_xml=coral-lassen.xml"}, {"topology_xml", "coral-lassen.xml"});
  expect_invalid({"topology_xml=./etc/x.xml"}, {"topology_xml", "./etc/x.xml"});
  expect_invalid({"topology_xml=~/x.xml"}, {"topology_xml", "~/x.xml"});
}

BOOST_AUTO_TEST_CASE(bad_values) {
  expect_invalid({"default_policy=tight"}, {"default_policy", "tight"});
  expect_invalid({"default_policy=PACK"}, {"default_policy", "PACK"});
  expect_invalid({"cpu_emulation=cyclic"}, {"cpu_emulation", "cyclic"});
  expect_invalid({"cpu_emulation=yes"}, {"cpu_emulation", "yes"});
}

BOOST_AUTO_TEST_CASE(nic_arguments) {
  PluginConfig d = parse_plugin_args({});
  BOOST_TEST(d.nics.allow.empty());
  BOOST_TEST(d.nics.exclude.empty());
  PluginConfig c = parse_plugin_args({"nics=hsn*,mlx5_[0-3]", "exclude_nics=enp*"});
  BOOST_TEST(c.nics.allow == (std::vector<std::string>{"hsn*", "mlx5_[0-3]"}), boost::test_tools::per_element());
  BOOST_TEST(c.nics.exclude == std::vector<std::string>{"enp*"}, boost::test_tools::per_element());
  // Errors name the argument, the value and what is wrong.
  expect_invalid({"nics=hsn*,"}, {"plugstack.conf argument nics=", "hsn*,", "an empty pattern"});
  expect_invalid({"exclude_nics=eno 1"}, {"exclude_nics=", "character"});
  expect_invalid({"nics=mlx5_[0"}, {"nics=", "'[' without its ']'"});
  expect_invalid({"nics="}, {"nics=", "needs a value"});
  expect_invalid({"nic=hsn0"}, {"nic=hsn0", "nics=", "exclude_nics="});  // listed among the valid keys
}

BOOST_AUTO_TEST_CASE(staging_arguments) {
  PluginConfig d = parse_plugin_args({});
  BOOST_TEST(d.bb_root == "/var/tmp/sluice");
  BOOST_TEST(d.cache_max == 0u);  // no cache unless the site gives it room
  BOOST_TEST(d.stage_tool.find("/sluice-stage") != std::string::npos);
  PluginConfig c = parse_plugin_args({"bb_root=/local/bb", "cache_max=500G", "stage_tool=/opt/sluice/bin/sluice-stage",
                                      "stage_jobs=4"});
  BOOST_TEST(c.bb_root == "/local/bb");
  BOOST_TEST(c.cache_max == 500ull << 30);
  BOOST_TEST(c.stage_tool == "/opt/sluice/bin/sluice-stage");
  BOOST_TEST(c.stage_jobs == 4u);
  expect_invalid({"bb_root=local"}, {"bb_root=local", "absolute"});
  expect_invalid({"bb_root=/"}, {"bb_root=/", "absolute"});
  expect_invalid({"cache_max=lots"}, {"cache_max=", "lots"});
  expect_invalid({"stage_jobs=0"}, {"stage_jobs=0", "1 to 256"});
  expect_invalid({"stage_jobs=4x"}, {"stage_jobs=4x"});
  expect_invalid({"stage_tool=sluice-stage"}, {"stage_tool=sluice-stage", "absolute"});
}

BOOST_AUTO_TEST_CASE(telemetry_arguments) {
  PluginConfig d = parse_plugin_args({});
  BOOST_TEST(d.telemetry_dir.empty());  // off unless the site names a directory
  BOOST_TEST(d.prometheus_dir.empty());
  PluginConfig c = parse_plugin_args({"telemetry_dir=/shared/sluice/telemetry", "prometheus_dir=/var/lib/node_exporter"});
  BOOST_TEST(c.telemetry_dir == "/shared/sluice/telemetry");
  BOOST_TEST(c.prometheus_dir == "/var/lib/node_exporter");
  expect_invalid({"telemetry_dir=telemetry"}, {"telemetry_dir=telemetry", "absolute"});
  expect_invalid({"prometheus_dir=/"}, {"prometheus_dir=/", "absolute"});
  expect_invalid({"telemetry_dir="}, {"telemetry_dir=", "needs a value"});
  expect_invalid({"telemetry=/x"}, {"unknown", "telemetry_dir="});
}

BOOST_AUTO_TEST_CASE(stage_deadlines) {
  PluginConfig d = parse_plugin_args({});
  BOOST_TEST(d.stage_in_timeout_s == 3600u);
  BOOST_TEST(d.stage_out_timeout_s == 3600u);
  PluginConfig c = parse_plugin_args({"stage_in_timeout=15m", "stage_out_timeout=90"});
  BOOST_TEST(c.stage_in_timeout_s == 900u);
  BOOST_TEST(c.stage_out_timeout_s == 90u);
  BOOST_TEST(parse_plugin_args({"stage_in_timeout=2h"}).stage_in_timeout_s == 7200u);
  BOOST_TEST(parse_plugin_args({"stage_out_timeout=45s"}).stage_out_timeout_s == 45u);
  for (const char* bad : {"stage_in_timeout=0", "stage_in_timeout=10d", "stage_in_timeout=-5", "stage_in_timeout=8d",
                          "stage_out_timeout=169h", "stage_out_timeout=1.5h"})
    expect_invalid({bad}, {std::string(bad).substr(0, std::string(bad).find('=')), "1 s to 7 days"});
}
