#define BOOST_TEST_MODULE staging_plan
#include <boost/test/unit_test.hpp>

// The plan is internal (staging/src/plan.hpp); tested here because its walk is parallel
// and every node of a sharded stage must compute the same one.
#include "plan.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/manifest.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;

namespace {

struct Tree {
  fs::path dir, src, dst;
  Tree() {
    char tmpl[] = "/tmp/sluice-plan-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    src = dir / "src";
    dst = dir / "dst";
    fs::create_directories(dst);
    // One wide directory (several slices of entries), nested ones, empty ones, root files.
    for (int i = 0; i < 1000; ++i) write(src / "wide" / ("f" + std::to_string(i)), i % 97);
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 4; ++b) {
        const fs::path d = src / ("a" + std::to_string(a)) / ("b" + std::to_string(b));
        for (int i = 0; i < 5; ++i) write(d / ("x" + std::to_string(i)), a * 10 + b + i);
        fs::create_directories(d / "empty");
      }
    write(src / "top.txt", 3);
  }
  ~Tree() { fs::remove_all(dir); }
  static void write(const fs::path& p, std::size_t size) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << std::string(size, 'x');
  }
  detail::Plan plan(unsigned threads, unsigned shard = 0, unsigned shards = 1) const {
    UniqueFd root = open_root(dst.string(), false);
    return detail::make_plan(src.string(), root.get(), "", Manifest{}, shard, shards, "", threads);
  }
  std::string error(unsigned threads) const {
    try {
      plan(threads);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

// What a depth-first walk in name order lists: directories (parents first) and files.
void expected(const fs::path& root, const fs::path& rel, std::vector<std::string>& dirs, std::vector<std::string>& files) {
  std::vector<fs::path> names;
  for (const auto& e : fs::directory_iterator(root / rel)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  for (const fs::path& n : names) {
    const fs::path r = rel.empty() ? n : rel / n;
    if (fs::is_directory(fs::symlink_status(root / r))) {
      dirs.push_back(r.string());
      expected(root, r, dirs, files);
    } else {
      files.push_back(r.string());
    }
  }
}

std::vector<std::string> rels(const detail::Plan& p) {
  std::vector<std::string> out;
  for (const auto& f : p.files) out.push_back(f.rel);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_plan_is_a_depth_first_walk_in_name_order_for_any_thread_count) {
  Tree t;
  std::vector<std::string> dirs, files;
  expected(t.src, "", dirs, files);
  BOOST_REQUIRE(files.size() == 1000u + 6 * 4 * 5 + 1);
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      const detail::Plan p = t.plan(threads);
      BOOST_TEST(p.dirs == dirs, boost::test_tools::per_element());
      BOOST_TEST(rels(p) == files, boost::test_tools::per_element());
      for (const auto& f : p.files) {
        BOOST_TEST(f.source == (t.src / f.rel).string());
        BOOST_TEST(f.size == fs::file_size(t.src / f.rel));
        BOOST_TEST(static_cast<int>(f.action) == static_cast<int>(detail::PlannedFile::Action::Copy));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_thread_count_gives_every_node_the_same_shard) {
  Tree t;
  for (unsigned shard = 0; shard < 3; ++shard) {
    const auto one = rels(t.plan(1, shard, 3));
    BOOST_TEST(!one.empty());
    BOOST_TEST(rels(t.plan(8, shard, 3)) == one, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(the_first_bad_entry_in_walk_order_is_the_one_reported) {
  Tree t;
  // A FIFO late in the walk, a symlink earlier: every thread count names the symlink.
  BOOST_REQUIRE(::mkfifo((t.src / "a5" / "b3" / "pipe").c_str(), 0600) == 0);
  fs::create_symlink("/etc/passwd", t.src / "a1" / "b0" / "link");
  for (unsigned threads : {1u, 4u}) {
    const std::string e = t.error(threads);
    BOOST_TEST_CONTEXT("threads " << threads) {
      BOOST_TEST(e.find((t.src / "a1" / "b0" / "link").string() + " is a symlink") != std::string::npos, e);
    }
  }
  fs::remove(t.src / "a1" / "b0" / "link");
  for (unsigned threads : {1u, 4u})
    BOOST_TEST(t.error(threads).find((t.src / "a5" / "b3" / "pipe").string() + " is not a regular file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_destination_inside_the_source_is_refused_by_every_walk) {
  Tree t;
  const fs::path inner = t.src / "a2" / "b1" / "staged";
  fs::create_directories(inner);
  for (unsigned threads : {1u, 4u}) {
    UniqueFd root = open_root(inner.string(), false);
    BOOST_CHECK_EXCEPTION(detail::make_plan(t.src.string(), root.get(), "", Manifest{}, 0, 1, "", threads), InvalidArgument,
                          [&](const InvalidArgument& e) { return std::string(e.what()).find("inside the source") != std::string::npos; });
  }
}
