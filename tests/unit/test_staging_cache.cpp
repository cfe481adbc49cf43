#define BOOST_TEST_MODULE staging_cache
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/cache.hpp>
#include <sluice/staging/copier.hpp>

#include "staging_test_files.hpp"
#include <sluice/staging/hash.hpp>
#include <sluice/staging/manifest.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;

namespace {

constexpr std::uint64_t kChunk = 64 * 1024;

using test::random_bytes;
using test::read_file;
using test::write_file;

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  BOOST_REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, "stat " << p);
  return st;
}

std::int64_t ns(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

// A source tree (small files, one chunked file), a cache, destinations beside them.
struct Sandbox {
  fs::path dir, src, cache;
  Sandbox() {
    char tmpl[] = "/tmp/sluice-cache-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    src = dir / "src";
    cache = dir / "bb" / ".cache" / "uid";
    for (int i = 0; i < 12; ++i) write_file(src / "shards" / ("s" + std::to_string(i)), random_bytes(500 + 131 * i, i));
    write_file(src / "empty", "");
    write_file(src / "big.bin", random_bytes(4 * kChunk + 77, 99));  // 5 chunks
  }
  ~Sandbox() { fs::remove_all(dir); }

  StageRequest request(const std::string& dst) const {
    StageRequest r;
    r.source = src.string();
    r.destination = (dir / "bb" / dst).string();
    r.jobs = 3;
    r.chunk_size = kChunk;
    r.cache_dir = cache.string();
    return r;
  }
  fs::path dst(const std::string& name) const { return dir / "bb" / name; }

  void check_mirror(const std::string& name) const {
    for (const auto& e : fs::recursive_directory_iterator(src))
      if (e.is_regular_file()) BOOST_TEST(read_file(dst(name) / fs::relative(e.path(), src)) == read_file(e.path()));
  }

  Manifest manifest(const std::string& name) const {
    UniqueFd fd = open_root(dst(name).string(), false);
    return Manifest::load(fd.get());
  }

  // The cache's data file for SRC's file REL (through a lookup of its current identity).
  CacheKey key(const std::string& rel) const {
    const struct stat st = stat_of(src / rel);
    return {(src / rel).string(), static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
            static_cast<std::uint64_t>(st.st_size), ns(st.st_mtim), ns(st.st_ctim)};
  }
  fs::path entry(const std::string& rel) const {
    const std::string n = key(rel).name();
    return cache / n.substr(0, 2) / n;
  }
};

const std::uint64_t kFiles = 14;

// Moves every last use in CACHE/index back by SECONDS, as if the entries were used that
// long ago (a hit within the hour leaves the index alone, as relatime leaves atime).
void age_index(const fs::path& cache, std::int64_t seconds) {
  const std::string text = read_file(cache / "index");
  std::string out;
  std::size_t pos = text.find('\n') + 1;
  out = text.substr(0, pos);
  while (pos < text.size()) {
    const std::size_t sp = text.find(' ', pos), sp2 = text.find(' ', sp + 1), nl = text.find('\n', sp2);
    BOOST_REQUIRE(nl != std::string::npos);
    const std::int64_t last_use = std::stoll(text.substr(sp + 1, sp2 - sp - 1)) - seconds * 1000000000;
    const std::size_t len = std::stoul(text.substr(sp2 + 1, nl - sp2 - 1));
    out += text.substr(pos, sp - pos) + " " + std::to_string(last_use) + text.substr(sp2, nl + 1 - sp2) + text.substr(nl + 1, len);
    pos = nl + 1 + len;
  }
  write_file(cache / "index", out);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_second_stage_links_the_same_inodes_and_copies_nothing) {
  Sandbox s;
  StageResult first = stage_tree(s.request("job1"));
  BOOST_TEST(first.files_copied == kFiles);
  BOOST_TEST(first.files_from_cache == 0u);
  BOOST_TEST(first.note == "");
  CacheStats st = cache_stats(s.cache.string());
  BOOST_TEST(st.entries == kFiles);
  BOOST_TEST(st.bytes == first.bytes_copied);
  BOOST_TEST(st.incomplete == 0u);

  StageResult second = stage_tree(s.request("job2"));
  BOOST_TEST(second.files_from_cache == kFiles);
  BOOST_TEST(second.bytes_from_cache == first.bytes_copied);
  BOOST_TEST(second.files_copied == 0u);
  BOOST_TEST(second.bytes_copied == 0u);
  s.check_mirror("job2");
  for (const std::string rel : {"big.bin", "shards/s3", "empty"}) {
    BOOST_TEST(stat_of(s.dst("job2") / rel).st_ino == stat_of(s.dst("job1") / rel).st_ino, rel);
    BOOST_TEST(stat_of(s.entry(rel)).st_ino == stat_of(s.dst("job2") / rel).st_ino, rel);
  }
  // Mode and mtime come with the inode; the manifest entry is staged with the digest.
  BOOST_TEST((stat_of(s.dst("job2") / "big.bin").st_mode & 07777) == (stat_of(s.src / "big.bin").st_mode & 0700));
  const Manifest m1 = s.manifest("job1"), m2 = s.manifest("job2");
  BOOST_TEST((m1.files == m2.files));
  const ManifestEntry& big = m2.files.at("big.bin");
  BOOST_TEST((big.state == ManifestEntry::State::Staged));
  BOOST_TEST(big.chunk_size == kChunk);
  UniqueFd fd(::open((s.src / "big.bin").c_str(), O_RDONLY));
  BOOST_TEST(big.xxh3 == hash_file(fd.get(), big.size, kChunk, "big"));

  // Resuming into job2 skips, as without a cache; --verify re-hashes links too.
  StageResult again = stage_tree(s.request("job2"));
  BOOST_TEST(again.files_skipped == kFiles);
  StageRequest v = s.request("job3");
  v.verify = true;
  StageResult verified = stage_tree(v);
  BOOST_TEST(verified.files_from_cache == kFiles);
}

BOOST_AUTO_TEST_CASE(a_changed_source_misses_and_is_copied_afresh) {
  Sandbox s;
  stage_tree(s.request("job1"));
  // Same size, same mtime put back: only the ctime tells.
  const fs::path f = s.src / "shards/s2";
  const struct stat before = stat_of(f);
  write_file(f, random_bytes(static_cast<std::size_t>(before.st_size), 1234));
  const timespec times[2] = {before.st_atim, before.st_mtim};
  BOOST_REQUIRE(::utimensat(AT_FDCWD, f.c_str(), times, 0) == 0);
  // Touched only (mtime).
  const fs::path g = s.src / "shards/s5";
  fs::last_write_time(g, fs::last_write_time(g) + std::chrono::seconds(5));
  // Rewritten as a new file (new inode) of another size.
  fs::remove(s.src / "shards/s7");
  write_file(s.src / "shards/s7", "new content");

  StageResult r = stage_tree(s.request("job2"));
  BOOST_TEST(r.files_copied == 3u);
  BOOST_TEST(r.files_from_cache == kFiles - 3);
  s.check_mirror("job2");
  for (const std::string rel : {"shards/s2", "shards/s5", "shards/s7"})
    BOOST_TEST(stat_of(s.dst("job2") / rel).st_ino != stat_of(s.dst("job1") / rel).st_ino, rel);
  // The fresh copies are cached under their new identity; the old entries age out.
  BOOST_TEST(cache_stats(s.cache.string()).entries == kFiles + 3);
  StageResult r3 = stage_tree(s.request("job3"));
  BOOST_TEST(r3.files_from_cache == kFiles);
  s.check_mirror("job3");
}

BOOST_AUTO_TEST_CASE(eviction_drops_least_recently_used_entries_down_to_the_bound) {
  Sandbox s;
  // Three files of 1000 bytes, each added (and so used) at a later time than the last.
  const fs::path job = s.dir / "bb" / "job";
  fs::create_directories(job);
  std::vector<CacheKey> keys;
  for (const std::string name : {"a", "b", "c"}) {
    write_file(s.src / name, random_bytes(1000, static_cast<unsigned>(name[0])));
    fs::copy_file(s.src / name, job / name);
    const struct stat st = stat_of(job / name);
    keys.push_back({(s.src / name).string(), 1, st.st_ino, 1000, ns(st.st_mtim), 42});
    NodeCache c(s.cache.string());
    UniqueFd d = open_root(job.string(), false);
    BOOST_TEST(c.add({keys.back(), 7, 0}, d.get(), name));
    c.flush_index();
  }
  age_index(s.cache, 7200);  // used two hours ago, in the order a, b, c
  {  // a is used again: now c is the most recent but one, b the least recent.
    NodeCache c(s.cache.string());
    BOOST_TEST(c.lookup(keys[0]).has_value());
    c.flush_index();
  }
  BOOST_TEST(cache_stats(s.cache.string()).bytes == 3000u);
  evict_cache(s.cache.string(), 2500);
  NodeCache c(s.cache.string());
  BOOST_TEST(!c.lookup(keys[1]).has_value());  // b
  BOOST_TEST(c.lookup(keys[0]).has_value());
  BOOST_TEST(c.lookup(keys[2]).has_value());
  BOOST_TEST(cache_stats(s.cache.string()).bytes == 2000u);
  evict_cache(s.cache.string(), 1000);
  BOOST_TEST(!NodeCache(s.cache.string()).lookup(keys[2]).has_value());  // c went before a
  CacheStats st = cache_stats(s.cache.string());
  BOOST_TEST(st.entries == 1u);
  BOOST_TEST(st.bytes == 1000u);
  evict_cache(s.cache.string(), 0);  // 0: unbounded
  BOOST_TEST(cache_stats(s.cache.string()).entries == 1u);
  // Evicting unlinked the cache's names only: the job's copies keep their data.
  BOOST_TEST(read_file(job / "b") == read_file(s.src / "b"));
}

BOOST_AUTO_TEST_CASE(a_hit_rewrites_the_index_only_when_the_last_use_is_over_an_hour_old) {
  Sandbox s;
  stage_tree(s.request("job1"));
  const auto index_inode = [&] { return stat_of(s.cache / "index").st_ino; };
  const ino_t first = index_inode();
  const CacheStats fresh = cache_stats(s.cache.string());
  // A second job within the hour: every file from the cache, the index untouched.
  BOOST_TEST(stage_tree(s.request("job2")).files_from_cache == kFiles);
  BOOST_TEST(index_inode() == first);
  BOOST_TEST(cache_stats(s.cache.string()).newest_use_ns == fresh.newest_use_ns);
  // Two hours later: the hits are recorded (the index is replaced, its last uses now).
  age_index(s.cache, 7200);
  const CacheStats aged = cache_stats(s.cache.string());
  BOOST_TEST(aged.newest_use_ns == fresh.newest_use_ns - 7200ll * 1000000000);
  BOOST_TEST(stage_tree(s.request("job3")).files_from_cache == kFiles);
  const CacheStats used = cache_stats(s.cache.string());
  BOOST_TEST(used.entries == kFiles);
  BOOST_TEST(used.oldest_use_ns >= fresh.newest_use_ns);
  s.check_mirror("job3");
}

BOOST_AUTO_TEST_CASE(eviction_without_an_index_uses_the_records_times) {
  Sandbox s;
  stage_tree(s.request("job1"));
  fs::remove(s.cache / "index");
  CacheStats st = cache_stats(s.cache.string());
  BOOST_TEST(st.entries == kFiles);
  BOOST_TEST(st.oldest_use_ns > 0);
  evict_cache(s.cache.string(), st.bytes / 2);
  BOOST_TEST(cache_stats(s.cache.string()).bytes <= st.bytes / 2);
  BOOST_TEST(cache_stats(s.cache.string()).entries < kFiles);
}

BOOST_AUTO_TEST_CASE(stage_with_cache_max_evicts_and_skips_files_larger_than_it) {
  Sandbox s;
  StageRequest r = s.request("job1");
  r.cache_max = 3 * kChunk;  // big.bin (4 chunks and a bit) does not fit at all
  stage_tree(r);
  BOOST_TEST(!fs::exists(s.entry("big.bin")));
  BOOST_TEST(cache_stats(s.cache.string()).bytes <= 3 * kChunk);
  StageResult second = stage_tree(s.request("job2"));
  BOOST_TEST(second.files_copied >= 1u);
  BOOST_TEST(second.files_from_cache == kFiles - second.files_copied);
  s.check_mirror("job2");
}

BOOST_AUTO_TEST_CASE(a_record_for_another_key_is_a_miss) {
  Sandbox s;
  stage_tree(s.request("job1"));
  // As if another source hashed to the same name: the record's key is not the lookup's.
  fs::path rec = s.entry("shards/s1");
  rec += ".meta";
  std::string text = read_file(rec);
  const auto at = text.find("shards/s1");
  BOOST_REQUIRE(at != std::string::npos);
  text.replace(at, 9, "shards/s9");
  fs::remove(rec);
  write_file(rec, text);
  fs::remove(s.cache / "index");  // else the index still knows the right key

  NodeCache c(s.cache.string());
  BOOST_TEST(!c.lookup(s.key("shards/s1")).has_value());
  BOOST_TEST(c.lookup(s.key("shards/s2")).has_value());
  StageResult r = stage_tree(s.request("job2"));
  BOOST_TEST(r.files_copied == 1u);
  BOOST_TEST(r.files_from_cache == kFiles - 1);
  s.check_mirror("job2");
}

BOOST_AUTO_TEST_CASE(a_damaged_index_or_record_is_ignored) {
  Sandbox s;
  stage_tree(s.request("job1"));
  write_file(s.cache / "index", "sluice-cache-index 1\n0123 garbage\n");
  fs::path rec = s.entry("shards/s4");
  rec += ".meta";
  fs::remove(rec);
  write_file(rec, "sluice-cache 1\ndev x\n");
  StageResult r = stage_tree(s.request("job2"));
  BOOST_TEST(r.files_copied == 1u);
  BOOST_TEST(r.files_from_cache == kFiles - 1);
  s.check_mirror("job2");
}

BOOST_AUTO_TEST_CASE(data_written_through_a_job_link_is_not_served) {
  Sandbox s;
  stage_tree(s.request("job1"));
  // A job writes into its staged copy (the cache's inode): its mtime changes.
  {
    std::ofstream out(s.dst("job1") / "shards/s3", std::ios::binary | std::ios::in);
    out << "scribble";
  }
  StageResult r = stage_tree(s.request("job2"));
  BOOST_TEST(r.files_copied == 1u);
  s.check_mirror("job2");
  // The damaged entry was dropped; job2's fresh copy took its place.
  BOOST_TEST(stat_of(s.entry("shards/s3")).st_ino == stat_of(s.dst("job2") / "shards/s3").st_ino);
  BOOST_TEST(stat_of(s.entry("shards/s3")).st_ino != stat_of(s.dst("job1") / "shards/s3").st_ino);

  // Same with the mtime put back: only a verify (a re-hash of each hit) catches it.
  const fs::path f = s.dst("job1") / "shards/s6";
  const struct stat before = stat_of(f);
  {
    std::ofstream out(f, std::ios::binary | std::ios::in);
    out << "scribble";
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  BOOST_REQUIRE(::utimensat(AT_FDCWD, f.c_str(), times, 0) == 0);
  StageRequest v = s.request("job3");
  v.verify = true;
  StageResult rv = stage_tree(v);
  BOOST_TEST(rv.files_copied == 1u);  // s6; s3 was cached afresh by job2
  s.check_mirror("job3");
  BOOST_TEST(stat_of(s.dst("job3") / "shards/s6").st_ino != before.st_ino);
}

BOOST_AUTO_TEST_CASE(concurrent_adds_and_stages_share_a_cache_safely) {
  Sandbox s;
  // Eight caches on one directory add the same 14 keys from eight copies at once.
  std::vector<std::thread> threads;
  std::atomic<int> added{0};
  const fs::path jobs = s.dir / "bb" / "jobs";
  fs::create_directories(jobs);
  for (int t = 0; t < 8; ++t) fs::copy(s.src, jobs / std::to_string(t), fs::copy_options::recursive);
  // Keys are made here: Boost.Test's assertions (in key()) are not thread-safe.
  std::vector<std::pair<std::string, CacheKey>> files;
  for (const auto& e : fs::recursive_directory_iterator(s.src))
    if (e.is_regular_file()) {
      const std::string rel = fs::relative(e.path(), s.src).string();
      files.emplace_back(rel, s.key(rel));
    }
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      NodeCache c(s.cache.string());
      const fs::path root = jobs / std::to_string(t);
      for (const auto& [rel, key] : files) {
        UniqueFd d = open_root((root / rel).parent_path().string(), false);
        if (c.add({key, 5, 0}, d.get(), (root / rel).filename().string())) ++added;
      }
      c.flush_index();
    });
  for (auto& th : threads) th.join();
  BOOST_TEST(added.load() == static_cast<int>(kFiles));
  CacheStats st = cache_stats(s.cache.string());
  BOOST_TEST(st.entries == kFiles);
  BOOST_TEST(st.incomplete == 0u);
  NodeCache c(s.cache.string());
  for (const std::string rel : {"big.bin", "shards/s0"}) BOOST_TEST(c.lookup(s.key(rel)).has_value());

  // Two stages into two destinations through one (fresh) cache at once.
  fs::remove_all(s.cache);
  StageResult r1, r2;
  std::thread a([&] { r1 = stage_tree(s.request("job1")); });
  std::thread b([&] { r2 = stage_tree(s.request("job2")); });
  a.join();
  b.join();
  s.check_mirror("job1");
  s.check_mirror("job2");
  BOOST_TEST(cache_stats(s.cache.string()).entries == kFiles);
  BOOST_TEST(cache_stats(s.cache.string()).incomplete == 0u);
  BOOST_TEST(stage_tree(s.request("job3")).files_from_cache == kFiles);
}

BOOST_AUTO_TEST_CASE(symlinks_planted_in_the_cache_are_never_followed) {
  Sandbox s;
  stage_tree(s.request("job1"));
  const fs::path outside = s.dir / "outside";
  fs::create_directories(outside);
  write_file(outside / "secret", std::string(static_cast<std::size_t>(stat_of(s.src / "shards/s0").st_size), 'x'));

  // A data entry replaced by a symlink: the link itself would be linked; it is refused.
  const fs::path data = s.entry("shards/s0");
  fs::remove(data);
  fs::create_symlink(outside / "secret", data);
  // A record replaced by a symlink to a forged record: not opened.
  fs::path rec = s.entry("shards/s1");
  rec += ".meta";
  fs::copy_file(rec, outside / "forged.meta");
  fs::remove(rec);
  fs::create_symlink(outside / "forged.meta", rec);
  fs::remove(s.cache / "index");

  StageResult r = stage_tree(s.request("job2"));
  s.check_mirror("job2");
  BOOST_TEST(r.files_copied == 2u);
  BOOST_TEST(!fs::is_symlink(s.dst("job2") / "shards/s0"));
  BOOST_TEST(read_file(outside / "secret") == std::string(read_file(outside / "secret").size(), 'x'));

  // A fan-out directory replaced by a symlink to a directory outside: refused, naming it;
  // the stage copies without the cache and says so once; nothing is written outside.
  const std::string n = s.key("shards/s2").name();
  fs::remove_all(s.cache / n.substr(0, 2));
  fs::create_directory_symlink(outside, s.cache / n.substr(0, 2));
  StageResult r3 = stage_tree(s.request("job3"));
  s.check_mirror("job3");
  BOOST_TEST(r3.note.find(n.substr(0, 2)) != std::string::npos, r3.note);
  BOOST_TEST(fs::directory_entry(outside).exists());
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(outside)) names.insert(e.path().filename().string());
  BOOST_TEST((names == std::set<std::string>{"secret", "forged.meta"}));
  BOOST_CHECK_THROW(cache_stats(s.cache.string()), SystemError);
}

BOOST_AUTO_TEST_CASE(a_cache_others_may_write_is_refused) {
  Sandbox s;
  fs::create_directories(s.cache);
  fs::permissions(s.cache, fs::perms::owner_all | fs::perms::group_all);
  BOOST_CHECK_THROW(NodeCache(s.cache.string()), Error);
  BOOST_CHECK_THROW(stage_tree(s.request("job1")), Error);
}

BOOST_AUTO_TEST_CASE(a_cache_on_another_file_system_is_noted_and_skipped) {
  Sandbox s;
  struct statfs a {}, b {};
  if (::statfs("/dev/shm", &a) != 0 || ::statfs(s.dir.c_str(), &b) != 0 || a.f_type == b.f_type) {
    BOOST_TEST_MESSAGE("no second file system at /dev/shm; skipped");
    return;
  }
  char tmpl[] = "/dev/shm/sluice-cache-test-XXXXXX";
  const fs::path other = ::mkdtemp(tmpl);
  StageRequest r = s.request("job1");
  r.cache_dir = (other / "cache").string();
  StageResult res = stage_tree(r);
  fs::remove_all(other);
  BOOST_TEST(res.files_copied == kFiles);
  BOOST_TEST(res.note.find("file system") != std::string::npos, res.note);
  s.check_mirror("job1");
}

BOOST_AUTO_TEST_CASE(keys_name_entries_by_every_part_of_the_identity) {
  const CacheKey k{"/data/a", 1, 2, 3, 4, 5};
  BOOST_TEST(k.name().size() == 32u);
  BOOST_TEST(k.name() == CacheKey(k).name());
  std::set<std::string> names{k.name()};
  for (CacheKey v : {CacheKey{"/data/b", 1, 2, 3, 4, 5}, CacheKey{"/data/a", 9, 2, 3, 4, 5},
                     CacheKey{"/data/a", 1, 9, 3, 4, 5}, CacheKey{"/data/a", 1, 2, 9, 4, 5},
                     CacheKey{"/data/a", 1, 2, 3, 9, 5}, CacheKey{"/data/a", 1, 2, 3, 4, 9}})
    names.insert(v.name());
  BOOST_TEST(names.size() == 7u);
}
