// The reader on real HDF5 files (written here): alignment, coverage through the reader,
// determinism, exact resume, layouts, staged copies, counters, and every bad-input case.
#define BOOST_TEST_MODULE reader_data
#include <boost/test/unit_test.hpp>

#include <sluice/reader.hpp>
#include <sluice/monitor/recorder.hpp>

#include "scratch_dir.hpp"
#include "reader/internal.hpp"  // IoPool
#include <sluice/staging/job_status.hpp>
#include <sluice/staging/manifest.hpp>

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

namespace fs = std::filesystem;
using namespace sluice::reader;

namespace {

fs::path scratch() { return sluice::reader::test::scratch_dir("sluice-reader-test"); }

// Writes dataset NAME (dims, type) from DATA; CHUNK rows per chunk (0: contiguous), GZIP level.
void write_ds(hid_t f, const char* name, hid_t type, std::vector<hsize_t> dims, const void* data, hsize_t chunk = 0,
              unsigned gzip = 0) {
  hid_t sp = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunk) {
    auto c = dims;
    c[0] = std::min(chunk, dims[0]);
    H5Pset_chunk(pl, static_cast<int>(c.size()), c.data());
    if (gzip) H5Pset_deflate(pl, gzip);
  }
  hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  BOOST_REQUIRE(d >= 0);
  if (data) BOOST_REQUIRE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(d);
  H5Pclose(pl);
  H5Sclose(sp);
}

// A file of N samples whose content says which global sample it is: x = i64 [N,2] {id, -id},
// y = f32 [N] id/2, z = u8 [N,3,2] (id+k)%251. FIRST: the global id of local sample 0.
std::string make_file(const std::string& name, std::uint64_t n, std::uint64_t first, hsize_t chunk = 0, unsigned gzip = 0) {
  const std::string path = (scratch() / name).string();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  BOOST_REQUIRE(f >= 0);
  std::vector<std::int64_t> x(2 * n);
  std::vector<float> y(n);
  std::vector<std::uint8_t> z(6 * n);
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto id = static_cast<std::int64_t>(first + i);
    x[2 * i] = id;
    x[2 * i + 1] = -id;
    y[i] = static_cast<float>(id) / 2;
    for (int k = 0; k < 6; ++k) z[6 * i + k] = static_cast<std::uint8_t>((id + k) % 251);
  }
  write_ds(f, "x", H5T_NATIVE_INT64, {n, 2}, x.data(), chunk, gzip);
  write_ds(f, "y", H5T_NATIVE_FLOAT, {n}, y.data(), chunk, gzip);
  write_ds(f, "z", H5T_NATIVE_UINT8, {n, 3, 2}, z.data(), chunk, gzip);
  H5Fclose(f);
  return path;
}

// Checks every sample of B against its id, for datasets {x, y, z} (or a prefix of them).
void check_batch(const Batch& b, std::size_t ndatasets = 3) {
  auto x = b.as<std::int64_t>(0);
  for (std::size_t i = 0; i < b.size(); ++i) {
    const auto id = static_cast<std::int64_t>(b.indices()[i]);
    BOOST_REQUIRE_EQUAL(x[2 * i], id);
    BOOST_REQUIRE_EQUAL(x[2 * i + 1], -id);
    if (ndatasets > 1) BOOST_REQUIRE_EQUAL(b.as<float>(1)[i], static_cast<float>(id) / 2);
    if (ndatasets > 2)
      for (int k = 0; k < 6; ++k) BOOST_REQUIRE_EQUAL(static_cast<int>(b.as<std::uint8_t>(2)[6 * i + k]), (id + k) % 251);
    if (i > 0) BOOST_REQUIRE(b.indices()[i - 1] <= b.indices()[i]);  // ascending within a batch
  }
}

ReaderOptions opts(std::vector<std::string> files, std::size_t batch = 4) {
  ReaderOptions o;
  o.files = std::move(files);
  o.datasets = {"x", "y", "z"};
  o.batch_size = batch;
  o.seed = 99;
  o.use_staged = false;
  return o;
}

template <typename F>
void expect_data_error(F&& f, const std::string& file_part, const std::string& dataset, const std::string& what_part) {
  try {
    f();
    BOOST_ERROR("no DataError (expected: " << what_part << ")");
  } catch (const DataError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("error: " << msg);
    BOOST_TEST(msg.find(what_part) != std::string::npos, "message '" << msg << "' lacks '" << what_part << "'");
    BOOST_TEST(e.file().find(file_part) != std::string::npos, "file '" << e.file() << "' lacks '" << file_part << "'");
    BOOST_TEST(e.dataset() == dataset);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(types_and_shapes_are_reported) {
  const auto f = make_file("types.h5", 10, 0);
  Reader r(opts({f}));
  BOOST_TEST(r.samples() == 10u);
  BOOST_REQUIRE_EQUAL(r.datasets().size(), 3u);
  BOOST_TEST(r.datasets()[0].type.name() == "i64");
  BOOST_TEST((r.datasets()[0].sample_shape == std::vector<std::uint64_t>{2}));
  BOOST_TEST(r.datasets()[1].type.name() == "f32");
  BOOST_TEST(r.datasets()[1].sample_shape.empty());
  BOOST_TEST(r.datasets()[2].type.name() == "u8");
  BOOST_TEST((r.datasets()[2].sample_shape == std::vector<std::uint64_t>{3, 2}));
  BOOST_TEST(r.datasets()[2].sample_bytes == 6u);
  auto b = r.next();
  BOOST_CHECK_THROW((void)b.as<float>(0), sluice::InvalidArgument);  // i64 is not a 4-byte type
}

// Coverage through the whole reader (ranks simulated by one reader per rank), over files of
// several layouts, including N not divisible by ranks x batch, and data/id alignment.
BOOST_AUTO_TEST_CASE(exactly_once_through_the_reader) {
  struct Layout {
    const char* tag;
    hsize_t chunk;
    unsigned gzip;
    bool direct;       // pread path (unfiltered) or H5Dread
    unsigned threads;  // io_threads
  };
  for (const Layout& lay : {Layout{"contig", 0, 0, true, 2}, Layout{"chunk", 8, 0, true, 1}, Layout{"gzip", 5, 1, true, 2},
                            Layout{"contig-h5", 0, 0, false, 2}, Layout{"chunk-h5", 8, 0, false, 2}}) {
    // Three files of unequal sizes: 23 + 1 + 13 = 37 samples.
    const std::vector<std::string> files{make_file(std::string(lay.tag) + "-a.h5", 23, 0, lay.chunk, lay.gzip),
                                         make_file(std::string(lay.tag) + "-b.h5", 1, 23, lay.chunk, lay.gzip),
                                         make_file(std::string(lay.tag) + "-c.h5", 13, 24, lay.chunk, lay.gzip)};
    for (int ranks : {1, 2, 3, 4})
      for (std::size_t batch : {1u, 4u, 5u})
        for (Remainder rem : {Remainder::Pad, Remainder::DropLast}) {
          const std::uint64_t n = 37;
          std::map<std::uint64_t, std::vector<int>> seen;  // epoch -> count per id
          std::uint64_t steps = 0;
          for (int r = 0; r < ranks; ++r) {
            auto o = opts(files, batch);
            o.rank = r;
            o.ranks = ranks;
            o.remainder = rem;
            o.prefetch_depth = 2;
            o.direct_reads = lay.direct;
            o.io_threads = lay.threads;
            o.advise_ahead = r % 2;  // readahead must not change what is read
            Reader rd(o);
            steps = rd.steps_per_epoch();
            for (std::uint64_t k = 0; k < 2 * steps; ++k) {
              auto b = rd.next();
              BOOST_REQUIRE_EQUAL(b.size(), batch);
              BOOST_REQUIRE_EQUAL(b.epoch(), k / steps);
              BOOST_REQUIRE_EQUAL(b.step(), k % steps);
              check_batch(b);
              auto& v = seen[b.epoch()];
              v.resize(n);
              for (std::size_t i = 0; i < b.size(); ++i)
                if (!b.padded()[i]) ++v[b.indices()[i]];
            }
          }
          for (auto& [e, v] : seen) {
            std::uint64_t total = 0;
            for (int c : v) {
              BOOST_REQUIRE(c <= 1);
              total += static_cast<std::uint64_t>(c);
            }
            const std::uint64_t per_step = static_cast<std::uint64_t>(ranks) * batch;
            BOOST_REQUIRE_EQUAL(total, rem == Remainder::Pad ? n : (n / per_step) * per_step);
          }
        }
  }
}

BOOST_AUTO_TEST_CASE(determinism_and_epochs_differ) {
  const auto f = make_file("det.h5", 50, 0, 7);
  auto ids = [&](std::uint64_t seed) {
    auto o = opts({f}, 5);
    o.seed = seed;
    Reader r(o);
    std::vector<std::uint64_t> all;
    for (int k = 0; k < 20; ++k) {
      auto b = r.next();
      all.insert(all.end(), b.indices().begin(), b.indices().end());
    }
    return all;
  };
  const auto a = ids(1), b = ids(1), c = ids(2);
  BOOST_TEST(a == b);
  BOOST_TEST(a != c);
  BOOST_TEST(std::vector<std::uint64_t>(a.begin(), a.begin() + 50) != std::vector<std::uint64_t>(a.begin() + 50, a.end()));
  // start_epoch = 2 begins with epoch 2's first batch (10 steps per epoch).
  auto o = opts({f}, 5);
  o.seed = 1;
  o.start_epoch = 2;
  Reader r(o);
  auto first = r.next();
  BOOST_TEST(first.epoch() == 2u);
  const auto order = sharding::epoch_order(50, 1, 2);
  std::vector<std::uint64_t> want(order.begin(), order.begin() + 5);
  std::sort(want.begin(), want.end());
  BOOST_TEST(std::vector<std::uint64_t>(first.indices().begin(), first.indices().end()) == want);
}

BOOST_AUTO_TEST_CASE(exact_resume) {
  const auto f = make_file("resume.h5", 30, 0, 4);
  auto o = opts({f}, 4);  // 8 steps per epoch with Pad
  o.ranks = 2;
  o.rank = 1;
  std::vector<std::vector<std::uint64_t>> reference;
  {
    Reader r(o);
    for (int k = 0; k < 20; ++k) {
      auto b = r.next();
      reference.emplace_back(b.indices().begin(), b.indices().end());
    }
  }
  for (int cut : {0, 3, 7, 8, 13}) {  // inside an epoch, at its last step, at an epoch boundary
    std::string saved;
    {
      Reader r(o);
      for (int k = 0; k < cut; ++k) (void)r.next();
      saved = r.state().to_string();
      (void)r.next();  // prefetched and consumed batches after the save do not matter
    }
    auto o2 = o;
    o2.seed = 12345;  // the state carries the seed
    Reader r2(o2);
    (void)r2.next();
    r2.restore(ReaderState::from_string(saved));
    for (int k = cut; k < 20; ++k) {
      auto b = r2.next();
      BOOST_REQUIRE(std::vector<std::uint64_t>(b.indices().begin(), b.indices().end()) == reference[static_cast<std::size_t>(k)]);
      check_batch(b);
    }
  }
  Reader r(o);
  auto s = r.state();
  s.samples = 31;
  BOOST_CHECK_THROW(r.restore(s), sluice::InvalidArgument);
  s = r.state();
  s.ranks = 3;
  BOOST_CHECK_THROW(r.restore(s), sluice::InvalidArgument);
  s = r.state();
  s.step = 8;
  BOOST_CHECK_THROW(r.restore(s), sluice::InvalidArgument);
}

BOOST_AUTO_TEST_CASE(pad_when_batch_exceeds_samples) {
  // 3 samples, 2 ranks x batch 4: one step, 5 pads, repeats within one batch.
  const auto f = make_file("tiny.h5", 3, 0);
  for (int r = 0; r < 2; ++r) {
    auto o = opts({f}, 4);
    o.ranks = 2;
    o.rank = r;
    Reader rd(o);
    BOOST_TEST(rd.steps_per_epoch() == 1u);
    auto b = rd.next();
    BOOST_TEST(b.size() == 4u);
    check_batch(b);
  }
  auto o = opts({f}, 4);
  o.ranks = 2;
  o.remainder = Remainder::DropLast;
  expect_data_error([&] { Reader rd(o); }, "tiny.h5", "x", "do not fill one step");
}

BOOST_AUTO_TEST_CASE(datasets_subset_and_order) {
  const auto f = make_file("subset.h5", 20, 0);
  auto o = opts({f}, 3);
  o.datasets = {"x"};
  Reader r(o);
  BOOST_TEST(r.datasets().size() == 1u);
  check_batch(r.next(), 1);
  o.datasets = {"z", "x"};
  Reader r2(o);
  auto b = r2.next();
  for (std::size_t i = 0; i < b.size(); ++i) BOOST_TEST(b.as<std::int64_t>(1)[2 * i] == static_cast<std::int64_t>(b.indices()[i]));
}

BOOST_AUTO_TEST_CASE(counters) {
  const auto f = make_file("count.h5", 40, 0, 0);
  Reader r(opts({f}, 8));
  for (int k = 0; k < 5; ++k) (void)r.next();
  const auto c = r.counters();
  BOOST_TEST(c.batches == 5u);
  // At least the 5 batches handed out were read: 8 samples x (16 + 4 + 6) bytes each.
  BOOST_TEST(c.bytes_read >= 5u * 8u * 26u);
  BOOST_TEST(c.bytes_read % (8u * 26u) == 0u);
  BOOST_TEST(c.read_seconds > 0.0);
  BOOST_TEST(c.stall_seconds >= c.last_stall_seconds);
}

// Telemetry without user code: the I/O thread's reads land in the default recorder as I/O
// (bytes and time), the caller's waits in next() as stalls. Reads are recorded together with the
// reader's own counters, so counters() taken before and after a snapshot bound its I/O figures.
BOOST_AUTO_TEST_CASE(telemetry_into_the_default_recorder) {
  const auto f = make_file("telemetry.h5", 40, 0, 0);
  auto& rec = sluice::monitor::default_recorder();
  rec.set_enabled(true);
  const auto s0 = rec.snapshot();
  auto o = opts({f}, 8);
  o.shuffle = false;
  Reader r(o);
  BOOST_REQUIRE_EQUAL(r.steps_per_epoch(), 5u);
  std::uint64_t epoch_bytes = 0;
  for (std::uint64_t k = 0; k < r.steps_per_epoch(); ++k) {  // one epoch
    auto b = r.next();
    check_batch(b);
    for (std::size_t d = 0; d < 3; ++d) epoch_bytes += b.data(d).size();
  }
  BOOST_TEST(epoch_bytes == 40u * 26u);  // 16 + 4 + 6 bytes per sample
  const auto c1 = r.counters();
  const auto s1 = rec.snapshot();
  const auto c2 = r.counters();
  const std::uint64_t io_bytes = s1.io_bytes - s0.io_bytes, io_ops = s1.io_ops - s0.io_ops;
  BOOST_TEST(io_bytes >= epoch_bytes);  // every sample of the epoch was read, and recorded
  BOOST_TEST(io_bytes >= c1.bytes_read);
  BOOST_TEST(io_bytes <= c2.bytes_read);
  BOOST_TEST(io_bytes % (8u * 26u) == 0u);  // whole batches
  BOOST_TEST(io_ops >= r.steps_per_epoch());  // one read per batch
  BOOST_TEST(io_ops == io_bytes / (8u * 26u));
  BOOST_TEST(s1.io_ns > s0.io_ns);
  // Stalls: at most one per next(), and no more time than the reader itself counted waiting.
  const std::uint64_t stalls = s1.stalls - s0.stalls;
  BOOST_TEST(stalls <= c1.batches);
  BOOST_TEST(double(s1.stall_ns - s0.stall_ns) <= c1.stall_seconds * 1e9 + 1e3);

  // Disabled: the reader records nothing.
  rec.set_enabled(false);
  const auto s2 = rec.snapshot();
  {
    auto o2 = opts({f}, 8);
    Reader r2(o2);
    for (int k = 0; k < 5; ++k) (void)r2.next();
  }
  const auto s3 = rec.snapshot();
  rec.set_enabled(true);
  BOOST_TEST(s3.io_ops == s2.io_ops);
  BOOST_TEST(s3.stalls == s2.stalls);
}

BOOST_AUTO_TEST_CASE(holding_every_buffer_throws_instead_of_hanging) {
  const auto f = make_file("lend.h5", 40, 0);
  auto o = opts({f}, 2);
  o.prefetch_depth = 1;  // 3 buffers
  Reader r(o);
  std::vector<Batch> held;
  for (int k = 0; k < 3; ++k) held.push_back(r.next());
  BOOST_CHECK_THROW((void)r.next(), sluice::Error);
  held.pop_back();
  auto b = r.next();  // a buffer came back
  check_batch(b);
  for (auto& h : held) check_batch(h);  // lent buffers were not overwritten
}

// --- bad input ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(missing_file) {
  const auto good = make_file("good.h5", 10, 0);
  expect_data_error([&] { Reader r(opts({good, (scratch() / "nope.h5").string()})); }, "nope.h5", "", "No such file");
}

BOOST_AUTO_TEST_CASE(missing_dataset) {
  const auto good = make_file("good2.h5", 10, 0);
  auto o = opts({good});
  o.datasets = {"x", "labels"};
  expect_data_error([&] { Reader r(o); }, "good2.h5", "labels", "no such dataset");
  o.datasets = {"x", "group/y"};
  expect_data_error([&] { Reader r(o); }, "good2.h5", "group/y", "no such dataset");
}

BOOST_AUTO_TEST_CASE(first_dimensions_disagree) {
  const std::string path = (scratch() / "disagree.h5").string();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::int64_t> x(20);
  std::vector<float> y(9);
  write_ds(f, "x", H5T_NATIVE_INT64, {10, 2}, x.data());
  write_ds(f, "y", H5T_NATIVE_FLOAT, {9}, y.data());
  H5Fclose(f);
  auto o = opts({path});
  o.datasets = {"x", "y"};
  expect_data_error([&] { Reader r(o); }, "disagree.h5", "y", "first dimensions disagree");
}

BOOST_AUTO_TEST_CASE(files_disagree_on_type_or_shape) {
  const auto a = make_file("shape-a.h5", 10, 0);
  const std::string path = (scratch() / "shape-b.h5").string();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::int64_t> x(30);
  write_ds(f, "x", H5T_NATIVE_INT64, {10, 3}, x.data());
  H5Fclose(f);
  auto o = opts({a, path});
  o.datasets = {"x"};
  expect_data_error([&] { Reader r(o); }, "shape-b.h5", "x", "same type and sample shape");
}

BOOST_AUTO_TEST_CASE(unsupported_type) {
  const std::string path = (scratch() / "strings.h5").string();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::int64_t> x(20);
  write_ds(f, "x", H5T_NATIVE_INT64, {10, 2}, x.data());
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 8);
  write_ds(f, "name", str, {10}, nullptr);
  H5Tclose(str);
  hid_t cmp = H5Tcreate(H5T_COMPOUND, 8);
  H5Tinsert(cmp, "a", 0, H5T_NATIVE_INT32);
  H5Tinsert(cmp, "b", 4, H5T_NATIVE_FLOAT);
  write_ds(f, "rec", cmp, {10}, nullptr);
  H5Tclose(cmp);
  hid_t scalar = H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(f, "scalar", H5T_NATIVE_INT32, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dclose(d);
  H5Sclose(scalar);
  H5Gclose(H5Gcreate2(f, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Fclose(f);
  auto o = opts({path});
  o.datasets = {"x", "name"};
  expect_data_error([&] { Reader r(o); }, "strings.h5", "name", "unsupported element type (string)");
  o.datasets = {"x", "rec"};
  expect_data_error([&] { Reader r(o); }, "strings.h5", "rec", "unsupported element type (compound)");
  o.datasets = {"scalar"};
  expect_data_error([&] { Reader r(o); }, "strings.h5", "scalar", "not an array");
  o.datasets = {"grp"};
  expect_data_error([&] { Reader r(o); }, "strings.h5", "grp", "not a dataset");
}

BOOST_AUTO_TEST_CASE(truncated_file) {
  for (hsize_t chunk : {hsize_t{0}, hsize_t{4}}) {
    const std::string name = "trunc" + std::to_string(chunk) + ".h5";
    const auto path = make_file(name, 200, 0, chunk);
    const auto size = fs::file_size(path);
    fs::resize_file(path, size - 700);
    expect_data_error([&] { Reader r(opts({path})); }, name, "", "truncated");
  }
}

BOOST_AUTO_TEST_CASE(not_hdf5_and_empty) {
  const std::string garbage = (scratch() / "garbage.h5").string();
  std::ofstream(garbage) << std::string(4096, 'g');
  expect_data_error([&] { Reader r(opts({garbage})); }, "garbage.h5", "", "not an HDF5 file");
  const std::string empty = (scratch() / "empty.h5").string();
  std::ofstream(empty).flush();
  expect_data_error([&] { Reader r(opts({empty})); }, "empty.h5", "", "not an HDF5 file");
  expect_data_error([&] { Reader r(opts({scratch().string()})); }, "sluice-reader-test", "", "not a regular file");
  expect_data_error([&] { Reader r(opts({})); }, "", "", "no files given");
}

BOOST_AUTO_TEST_CASE(zero_samples) {
  const auto path = make_file("zero.h5", 0, 0);
  expect_data_error([&] { Reader r(opts({path})); }, "zero.h5", "x", "no samples");
}

// A corrupt chunk cannot be found at open without reading everything: it must surface as a
// DataError from next() naming the file and dataset, never a crash or a short epoch.
BOOST_AUTO_TEST_CASE(corrupt_chunk_fails_the_batch) {
  const auto path = make_file("corrupt.h5", 64, 0, 8, 6);
  // Overwrite the third compressed chunk of x (found through HDF5's chunk index) with garbage.
  haddr_t addr = HADDR_UNDEF;
  hsize_t csize = 0;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "x", H5P_DEFAULT);
    hsize_t offset[2];
    unsigned mask = 0;
    hid_t sp = H5Dget_space(d);
    BOOST_REQUIRE(H5Dget_chunk_info(d, sp, 2, offset, &mask, &addr, &csize) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
  }
  BOOST_REQUIRE(addr != HADDR_UNDEF);
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(addr));
    const std::string junk(static_cast<std::size_t>(csize), '\xff');
    io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto o = opts({path}, 64);  // one batch covers every chunk
  o.datasets = {"y", "x"};
  Reader r(o);  // the open succeeds: chunks are not read at open
  try {
    auto b = r.next();
    BOOST_ERROR("a corrupt chunk was read without error");
  } catch (const DataError& e) {
    BOOST_TEST_MESSAGE("error: " << e.what());
    BOOST_TEST(e.file().find("corrupt.h5") != std::string::npos);
    BOOST_TEST(e.dataset() == "x");
  }
  BOOST_CHECK_THROW((void)r.next(), DataError);  // and it stays failed, no short epoch
}

BOOST_AUTO_TEST_CASE(bad_options) {
  const auto f = make_file("opts.h5", 10, 0);
  auto o = opts({f});
  o.batch_size = 0;
  BOOST_CHECK_THROW(Reader r(o), sluice::InvalidArgument);
  o = opts({f});
  o.rank = 2;
  o.ranks = 2;
  BOOST_CHECK_THROW(Reader r(o), sluice::InvalidArgument);
  o = opts({f});
  o.datasets = {"x", "x"};
  BOOST_CHECK_THROW(Reader r(o), DataError);
}

// --- staged data ----------------------------------------------------------------------------

namespace {
struct Env {
  std::vector<std::string> names;
  void set(const char* k, const std::string& v) {
    ::setenv(k, v.c_str(), 1);
    names.emplace_back(k);
  }
  ~Env() {
    for (auto& n : names) ::unsetenv(n.c_str());
  }
};

void write_manifest(const fs::path& dir, const std::map<std::string, std::pair<std::string, bool>>& files) {
  sluice::staging::Manifest m;
  for (const auto& [rel, src] : files) {
    sluice::staging::ManifestEntry e;
    e.source = src.first;
    e.size = 1;
    e.state = src.second ? sluice::staging::ManifestEntry::State::Staged : sluice::staging::ManifestEntry::State::Pending;
    m.files[rel] = e;
  }
  std::ofstream(dir / sluice::staging::kManifestName) << m.to_json();
}
}  // namespace

BOOST_AUTO_TEST_CASE(staged_copies_are_read) {
  // Sources: ids 0..9 and 10..19. The staged copy of the first holds ids 1000.. instead, so
  // reading it shows in the data.
  const auto src_a = make_file("src-a.h5", 10, 0);
  const auto src_b = make_file("src-b.h5", 10, 10);
  const fs::path bb = scratch() / "bb";
  fs::create_directories(bb / "data");
  const auto staged_tmp = make_file("staged-a.h5", 10, 1000);
  fs::rename(staged_tmp, bb / "data" / "a.h5");
  write_manifest(bb / "data", {{"a.h5", {src_a, true}}, {"b.h5", {src_b, false}}});  // b: pending (not there)

  Env env;
  env.set("SLUICE_BB", bb.string());
  auto o = opts({src_a, src_b}, 20);
  o.shuffle = false;
  o.use_staged = true;
  {
    Reader r(o);
    BOOST_TEST(r.resolved_files()[0] == (bb / "data" / "a.h5").string());
    BOOST_TEST(r.resolved_files()[1] == src_b);
    auto b = r.next();
    auto x = b.as<std::int64_t>(0);
    BOOST_TEST(x[0] == 1000);   // sample 0 from the staged copy
    BOOST_TEST(x[2 * 10] == 10);  // sample 10 from b's source
  }
  o.use_staged = false;
  {
    Reader r(o);
    BOOST_TEST(r.resolved_files()[0] == src_a);
  }
  // Async: the reader waits per file; present files are used, and a file the finished
  // stage-in did not bring (another node's share) falls back to the source.
  const fs::path status = scratch() / "status.json";
  {
    sluice::staging::JobStageStatus st;
    st.job_id = 1;
    st.mode = "async";
    st.phase = sluice::staging::StagePhase::Ready;
    std::ofstream(status) << st.to_json();
  }
  env.set("SLUICE_STAGE_MODE", "async");
  env.set("SLUICE_STAGE_STATUS", status.string());
  o.use_staged = true;
  o.staged_timeout = std::chrono::milliseconds(2000);
  try {
    Reader r(o);
    BOOST_TEST(r.resolved_files()[0] == (bb / "data" / "a.h5").string());
    BOOST_TEST(r.resolved_files()[1] == src_b);
  } catch (const sluice::Error& e) {
    BOOST_ERROR("async staged open failed: " << e.what());
  }
}

// The RAM window (ram_window_bytes) hands out exactly the batches a reader without it does,
// whole or partial (a window smaller than the data, blocks straddling samples), over epochs.
BOOST_AUTO_TEST_CASE(ram_window_serves_the_same_batches) {
  // 2,000 + 700 samples of 26 bytes: about 70 KiB over two files, so 4 KiB blocks split them.
  for (hsize_t chunk : {hsize_t{0}, hsize_t{64}}) {
    const std::string tag = chunk ? "win-chunk" : "win-contig";
    const std::vector<std::string> files{make_file(tag + "-a.h5", 2000, 0, chunk), make_file(tag + "-b.h5", 700, 2000, chunk)};
    auto plain = opts(files, 64);
    plain.io_threads = 2;
    for (std::uint64_t window : {std::uint64_t{16} << 10, std::uint64_t{64} << 20}) {
      Reader without(plain);
      auto o = plain;
      o.ram_window_bytes = window;
      Reader with(o);
      const std::uint64_t steps = with.steps_per_epoch();
      for (std::uint64_t k = 0; k < 3 * steps; ++k) {
        auto a = without.next();
        auto b = with.next();
        check_batch(b);
        BOOST_REQUIRE(std::equal(a.indices().begin(), a.indices().end(), b.indices().begin(), b.indices().end()));
        for (std::size_t d = 0; d < 3; ++d)
          BOOST_REQUIRE(std::equal(a.data(d).begin(), a.data(d).end(), b.data(d).begin(), b.data(d).end()));
      }
      const std::uint64_t held = with.counters().window_bytes;
      BOOST_TEST_MESSAGE(tag << ", window " << window << ": " << held << " bytes held");
      BOOST_TEST(held > 0u);
      BOOST_TEST(held <= window);
      std::uint64_t file_bytes = 0;
      for (const auto& f : files) file_bytes += fs::file_size(f);
      if (window > file_bytes) BOOST_TEST(held == file_bytes);  // everything read was kept
      BOOST_TEST(without.counters().window_bytes == 0u);
    }
  }
}

// Once the window holds the files, later epochs do not read them: the file may even be gone
// (truncated), and the reader without a window fails on the same file.
BOOST_AUTO_TEST_CASE(ram_window_serves_later_epochs_from_memory) {
  const std::string f = make_file("win-gone.h5", 1000, 0);
  auto o = opts({f}, 50);
  o.ram_window_bytes = 64 << 20;
  o.prefetch_depth = 1;
  Reader r(o);
  for (std::uint64_t k = 0; k < r.steps_per_epoch(); ++k) check_batch(r.next());
  BOOST_REQUIRE(r.counters().window_bytes == fs::file_size(f));
  auto plain = opts({f}, 50);
  Reader without(plain);
  fs::resize_file(f, 0);
  for (std::uint64_t k = 0; k < 2 * r.steps_per_epoch(); ++k) check_batch(r.next());
  expect_data_error(
      [&] {
        for (std::uint64_t k = 0; k < 2 * without.steps_per_epoch(); ++k) (void)without.next();
      },
      "win-gone.h5", "x", "truncated");
}

BOOST_AUTO_TEST_CASE(io_pool_runs_every_item_once_on_at_most_max_threads) {
  detail::IoPool pool(8);
  BOOST_TEST(pool.threads() == 8u);
  for (unsigned cap : {1u, 2u, 3u, ~0u}) {
    for (int round = 0; round < 20; ++round) {  // the helpers are reused from run to run
      std::vector<int> done(100, 0);
      std::set<unsigned> workers;
      std::mutex m;
      pool.run(done.size(), [&](std::size_t i, unsigned w) {
        std::lock_guard lk(m);
        ++done[i];
        workers.insert(w);
      }, cap);
      BOOST_TEST((std::count(done.begin(), done.end(), 1) == 100), "cap " << cap);
      BOOST_TEST(workers.size() <= std::min(cap, 8u), "cap " << cap);
      BOOST_TEST(*workers.rbegin() < 8u);
    }
  }
  // Failing items: the lowest one's exception reaches the caller, whichever thread failed
  // first, and the pool still works.
  for (int round = 0; round < 20; ++round) {
    try {
      pool.run(10, [](std::size_t i, unsigned) {
        if (i == 3 || i == 7) throw std::runtime_error("item " + std::to_string(i));
      });
      BOOST_ERROR("no exception");
    } catch (const std::runtime_error& e) {
      BOOST_TEST(std::string(e.what()) == "item 3");
    }
  }
  std::atomic<int> n{0};
  pool.run(5, [&](std::size_t, unsigned) { ++n; });
  BOOST_TEST(n.load() == 5);
}
