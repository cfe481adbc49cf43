#define BOOST_TEST_MODULE topology_cache
#include <boost/test/unit_test.hpp>

#include "topology_cache.hpp"

#include <sluice/common/error.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::spank;

namespace {

// A private run_dir and a private copy of the Lassen XML, removed afterwards.
struct Sandbox {
  fs::path dir;
  PluginConfig cfg;
  Sandbox() {
    char tmpl[] = "/tmp/sluice-cache-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    fs::copy_file(std::string(SLUICE_TOPOLOGIES) + "/coral-lassen.xml", dir / "node.xml");
    cfg.topology_xml = (dir / "node.xml").string();
    cfg.run_dir = (dir / "run").string();
  }
  ~Sandbox() { fs::remove_all(dir); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(without_a_snapshot_steps_read_the_source) {
  Sandbox s;
  LoadedTopology t = load_topology(s.cfg);
  BOOST_TEST(!t.from_snapshot);
  BOOST_TEST(t.topology.gpus().size() == 4u);
}

BOOST_AUTO_TEST_CASE(a_written_snapshot_is_used) {
  Sandbox s;
  write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
  BOOST_TEST(fs::exists(snapshot_path(s.cfg)));
  struct stat st {};
  BOOST_REQUIRE(::stat(s.cfg.run_dir.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0755u);
  LoadedTopology t = load_topology(s.cfg);
  BOOST_TEST(t.from_snapshot);
  BOOST_TEST(t.topology.nics().size() == 4u);
  BOOST_TEST(t.topology.source() == s.cfg.topology_xml);
}

BOOST_AUTO_TEST_CASE(a_changed_xml_makes_the_snapshot_stale) {
  Sandbox s;
  write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
  std::ofstream(s.cfg.topology_xml, std::ios::app) << "\n";  // size and mtime change
  BOOST_TEST(!load_topology(s.cfg).from_snapshot);
}

BOOST_AUTO_TEST_CASE(an_untrusted_snapshot_is_ignored) {
  Sandbox s;
  write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
  // Group-writable snapshot or directory: someone else could have written it.
  fs::permissions(snapshot_path(s.cfg), fs::perms::group_write, fs::perm_options::add);
  BOOST_TEST(!load_topology(s.cfg).from_snapshot);
  fs::permissions(snapshot_path(s.cfg), fs::perms::group_write, fs::perm_options::remove);
  BOOST_TEST(load_topology(s.cfg).from_snapshot);
  fs::permissions(s.cfg.run_dir, fs::perms::others_write, fs::perm_options::add);
  BOOST_TEST(!load_topology(s.cfg).from_snapshot);
}

BOOST_AUTO_TEST_CASE(a_damaged_snapshot_costs_a_fresh_read_not_a_failure) {
  Sandbox s;
  write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
  std::string stamp = source_stamp(s.cfg);
  std::ofstream(snapshot_path(s.cfg), std::ios::trunc) << stamp << "\n{\"format\":\"sluice-topology\",";
  LoadedTopology t = load_topology(s.cfg);
  BOOST_TEST(!t.from_snapshot);
  BOOST_TEST(t.topology.gpus().size() == 4u);
}

BOOST_AUTO_TEST_CASE(run_dir_must_be_a_safe_directory) {
  Sandbox s;
  std::ofstream(s.cfg.run_dir) << "a file, not a directory";
  BOOST_CHECK_THROW(write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg)), Error);
  fs::remove(s.cfg.run_dir);
  fs::create_directory(s.cfg.run_dir);
  fs::permissions(s.cfg.run_dir, fs::perms::others_write, fs::perm_options::add);
  try {
    write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
    BOOST_FAIL("no exception");
  } catch (const TopologyError& e) {
    BOOST_TEST(std::string(e.what()).find(s.cfg.run_dir) != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(each_source_has_its_own_snapshot) {
  PluginConfig a, b, live;
  a.topology_xml = "/etc/sluice/a.xml";
  b.topology_xml = "/etc/sluice/b.xml";
  BOOST_TEST(snapshot_path(a) != snapshot_path(b));
  BOOST_TEST(snapshot_path(a) != snapshot_path(live));
  BOOST_TEST(source_stamp(live).rfind("live boot ", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(a_wrong_typed_field_is_damage_too) {
  Sandbox s;
  write_snapshot(s.cfg, read_topology(s.cfg), source_stamp(s.cfg));
  std::ofstream(snapshot_path(s.cfg), std::ios::trunc) << source_stamp(s.cfg) << "\n{\"format\":5,\"version\":\"x\"}\n";
  BOOST_TEST(!load_topology(s.cfg).from_snapshot);
}

BOOST_AUTO_TEST_CASE(a_snapshot_stamped_before_a_change_is_stale) {
  Sandbox s;
  const std::string before = source_stamp(s.cfg);
  topo::Topology t = read_topology(s.cfg);
  std::ofstream(s.cfg.topology_xml, std::ios::app) << "\n";  // the XML changes while slurmd reads it
  write_snapshot(s.cfg, t, before);
  BOOST_TEST(!load_topology(s.cfg).from_snapshot);
}
