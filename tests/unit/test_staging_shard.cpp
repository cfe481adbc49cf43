#define BOOST_TEST_MODULE staging_shard
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/copier.hpp>
#include <sluice/staging/manifest.hpp>
#include <sluice/staging/shard.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;

namespace {

std::vector<ShardFile> random_listing(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<ShardFile> files;
  for (std::size_t i = 0; i < n; ++i) {
    // Mostly small, a few big, some empty, some of equal size (ties).
    const unsigned kind = rng() % 10;
    const std::uint64_t size = kind == 0 ? 0 : kind == 1 ? 1000000 + rng() % 9000000 : kind == 2 ? 4096 : rng() % 65536;
    files.push_back({"d" + std::to_string(rng() % 7) + "/f" + std::to_string(i), size});
  }
  return files;
}

std::uint64_t weight(const ShardFile& f) { return f.size + kShardFileWeight; }

void write_file(const fs::path& p, std::size_t size, unsigned seed) {
  fs::create_directories(p.parent_path());
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  std::ofstream(p, std::ios::binary) << s;
}

struct Sandbox {
  fs::path dir, src;
  std::map<std::string, std::uint64_t> sizes;  // every source file
  Sandbox() {
    char tmpl[] = "/tmp/sluice-shard-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    src = dir / "src";
    std::mt19937 rng(7);
    for (int i = 0; i < 60; ++i) {
      const std::string rel = "part" + std::to_string(i % 4) + "/x" + std::to_string(i);
      const std::size_t size = i % 11 == 0 ? 0 : i % 13 == 0 ? 300000 : rng() % 20000;
      write_file(src / rel, size, static_cast<unsigned>(i));
      sizes[rel] = size;
    }
  }
  ~Sandbox() { fs::remove_all(dir); }

  StageRequest request(unsigned index, unsigned count, const std::string& dst) const {
    StageRequest r;
    r.source = src.string();
    r.destination = (dir / dst).string();
    r.jobs = 2;
    r.chunk_size = 128 * 1024;
    r.shard_index = index;
    r.shard_count = count;
    return r;
  }

  std::set<std::string> manifest_files(const std::string& dst) const {
    UniqueFd fd = open_root((dir / dst).string(), false);
    std::set<std::string> out;
    for (const auto& [rel, e] : Manifest::load(fd.get()).files) {
      BOOST_TEST((e.state == ManifestEntry::State::Staged), rel);
      out.insert(rel);
    }
    return out;
  }

  std::set<std::string> files_in(const std::string& dst) const {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir / dst))
      if (e.is_regular_file() && e.path().filename() != kManifestName)
        out.insert(fs::relative(e.path(), dir / dst).string());
    return out;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(shares_are_disjoint_and_cover_the_tree) {
  Sandbox s;
  for (unsigned n : {2u, 3u, 5u}) {
    std::set<std::string> all;
    std::uint64_t total = 0;
    for (unsigned i = 0; i < n; ++i) {
      const std::string dst = "n" + std::to_string(n) + "_" + std::to_string(i);
      StageResult r = stage_tree(s.request(i, n, dst));
      BOOST_TEST(r.files + r.files_other_shards == s.sizes.size());
      BOOST_TEST(r.files_copied == r.files);
      const std::set<std::string> mine = s.manifest_files(dst);
      BOOST_TEST(mine.size() == r.files);
      BOOST_TEST((s.files_in(dst) == mine), "node " << i << " of " << n << " holds exactly its manifest's files");
      for (const std::string& rel : mine) BOOST_TEST(all.insert(rel).second, rel << " is in two shares");
      total += r.files;
    }
    BOOST_TEST(all.size() == s.sizes.size());
    BOOST_TEST(total == s.sizes.size());
  }
}

BOOST_AUTO_TEST_CASE(one_shard_is_everything) {
  Sandbox s;
  StageResult r = stage_tree(s.request(0, 1, "all"));
  BOOST_TEST(r.files == s.sizes.size());
  BOOST_TEST(r.files_other_shards == 0u);
  BOOST_TEST(s.manifest_files("all").size() == s.sizes.size());
  const auto listing = random_listing(100, 1);
  const auto one = assign_shards(listing, 1);
  BOOST_TEST(std::all_of(one.begin(), one.end(), [](unsigned n) { return n == 0; }));
}

BOOST_AUTO_TEST_CASE(the_split_is_a_function_of_the_listing) {
  auto listing = random_listing(2000, 3);
  const auto a = assign_shards(listing, 7);
  BOOST_TEST((assign_shards(listing, 7) == a));
  // Another node lists the same files in another order: each file lands on the same node.
  std::map<std::string, unsigned> by_path;
  for (std::size_t i = 0; i < listing.size(); ++i) by_path[listing[i].rel] = a[i];
  std::mt19937 rng(11);
  std::shuffle(listing.begin(), listing.end(), rng);
  const auto b = assign_shards(listing, 7);
  for (std::size_t i = 0; i < listing.size(); ++i) BOOST_TEST(b[i] == by_path.at(listing[i].rel), listing[i].rel);
}

BOOST_AUTO_TEST_CASE(shares_are_balanced_within_one_largest_file) {
  for (unsigned seed = 0; seed < 5; ++seed)
    for (unsigned n : {2u, 3u, 4u, 7u, 16u}) {
      const auto listing = random_listing(500 + 97 * seed, seed);
      const auto node = assign_shards(listing, n);
      std::vector<std::uint64_t> load(n, 0);
      std::uint64_t heaviest = 0;
      for (std::size_t i = 0; i < listing.size(); ++i) {
        BOOST_REQUIRE(node[i] < n);
        load[node[i]] += weight(listing[i]);
        heaviest = std::max(heaviest, weight(listing[i]));
      }
      const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
      BOOST_TEST(*hi - *lo <= heaviest, "seed " << seed << ", " << n << " nodes: " << *lo << " .. " << *hi);
    }
  // Empty files spread too (each weighs kShardFileWeight): 8 empty files on 4 nodes, 2 each.
  std::vector<ShardFile> empties;
  for (int i = 0; i < 8; ++i) empties.push_back({"e" + std::to_string(i), 0});
  const auto node = assign_shards(empties, 4);
  for (unsigned n = 0; n < 4; ++n) BOOST_TEST(std::count(node.begin(), node.end(), n) == 2);
}

BOOST_AUTO_TEST_CASE(bad_shards_are_refused) {
  Sandbox s;
  BOOST_CHECK_THROW(stage_tree(s.request(3, 3, "x")), InvalidArgument);
  BOOST_CHECK_THROW(stage_tree(s.request(0, 0, "x")), InvalidArgument);
  BOOST_CHECK_THROW(assign_shards({}, 0), InvalidArgument);
  BOOST_CHECK_NO_THROW(check_shard(2, 3));
  BOOST_TEST(!fs::exists(s.dir / "x"));
}

BOOST_AUTO_TEST_CASE(a_destination_staged_whole_then_sharded_lists_only_the_share) {
  Sandbox s;
  stage_tree(s.request(0, 1, "dst"));
  StageResult r = stage_tree(s.request(1, 2, "dst"));
  BOOST_TEST(r.files_copied == 0u);
  BOOST_TEST(r.files_skipped == r.files);
  BOOST_TEST(s.manifest_files("dst").size() == r.files);
  BOOST_TEST(r.files + r.files_other_shards == s.sizes.size());
  // Back to everything: the other share's files are there, identical, and adopted.
  StageResult all = stage_tree(s.request(0, 1, "dst"));
  BOOST_TEST(all.files_copied == r.files_other_shards);
  BOOST_TEST(s.manifest_files("dst").size() == s.sizes.size());
}
