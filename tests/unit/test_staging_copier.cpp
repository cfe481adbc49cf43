#define BOOST_TEST_MODULE staging_copier
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/copier.hpp>

#include "staging_test_files.hpp"
#include <sluice/staging/hash.hpp>
#include <sluice/staging/manifest.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;

namespace {

constexpr std::uint64_t kChunk = 64 * 1024;  // small, so a few hundred KiB are "big files"

using test::random_bytes;
using test::read_file;
using test::write_file;

// A source tree (small files, empty file, nested dirs, chunked files) and a destination.
struct Sandbox {
  fs::path dir, src, dst;
  Sandbox() {
    char tmpl[] = "/tmp/sluice-copier-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    src = dir / "src";
    dst = dir / "bb" / "data";
    write_file(src / "readme.txt", "hello\n");
    write_file(src / "empty", "");
    for (int i = 0; i < 20; ++i) write_file(src / "shards" / ("s" + std::to_string(i)), random_bytes(1000 + 97 * i, i));
    write_file(src / "deep/er/still/big.bin", random_bytes(5 * kChunk + 123, 99));  // 6 chunks
    write_file(src / "exact.bin", random_bytes(2 * kChunk, 7));                      // chunk boundary
    fs::permissions(src / "readme.txt", fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read);
  }
  ~Sandbox() { fs::remove_all(dir); }

  StageRequest request() const {
    StageRequest r;
    r.source = src.string();
    r.destination = dst.string();
    r.jobs = 4;
    r.chunk_size = kChunk;
    return r;
  }

  // Every source file is in the destination with the same bytes.
  void check_mirror() const {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(src)) {
      if (!e.is_regular_file()) continue;
      const fs::path rel = fs::relative(e.path(), src);
      BOOST_TEST(read_file(dst / rel) == read_file(e.path()), rel);
      ++n;
    }
    BOOST_TEST(n == 24u);
  }

  Manifest manifest() const {
    UniqueFd fd = open_root(dst.string(), false);
    return Manifest::load(fd.get());
  }
};

bool no_temp_files(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (is_temp_name(e.path().filename().string())) return false;
  return true;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(copies_a_tree_and_records_digests) {
  Sandbox s;
  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files == 24u);
  BOOST_TEST(r.files_copied == 24u);
  BOOST_TEST(r.files_skipped == 0u);
  s.check_mirror();
  BOOST_TEST(no_temp_files(s.dst));

  Manifest m = s.manifest();
  BOOST_REQUIRE(m.files.size() == 24u);
  const ManifestEntry& big = m.files.at("deep/er/still/big.bin");
  BOOST_TEST((big.state == ManifestEntry::State::Staged));
  BOOST_TEST(big.chunk_size == kChunk);
  BOOST_TEST(big.source == (s.src / "deep/er/still/big.bin").string());
  UniqueFd fd(::open((s.src / "deep/er/still/big.bin").c_str(), O_RDONLY));
  BOOST_TEST(big.xxh3 == hash_file(fd.get(), big.size, kChunk, "big"));
  BOOST_TEST(m.files.at("exact.bin").chunk_size == kChunk);  // two whole chunks, no tail
  BOOST_TEST(m.files.at("readme.txt").chunk_size == 0u);

  // Owner bits kept, others dropped; directories 0700; mtime kept.
  struct stat st {};
  BOOST_REQUIRE(::stat((s.dst / "readme.txt").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0500u);
  BOOST_REQUIRE(::stat((s.dst / "deep/er").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0700u);
  BOOST_TEST((fs::last_write_time(s.dst / "shards/s3") == fs::last_write_time(s.src / "shards/s3")));
}

BOOST_AUTO_TEST_CASE(buffered_and_kernel_copies_record_the_same_digests) {
  Sandbox s;
  stage_tree(s.request());
  Manifest kernel = s.manifest();
  StageRequest r = s.request();
  r.destination = (s.dir / "bb" / "buffered").string();
  r.buffered_only = true;
  stage_tree(r);
  UniqueFd fd = open_root(r.destination, false);
  BOOST_TEST((Manifest::load(fd.get()).files.at("deep/er/still/big.bin") == kernel.files.at("deep/er/still/big.bin")));
  BOOST_TEST((Manifest::load(fd.get()).files.at("shards/s7") == kernel.files.at("shards/s7")));
}

BOOST_AUTO_TEST_CASE(a_second_run_skips_everything) {
  Sandbox s;
  stage_tree(s.request());
  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files_skipped == 24u);
  BOOST_TEST(r.files_copied == 0u);
  BOOST_TEST(r.bytes_copied == 0u);
}

BOOST_AUTO_TEST_CASE(an_interrupted_stage_resumes) {
  Sandbox s;
  StageRequest r = s.request();
  r.jobs = 1;  // deterministic: exactly K files before the stop
  r.stop_after_files = 5;
  BOOST_CHECK_THROW(stage_tree(r), Cancelled);
  BOOST_TEST(no_temp_files(s.dst));
  Manifest m = s.manifest();
  std::size_t staged = 0, pending = 0;
  for (const auto& [p, e] : m.files) (e.state == ManifestEntry::State::Staged ? staged : pending)++;
  BOOST_TEST(staged == 5u);
  BOOST_TEST(pending == 19u);  // planned, so their final names count as ours on resume

  StageResult again = stage_tree(s.request());
  BOOST_TEST(again.files_skipped == 5u);
  BOOST_TEST(again.files_copied == 19u);
  s.check_mirror();
}

BOOST_AUTO_TEST_CASE(a_crash_between_rename_and_manifest_write_resumes) {
  // Simulate a kill -9: files renamed into place after the last manifest write (pending
  // entries), and a half-written temporary file.
  Sandbox s;
  stage_tree(s.request());
  UniqueFd root = open_root(s.dst.string(), false);
  Manifest m = Manifest::load(root.get());
  m.files.at("shards/s4").state = ManifestEntry::State::Pending;
  m.files.at("deep/er/still/big.bin").state = ManifestEntry::State::Pending;
  Manifest::save(root.get(), m.to_json());
  write_file(s.dst / "shards/.s5.sluice-tmp.abc123", "half");

  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files_copied == 2u);
  BOOST_TEST(r.files_skipped == 22u);
  BOOST_TEST(no_temp_files(s.dst));
  s.check_mirror();
}

BOOST_AUTO_TEST_CASE(verify_detects_and_repairs_a_corrupted_staged_file) {
  Sandbox s;
  stage_tree(s.request());
  for (const char* victim : {"shards/s2", "deep/er/still/big.bin"}) {
    // Same size, same mtime: only the digest can tell.
    const auto mtime = fs::last_write_time(s.dst / victim);
    std::fstream f(s.dst / victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a' ^ static_cast<char>(read_file(s.dst / victim)[100]));
    f.close();
    fs::last_write_time(s.dst / victim, mtime);
  }
  StageResult quick = stage_tree(s.request());
  BOOST_TEST(quick.files_skipped == 24u);  // without verify, size+mtime look fine

  StageRequest r = s.request();
  r.verify = true;
  StageResult v = stage_tree(r);
  BOOST_TEST(v.files_repaired == 2u);
  BOOST_TEST(v.files_copied == 2u);
  BOOST_TEST(v.files_skipped == 22u);
  s.check_mirror();
  BOOST_TEST(stage_tree(r).files_repaired == 0u);
}

BOOST_AUTO_TEST_CASE(a_changed_source_is_recopied) {
  Sandbox s;
  stage_tree(s.request());
  write_file(s.src / "shards/s1", "new content");
  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files_copied == 1u);
  BOOST_TEST(read_file(s.dst / "shards/s1") == "new content");
}

BOOST_AUTO_TEST_CASE(a_file_changing_while_copied_fails_naming_it) {
  Sandbox s;
  StageRequest r = s.request();
  const std::string victim = (s.src / "shards/s9").string();
  r.after_copy = [&](const std::string& source) {
    if (source == victim) std::ofstream(victim, std::ios::app) << "appended";
  };
  const std::string msg = message_of([&] { stage_tree(r); });
  BOOST_TEST(msg.find(victim) != std::string::npos, msg);
  BOOST_TEST(msg.find("changed while it was copied") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(s.dst / "shards/s9"));
  BOOST_TEST(no_temp_files(s.dst));
}

BOOST_AUTO_TEST_CASE(an_unknown_different_file_is_not_overwritten) {
  Sandbox s;
  write_file(s.dst / "shards/s3", "somebody else's file");
  const std::string msg = message_of([&] { stage_tree(s.request()); });
  BOOST_TEST(msg.find((s.dst / "shards/s3").string()) != std::string::npos, msg);
  BOOST_TEST(msg.find("different content") != std::string::npos, msg);
  BOOST_TEST(read_file(s.dst / "shards/s3") == "somebody else's file");

  // Same size, different bytes: found after the copy, still refused.
  fs::remove(s.dst / "shards/s3");
  std::string other = read_file(s.src / "shards/s3");
  other[0] ^= 1;
  write_file(s.dst / "shards/s3", other);
  const std::string msg2 = message_of([&] { stage_tree(s.request()); });
  BOOST_TEST(msg2.find("different content") != std::string::npos, msg2);
  BOOST_TEST(read_file(s.dst / "shards/s3") == other);
  BOOST_TEST(no_temp_files(s.dst));
}

BOOST_AUTO_TEST_CASE(an_unknown_identical_file_is_adopted) {
  Sandbox s;
  write_file(s.dst / "shards/s3", read_file(s.src / "shards/s3"));
  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files_copied == 24u);
  BOOST_TEST((s.manifest().files.at("shards/s3").state == ManifestEntry::State::Staged));
}

BOOST_AUTO_TEST_CASE(a_symlink_in_the_destination_does_not_redirect_writes) {
  Sandbox s;
  const fs::path outside = s.dir / "outside";
  fs::create_directories(outside);
  fs::create_directories(s.dst);
  fs::create_directory_symlink(outside, s.dst / "shards");
  const std::string msg = message_of([&] { stage_tree(s.request()); });
  BOOST_TEST(msg.find((s.dst / "shards").string()) != std::string::npos, msg);
  BOOST_TEST(fs::is_empty(outside));

  // A link planted at a file's final name: refused, its target untouched.
  fs::remove(s.dst / "shards");
  write_file(outside / "victim", "precious");
  fs::create_symlink(outside / "victim", s.dst / "readme.txt");
  const std::string msg2 = message_of([&] { stage_tree(s.request()); });
  BOOST_TEST(msg2.find("not a regular file") != std::string::npos, msg2);
  BOOST_TEST(read_file(outside / "victim") == "precious");
}

BOOST_AUTO_TEST_CASE(source_symlinks_are_refused_naming_them) {
  Sandbox s;
  fs::create_symlink("/etc/passwd", s.src / "shards/link");
  const std::string msg = message_of([&] { stage_tree(s.request()); });
  BOOST_TEST(msg.find((s.src / "shards/link").string()) != std::string::npos, msg);
  BOOST_TEST(msg.find("symlink") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(s.dst / "shards/s0"));  // refused while planning, before any copy
}

BOOST_AUTO_TEST_CASE(a_full_disk_fails_up_front_with_both_numbers) {
  Sandbox s;
  StageRequest r = s.request();
  r.free_space = [](int) -> std::uint64_t { return 4096; };
  const std::string msg = message_of([&] { stage_tree(r); });
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(s.src))
    if (e.is_regular_file()) total += e.file_size();
  BOOST_TEST(msg.find(std::to_string(total) + " bytes to copy, 4096 bytes available") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(s.dst / "readme.txt"));
}

BOOST_AUTO_TEST_CASE(a_file_source_is_copied_to_a_path_or_into_a_directory) {
  Sandbox s;
  StageRequest r = s.request();
  r.source = (s.src / "deep/er/still/big.bin").string();
  r.destination = (s.dir / "bb/model.bin").string();
  BOOST_TEST(stage_tree(r).files_copied == 1u);
  BOOST_TEST(read_file(s.dir / "bb/model.bin") == read_file(r.source));
  BOOST_TEST(stage_tree(r).files_skipped == 1u);

  fs::create_directories(s.dir / "bb/into");
  r.destination = (s.dir / "bb/into").string();
  stage_tree(r);
  BOOST_TEST(read_file(s.dir / "bb/into/big.bin") == read_file(r.source));
}

BOOST_AUTO_TEST_CASE(destination_inside_the_source_is_refused) {
  Sandbox s;
  StageRequest r = s.request();
  r.destination = (s.src / "shards/copy").string();
  BOOST_CHECK_THROW(stage_tree(r), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(out_mode_verifies_against_the_source_and_reports_progress) {
  Sandbox s;
  StageRequest r = s.request();
  r.verify_after_copy = true;
  Progress last;
  int calls = 0;
  r.on_progress = [&](const Progress& p) {
    last = p;
    ++calls;
  };
  stage_tree(r);
  BOOST_TEST(calls >= 1);
  BOOST_TEST(last.files_done == 24u);
  BOOST_TEST(last.bytes_done == last.bytes_total);
  s.check_mirror();
}

BOOST_AUTO_TEST_CASE(a_worker_error_stops_the_pool_and_names_the_file) {
  Sandbox s;
  fs::permissions(s.src / "shards/s5", fs::perms::none);
  if (::geteuid() == 0) {  // root reads anything: make the failure another way
    fs::permissions(s.src / "shards/s5", fs::perms::owner_read);
    StageRequest r = s.request();
    r.after_copy = [&](const std::string& src) {
      if (src.ends_with("shards/s5")) throw SystemError("read " + src, EIO);
    };
    const std::string msg = message_of([&] { stage_tree(r); });
    BOOST_TEST(msg.find("shards/s5") != std::string::npos, msg);
  } else {
    const std::string msg = message_of([&] { stage_tree(s.request()); });
    BOOST_TEST(msg.find((s.src / "shards/s5").string()) != std::string::npos, msg);
  }
  BOOST_TEST(no_temp_files(s.dst));
  // Whatever completed is recorded, so a fixed source resumes.
  fs::permissions(s.src / "shards/s5", fs::perms::owner_read);
  BOOST_TEST(stage_tree(s.request()).files_copied >= 1u);
  s.check_mirror();
}

BOOST_AUTO_TEST_CASE(relative_source_is_refused) {
  StageRequest r;
  r.source = "relative";
  r.destination = "/tmp/x";
  BOOST_CHECK_THROW(stage_tree(r), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(small_files_get_final_names_only_when_their_batch_commits) {
  // Batched commits: written temporaries wait for one syncfs, then are renamed. A failure
  // before the commit leaves neither final names nor temporaries, and a re-run resumes.
  Sandbox s;
  StageRequest r = s.request();
  r.jobs = 1;  // deterministic order: chunked files (committed at once), then the rest in plan order
  bool checked = false;
  r.after_copy = [&](const std::string& source) {
    if (source != (s.src / "shards/s2").string()) return;
    checked = true;
    for (const char* rel : {"empty", "readme.txt", "shards/s0", "shards/s1"})
      BOOST_TEST(!fs::exists(s.dst / rel), rel << " has its final name before its batch's syncfs");
    BOOST_TEST(!no_temp_files(s.dst));  // they wait as temporaries
    BOOST_TEST(fs::exists(s.dst / "exact.bin"));  // chunked files commit on their own
    throw std::runtime_error("simulated failure");
  };
  const std::string msg = message_of([&] { stage_tree(r); });
  BOOST_TEST(checked);
  BOOST_TEST(msg.find("simulated failure") != std::string::npos, msg);
  BOOST_TEST(no_temp_files(s.dst));
  for (const char* rel : {"empty", "readme.txt", "shards/s0", "shards/s1", "shards/s2"}) BOOST_TEST(!fs::exists(s.dst / rel), rel);

  StageResult again = stage_tree(s.request());
  BOOST_TEST(again.files_skipped == 2u);  // big.bin and exact.bin
  BOOST_TEST(again.files_copied == 22u);
  BOOST_TEST(no_temp_files(s.dst));
  s.check_mirror();
}

BOOST_AUTO_TEST_CASE(many_small_files_in_many_directories) {
  // More files than one batch and one task, several workers, files mode 0400 and 0700.
  Sandbox s;
  for (int i = 0; i < 700; ++i) {
    const fs::path p = s.src / ("many/d" + std::to_string(i % 7)) / ("f" + std::to_string(i));
    write_file(p, random_bytes(static_cast<std::size_t>(i * 13), static_cast<unsigned>(i)));
    if (i % 5 == 0) fs::permissions(p, fs::perms::owner_read);
  }
  StageResult r = stage_tree(s.request());
  BOOST_TEST(r.files_copied == 724u);
  BOOST_TEST(no_temp_files(s.dst));
  struct stat st {};
  BOOST_REQUIRE(::stat((s.dst / "many/d0/f0").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0400u);
  BOOST_REQUIRE(::stat((s.dst / "many/d1/f1").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0600u);
  Manifest m = s.manifest();
  UniqueFd fd = open_root(s.dst.string(), false);
  for (int i : {0, 1, 350, 699}) {
    const std::string rel = "many/d" + std::to_string(i % 7) + "/f" + std::to_string(i);
    const ManifestEntry& e = m.files.at(rel);
    BOOST_TEST((e.state == ManifestEntry::State::Staged));
    UniqueFd f = open_beneath(fd.get(), rel, O_RDONLY);
    BOOST_TEST(e.xxh3 == hash_file(f.get(), e.size, 0, rel));
  }
  BOOST_TEST(stage_tree(s.request()).files_skipped == 724u);
}

namespace {
// Whether the file system holding DIR takes O_DIRECT opens (ext4, xfs: yes; tmpfs before
// Linux 6.6: no).
bool takes_direct_io(const fs::path& dir) {
  const fs::path probe = dir / "direct-probe";
  write_file(probe, "x");
  UniqueFd fd(::open(probe.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  fs::remove(probe);
  return bool(fd);
}
}  // namespace

BOOST_AUTO_TEST_CASE(direct_io_copies_big_ranges_and_records_the_buffered_digests) {
  // Chunks of 8 MiB with a tail of 4 MiB + 123 bytes (O_DIRECT for the aligned part, the
  // last 123 bytes buffered), and a 5 MiB + 1 file copied whole.
  Sandbox s;
  constexpr std::uint64_t kMiB = 1 << 20;
  write_file(s.src / "direct/chunked.bin", random_bytes(20 * kMiB + 123, 11));
  write_file(s.src / "direct/whole.bin", random_bytes(5 * kMiB + 1, 12));
  StageRequest r = s.request();
  r.chunk_size = 8 * kMiB;
  const StageResult direct = stage_tree(r);
  for (const char* name : {"direct/chunked.bin", "direct/whole.bin"})
    BOOST_TEST(read_file(s.dst / name) == read_file(s.src / name), name);
  if (takes_direct_io(s.dir))  // all but the two unaligned tails (123 bytes, 1 byte)
    BOOST_TEST(direct.bytes_direct_io == 25 * kMiB);
  else
    BOOST_TEST(direct.bytes_direct_io == 0u);

  r.destination = (s.dir / "bb" / "buffered").string();
  r.direct_io = false;
  const StageResult buffered = stage_tree(r);
  BOOST_TEST(buffered.bytes_direct_io == 0u);
  const Manifest a = s.manifest();
  UniqueFd fd = open_root(r.destination, false);
  const Manifest b = Manifest::load(fd.get());
  for (const char* name : {"direct/chunked.bin", "direct/whole.bin"}) {
    BOOST_TEST((a.files.at(name) == b.files.at(name)), name);
    UniqueFd f = open_beneath(fd.get(), name, O_RDONLY);
    BOOST_TEST(a.files.at(name).xxh3 == hash_file(f.get(), a.files.at(name).size, a.files.at(name).chunk_size, name));
  }
}

BOOST_AUTO_TEST_CASE(direct_io_falls_back_where_the_destination_refuses_it) {
  // /dev/shm is tmpfs: it refuses O_DIRECT before Linux 6.6 (then the copy is buffered) and
  // takes it after; either way the bytes and the digest are right.
  if (!fs::is_directory("/dev/shm")) return;
  Sandbox s;
  char tmpl[] = "/dev/shm/sluice-direct-test-XXXXXX";
  const fs::path shm = ::mkdtemp(tmpl);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{shm};
  write_file(s.src / "direct/whole.bin", random_bytes((6 << 20) + 5, 13));
  StageRequest r = s.request();
  r.destination = (shm / "data").string();
  r.chunk_size = 8 << 20;  // one whole-file copy, digest of the plain layout
  const StageResult res = stage_tree(r);
  BOOST_TEST(read_file(shm / "data/direct/whole.bin") == read_file(s.src / "direct/whole.bin"));
  BOOST_TEST(res.bytes_direct_io == (takes_direct_io(shm) && takes_direct_io(s.dir) ? std::uint64_t{6} << 20 : 0u));
  UniqueFd fd = open_root(r.destination, false);
  const ManifestEntry e = Manifest::load(fd.get()).files.at("direct/whole.bin");
  BOOST_TEST(e.xxh3 == hash_bytes(read_file(s.src / "direct/whole.bin").data(), e.size));
}
