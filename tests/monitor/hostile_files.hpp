// Hostile job files for the report tests (issue 16, items 6 and 8): a file in the shared
// telemetry directory is written by whoever wants to, and the admin's reports read them all.
//
//   make_huge_dataset_file  a real job file whose /ranks/0/series/t_s is replaced by a chunked
//                           dataset declaring ROWS rows of which one chunk is written: a few KB
//                           on disk, ROWS x 8 bytes (and ROWS Samples) for a reader that
//                           believes the header.
//   run_bounded             runs a function in a forked child under RLIMIT_AS (what it has
//                           mapped now plus HEADROOM), so a read that allocates what the file
//                           declares fails there (std::bad_alloc) instead of taking the machine.
#pragma once

#include <boost/test/unit_test.hpp>

#include <sluice/monitor/job_file.hpp>

#include <hdf5.h>
#include <csignal>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <string>
#include <vector>

namespace sluice::monitor::test {

// Replaces DATASET (a float64 column) of the job file at PATH by a chunked, deflated one of
// ROWS rows with only its first chunk (4096 rows) written.
inline void plant_huge_column(const std::filesystem::path& path, const std::string& dataset, hsize_t rows) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  BOOST_TEST_REQUIRE(f >= 0);
  BOOST_TEST_REQUIRE(H5Ldelete(f, dataset.c_str(), H5P_DEFAULT) >= 0);
  const hsize_t chunk = 4096;
  // Unlimited: a small chunk index (a fixed-size extent would get one entry per chunk).
  const hsize_t maxrows = H5S_UNLIMITED;
  const hid_t space = H5Screate_simple(1, &rows, &maxrows);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  H5Pset_shuffle(dcpl);
  H5Pset_deflate(dcpl, 4);
  const hid_t d = H5Dcreate2(f, dataset.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  BOOST_TEST_REQUIRE(d >= 0);
  std::vector<double> first(chunk);
  for (std::size_t i = 0; i < first.size(); ++i) first[i] = 10.0 * double(i);
  const hsize_t start = 0;
  const hid_t mem = H5Screate_simple(1, &chunk, nullptr);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &chunk, nullptr);
  BOOST_TEST_REQUIRE(H5Dwrite(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, first.data()) >= 0);
  H5Sclose(mem), H5Dclose(d), H5Pclose(dcpl), H5Sclose(space);
  BOOST_TEST_REQUIRE(H5Fclose(f) >= 0);
}

// A one-rank job file (a few samples) for JOB_ID at PATH.
inline void write_small_job_file(const std::filesystem::path& path, const std::string& job_id) {
  RankInput r;
  r.rank = 0;
  r.host = "n1";
  r.snapshot.threads = 1;
  for (int i = 0; i < 4; ++i) {
    Sample s;
    s.t_s = 10.0 * i;
    s.unix_ms = 1763942400000 + 10000 * i;
    GpuSample g;
    g.index = 0;
    g.util_percent = 50;
    s.gpus.push_back(g);
    r.samples.push_back(s);
  }
  std::vector<RankInput> ranks;
  ranks.push_back(std::move(r));
  JobTelemetry job = make_job_telemetry(job_id, std::move(ranks), true);
  job.written_at_unix_ms = 1763942430000;
  write_job_file(path, job);
}

// A job file for JOB_ID at PATH whose t_s column declares ROWS rows.
inline void make_huge_dataset_file(const std::filesystem::path& path, const std::string& job_id, hsize_t rows) {
  write_small_job_file(path, job_id);
  plant_huge_column(path, "/ranks/0/series/t_s", rows);
}

struct ChildResult {
  int status = -1;   // exit status; 128 + signal when killed (e.g. a smashed stack)
  std::string text;  // what the function returned, or the exception's what()
};

inline std::uint64_t mapped_bytes_now() {
  std::ifstream in("/proc/self/status");
  std::string key;
  std::uint64_t kb = 0;
  while (in >> key)
    if (key == "VmSize:") return (in >> kb) ? kb * 1024 : 0;
  return 0;
}

// Runs FN in a forked child limited to its current address space plus HEADROOM bytes. Status 0:
// FN returned (its text); 3: std::bad_alloc (it allocated what a file declared); 4: another
// exception (its what()).
inline ChildResult run_bounded(std::uint64_t headroom, const std::function<std::string()>& fn) {
  int p[2];
  BOOST_TEST_REQUIRE(::pipe(p) == 0);
  const pid_t pid = ::fork();
  BOOST_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    // The test framework's handlers would turn a crash into a test run continuing in the child.
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
    const rlimit lim{mapped_bytes_now() + headroom, mapped_bytes_now() + headroom};
    int code = 0;
    std::string text;
    if (::setrlimit(RLIMIT_AS, &lim) != 0) {
      code = 5, text = "setrlimit failed";
    } else {
      try {
        text = fn();
      } catch (const std::bad_alloc&) {
        code = 3, text = "std::bad_alloc";
      } catch (const std::exception& e) {
        code = 4, text = e.what();
      }
    }
    for (std::size_t off = 0; off < text.size();) {
      const ssize_t n = ::write(p[1], text.data() + off, text.size() - off);
      if (n <= 0) break;
      off += std::size_t(n);
    }
    ::_exit(code);  // no atexit handlers: the test framework belongs to the parent
  }
  ::close(p[1]);
  ChildResult r;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) r.text.append(buf, std::size_t(n));
  ::close(p[0]);
  int w = 0;
  ::waitpid(pid, &w, 0);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
  return r;
}

// FILE's owner becomes UID (the tests run as root: another user's planted file). False when
// not root: the caller skips.
inline bool chown_to(const std::filesystem::path& file, uid_t uid) {
  return ::geteuid() == 0 && ::chown(file.c_str(), uid, uid) == 0;
}

}  // namespace sluice::monitor::test
