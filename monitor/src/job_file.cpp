// The per-job HDF5 telemetry file: derivation (totals, stragglers), atomic write, checked read.
// Layout and units: docs/telemetry.md, "Job files".
#include <sluice/monitor/job_file.hpp>

#include "summary_fields.hpp"

#include <sluice/common/unique_handle.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <type_traits>

namespace sluice::monitor {

// --- derivation ---------------------------------------------------------------------------

double own_ms_per_step(const Summary& s) noexcept {
  if (s.steps.count == 0) return 0;
  return s.steps.total_s * (1.0 - s.steps.allreduce_fraction) * 1e3 / double(s.steps.count);
}

std::vector<Straggler> find_stragglers(const std::vector<RankTelemetry>& ranks, const StragglerOptions& opts) {
  std::vector<Straggler> all;
  for (const auto& r : ranks)
    if (r.summary.steps.count > 0) all.push_back({r.rank, own_ms_per_step(r.summary), 0});
  if (all.empty()) return {};
  std::vector<double> own;
  for (const auto& s : all) own.push_back(s.own_ms_per_step);
  std::sort(own.begin(), own.end());
  const std::size_t n = own.size();
  const double median = n % 2 ? own[n / 2] : 0.5 * (own[n / 2 - 1] + own[n / 2]);
  std::vector<Straggler> out;
  for (auto& s : all) {
    s.ratio = median > 0 ? s.own_ms_per_step / median : (s.own_ms_per_step > 0 ? INFINITY : 1.0);
    if (s.ratio >= opts.threshold) out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const Straggler& a, const Straggler& b) {
    return a.ratio != b.ratio ? a.ratio > b.ratio : a.rank < b.rank;
  });
  if (out.size() > opts.max_ranks) out.resize(opts.max_ranks);
  return out;
}

JobTelemetry make_job_telemetry(std::string job_id, std::vector<RankInput> ranks, bool complete,
                                const StragglerOptions& opts) {
  std::sort(ranks.begin(), ranks.end(), [](const RankInput& a, const RankInput& b) { return a.rank < b.rank; });
  JobTelemetry job;
  job.job_id = std::move(job_id);
  job.complete = complete;
  job.straggler_threshold = opts.threshold;
  Snapshot merged;
  for (auto& r : ranks) {
    merged.merge(r.snapshot);
    job.ranks.push_back({r.rank, std::move(r.host), r.snapshot.summary(), std::move(r.samples), r.samples_dropped});
  }
  job.totals = merged.summary();
  job.stragglers = find_stragglers(job.ranks, opts);
  return job;
}

JobFileError::JobFileError(std::string file, std::string object, const std::string& what)
    : Error("sluice telemetry: " + file + ": " + (object.empty() ? std::string() : object + ": ") + what),
      file_(std::move(file)),
      object_(std::move(object)) {}

std::string job_file_name(const std::string& job_id) {
  std::string s = job_id.empty() ? std::string("unknown") : job_id;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s[0] == '.') s[0] = '_';
  return "job-" + s + ".h5";
}

// --- HDF5 plumbing ------------------------------------------------------------------------

namespace {

// Any HDF5 identifier: H5Idec_ref closes files, groups, datasets, types, spaces and lists alike.
struct H5IdTraits {
  static hid_t invalid() noexcept { return H5I_INVALID_HID; }
  static void close(hid_t h) noexcept { H5Idec_ref(h); }
};
using Hid = UniqueHandle<hid_t, H5IdTraits>;

// HDF5 prints its error stack to stderr by default; off while one of these lives.
class H5Silence {
 public:
  H5Silence() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5Silence() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  H5Silence(const H5Silence&) = delete;
  H5Silence& operator=(const H5Silence&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The most specific message on HDF5's error stack ("" if none).
std::string hdf5_cause() {
  std::string cause;
  auto first = [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
    auto& s = *static_cast<std::string*>(out);
    if (s.empty() && e->desc) s = e->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first, &cause);
  return cause;
}

// The memory and file (little-endian) HDF5 types of T.
template <class T>
struct H5Type {
  static hid_t mem() {
    return pick(H5T_NATIVE_DOUBLE, H5T_NATIVE_UINT64, H5T_NATIVE_INT64, H5T_NATIVE_UINT32, H5T_NATIVE_INT32, H5T_NATIVE_UINT8);
  }
  static hid_t file() {
    return pick(H5T_IEEE_F64LE, H5T_STD_U64LE, H5T_STD_I64LE, H5T_STD_U32LE, H5T_STD_I32LE, H5T_STD_U8LE);
  }

 private:
  static hid_t pick(hid_t f64, hid_t u64, hid_t i64, hid_t u32, hid_t i32, hid_t u8) {
    if constexpr (std::is_same_v<T, double>) return f64;
    else if constexpr (std::is_same_v<T, std::uint64_t>) return u64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return i64;
    else if constexpr (std::is_same_v<T, std::uint32_t>) return u32;
    else if constexpr (std::is_same_v<T, std::int32_t>) return i32;
    else {
      static_assert(std::is_same_v<T, std::uint8_t>, "no HDF5 type for this field");
      return u8;
    }
  }
};

// Bool columns are stored as uint8.
template <class T>
using Stored = std::conditional_t<std::is_same_v<T, bool>, std::uint8_t, T>;

constexpr hsize_t kChunkRows = 4096;

// One open file and the name to report in errors. Paths are HDF5 object paths ("/ranks/0").
// A read charges what it allocates to a budget bounded by the file's size (JobFileLimits).
class H5File {
 public:
  explicit H5File(std::string display, const JobFileLimits& limits = {})
      : display_(std::move(display)), limits_(limits) {}

  [[noreturn]] void fail(const std::string& object, const std::string& what) const {
    const std::string cause = hdf5_cause();
    throw JobFileError(display_, object, cause.empty() ? what : what + " (HDF5: " + cause + ")");
  }
  [[noreturn]] void refuse(const std::string& object, const std::string& what) const {
    throw JobFileLimitError(display_, object, what + " (a hostile or damaged file?)");
  }

  // The file's size (fstat of the descriptor read): what the datasets are checked against.
  void set_file_size(std::uint64_t bytes) { file_size_ = bytes; }

  // Counts BYTES that reading OBJECT is about to allocate against the read's budget: at most
  // max_read_bytes, and at most max_compression_ratio x the file's size.
  void charge(const std::string& object, std::uint64_t bytes) const {
    const double by_size = limits_.max_compression_ratio * double(std::max<std::uint64_t>(file_size_, 1));
    const std::uint64_t cap = by_size < double(limits_.max_read_bytes) ? std::uint64_t(by_size) : limits_.max_read_bytes;
    if (bytes > cap || used_ > cap - bytes)
      refuse(object, "reading it would take the read to more than " + std::to_string(cap) + " bytes (" +
                         std::to_string(used_) + " so far, " + std::to_string(bytes) + " more), the bound for a " +
                         std::to_string(file_size_) + "-byte file");
    used_ += bytes;
  }
  // N elements of SIZE bytes, or a refusal when the product overflows.
  std::uint64_t bytes_of(const std::string& object, std::uint64_t n, std::uint64_t size) const {
    if (size && n > std::numeric_limits<std::uint64_t>::max() / size)
      refuse(object, "declares " + std::to_string(n) + " elements of " + std::to_string(size) + " bytes");
    return n * size;
  }
  // HDF5 returns a negative identifier or status on failure.
  template <class H>
  H check(H h, const std::string& object, const char* what) const {
    if (h < 0) fail(object, what);
    return h;
  }

  // --- writing
  Hid group(hid_t parent, const std::string& path) const {
    return Hid(check(H5Gcreate2(parent, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path, "cannot create group"));
  }
  template <class T>
  void put_attr(hid_t obj, const std::string& obj_path, const char* name, T value) const {
    using S = Stored<T>;
    const S v = static_cast<S>(value);
    const std::string where = obj_path + "@" + name;
    Hid space(check(H5Screate(H5S_SCALAR), where, "cannot create dataspace"));
    Hid a(check(H5Acreate2(obj, name, H5Type<S>::file(), space.get(), H5P_DEFAULT, H5P_DEFAULT), where,
                "cannot create attribute"));
    check(H5Awrite(a.get(), H5Type<S>::mem(), &v), where, "cannot write attribute");
  }
  void put_attr(hid_t obj, const std::string& obj_path, const char* name, const std::string& value) const {
    const std::string where = obj_path + "@" + name;
    Hid type(check(H5Tcopy(H5T_C_S1), where, "cannot create string type"));
    check(H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1)), where, "cannot size string type");
    check(H5Tset_cset(type.get(), H5T_CSET_UTF8), where, "cannot set character set");
    Hid space(check(H5Screate(H5S_SCALAR), where, "cannot create dataspace"));
    Hid a(check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), where,
                "cannot create attribute"));
    std::string buf = value;
    buf.resize(std::max<std::size_t>(value.size(), 1), '\0');
    check(H5Awrite(a.get(), type.get(), buf.data()), where, "cannot write attribute");
  }
  // rows x cols (cols 0: one dimension). Chunked with a Fletcher-32 checksum when not empty.
  template <class T>
  void put_data(hid_t grp, const std::string& grp_path, const char* name, const std::vector<T>& v, hsize_t cols = 0) const {
    const std::string where = grp_path + "/" + name;
    const hsize_t width = cols ? cols : 1;
    const hsize_t dims[2] = {hsize_t(v.size()) / width, cols};
    const int rank = cols ? 2 : 1;
    Hid space(check(H5Screate_simple(rank, dims, nullptr), where, "cannot create dataspace"));
    Hid dcpl(check(H5Pcreate(H5P_DATASET_CREATE), where, "cannot create property list"));
    if (dims[0] > 0 && width > 0) {
      const hsize_t chunk[2] = {std::min(dims[0], kChunkRows), cols};
      check(H5Pset_chunk(dcpl.get(), rank, chunk), where, "cannot set chunks");
      check(H5Pset_shuffle(dcpl.get()), where, "cannot set the shuffle filter");
      check(H5Pset_deflate(dcpl.get(), 4), where, "cannot set the deflate filter");
      check(H5Pset_fletcher32(dcpl.get()), where, "cannot set the checksum filter");
    }
    Hid d(check(H5Dcreate2(grp, name, H5Type<T>::file(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), where,
                "cannot create dataset"));
    if (!v.empty()) check(H5Dwrite(d.get(), H5Type<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), where, "cannot write");
  }

  // --- reading
  Hid open_group(hid_t parent, const std::string& path) const {
    if (H5Lexists(parent, path.c_str(), H5P_DEFAULT) <= 0) fail(path, "missing group");
    return Hid(check(H5Gopen2(parent, path.c_str(), H5P_DEFAULT), path, "cannot open group"));
  }
  // One value: every attribute of the layout is a scalar, read into a buffer for one value.
  Hid open_attr(hid_t obj, const std::string& obj_path, const char* name) const {
    const std::string where = obj_path + "@" + name;
    if (H5Aexists(obj, name) <= 0) fail(where, "missing attribute");
    Hid a(check(H5Aopen(obj, name, H5P_DEFAULT), where, "cannot open attribute"));
    Hid space(check(H5Aget_space(a.get()), where, "cannot get dataspace"));
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n != 1) refuse(where, "holds " + std::to_string(n) + " values, expected one");
    return a;
  }
  template <class T>
  T get_attr(hid_t obj, const std::string& obj_path, const char* name) const {
    using S = Stored<T>;
    Hid a = open_attr(obj, obj_path, name);
    S v{};
    check(H5Aread(a.get(), H5Type<S>::mem(), &v), obj_path + "@" + name, "cannot read attribute (wrong type?)");
    return static_cast<T>(v);
  }
  std::string get_string_attr(hid_t obj, const std::string& obj_path, const char* name) const {
    const std::string where = obj_path + "@" + name;
    Hid a = open_attr(obj, obj_path, name);
    Hid type(check(H5Aget_type(a.get()), where, "cannot get type"));
    if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) != 0) fail(where, "not a fixed-length string");
    const std::size_t size = H5Tget_size(type.get());
    if (size > limits_.max_string_bytes)
      refuse(where, "a string of " + std::to_string(size) + " bytes, more than the limit of " +
                        std::to_string(limits_.max_string_bytes));
    charge(where, size);
    std::string buf(size, '\0');
    check(H5Aread(a.get(), type.get(), buf.data()), where, "cannot read attribute");
    buf.resize(std::strlen(buf.c_str()));
    return buf;
  }
  // Checks the shape (rows, and cols when given) and reads.
  template <class T>
  std::vector<T> get_data(hid_t grp, const std::string& grp_path, const char* name, std::optional<hsize_t> rows,
                          hsize_t cols = 0) const {
    const std::string where = grp_path + "/" + name;
    if (H5Lexists(grp, name, H5P_DEFAULT) <= 0) fail(where, "missing dataset");
    Hid d(check(H5Dopen2(grp, name, H5P_DEFAULT), where, "cannot open dataset"));
    Hid space(check(H5Dget_space(d.get()), where, "cannot get dataspace"));
    const int nd = H5Sget_simple_extent_ndims(space.get());
    hsize_t dims[2] = {0, 0};
    if (nd != (cols ? 2 : 1) || H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0)
      fail(where, "expected " + std::string(cols ? "2" : "1") + " dimensions, found " + std::to_string(nd));
    auto shape = [cols](hsize_t n, hsize_t c) { return std::to_string(n) + (cols ? "x" + std::to_string(c) : ""); };
    if ((rows && dims[0] != *rows) || (cols && dims[1] != cols))
      fail(where, "shape " + shape(dims[0], dims[1]) + ", expected " + shape(rows.value_or(dims[0]), cols));
    bound_dataset(d.get(), where, shape(dims[0], dims[1]), bytes_of(where, dims[0], cols ? cols : 1), sizeof(T));
    std::vector<T> v(dims[0] * (cols ? cols : 1));
    if (!v.empty())
      check(H5Dread(d.get(), H5Type<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), where,
            "cannot read (damaged data?)");
    return v;
  }

 private:
  // Refuses dataset D (WHERE, of SHAPE: N elements read as ELEM_BYTES each) unless what it
  // declares fits the bounds: a number column, at most max_dataset_bytes, not much more than
  // the bytes the file stores for it, chunks of sane size; then charges it to the budget.
  void bound_dataset(hid_t d, const std::string& where, const std::string& shape, std::uint64_t n,
                     std::size_t elem_bytes) const {
    Hid type(check(H5Dget_type(d), where, "cannot get type"));
    const H5T_class_t cls = H5Tget_class(type.get());
    const std::size_t file_elem = H5Tget_size(type.get());
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || file_elem == 0 || file_elem > 8)
      fail(where, "not a column of numbers (HDF5 type class " + std::to_string(int(cls)) + ", " +
                      std::to_string(file_elem) + " bytes)");
    const std::uint64_t bytes = bytes_of(where, n, std::max(elem_bytes, file_elem));
    const std::string declared = "declares " + shape + " values (" + std::to_string(bytes) + " bytes)";
    if (bytes > limits_.max_dataset_bytes)
      refuse(where, declared + ", more than the limit of " + std::to_string(limits_.max_dataset_bytes) +
                        " bytes per dataset");
    const hsize_t stored = H5Dget_storage_size(d);
    if (stored > file_size_)
      refuse(where, "claims " + std::to_string(stored) + " stored bytes in a file of " + std::to_string(file_size_));
    if (bytes > limits_.small_dataset_bytes && double(bytes) > limits_.max_compression_ratio * double(stored))
      refuse(where, declared + " but the file stores " + std::to_string(stored) + " bytes for it (more than " +
                        std::to_string(std::uint64_t(limits_.max_compression_ratio)) + ":1)");
    Hid dcpl(check(H5Dget_create_plist(d), where, "cannot get the creation properties"));
    if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
      hsize_t chunk[H5S_MAX_RANK] = {};
      const int nd = H5Pget_chunk(dcpl.get(), H5S_MAX_RANK, chunk);
      if (nd < 0) fail(where, "cannot get the chunk size");
      std::uint64_t chunk_bytes = file_elem;
      for (int i = 0; i < nd; ++i) chunk_bytes = bytes_of(where, chunk_bytes, chunk[i]);
      if (chunk_bytes > limits_.max_chunk_bytes)
        refuse(where, "chunks of " + std::to_string(chunk_bytes) + " bytes, more than the limit of " +
                          std::to_string(limits_.max_chunk_bytes));
    }
    charge(where, bytes);
  }

  std::string display_;
  JobFileLimits limits_;
  std::uint64_t file_size_ = 0;
  mutable std::uint64_t used_ = 0;
};

constexpr double kAbsent = std::numeric_limits<double>::quiet_NaN();

// --- the layout ---------------------------------------------------------------------------

void write_summary(const H5File& f, hid_t parent, const std::string& path, const Summary& s) {
  Hid g = f.group(parent, path);
  visit_summary(s, [&](const char* name, const auto& v) { f.put_attr(g.get(), path, name, v); });
}

Summary read_summary(const H5File& f, hid_t parent, const std::string& path) {
  Hid g = f.open_group(parent, path);
  Summary s;
  visit_summary(s, [&](const char* name, auto& v) { v = f.get_attr<std::decay_t<decltype(v)>>(g.get(), path, name); });
  return s;
}

void write_series(const H5File& f, hid_t parent, const std::string& path, const std::vector<Sample>& samples) {
  Hid g = f.group(parent, path);
  visit_sample_fields([&](const char* name, auto member) {
    using T = Stored<std::remove_cvref_t<decltype(Sample{}.*member)>>;
    std::vector<T> col;
    col.reserve(samples.size());
    for (const auto& s : samples) col.push_back(static_cast<T>(s.*member));
    f.put_data(g.get(), path, name, col);
  });
  std::set<int> indices;
  for (const auto& s : samples)
    for (const auto& gs : s.gpus) indices.insert(gs.index);
  const std::vector<std::int32_t> gpu_index(indices.begin(), indices.end());
  f.put_data(g.get(), path, "gpu_index", gpu_index);
  const std::size_t ng = gpu_index.size();
  visit_gpu_fields([&](const char* name, auto member) {
    std::vector<double> m(samples.size() * ng, kAbsent);
    for (std::size_t i = 0; i < samples.size(); ++i)
      for (const auto& gs : samples[i].gpus) {
        const auto& opt = gs.*member;
        const auto col = std::size_t(std::lower_bound(gpu_index.begin(), gpu_index.end(), gs.index) - gpu_index.begin());
        if (opt) m[i * ng + col] = double(*opt);
      }
    f.put_data(g.get(), path, name, m, ng);
  });
}

std::vector<Sample> read_series(const H5File& f, hid_t parent, const std::string& path) {
  Hid g = f.open_group(parent, path);
  const hsize_t n = f.get_data<double>(g.get(), path, "t_s", std::nullopt).size();
  f.charge(path, f.bytes_of(path, n, sizeof(Sample)));
  std::vector<Sample> samples(n);
  visit_sample_fields([&](const char* name, auto member) {
    using M = std::remove_cvref_t<decltype(Sample{}.*member)>;
    const auto col = f.get_data<Stored<M>>(g.get(), path, name, n);
    for (std::size_t i = 0; i < n; ++i) samples[i].*member = static_cast<M>(col[i]);
  });
  const auto gpu_index = f.get_data<std::int32_t>(g.get(), path, "gpu_index", std::nullopt);
  const hsize_t ng = gpu_index.size();
  if (ng == 0) return samples;
  f.charge(path + "/gpu_index",
           f.bytes_of(path + "/gpu_index", n, f.bytes_of(path, ng, sizeof(std::optional<GpuSample>)) + 24));
  std::vector<std::vector<std::optional<GpuSample>>> gpus(n, std::vector<std::optional<GpuSample>>(ng));
  visit_gpu_fields([&](const char* name, auto member) {
    using V = typename std::remove_cvref_t<decltype(GpuSample{}.*member)>::value_type;
    const auto m = f.get_data<double>(g.get(), path, name, n, ng);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < ng; ++j) {
        const double v = m[i * ng + j];
        if (std::isnan(v)) continue;
        auto& gs = gpus[i][j];
        if (!gs) gs.emplace().index = gpu_index[j];
        (*gs).*member = static_cast<V>(v);
      }
  });
  for (std::size_t i = 0; i < n; ++i)
    for (auto& gs : gpus[i])
      if (gs) samples[i].gpus.push_back(std::move(*gs));
  return samples;
}

std::string rank_path(std::uint32_t rank) { return "/ranks/" + std::to_string(rank); }

void write_contents(const H5File& f, hid_t file, const JobTelemetry& job) {
  f.put_attr(file, "/", "schema", std::string(kJobFileSchema));
  f.put_attr(file, "/", "job_id", job.job_id);
  f.put_attr(file, "/", "written_at_unix_ms", job.written_at_unix_ms);
  f.put_attr(file, "/", "complete", job.complete);
  f.put_attr(file, "/", "nranks", std::uint32_t(job.ranks.size()));
  write_summary(f, file, "/totals", job.totals);
  {
    Hid st = f.group(file, "/stragglers");
    f.put_attr(st.get(), "/stragglers", "threshold", job.straggler_threshold);
    std::vector<std::uint32_t> rank;
    std::vector<double> own, ratio;
    for (const auto& s : job.stragglers) rank.push_back(s.rank), own.push_back(s.own_ms_per_step), ratio.push_back(s.ratio);
    f.put_data(st.get(), "/stragglers", "rank", rank);
    f.put_data(st.get(), "/stragglers", "own_ms_per_step", own);
    f.put_data(st.get(), "/stragglers", "ratio", ratio);
  }
  Hid ranks = f.group(file, "/ranks");
  for (const auto& r : job.ranks) {
    const std::string p = rank_path(r.rank);
    Hid g = f.group(file, p);
    f.put_attr(g.get(), p, "rank", r.rank);
    f.put_attr(g.get(), p, "host", r.host);
    f.put_attr(g.get(), p, "samples_dropped", r.samples_dropped);
    write_summary(f, file, p + "/totals", r.summary);
    write_series(f, file, p + "/series", r.samples);
  }
}

void fsync_path(const std::filesystem::path& p, int flags, const std::string& display, const char* what) {
  UniqueFd fd(::open(p.c_str(), flags | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0)
    throw JobFileError(display, "", std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

void write_job_file(const std::filesystem::path& path, const JobTelemetry& job) {
  const std::string display = path.string();
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::filesystem::path tmp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()));
  H5Silence quiet;
  H5File f(display);
  try {
    Hid fapl(f.check(H5Pcreate(H5P_FILE_ACCESS), "", "cannot create property list"));
    // v1.10 format: checksums on the superblock, object headers and chunk indices, so damage
    // is detected (Fletcher-32 covers the data itself); readable by HDF5 1.10 and later.
    f.check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_LATEST), "", "cannot set format");
    const hid_t raw = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (raw < 0) f.fail("", "cannot create temporary file " + tmp.string() + " (directory missing or not writable?)");
    {
      Hid file(raw);
      write_contents(f, file.get(), job);
      f.check(H5Fclose(file.release()), "", "cannot close (disk full?)");
    }
    fsync_path(tmp, O_RDONLY, display, "cannot flush the temporary file");
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw JobFileError(display, "", "cannot rename " + tmp.string() + " over it: " + std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_path(dir, O_RDONLY | O_DIRECTORY, display, "cannot flush the directory");
}

JobTelemetry read_job_file(const std::filesystem::path& path, JobFileOrigin* origin, const JobFileLimits& limits) {
  H5Silence quiet;
  H5File f(path.string(), limits);
  // The file is opened once, here, without following a link; HDF5 reads that same file through
  // /proc/self/fd, and its owner and size come from this descriptor: a file swapped in after
  // the check is never the one read. lstat first: a device or FIFO is never opened at all.
  struct stat sb {};
  if (::lstat(path.c_str(), &sb) != 0)
    f.fail("", errno == ENOENT ? "missing" : std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(sb.st_mode)) f.fail("", S_ISLNK(sb.st_mode) ? "a symbolic link (not followed)" : "not a regular file");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) f.fail("", std::string("cannot open: ") + std::strerror(errno));
  if (::fstat(fd.get(), &sb) != 0) f.fail("", std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(sb.st_mode)) f.fail("", "not a regular file");
  f.set_file_size(std::uint64_t(sb.st_size));
  if (origin) *origin = JobFileOrigin{std::uint32_t(sb.st_uid), std::uint64_t(sb.st_size)};
  const std::string via = "/proc/self/fd/" + std::to_string(fd.get());
  if (H5Fis_hdf5(via.c_str()) <= 0) f.fail("", "not an HDF5 file (damaged or truncated?)");
  Hid fapl(f.check(H5Pcreate(H5P_FILE_ACCESS), "", "cannot create property list"));
  // Closing the file closes whatever a failed read left open (damaged metadata).
  f.check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "", "cannot set the close degree");
  Hid file(f.check(H5Fopen(via.c_str(), H5F_ACC_RDONLY, fapl.get()), "", "cannot open (damaged or truncated?)"));
  const hid_t h = file.get();
  const std::string schema = f.get_string_attr(h, "/", "schema");
  if (schema != kJobFileSchema) f.fail("/@schema", "schema '" + schema + "', expected '" + kJobFileSchema + "'");
  JobTelemetry job;
  job.job_id = f.get_string_attr(h, "/", "job_id");
  job.written_at_unix_ms = f.get_attr<std::int64_t>(h, "/", "written_at_unix_ms");
  job.complete = f.get_attr<bool>(h, "/", "complete");
  const auto nranks = f.get_attr<std::uint32_t>(h, "/", "nranks");
  job.totals = read_summary(f, h, "/totals");
  {
    Hid st = f.open_group(h, "/stragglers");
    job.straggler_threshold = f.get_attr<double>(st.get(), "/stragglers", "threshold");
    const auto rank = f.get_data<std::uint32_t>(st.get(), "/stragglers", "rank", std::nullopt);
    const auto own = f.get_data<double>(st.get(), "/stragglers", "own_ms_per_step", rank.size());
    const auto ratio = f.get_data<double>(st.get(), "/stragglers", "ratio", rank.size());
    for (std::size_t i = 0; i < rank.size(); ++i) job.stragglers.push_back({rank[i], own[i], ratio[i]});
  }
  Hid ranks = f.open_group(h, "/ranks");
  H5G_info_t info{};
  f.check(H5Gget_info(ranks.get(), &info), "/ranks", "cannot list");
  if (info.nlinks != nranks)
    f.fail("/ranks", std::to_string(info.nlinks) + " ranks, but /@nranks says " + std::to_string(nranks));
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[32] = {};
    if (H5Lget_name_by_idx(ranks.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
      f.fail("/ranks", "cannot list member " + std::to_string(i));
    const std::string p = "/ranks/" + std::string(name);
    Hid g = f.open_group(h, p);
    RankTelemetry r;
    r.rank = f.get_attr<std::uint32_t>(g.get(), p, "rank");
    if (p != rank_path(r.rank)) f.fail(p + "@rank", "says rank " + std::to_string(r.rank));
    r.host = f.get_string_attr(g.get(), p, "host");
    r.samples_dropped = f.get_attr<std::uint64_t>(g.get(), p, "samples_dropped");
    r.summary = read_summary(f, h, p + "/totals");
    r.samples = read_series(f, h, p + "/series");
    job.ranks.push_back(std::move(r));
  }
  std::sort(job.ranks.begin(), job.ranks.end(), [](const RankTelemetry& a, const RankTelemetry& b) { return a.rank < b.rank; });
  return job;
}

}  // namespace sluice::monitor
