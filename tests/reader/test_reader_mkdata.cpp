// sluice-mkdata's contract: datasets x (N x shape, dtype) and y (N labels), chunking,
// --files K, a learnable relation, and refusals of bad arguments.
#define BOOST_TEST_MODULE reader_mkdata
#include <boost/test/unit_test.hpp>

#include <sluice/reader.hpp>

#include "scratch_dir.hpp"

#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;
using namespace sluice::reader;

namespace {

fs::path scratch() { return sluice::reader::test::scratch_dir("sluice-mkdata-test"); }

int mkdata(const std::string& args) {
  const std::string cmd = std::string(SLUICE_MKDATA) + " " + args + " > " + (scratch() / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct Layout {
  H5D_layout_t layout;
  std::vector<hsize_t> chunk;
};
Layout layout_of(const std::string& file, const char* ds) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
  hid_t p = H5Dget_create_plist(d);
  Layout l{H5Pget_layout(p), {}};
  if (l.layout == H5D_CHUNKED) {
    l.chunk.resize(8);
    l.chunk.resize(static_cast<std::size_t>(H5Pget_chunk(p, 8, l.chunk.data())));
  }
  H5Pclose(p);
  H5Dclose(d);
  H5Fclose(f);
  return l;
}

}  // namespace

BOOST_AUTO_TEST_CASE(contract_shape_dtype_chunks) {
  const auto out = (scratch() / "a.h5").string();
  BOOST_REQUIRE_EQUAL(mkdata("--out " + out + " --samples 300 --shape 3x8x8 --dtype f32 --labels 10 --chunk-samples 64"), 0);
  ReaderOptions o;
  o.files = {out};
  o.use_staged = false;
  Reader r(o);
  BOOST_TEST(r.samples() == 300u);
  BOOST_TEST(r.datasets()[0].name == "x");
  BOOST_TEST(r.datasets()[0].type.name() == "f32");
  BOOST_TEST((r.datasets()[0].sample_shape == std::vector<std::uint64_t>{3, 8, 8}));
  BOOST_TEST(r.datasets()[1].name == "y");
  BOOST_TEST(r.datasets()[1].sample_shape.empty());
  BOOST_TEST(r.datasets()[1].type.name() == "i64");
  const auto l = layout_of(out, "x");
  BOOST_TEST(l.layout == H5D_CHUNKED);
  BOOST_TEST((l.chunk == std::vector<hsize_t>{64, 3, 8, 8}));

  const auto c = (scratch() / "c.h5").string();
  BOOST_REQUIRE_EQUAL(mkdata("--out " + c + " --samples 50 --shape 5 --dtype u8 --labels 3 --chunk-samples 0"), 0);
  BOOST_TEST(layout_of(c, "x").layout == H5D_CONTIGUOUS);
  o.files = {c};
  Reader r2(o);
  BOOST_TEST(r2.datasets()[0].type.name() == "u8");
  auto b = r2.next();
  for (auto v : b.as<std::int64_t>(1)) BOOST_TEST((v >= 0 && v < 3));
}

BOOST_AUTO_TEST_CASE(files_k_split_in_order) {
  const auto out = (scratch() / "multi.h5").string();
  BOOST_REQUIRE_EQUAL(mkdata("--out " + out + " --samples 10 --shape 2 --dtype i16 --labels 4 --files 3"), 0);
  std::vector<std::string> files;
  std::uint64_t sizes[3] = {4, 3, 3};  // earlier files take the remainder
  for (int k = 0; k < 3; ++k) {
    const auto f = (scratch() / ("multi-0000" + std::to_string(k) + "-of-00003.h5")).string();
    BOOST_REQUIRE(fs::exists(f));
    ReaderOptions o;
    o.files = {f};
    o.use_staged = false;
    BOOST_TEST(Reader(o).samples() == sizes[k]);
    files.push_back(f);
  }
  ReaderOptions o;
  o.files = files;
  o.use_staged = false;
  BOOST_TEST(Reader(o).samples() == 10u);
}

// The relation is learnable: class means from the first half classify the second half.
BOOST_AUTO_TEST_CASE(learnable) {
  for (const char* dtype : {"f32", "u8", "i32"}) {
    const auto out = (scratch() / (std::string("learn-") + dtype + ".h5")).string();
    BOOST_REQUIRE_EQUAL(mkdata("--out " + out + " --samples 2000 --shape 4x4 --dtype " + dtype + " --labels 5"), 0);
    ReaderOptions o;
    o.files = {out};
    o.use_staged = false;
    o.shuffle = false;
    o.batch_size = 1000;
    Reader r(o);
    const auto& xi = r.datasets()[0];
    auto as_double = [&](const Batch& b, std::size_t i, std::size_t j) -> double {
      const std::byte* p = b.sample(0, i).data() + j * xi.type.bytes;
      if (xi.type.kind == ElementType::Kind::Float) return *reinterpret_cast<const float*>(p);
      if (xi.type.bytes == 1) return *reinterpret_cast<const std::uint8_t*>(p);
      return *reinterpret_cast<const std::int32_t*>(p);
    };
    std::vector<std::vector<double>> mean(5, std::vector<double>(16, 0));
    std::vector<int> count(5, 0);
    {
      auto train = r.next();
      auto y = train.as<std::int64_t>(1);
      for (std::size_t i = 0; i < train.size(); ++i) {
        ++count[static_cast<std::size_t>(y[i])];
        for (std::size_t j = 0; j < 16; ++j) mean[static_cast<std::size_t>(y[i])][j] += as_double(train, i, j);
      }
    }
    for (int c = 0; c < 5; ++c) {
      BOOST_REQUIRE(count[static_cast<std::size_t>(c)] > 0);  // every label occurs
      for (auto& m : mean[static_cast<std::size_t>(c)]) m /= count[static_cast<std::size_t>(c)];
    }
    auto test = r.next();
    auto y = test.as<std::int64_t>(1);
    int right = 0;
    for (std::size_t i = 0; i < test.size(); ++i) {
      int best = 0;
      double best_d = 1e300;
      for (int c = 0; c < 5; ++c) {
        double d = 0;
        for (std::size_t j = 0; j < 16; ++j) {
          const double v = as_double(test, i, j) - mean[static_cast<std::size_t>(c)][j];
          d += v * v;
        }
        if (d < best_d) best_d = d, best = c;
      }
      right += best == y[i];
    }
    BOOST_TEST_MESSAGE(dtype << ": nearest class mean accuracy " << right / 1000.0);
    BOOST_TEST(right > 950);  // chance is 20 %
  }
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  const auto out = (scratch() / "bad.h5").string();
  BOOST_TEST(mkdata("--out " + out + " --samples 10 --dtype f16") == 2);
  BOOST_TEST(mkdata("--out " + out + " --samples 10 --shape 3xx2") == 2);
  BOOST_TEST(mkdata("--out " + out + " --samples 10 --shape 0") == 2);
  BOOST_TEST(mkdata("--out " + out + " --samples 2 --files 3") == 2);
  BOOST_TEST(mkdata("--out " + out) != 0);  // --samples required
  // A parent that cannot be created (not even by root: /proc takes no directories) fails.
  BOOST_TEST(mkdata("--out /proc/sluice-no-such-dir/x.h5 --samples 10") == 1);
  // A parent directory out of the target is created, a file in the way is not replaced.
  const auto nested = scratch() / "made" / "by" / "mkdata" / "x.h5";
  BOOST_TEST(mkdata("--out " + nested.string() + " --samples 10 --shape 4") == 0);
  BOOST_TEST(fs::is_regular_file(nested));
  BOOST_TEST(mkdata("--out " + (nested / "y.h5").string() + " --samples 10 --shape 4") == 1);
}
