// The per-job HDF5 file: round trip, damaged files, derivation (percentiles, stragglers,
// shares, busbw), and the wire format of the gather (rank_codec, internal).
#define BOOST_TEST_MODULE monitor_job_file
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/job_file.hpp>

#include "hostile_files.hpp"
#include "rank_codec.hpp"
#include "scratch_dir.hpp"  // tests/reader
#include "summary_fields.hpp"

#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace sluice::monitor;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMs = 1000000;

fs::path scratch() { return sluice::reader::test::scratch_dir("sluice-mon-jobfile"); }

// A rank's snapshot from explicit per-step times (ns): step, data wait and allreduce of each
// step; each allreduce moves `bytes` among `ranks`.
Snapshot synth(const std::vector<std::uint64_t>& step, std::uint64_t wait, std::uint64_t ar, std::uint64_t bytes = 1 << 20,
               std::uint32_t ranks = 4) {
  Snapshot s;
  s.elapsed_ns = 0;
  s.threads = 1;
  for (auto v : step) {
    ++s.steps;
    s.step_ns += v, s.step_data_wait_ns += wait, s.step_allreduce_ns += ar, s.step_compute_ns += v - wait - ar;
    s.elapsed_ns += v;
    s.step_time.record(v);
    s.step_data_wait.record(wait);
    ++s.allreduces;
    s.allreduce_ns += ar, s.allreduce_bytes += bytes;
    s.allreduce_bus_bytes += bytes * 2 * (ranks - 1) / ranks;
    s.allreduce_time.record(ar);
  }
  return s;
}

std::vector<std::uint64_t> repeat(std::uint64_t v, int n) { return std::vector<std::uint64_t>(std::size_t(n), v); }

Sample sample(int i, int gpus) {
  Sample s;
  s.t_s = 10.0 * i;
  s.unix_ms = 1700000000000 + 10000 * i;
  s.cpu_user_s = 1.5 * i, s.cpu_sys_s = 0.25 * i;
  s.rss_bytes = 1000000 + std::uint64_t(i), s.rss_peak_bytes = 2000000;
  s.io_known = i % 2 == 0;
  s.read_bytes = 4096u * std::uint64_t(i), s.write_bytes = 17, s.storage_read_bytes = 512, s.storage_write_bytes = 3;
  for (int g = 0; g < gpus; ++g) {
    GpuSample gs;
    gs.index = g * 2;  // sparse indices (CUDA_VISIBLE_DEVICES-like)
    gs.util_percent = unsigned(i + g);
    if (g == 0) gs.mem_util_percent = 40;  // absent on the others
    gs.mem_used_bytes = (std::uint64_t(1) << 33) + std::uint64_t(i);
    gs.mem_total_bytes = std::uint64_t(80) << 30;
    gs.power_watts = 250.5 + i;
    s.gpus.push_back(gs);
  }
  return s;
}

JobTelemetry sample_job(bool complete) {
  std::vector<RankInput> in;
  for (std::uint32_t r = 0; r < 3; ++r) {
    RankInput x;
    x.rank = 2 - r;  // out of order: make_job_telemetry sorts
    x.host = "node" + std::to_string(r / 2);
    x.snapshot = synth(repeat(20 * kMs, 10 + int(r)), 2 * kMs, (r == 0 ? 1 : 8) * kMs);
    for (int i = 0; i < 5 + int(r); ++i) x.samples.push_back(sample(i, r == 1 ? 0 : 2));
    x.samples_dropped = r;
    in.push_back(std::move(x));
  }
  JobTelemetry job = make_job_telemetry("4242", std::move(in), complete);
  job.written_at_unix_ms = 1700000123456;
  return job;
}

void check_equal(const Summary& a, const Summary& b) {
  Summary bb = b;
  visit_summary(a, [&](const char* name, const auto& va) {
    bool same = false;
    visit_summary(bb, [&](const char* n2, const auto& vb) {
      if (std::string(name) == n2) same = double(va) == double(vb);
    });
    BOOST_TEST(same, "summary field " << name);
  });
}

void check_equal(const Sample& a, const Sample& b) {
  BOOST_TEST(a.t_s == b.t_s);
  BOOST_TEST(a.unix_ms == b.unix_ms);
  BOOST_TEST(a.cpu_user_s == b.cpu_user_s);
  BOOST_TEST(a.cpu_sys_s == b.cpu_sys_s);
  BOOST_TEST(a.rss_bytes == b.rss_bytes);
  BOOST_TEST(a.rss_peak_bytes == b.rss_peak_bytes);
  BOOST_TEST(a.io_known == b.io_known);
  BOOST_TEST(a.read_bytes == b.read_bytes);
  BOOST_TEST(a.write_bytes == b.write_bytes);
  BOOST_TEST(a.storage_read_bytes == b.storage_read_bytes);
  BOOST_TEST(a.storage_write_bytes == b.storage_write_bytes);
  BOOST_TEST_REQUIRE(a.gpus.size() == b.gpus.size());
  for (std::size_t g = 0; g < a.gpus.size(); ++g) {
    BOOST_TEST(a.gpus[g].index == b.gpus[g].index);
    BOOST_TEST((a.gpus[g].util_percent == b.gpus[g].util_percent));
    BOOST_TEST((a.gpus[g].mem_util_percent == b.gpus[g].mem_util_percent));
    BOOST_TEST((a.gpus[g].mem_used_bytes == b.gpus[g].mem_used_bytes));
    BOOST_TEST((a.gpus[g].mem_total_bytes == b.gpus[g].mem_total_bytes));
    BOOST_TEST((a.gpus[g].power_watts == b.gpus[g].power_watts));
  }
}

void check_equal(const JobTelemetry& a, const JobTelemetry& b) {
  BOOST_TEST(a.job_id == b.job_id);
  BOOST_TEST(a.written_at_unix_ms == b.written_at_unix_ms);
  BOOST_TEST(a.complete == b.complete);
  BOOST_TEST(a.straggler_threshold == b.straggler_threshold);
  check_equal(a.totals, b.totals);
  BOOST_TEST_REQUIRE(a.ranks.size() == b.ranks.size());
  for (std::size_t i = 0; i < a.ranks.size(); ++i) {
    BOOST_TEST(a.ranks[i].rank == b.ranks[i].rank);
    BOOST_TEST(a.ranks[i].host == b.ranks[i].host);
    BOOST_TEST(a.ranks[i].samples_dropped == b.ranks[i].samples_dropped);
    check_equal(a.ranks[i].summary, b.ranks[i].summary);
    BOOST_TEST_REQUIRE(a.ranks[i].samples.size() == b.ranks[i].samples.size());
    for (std::size_t k = 0; k < a.ranks[i].samples.size(); ++k) check_equal(a.ranks[i].samples[k], b.ranks[i].samples[k]);
  }
  BOOST_TEST_REQUIRE(a.stragglers.size() == b.stragglers.size());
  for (std::size_t i = 0; i < a.stragglers.size(); ++i) {
    BOOST_TEST(a.stragglers[i].rank == b.stragglers[i].rank);
    BOOST_TEST(a.stragglers[i].own_ms_per_step == b.stragglers[i].own_ms_per_step);
    BOOST_TEST(a.stragglers[i].ratio == b.stragglers[i].ratio);
  }
}

// The error read_job_file gives for PATH (fails the test when it reads fine).
JobFileError read_error(const fs::path& path) {
  try {
    read_job_file(path);
  } catch (const JobFileError& e) {
    return e;
  }
  BOOST_FAIL("read_job_file(" << path << ") did not throw");
  throw std::logic_error("unreachable");
}

}  // namespace

BOOST_AUTO_TEST_CASE(write_then_read_gives_the_same_job) {
  const JobTelemetry job = sample_job(true);
  BOOST_TEST_REQUIRE(job.stragglers.size() == 1u);  // rank 2: 19 ms own time per step, the others 12
  const fs::path p = scratch() / job_file_name(job.job_id);
  BOOST_TEST(p.filename() == "job-4242.h5");
  write_job_file(p, job);
  check_equal(job, read_job_file(p));

  // Rewriting (a checkpoint after the final, as a restart would) replaces it atomically and
  // leaves no temporary file behind.
  const JobTelemetry ckpt = sample_job(false);
  write_job_file(p, ckpt);
  const JobTelemetry back = read_job_file(p);
  BOOST_TEST(!back.complete);
  check_equal(ckpt, back);
  int files = 0;
  for (const auto& e : fs::directory_iterator(scratch()))
    if (e.path().filename().string().find("4242") != std::string::npos) ++files;
  BOOST_TEST(files == 1);
}

BOOST_AUTO_TEST_CASE(job_file_names_are_safe) {
  BOOST_TEST(job_file_name("123_4") == "job-123_4.h5");
  BOOST_TEST(job_file_name("../etc/x y") == "job-_._etc_x_y.h5");
  BOOST_TEST(job_file_name("") == "job-unknown.h5");
}

BOOST_AUTO_TEST_CASE(a_truncated_file_names_the_file) {
  const fs::path p = scratch() / "truncated.h5";
  write_job_file(p, sample_job(true));
  fs::resize_file(p, fs::file_size(p) / 2);
  const JobFileError e = read_error(p);
  BOOST_TEST(e.file() == p.string());
  BOOST_TEST(std::string(e.what()).find(p.string()) != std::string::npos);
  BOOST_TEST_MESSAGE(e.what());
}

void damage(const fs::path& p, std::uintmax_t at, std::size_t n) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(at));
  const std::string junk(n, '\x5a');
  f.write(junk.data(), std::streamsize(junk.size()));
  BOOST_TEST_REQUIRE(f.good());
}

BOOST_AUTO_TEST_CASE(damaged_bytes_give_an_error_never_wrong_data) {
  // Checksummed metadata (v1.10 format) and Fletcher-32 on every series: a run of damaged
  // bytes anywhere past the superblock gives an error, or (in unused space) the same job.
  const JobTelemetry job = sample_job(true);
  const fs::path good = scratch() / "good.h5";
  write_job_file(good, job);
  const auto size = fs::file_size(good);
  int detected = 0;
  for (int k = 1; k < 32; ++k) {
    const fs::path p = scratch() / ("damaged-" + std::to_string(k) + ".h5");
    fs::copy_file(good, p, fs::copy_options::overwrite_existing);
    damage(p, size * std::uintmax_t(k) / 32, 8);
    try {
      check_equal(job, read_job_file(p));
    } catch (const JobFileError& e) {
      BOOST_TEST(e.file() == p.string());
      ++detected;
    }
  }
  BOOST_TEST_MESSAGE(detected << " of 31 damaged copies gave an error, the others read unchanged");
  BOOST_TEST(detected >= 16);  // most of the file is metadata and data, not slack

  // Damage inside a data chunk is caught by its checksum and named.
  const fs::path p = scratch() / "damaged-chunk.h5";
  fs::copy_file(good, p, fs::copy_options::overwrite_existing);
  haddr_t addr = 0;
  hsize_t bytes = 0;
  {
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/ranks/0/series/rss_bytes", H5P_DEFAULT);
    BOOST_TEST_REQUIRE(d >= 0);
    hsize_t offset[1] = {0};
    unsigned mask = 0;
    const hid_t sp = H5Dget_space(d);
    const herr_t got = H5Dget_chunk_info(d, sp, 0, offset, &mask, &addr, &bytes);
    H5Sclose(sp), H5Dclose(d), H5Fclose(f);
    BOOST_TEST_REQUIRE(got >= 0);
  }
  damage(p, addr + bytes / 2, 1);
  const JobFileError e = read_error(p);
  BOOST_TEST(e.object() == "/ranks/0/series/rss_bytes");
  BOOST_TEST_MESSAGE(e.what());
}

// Writes a job file NAME and lets EDIT change it through HDF5 (file opened read-write).
template <class Edit>
fs::path edited_job_file(const std::string& name, Edit&& edit) {
  const fs::path p = scratch() / name;
  write_job_file(p, sample_job(true));
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  BOOST_TEST_REQUIRE(f >= 0);
  edit(f);
  BOOST_TEST_REQUIRE(H5Fclose(f) >= 0);
  return p;
}

BOOST_AUTO_TEST_CASE(a_missing_attribute_is_named) {
  const fs::path p = edited_job_file("noattr.h5", [](hid_t f) {
    BOOST_TEST(H5Adelete_by_name(f, "/ranks/1/totals", "steps.time_p95_ms", H5P_DEFAULT) >= 0);
    BOOST_TEST(H5Ldelete(f, "/ranks/2/series/rss_bytes", H5P_DEFAULT) >= 0);
  });
  const JobFileError e = read_error(p);
  BOOST_TEST(e.object() == "/ranks/1/totals@steps.time_p95_ms");
  BOOST_TEST(std::string(e.what()).find("missing attribute") != std::string::npos);
  BOOST_TEST_MESSAGE(e.what());
}

BOOST_AUTO_TEST_CASE(a_dataset_of_the_wrong_length_is_named) {
  const fs::path p = edited_job_file("short.h5", [](hid_t f) {
    BOOST_TEST(H5Ldelete(f, "/ranks/0/series/cpu_sys_s", H5P_DEFAULT) >= 0);
    const hsize_t n = 2;
    const hid_t sp = H5Screate_simple(1, &n, nullptr);
    const hid_t d = H5Dcreate2(f, "/ranks/0/series/cpu_sys_s", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    BOOST_TEST(d >= 0);
    H5Dclose(d), H5Sclose(sp);
  });
  const JobFileError e = read_error(p);
  BOOST_TEST(e.object() == "/ranks/0/series/cpu_sys_s");
  BOOST_TEST_MESSAGE(e.what());
}

BOOST_AUTO_TEST_CASE(foreign_and_missing_files_are_named) {
  const fs::path text = scratch() / "text.h5";
  std::ofstream(text) << "not hdf5\n";
  BOOST_TEST(read_error(text).file() == text.string());
  const fs::path none = scratch() / "none.h5";
  BOOST_TEST(read_error(none).file() == none.string());
}

BOOST_AUTO_TEST_CASE(an_unwritable_place_gives_an_error_naming_it) {
  const fs::path p = scratch() / "no-such-dir" / "job-1.h5";
  try {
    write_job_file(p, sample_job(true));
    BOOST_ERROR("write_job_file into a missing directory succeeded");
  } catch (const JobFileError& e) {
    BOOST_TEST(e.file() == p.string());
    BOOST_TEST_MESSAGE(e.what());
  }
  BOOST_TEST(!fs::exists(p.parent_path()));
}

// --- hostile files (issue 16, item 6): a read allocates what the file can hold, no more ------

namespace {
// read_job_file(P) in a child with 512 MiB of address space to spare: "refused: OBJECT: WHAT"
// for a JobFileError, "read" when it read the file; status 3 when it ran out of memory.
sluice::monitor::test::ChildResult bounded_read(const fs::path& p) {
  return sluice::monitor::test::run_bounded(std::uint64_t(512) << 20, [p] {
    try {
      (void)read_job_file(p);
      return std::string("read");
    } catch (const JobFileError& e) {
      return "refused: " + e.object() + ": " + e.what();
    }
  });
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_dataset_declaring_2_27_rows_is_refused_before_anything_is_allocated) {
  // The file: a few KB on disk, 2^27 rows declared (1 GiB per column, 15.7 GB RSS).
  const fs::path p = scratch() / "huge-rows.h5";
  sluice::monitor::test::make_huge_dataset_file(p, "47", hsize_t(1) << 27);
  BOOST_TEST_MESSAGE(p << ": " << fs::file_size(p) << " bytes");
  BOOST_TEST(fs::file_size(p) < 200000u);
  const auto r = bounded_read(p);
  BOOST_TEST_MESSAGE("child status " << r.status << ": " << r.text);
  BOOST_TEST(r.status == 0, "the read ran out of memory or crashed: " << r.text);
  BOOST_TEST(r.text.rfind("refused: /ranks/0/series/t_s: ", 0) == 0u, r.text);
  BOOST_TEST(r.text.find(p.string()) != std::string::npos, r.text);         // names the file
  BOOST_TEST(r.text.find("134217728") != std::string::npos, r.text);        // and what it declares
}

BOOST_AUTO_TEST_CASE(a_dataset_far_larger_than_its_stored_bytes_is_refused) {
  // 2^24 rows (128 MiB: under the per-dataset maximum) stored in one compressed chunk.
  const fs::path p = scratch() / "huge-ratio.h5";
  sluice::monitor::test::make_huge_dataset_file(p, "48", hsize_t(1) << 24);
  const auto r = bounded_read(p);
  BOOST_TEST_MESSAGE("child status " << r.status << ": " << r.text);
  BOOST_TEST(r.status == 0, "the read ran out of memory or crashed: " << r.text);
  BOOST_TEST(r.text.rfind("refused: /ranks/0/series/t_s: ", 0) == 0u, r.text);
  BOOST_TEST(r.text.find(p.string()) != std::string::npos, r.text);
  BOOST_TEST(r.text.find("stores") != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(an_attribute_of_many_values_or_a_huge_string_is_refused) {
  // nranks as an array of 1000: read into one uint32 it would overrun the reader's stack.
  const fs::path arr = edited_job_file("array-attr.h5", [](hid_t f) {
    BOOST_TEST(H5Adelete_by_name(f, "/", "nranks", H5P_DEFAULT) >= 0);
    const hsize_t n = 1000;
    const hid_t sp = H5Screate_simple(1, &n, nullptr);
    const hid_t a = H5Acreate2(f, "nranks", H5T_STD_U32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    const std::vector<std::uint32_t> v(n, 3);
    BOOST_TEST(H5Awrite(a, H5T_NATIVE_UINT32, v.data()) >= 0);
    H5Aclose(a), H5Sclose(sp);
  });
  auto r = bounded_read(arr);
  BOOST_TEST_MESSAGE("child status " << r.status << ": " << r.text);
  BOOST_TEST(r.status == 0, "the read crashed: " << r.text);
  BOOST_TEST(r.text.rfind("refused: /@nranks: ", 0) == 0u, r.text);
  BOOST_TEST(r.text.find(arr.string()) != std::string::npos, r.text);

  // A host name of 1 MiB.
  const fs::path big = edited_job_file("huge-string.h5", [](hid_t f) {
    BOOST_TEST(H5Adelete_by_name(f, "/ranks/0", "host", H5P_DEFAULT) >= 0);
    const std::string host(std::size_t(1) << 20, 'h');
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, host.size());
    const hid_t sp = H5Screate(H5S_SCALAR);
    const hid_t g = H5Gopen2(f, "/ranks/0", H5P_DEFAULT);
    const hid_t a = H5Acreate2(g, "host", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    BOOST_TEST_REQUIRE(a >= 0);
    BOOST_TEST(H5Awrite(a, t, host.data()) >= 0);
    H5Aclose(a), H5Gclose(g), H5Sclose(sp), H5Tclose(t);
  });
  r = bounded_read(big);
  BOOST_TEST_MESSAGE("child status " << r.status << ": " << r.text);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.text.rfind("refused: /ranks/0@host: ", 0) == 0u, r.text);
  BOOST_TEST(r.text.find(big.string()) != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(a_link_in_place_of_a_job_file_is_not_followed) {
  const fs::path target = scratch() / "link-target.h5";
  write_job_file(target, sample_job(true));
  const fs::path link = scratch() / "job-link.h5";
  fs::remove(link);
  fs::create_symlink(target, link);
  const JobFileError e = read_error(link);
  BOOST_TEST(e.file() == link.string());
  BOOST_TEST(std::string(e.what()).find("link") != std::string::npos, e.what());
}

BOOST_AUTO_TEST_CASE(per_rank_percentiles_shares_and_busbw) {
  // Rank 0: steps of 1..100 ms (each 1 ms data wait, 2 ms allreduce of 1 MiB among 4 ranks).
  std::vector<std::uint64_t> steps;
  for (int i = 1; i <= 100; ++i) steps.push_back(std::uint64_t(i) * kMs);
  std::vector<RankInput> in(2);
  in[0].rank = 0, in[0].snapshot = synth(steps, 1 * kMs / 2, 1 * kMs / 4);
  in[1].rank = 1, in[1].snapshot = synth(repeat(10 * kMs, 100), 5 * kMs, 2 * kMs);
  const JobTelemetry job = make_job_telemetry("p", std::move(in), true);
  const Summary& r0 = job.ranks[0].summary;
  const double tol = HistogramLayout::kRelativeError;
  BOOST_TEST(std::abs(r0.steps.time_p50_ms - 50) <= 50 * tol);  // nearest rank: ceil(0.5 x 100) = 50th
  BOOST_TEST(std::abs(r0.steps.time_p95_ms - 95) <= 95 * tol);
  BOOST_TEST(r0.steps.time_max_ms == 100.0);  // exact
  BOOST_TEST(std::abs(r0.steps.data_wait_fraction - 50.0 / 5050) < 1e-12);
  const Summary& r1 = job.ranks[1].summary;
  BOOST_TEST(r1.steps.data_wait_fraction == 0.5);
  BOOST_TEST(r1.steps.allreduce_fraction == 0.2);
  // 1 MiB in 2 ms: algbw 0.524 GB/s, busbw x 2(4-1)/4 = 1.5.
  BOOST_TEST(std::abs(r1.allreduce.algbw_gbps - 1048576 / 2e-3 / 1e9) < 1e-9);
  BOOST_TEST(std::abs(r1.allreduce.busbw_gbps - 1.5 * 1048576 / 2e-3 / 1e9) < 1e-9);
  // Totals: both ranks merged.
  BOOST_TEST(job.totals.steps.count == 200u);
  BOOST_TEST(std::abs(job.totals.steps.total_s - (5.050 + 1.0)) < 1e-9);
  BOOST_TEST(std::abs(job.totals.steps.data_wait_fraction - (0.05 + 0.5) / 6.05) < 1e-12);
  BOOST_TEST(job.totals.steps.time_max_ms == 100.0);
}

BOOST_AUTO_TEST_CASE(stragglers_are_the_ranks_well_above_the_median_own_time) {
  // Synchronous allreduce makes every step equally long (20 ms); a slow rank shows as less
  // allreduce wait: own time (step - allreduce) is what tells it.
  std::vector<RankInput> in;
  const std::uint64_t own[] = {10, 10, 10, 15, 10, 12, 10, 13};  // ms; median 10: rank 3 1.5x, 7 1.3x, 5 1.2x
  for (std::uint32_t r = 0; r < 8; ++r) {
    RankInput x;
    x.rank = r;
    x.snapshot = synth(repeat(20 * kMs, 50), kMs / 2, (20 - own[r]) * kMs);
    in.push_back(std::move(x));
  }
  in.push_back(RankInput{8, "idle", {}, {}, 0});  // no steps: not counted, never a straggler
  const JobTelemetry job = make_job_telemetry("s", in, true);
  BOOST_TEST_REQUIRE(job.stragglers.size() == 3u);  // slowest first
  BOOST_TEST(job.stragglers[0].rank == 3u);
  BOOST_TEST(std::abs(job.stragglers[0].ratio - 1.5) < 1e-9);
  BOOST_TEST(std::abs(job.stragglers[0].own_ms_per_step - 15) < 1e-9);
  BOOST_TEST(job.stragglers[1].rank == 7u);
  BOOST_TEST(job.stragglers[2].rank == 5u);
  BOOST_TEST(std::abs(job.stragglers[2].ratio - 1.2) < 1e-9);
  // Every rank's step time percentiles are the same: the step time alone would find nobody.
  for (std::size_t r = 0; r < 8; ++r)
    BOOST_TEST(job.ranks[r].summary.steps.time_p95_ms == job.ranks[0].summary.steps.time_p95_ms);

  const JobTelemetry top1 = make_job_telemetry("s", in, true, StragglerOptions{1.10, 1});
  BOOST_TEST_REQUIRE(top1.stragglers.size() == 1u);
  BOOST_TEST(top1.stragglers[0].rank == 3u);
  BOOST_TEST(make_job_telemetry("s", in, true, StragglerOptions{1.6, 8}).stragglers.empty());
}

BOOST_AUTO_TEST_CASE(the_gather_format_round_trips_and_thins_the_series) {
  RankInput r;
  r.rank = 7, r.host = "gpu-node-12";
  r.snapshot = synth({3 * kMs, 5 * kMs, 900 * kMs}, kMs, kMs);
  r.snapshot.io_ops = 3, r.snapshot.io_bytes = 12345, r.snapshot.io_ns = 999;
  r.snapshot.io_time.record(999);
  for (int i = 0; i < 100; ++i) r.samples.push_back(sample(i, i < 50 ? 2 : 0));
  r.samples_dropped = 4;

  const auto bytes = detail::encode_rank(r, std::size_t(1) << 30);
  const RankInput back = detail::decode_rank(bytes, 7);
  BOOST_TEST(back.rank == 7u);
  BOOST_TEST(back.host == r.host);
  BOOST_TEST(back.samples_dropped == 4u);
  check_equal(r.snapshot.summary(), back.snapshot.summary());
  BOOST_TEST(back.snapshot.step_time.buckets() == r.snapshot.step_time.buckets());
  BOOST_TEST(back.snapshot.step_time.min() == 3 * kMs);
  BOOST_TEST(back.snapshot.io_bytes == 12345u);
  BOOST_TEST_REQUIRE(back.samples.size() == 100u);
  for (std::size_t i = 0; i < 100; ++i) check_equal(r.samples[i], back.samples[i]);

  // A budget for about a quarter of the series: thinned, the last sample kept, drops counted.
  const std::size_t budget = bytes.size() / 4;
  const auto thin = detail::encode_rank(r, budget);
  BOOST_TEST(thin.size() <= budget);
  const RankInput t = detail::decode_rank(thin, 7);
  BOOST_TEST(t.samples.size() > 10u);
  BOOST_TEST(t.samples.size() < 100u);
  BOOST_TEST(t.samples.back().t_s == r.samples.back().t_s);
  BOOST_TEST(t.samples_dropped == 4 + 100 - t.samples.size());
  BOOST_TEST(t.snapshot.steps == 3u);

  // Damaged: truncated or trailing bytes name the rank.
  std::vector<std::byte> cut(bytes.begin(), bytes.end() - 3);
  BOOST_CHECK_EXCEPTION(detail::decode_rank(cut, 7), sluice::Error, [](const sluice::Error& e) {
    return std::string(e.what()).find("rank 7") != std::string::npos;
  });
  std::vector<std::byte> extra = bytes;
  extra.push_back(std::byte{0});
  BOOST_CHECK_THROW(detail::decode_rank(extra, 7), sluice::Error);
}
