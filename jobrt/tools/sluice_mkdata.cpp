// sluice-mkdata: writes a synthetic HDF5 dataset for examples and benchmarks.
//
//   sluice-mkdata --out F --samples N --shape 3x32x32 --dtype f32 --labels 10
//                 [--chunk-samples 64] [--files K] [--seed S] [--gzip LEVEL]
//
// Datasets: `x` (N x shape, dtype) and `y` (N, int64 labels in [0, labels)). The relation
// is learnable: every class c has a fixed prototype p_c (elements +-1 from the seed), and
// x_i = p_{y_i} + noise (uniform in [-0.5, 0.5]), scaled to the dtype (integers: 64 +- 32
// around the middle of their range), so a nearest-class-mean classifier separates them.
// Sample i's label is a hash of (seed, i) mod labels. With --files K > 1 the samples are
// split in order over F with "-0000k-of-0000K" before its extension, earlier files taking
// one more sample when N mod K != 0; a list of them in order is printed.
#include <hdf5.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct DType {
  const char* name;
  hid_t h5;  // the file's type (little-endian)
  bool is_float;
  bool is_signed;
  std::size_t bytes;
};

bool find_dtype(const std::string& s, DType* out) {
  const DType all[] = {
      {"f32", H5T_IEEE_F32LE, true, true, 4}, {"f64", H5T_IEEE_F64LE, true, true, 8},
      {"i8", H5T_STD_I8LE, false, true, 1},   {"u8", H5T_STD_U8LE, false, false, 1},
      {"i16", H5T_STD_I16LE, false, true, 2}, {"u16", H5T_STD_U16LE, false, false, 2},
      {"i32", H5T_STD_I32LE, false, true, 4}, {"u32", H5T_STD_U32LE, false, false, 4},
      {"i64", H5T_STD_I64LE, false, true, 8}, {"u64", H5T_STD_U64LE, false, false, 8},
  };
  for (const auto& d : all)
    if (s == d.name) {
      *out = d;
      return true;
    }
  return false;
}

template <typename T>
void put(std::byte* dst, T v) {
  std::memcpy(dst, &v, sizeof v);  // little-endian hosts only (x86-64, aarch64)
}

// One element of sample i, class c, element j, as the dtype's bytes.
void element(const DType& t, double v, std::byte* dst) {
  if (t.is_float) {
    if (t.bytes == 4) put(dst, static_cast<float>(v));
    else put(dst, v);
    return;
  }
  // v in [-1.5, 1.5] -> an integer around the middle of the type's range (unsigned) or 0.
  const double scaled = std::round(v * 32.0);
  const double mid = t.is_signed ? 0.0 : 64.0;
  const double x = mid + scaled;
  switch (t.bytes) {
    case 1: t.is_signed ? put(dst, static_cast<std::int8_t>(x)) : put(dst, static_cast<std::uint8_t>(x)); break;
    case 2: t.is_signed ? put(dst, static_cast<std::int16_t>(x)) : put(dst, static_cast<std::uint16_t>(x)); break;
    case 4: t.is_signed ? put(dst, static_cast<std::int32_t>(x)) : put(dst, static_cast<std::uint32_t>(x)); break;
    default: t.is_signed ? put(dst, static_cast<std::int64_t>(x)) : put(dst, static_cast<std::uint64_t>(x)); break;
  }
}

struct H5Closer {
  hid_t h;
  herr_t (*f)(hid_t);
  ~H5Closer() {
    if (h >= 0) f(h);
  }
};

std::string file_name(const std::string& out, unsigned k, unsigned files) {
  if (files == 1) return out;
  char part[64];
  std::snprintf(part, sizeof part, "-%05u-of-%05u", k, files);
  const auto slash = out.rfind('/');
  const auto dot = out.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return out + part;
  return out.substr(0, dot) + part + out.substr(dot);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-mkdata: writes a synthetic HDF5 dataset (x: samples, y: labels) for examples and benchmarks"};
  std::string out, shape_s = "3x32x32", dtype_s = "f32";
  std::uint64_t samples = 0, seed = 1;
  unsigned labels = 10, files = 1;
  std::uint64_t chunk_samples = 64;
  int gzip = 0;
  app.add_option("--out", out, "output file (with --files K > 1: the name the parts are derived from); "
                              "missing parent directories are created")->required();
  app.add_option("--samples", samples, "N, the number of samples")->required()->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  app.add_option("--shape", shape_s, "shape of one sample, e.g. 3x32x32 (default 3x32x32)");
  app.add_option("--dtype", dtype_s, "element type of x: f32 f64 i8 u8 i16 u16 i32 u32 i64 u64 (default f32)");
  app.add_option("--labels", labels, "number of classes (default 10)")->check(CLI::Range(1u, 1u << 30));
  app.add_option("--chunk-samples", chunk_samples, "samples per chunk (default 64); 0: contiguous layout");
  app.add_option("--files", files, "split the samples over K files (default 1)")->check(CLI::Range(1u, 100000u));
  app.add_option("--seed", seed, "seed of the prototypes, labels and noise (default 1)");
  app.add_option("--gzip", gzip, "deflate level 1-9 for chunked data (default 0: none)")->check(CLI::Range(0, 9));
  CLI11_PARSE(app, argc, argv);

  DType t{};
  if (!find_dtype(dtype_s, &t)) {
    std::fprintf(stderr, "sluice-mkdata: --dtype '%s' is not one of f32 f64 i8 u8 i16 u16 i32 u32 i64 u64\n", dtype_s.c_str());
    return 2;
  }
  std::vector<hsize_t> shape;
  {
    std::size_t pos = 0;
    while (pos <= shape_s.size()) {
      const auto x = shape_s.find('x', pos);
      const std::string part = shape_s.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
      char* end = nullptr;
      const unsigned long long v = std::strtoull(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || v == 0 || v > (1u << 24)) {
        std::fprintf(stderr, "sluice-mkdata: --shape '%s': dimensions are positive integers joined by 'x'\n", shape_s.c_str());
        return 2;
      }
      shape.push_back(v);
      pos = x == std::string::npos ? shape_s.size() + 1 : x + 1;
    }
  }
  if (files > samples) {
    std::fprintf(stderr, "sluice-mkdata: --files %u is more than --samples %llu\n", files, static_cast<unsigned long long>(samples));
    return 2;
  }
  if (gzip > 0 && chunk_samples == 0) {
    std::fprintf(stderr, "sluice-mkdata: --gzip needs chunks (--chunk-samples > 0)\n");
    return 2;
  }
  // Our own messages name the file; HDF5's stack dumps would only bury them.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (const auto parent = std::filesystem::path(out).parent_path(); !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      std::fprintf(stderr, "sluice-mkdata: cannot create the directory %s: %s\n", parent.c_str(), ec.message().c_str());
      return 1;
    }
  }
  std::uint64_t elems = 1;
  for (auto d : shape) elems *= d;
  const std::size_t sample_bytes = elems * t.bytes;

  // Prototypes: +-1 per element and class.
  std::vector<std::int8_t> proto(static_cast<std::size_t>(labels) * elems);
  for (std::size_t k = 0; k < proto.size(); ++k) proto[k] = (mix(seed ^ (0xC1A55ull << 20) ^ k) & 1) ? 1 : -1;

  const std::uint64_t block = chunk_samples ? std::max<std::uint64_t>(chunk_samples, 1) : 256;
  std::vector<std::byte> xbuf(block * sample_bytes);
  std::vector<std::int64_t> ybuf(block);
  std::uint64_t next = 0;
  for (unsigned k = 0; k < files; ++k) {
    const std::uint64_t n = samples / files + (k < samples % files ? 1 : 0);
    const std::string name = file_name(out, k, files);
    errno = 0;
    H5Closer f{H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    if (f.h < 0) {
      std::fprintf(stderr, "sluice-mkdata: cannot create %s%s%s\n", name.c_str(), errno ? ": " : "",
                   errno ? std::strerror(errno) : "");
      return 1;
    }
    std::vector<hsize_t> xdims{n};
    xdims.insert(xdims.end(), shape.begin(), shape.end());
    H5Closer xs{H5Screate_simple(static_cast<int>(xdims.size()), xdims.data(), nullptr), H5Sclose};
    hsize_t ydim = n;
    H5Closer ys{H5Screate_simple(1, &ydim, nullptr), H5Sclose};
    H5Closer xp{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
    H5Closer yp{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
    if (chunk_samples) {
      std::vector<hsize_t> cx(xdims);
      cx[0] = std::min<hsize_t>(chunk_samples, n);
      H5Pset_chunk(xp.h, static_cast<int>(cx.size()), cx.data());
      hsize_t cy = std::min<hsize_t>(std::max<std::uint64_t>(chunk_samples, 1024), n);
      H5Pset_chunk(yp.h, 1, &cy);
      if (gzip > 0) {
        H5Pset_deflate(xp.h, static_cast<unsigned>(gzip));
        H5Pset_deflate(yp.h, static_cast<unsigned>(gzip));
      }
    } else {
      H5Pset_alloc_time(xp.h, H5D_ALLOC_TIME_EARLY);
      H5Pset_alloc_time(yp.h, H5D_ALLOC_TIME_EARLY);
    }
    H5Closer xd{H5Dcreate2(f.h, "x", t.h5, xs.h, H5P_DEFAULT, xp.h, H5P_DEFAULT), H5Dclose};
    H5Closer yd{H5Dcreate2(f.h, "y", H5T_STD_I64LE, ys.h, H5P_DEFAULT, yp.h, H5P_DEFAULT), H5Dclose};
    if (xd.h < 0 || yd.h < 0) {
      std::fprintf(stderr, "sluice-mkdata: cannot create the datasets in %s\n", name.c_str());
      return 1;
    }
    for (std::uint64_t i0 = 0; i0 < n; i0 += block) {
      const std::uint64_t m = std::min(block, n - i0);
      for (std::uint64_t r = 0; r < m; ++r) {
        const std::uint64_t gi = next + i0 + r;
        const std::uint64_t c = mix(seed * 0x100000001B3ull ^ gi) % labels;
        ybuf[r] = static_cast<std::int64_t>(c);
        std::uint64_t h = mix(seed ^ (gi << 1) ^ 0xA5A5ull);
        for (std::uint64_t j = 0; j < elems; ++j) {
          if ((j & 3) == 0) h = mix(h);
          const double noise = static_cast<double>((h >> ((j & 3) * 16)) & 0xFFFF) / 65535.0 - 0.5;
          element(t, proto[c * elems + j] + noise, xbuf.data() + (r * elems + j) * t.bytes);
        }
      }
      std::vector<hsize_t> start(xdims.size(), 0), cnt(xdims);
      start[0] = i0;
      cnt[0] = m;
      H5Closer fsx{H5Dget_space(xd.h), H5Sclose};
      H5Sselect_hyperslab(fsx.h, H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
      H5Closer msx{H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose};
      H5Closer fsy{H5Dget_space(yd.h), H5Sclose};
      hsize_t ys0 = i0, ym = m;
      H5Sselect_hyperslab(fsy.h, H5S_SELECT_SET, &ys0, nullptr, &ym, nullptr);
      H5Closer msy{H5Screate_simple(1, &ym, nullptr), H5Sclose};
      if (H5Dwrite(xd.h, t.h5, msx.h, fsx.h, H5P_DEFAULT, xbuf.data()) < 0 ||
          H5Dwrite(yd.h, H5T_NATIVE_INT64, msy.h, fsy.h, H5P_DEFAULT, ybuf.data()) < 0) {
        std::fprintf(stderr, "sluice-mkdata: write failed in %s\n", name.c_str());
        return 1;
      }
    }
    next += n;
    std::printf("%s\n", name.c_str());
  }
  return 0;
}
