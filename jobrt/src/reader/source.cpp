// The logical dataset: opening and validating every file, and layout-aware batch reads.
#include "internal.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace sluice::reader {

DataError::DataError(const std::string& file, const std::string& dataset, const std::string& what)
    : Error("sluice reader: " + (file.empty() ? std::string() : file + ": ") +
            (dataset.empty() ? std::string() : "dataset '" + dataset + "': ") + what),
      file_(file),
      dataset_(dataset) {}

std::string ElementType::name() const {
  const char k = kind == Kind::Float ? 'f' : kind == Kind::Int ? 'i' : 'u';
  return std::string(little_endian || bytes == 1 ? "" : ">") + k + std::to_string(bytes * 8);
}

namespace detail {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}

void HidTraits::close(hid_t h) noexcept {
  std::lock_guard lk(hdf5_mutex());
  switch (H5Iget_type(h)) {
    case H5I_FILE: H5Fclose(h); break;
    case H5I_DATASET: H5Dclose(h); break;
    case H5I_DATATYPE: H5Tclose(h); break;
    case H5I_DATASPACE: H5Sclose(h); break;
    case H5I_GENPROP_LST: H5Pclose(h); break;
    case H5I_GROUP: H5Gclose(h); break;
    default: break;
  }
}

H5Quiet::H5Quiet() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}
H5Quiet::~H5Quiet() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

std::string H5Quiet::message() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        auto* m = static_cast<std::string*>(data);
        if (e->desc && *e->desc) {
          if (n > 0) *m += "; ";
          *m += e->desc;
        }
        return n >= 2 ? 1 : 0;  // the outermost three are enough
      },
      &msg);
  return msg;
}

namespace {

// CPUs in this process's affinity mask (a Slurm task's cpuset, not the whole machine).
unsigned allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(std::thread::hardware_concurrency(), 1u);
}

std::string with_hdf5(const std::string& what) {
  const std::string m = H5Quiet::message();
  return m.empty() ? what : what + " (HDF5: " + m + ")";
}

// Does the path A/B/C exist as a link chain? (H5Lexists fails on a missing intermediate group.)
bool path_exists(hid_t fid, const std::string& path) {
  std::string prefix;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t slash = path.find('/', pos);
    const std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() + 1 : slash + 1;
    if (part.empty()) continue;
    prefix += (prefix.empty() ? "" : "/") + part;
    if (H5Lexists(fid, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

ElementType element_type(hid_t type, const std::string& file, const std::string& ds) {
  ElementType t;
  const H5T_class_t cls = H5Tget_class(type);
  t.bytes = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    t.kind = H5Tget_sign(type) == H5T_SGN_NONE ? ElementType::Kind::UInt : ElementType::Kind::Int;
    if (t.bytes != 1 && t.bytes != 2 && t.bytes != 4 && t.bytes != 8)
      throw DataError(file, ds, "unsupported integer size " + std::to_string(t.bytes) + " bytes");
  } else if (cls == H5T_FLOAT) {
    t.kind = ElementType::Kind::Float;
    if (t.bytes != 2 && t.bytes != 4 && t.bytes != 8)
      throw DataError(file, ds, "unsupported float size " + std::to_string(t.bytes) + " bytes");
  } else {
    static const char* names[] = {"integer", "float", "time", "string", "bitfield", "opaque",
                                  "compound", "reference", "enum", "variable-length", "array"};
    const std::string name = cls >= 0 && cls < 11 ? names[cls] : "unknown";
    throw DataError(file, ds, "unsupported element type (" + name + "); supported: integers and floats");
  }
  const H5T_order_t order = H5Tget_order(type);
  t.little_endian = order != H5T_ORDER_BE;
  return t;
}

}  // namespace

Source::Source(const std::vector<std::string>& paths, const std::vector<std::string>& display, const ReaderOptions& o)
    : window_budget_(o.ram_window_bytes),
      names_(o.datasets),
      batch_(std::max<std::size_t>(o.batch_size, 1)),
      io_threads_(std::max(o.io_threads, 1u)),
      cpus_(allowed_cpus()) {
  // Blocks of 8 MiB (large sequential reads), smaller for a small window so it still holds
  // several; multiples of 4 KiB.
  window_block_ = std::clamp<std::uint64_t>(window_budget_ / 16, 4096, 8u << 20) / 4096 * 4096;
  if (paths.empty()) throw DataError("", "", "no files given");
  if (names_.empty()) throw DataError("", "", "no datasets given");
  for (std::size_t i = 0; i < names_.size(); ++i) {
    if (names_[i].empty()) throw DataError("", "", "empty dataset name");
    for (std::size_t j = 0; j < i; ++j)
      if (names_[i] == names_[j]) throw DataError("", names_[i], "dataset named twice");
  }
  files_.resize(paths.size());
  std::lock_guard lk(hdf5_mutex());
  H5Quiet quiet;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    files_[i].path = paths[i];
    files_[i].display = display[i];
    open_file(files_[i], o, i);
    files_[i].first = n_;
    n_ += files_[i].count;
  }
  if (n_ == 0) throw DataError(files_.front().display, names_.front(), "the dataset has no samples");
}

Source::~Source() = default;

WindowBlock::WindowBlock(std::size_t bytes) {
  constexpr std::size_t kHuge = 2u << 20;
  if (bytes < kHuge) {  // a small window's block: ordinary pages (a huge one would be mostly waste)
    const std::size_t size = (std::max<std::size_t>(bytes, 1) + 4095) / 4096 * 4096;
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<std::byte*>(m);
    mapped_ = size;
    return;
  }
  const std::size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  // Map one huge page more, keep the aligned part, give back the rest.
  void* m = ::mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<std::byte*>(m);
  auto* aligned = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(base) + kHuge - 1) / kHuge * kHuge);
  if (aligned > base) ::munmap(base, static_cast<std::size_t>(aligned - base));
  if (const std::size_t tail = static_cast<std::size_t>(base + size + kHuge - (aligned + size)); tail > 0)
    ::munmap(aligned + size, tail);
  ::madvise(aligned, size, MADV_HUGEPAGE);  // a hint: without THP it is ordinary memory
  p_ = aligned;
  mapped_ = size;
}
WindowBlock& WindowBlock::operator=(WindowBlock&& o) noexcept {
  if (this != &o) {
    if (p_) ::munmap(p_, mapped_);
    p_ = std::exchange(o.p_, nullptr);
    mapped_ = o.mapped_;
  }
  return *this;
}
WindowBlock::~WindowBlock() {
  if (p_) ::munmap(p_, mapped_);
}

File::Mapping::~Mapping() {
  if (p) ::munmap(const_cast<std::byte*>(p), size);
}

void Source::open_file(File& f, const ReaderOptions& o, std::size_t index) {
  const std::string& name = f.display == f.path ? f.path : f.display + " (read from " + f.path + ")";
  struct stat st {};
  if (::stat(f.path.c_str(), &st) != 0) throw DataError(name, "", std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw DataError(name, "", "not a regular file");
  const htri_t is = H5Fis_hdf5(f.path.c_str());
  if (is <= 0) throw DataError(name, "", with_hdf5("not an HDF5 file (corrupt, or no HDF5 signature)"));
  f.fid.reset(H5Fopen(f.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.fid) throw DataError(name, "", with_hdf5("cannot open as HDF5 (truncated or corrupt?)"));
  f.fd.reset(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd) throw DataError(name, "", std::string("cannot open: ") + std::strerror(errno));
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  f.size = file_size;

  f.ds.resize(names_.size());
  for (std::size_t d = 0; d < names_.size(); ++d) {
    const std::string& dn = names_[d];
    FileDataset& fd = f.ds[d];
    if (!path_exists(f.fid.get(), dn)) throw DataError(name, dn, "no such dataset");
    fd.dset.reset(H5Dopen2(f.fid.get(), dn.c_str(), H5P_DEFAULT));
    if (!fd.dset) throw DataError(name, dn, with_hdf5("cannot open the dataset (not a dataset, or corrupt)"));
    fd.type.reset(H5Dget_type(fd.dset.get()));
    fd.space.reset(H5Dget_space(fd.dset.get()));
    if (!fd.type || !fd.space) throw DataError(name, dn, with_hdf5("cannot read type or shape"));
    const ElementType et = element_type(fd.type.get(), name, dn);
    if (H5Sget_simple_extent_type(fd.space.get()) != H5S_SIMPLE)
      throw DataError(name, dn, "not an array (scalar or null dataspace): needs one sample per index of the first dimension");
    fd.rank = H5Sget_simple_extent_ndims(fd.space.get());
    if (fd.rank < 1) throw DataError(name, dn, "has no dimensions");
    fd.dims.resize(static_cast<std::size_t>(fd.rank));
    H5Sget_simple_extent_dims(fd.space.get(), fd.dims.data(), nullptr);

    DatasetInfo info;
    info.name = dn;
    info.type = et;
    info.sample_shape.assign(fd.dims.begin() + 1, fd.dims.end());
    std::uint64_t elems = 1;
    for (auto v : info.sample_shape) elems *= v;
    info.sample_bytes = elems * et.bytes;
    if (info.sample_bytes == 0) throw DataError(name, dn, "samples of zero bytes (a zero dimension after the first)");

    auto shape_str = [](const DatasetInfo& in) {
      std::string s = in.type.name() + " [N";
      for (auto v : in.sample_shape) s += " x " + std::to_string(v);
      return s + "]";
    };
    if (index == 0) {
      infos_.push_back(info);
    } else if (infos_[d].type != info.type || infos_[d].sample_shape != info.sample_shape) {
      throw DataError(name, dn, "is " + shape_str(info) + " but in " + files_[0].display + " it is " + shape_str(infos_[d]) +
                                    ": every file must hold the same type and sample shape");
    }
    if (d == 0) {
      f.count = fd.dims[0];
    } else if (fd.dims[0] != f.count) {
      throw DataError(name, dn, "first dimensions disagree: '" + dn + "' has " + std::to_string(fd.dims[0]) + " samples, '" +
                                    names_[0] + "' has " + std::to_string(f.count));
    }

    // Layout: contiguous and allocated -> direct pread at the offset (checked against the
    // file's size: a truncated file fails here, not mid-epoch).
    UniqueHid dcpl(H5Dget_create_plist(fd.dset.get()));
    const H5D_layout_t layout = dcpl ? H5Pget_layout(dcpl.get()) : H5D_LAYOUT_ERROR;
    const std::uint64_t bytes = fd.dims[0] * info.sample_bytes;
    if (layout == H5D_CONTIGUOUS && H5Pget_external_count(dcpl.get()) == 0) {
      const haddr_t off = H5Dget_offset(fd.dset.get());
      if (off != HADDR_UNDEF) {
        if (off + bytes > file_size)
          throw DataError(name, dn, "truncated: its data ends at byte " + std::to_string(off + bytes) + " but the file has " +
                                        std::to_string(file_size));
        fd.offset = off;
        fd.direct = o.direct_reads;
      }
    } else if (layout == H5D_CHUNKED) {
      fd.chunked = true;
      std::vector<hsize_t> chunk(static_cast<std::size_t>(fd.rank));
      H5Pget_chunk(dcpl.get(), fd.rank, chunk.data());
      fd.chunk_rows = std::max<hsize_t>(chunk[0], 1);
      std::uint64_t chunk_bytes = et.bytes;
      for (auto c : chunk) chunk_bytes *= c;
      const bool filtered = H5Pget_nfilters(dcpl.get()) > 0;
      const std::uint64_t chunks_total = (fd.dims[0] + fd.chunk_rows - 1) / fd.chunk_rows;
      // Unfiltered chunks holding whole samples: a table of chunk addresses, read with pread
      // like contiguous data (HDF5 1.10 maps an irregular selection onto chunks at a cost that
      // grows with chunks x blocks: 70 ms for a shuffled batch of 256 over 1024 chunks).
      bool whole_samples = true;
      for (int k = 1; k < fd.rank; ++k) whole_samples = whole_samples && chunk[static_cast<std::size_t>(k)] == fd.dims[static_cast<std::size_t>(k)];
      if (!filtered && whole_samples && o.direct_reads) {
        std::vector<std::uint64_t> addr(chunks_total);
        std::vector<hsize_t> coord(static_cast<std::size_t>(fd.rank), 0);
        bool ok = true;
        for (std::uint64_t c = 0; c < chunks_total && ok; ++c) {
          coord[0] = c * fd.chunk_rows;
          unsigned mask = 0;
          haddr_t a = HADDR_UNDEF;
          hsize_t size = 0;
          if (H5Dget_chunk_info_by_coord(fd.dset.get(), coord.data(), &mask, &a, &size) < 0 || a == HADDR_UNDEF) {
            ok = false;  // unallocated chunk (fill value): HDF5 reads it
            break;
          }
          if (a + chunk_bytes > file_size)
            throw DataError(name, dn, "truncated: chunk " + std::to_string(c) + " ends at byte " + std::to_string(a + chunk_bytes) +
                                          " but the file has " + std::to_string(file_size));
          addr[c] = a;
        }
        if (ok) {
          fd.chunk_addr = std::move(addr);
          fd.direct = true;
        }
      }
      // Filtered chunks are decompressed whole: keep as many as a batch touches (at most one
      // per sample), up to 256 MiB. Unfiltered: no cache, HDF5 reads only the selected
      // samples of a chunk (a chunk larger than the cache bypasses it).
      std::size_t cache = 0;
      if (filtered) {
        const std::uint64_t want = std::min<std::uint64_t>(chunks_total, 2 * batch_) * chunk_bytes;
        cache = o.chunk_cache_bytes ? o.chunk_cache_bytes
                                    : static_cast<std::size_t>(std::clamp<std::uint64_t>(want, chunk_bytes, 256ull << 20));
      }
      UniqueHid dapl(H5Pcreate(H5P_DATASET_ACCESS));
      // Slots: a prime well above the number of chunks the cache holds.
      H5Pset_chunk_cache(dapl.get(), 10007, cache, 1.0);
      UniqueHid reopened(H5Dopen2(f.fid.get(), dn.c_str(), dapl.get()));
      if (reopened) fd.dset = std::move(reopened);
    }
  }
  bool any_direct = false;
  for (const auto& fd : f.ds) any_direct = any_direct || fd.direct;
  if (o.use_mmap && any_direct && file_size > 0) {
    void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_SHARED, f.fd.get(), 0);
    if (m != MAP_FAILED) {
      f.map.p = static_cast<const std::byte*>(m);
      f.map.size = file_size;
    }
  }
}

std::uint64_t Source::read(const std::vector<std::uint64_t>& ids, const std::vector<std::byte*>& out) {
  std::uint64_t total = 0;
  std::size_t i = 0;
  std::size_t fi = 0;
  segs_.clear();
  groups_.clear();
  while (i < ids.size()) {
    while (fi < files_.size() && ids[i] >= files_[fi].first + files_[fi].count) ++fi;
    File& f = files_[fi];
    const std::size_t begin = i;
    // Runs of consecutive local indices within this file: (local start, length).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    while (i < ids.size() && ids[i] < f.first + f.count) {
      const std::uint64_t local = ids[i] - f.first;
      if (!runs.empty() && runs.back().first + runs.back().second == local)
        ++runs.back().second;
      else
        runs.emplace_back(local, 1);
      ++i;
    }
    const std::uint64_t rows = i - begin;
    for (std::size_t d = 0; d < f.ds.size(); ++d) {
      std::byte* dst = out[d] + begin * infos_[d].sample_bytes;
      if (f.ds[d].direct)
        plan_direct(f, d, runs, dst);
      else
        read_hdf5(f, d, runs, rows, dst);
      total += rows * infos_[d].sample_bytes;
    }
  }
  if (!groups_.empty()) {
    if (!pool_) pool_ = std::make_unique<IoPool>(io_threads_);
    if (scratch_.size() < pool_->threads()) scratch_.resize(pool_->threads());
    if (window_budget_ > 0) fill_window();
    // Copies out of memory (mmap, window) are CPU work: no more threads than CPUs. Reads
    // from the file keep every I/O thread (a deeper queue for the disk).
    bool from_memory = true;
    for (const Group& gr : groups_)
      from_memory = from_memory && (gr.f->map.p || (!gr.f->window.empty() && in_window(*gr.f, gr.off, gr.span)));
    pool_->run(groups_.size(), [this](std::size_t g, unsigned worker) {
      const Group& gr = groups_[g];
      if (gr.f->map.p) {
        for (std::size_t k = gr.first; k < gr.last; ++k) std::memcpy(segs_[k].dst, gr.f->map.p + segs_[k].off, segs_[k].len);
        return;
      }
      if (!gr.f->window.empty() && in_window(*gr.f, gr.off, gr.span)) {
        for (std::size_t k = gr.first; k < gr.last; ++k) copy_from_window(*gr.f, segs_[k].off, segs_[k].len, segs_[k].dst);
        return;
      }
      if (gr.last == gr.first + 1) {
        pread_all(*gr.f, gr.d, segs_[gr.first].dst, gr.span, gr.off);
        return;
      }
      auto& scratch = scratch_[worker];
      if (scratch.size() < gr.span) scratch.resize(gr.span);
      pread_all(*gr.f, gr.d, scratch.data(), gr.span, gr.off);
      for (std::size_t k = gr.first; k < gr.last; ++k)
        std::memcpy(segs_[k].dst, scratch.data() + (segs_[k].off - gr.off), segs_[k].len);
    }, from_memory ? cpus_ : ~0u);
  }
  return total;
}

void Source::fill_window() {
  // The blocks this batch's groups touch that are not loaded yet, while the budget lasts. They
  // are never evicted: every epoch reads the same samples, so a loaded block keeps paying.
  struct Load {
    File* f;
    std::size_t d;  // for an error message
    std::uint64_t block, bytes;
  };
  std::vector<Load> loads;
  for (const Group& gr : groups_) {
    File& f = *gr.f;
    if (f.map.p || f.size == 0 || gr.off >= f.size) continue;
    if (f.window.empty()) {
      f.window.resize((f.size + window_block_ - 1) / window_block_);
      // Blocks are read with O_DIRECT where the file system allows it: from the disk straight
      // into the window, no second copy in the page cache. Cold, that read 0.69-0.97 of the
      // raw sequential rate here, against 0.39-1.01 through the page cache. The same open
      // file, reopened (no path lookup).
      if (!f.window_direct_tried) {
        f.window_direct_tried = true;
        f.window_fd = reopen_fd(f.fd.get(), O_RDONLY | O_DIRECT);
      }
      // Without it, and when the window will hold the whole file: have the kernel read it
      // front to back now (one sequential stream) while the blocks are copied in.
      if (!f.window_fd && window_used_ + f.size <= window_budget_) ::posix_fadvise(f.fd.get(), 0, 0, POSIX_FADV_WILLNEED);
    }
    const std::uint64_t last = std::min<std::uint64_t>((gr.off + gr.span - 1) / window_block_, f.window.size() - 1);
    for (std::uint64_t b = gr.off / window_block_; b <= last; ++b) {
      if (f.window[b]) continue;
      const std::uint64_t bytes = std::min(window_block_, f.size - b * window_block_);
      if (window_used_ + bytes > window_budget_) break;
      // Reserve it now, so a block two groups share is read once.
      f.window[b] = WindowBlock(bytes);
      window_used_ += bytes;
      loads.push_back({&f, gr.d, b, bytes});
    }
  }
  if (loads.empty()) return;
  try {
    pool_->run(loads.size(), [&](std::size_t i, unsigned) {
      const Load& l = loads[i];
      if (l.f->window_fd && pread_direct(*l.f, l.f->window[l.block].get(), l.bytes, l.block * window_block_)) return;
      pread_all(*l.f, l.d, l.f->window[l.block].get(), l.bytes, l.block * window_block_);
    });
  } catch (...) {
    // A block that failed is not kept (it may be partly read); the others were read whole.
    for (const Load& l : loads) {
      l.f->window[l.block].reset();
      window_used_ -= l.bytes;
    }
    throw;
  }
}

bool Source::in_window(const File& f, std::uint64_t off, std::uint64_t len) const {
  if (len == 0 || off + len > f.size) return false;
  for (std::uint64_t b = off / window_block_, last = (off + len - 1) / window_block_; b <= last; ++b)
    if (!f.window[b]) return false;
  return true;
}

void Source::copy_from_window(const File& f, std::uint64_t off, std::uint64_t len, std::byte* dst) const {
  while (len > 0) {
    const std::uint64_t b = off / window_block_, within = off % window_block_;
    const std::uint64_t take = std::min(len, window_block_ - within);
    std::memcpy(dst, f.window[b].get() + within, take);
    dst += take;
    off += take;
    len -= take;
  }
}

void Source::advise(const std::vector<std::uint64_t>& ids) {
  std::size_t fi = 0;
  for (std::uint64_t id : ids) {
    while (fi < files_.size() && id >= files_[fi].first + files_[fi].count) ++fi;
    if (fi == files_.size()) break;
    File& f = files_[fi];
    const std::uint64_t local = id - f.first;
    for (std::size_t d = 0; d < f.ds.size(); ++d) {
      const FileDataset& fd = f.ds[d];
      if (!fd.direct) continue;
      const std::uint64_t sb = infos_[d].sample_bytes;
      const std::uint64_t off = fd.chunked ? fd.chunk_addr[local / fd.chunk_rows] + (local % fd.chunk_rows) * sb : fd.offset + local * sb;
      ::posix_fadvise(f.fd.get(), static_cast<off_t>(off), static_cast<off_t>(sb), POSIX_FADV_WILLNEED);
    }
  }
}

// One window block through the file's O_DIRECT descriptor: the offset is a multiple of the
// block size (4 KiB at least) and the block's buffer is rounded up to 4 KiB, so the read may
// ask for whole 4 KiB units past the end of the file. false (the caller reads it the usual
// way, which also names any error) on a refusal, an error or a short file.
bool Source::pread_direct(File& f, std::byte* dst, std::uint64_t bytes, std::uint64_t off) {
  const std::uint64_t want = (bytes + 4095) / 4096 * 4096;
  std::uint64_t got = 0;
  while (got < bytes) {
    const ssize_t r = ::pread(f.window_fd.get(), dst + got, want - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::uint64_t>(r);
    if (got < bytes && got % 4096 != 0) return false;  // the next read would be unaligned
  }
  return true;
}

void Source::pread_all(File& f, std::size_t d, std::byte* dst, std::uint64_t left, std::uint64_t off) {
  while (left > 0) {
    const ssize_t r = ::pread(f.fd.get(), dst, left, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw DataError(f.display, names_[d], std::string("read failed: ") + std::strerror(errno));
    if (r == 0) throw DataError(f.display, names_[d], "truncated: end of file at byte " + std::to_string(off) + " (the file shrank?)");
    dst += r;
    off += static_cast<std::uint64_t>(r);
    left -= static_cast<std::uint64_t>(r);
  }
}

void Source::plan_direct(File& f, std::size_t d, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs,
                         std::byte* dst) {
  const FileDataset& fd = f.ds[d];
  const std::uint64_t sb = infos_[d].sample_bytes;
  // Segments (file offset, bytes, destination): runs split at chunk boundaries.
  const std::size_t first = segs_.size();
  for (const auto& [start, len] : runs) {
    std::uint64_t s = start, left = len;
    while (left > 0) {
      std::uint64_t take = left, off = 0;
      if (fd.chunked) {
        const std::uint64_t c = s / fd.chunk_rows, within = s % fd.chunk_rows;
        take = std::min<std::uint64_t>(left, fd.chunk_rows - within);
        off = fd.chunk_addr[c] + within * sb;
      } else {
        off = fd.offset + s * sb;
      }
      if (segs_.size() > first && segs_.back().off + segs_.back().len == off && segs_.back().dst + segs_.back().len == dst)
        segs_.back().len += take * sb;  // adjacent in the file and in the batch
      else
        segs_.push_back({off, take * sb, dst});
      dst += take * sb;
      s += take;
      left -= take;
    }
  }
  std::sort(segs_.begin() + static_cast<std::ptrdiff_t>(first), segs_.end(),
            [](const Seg& a, const Seg& b) { return a.off < b.off; });
  // Segments closer than kGap in the file are read as one span (through a scratch buffer):
  // one system call instead of many small ones (labels of 8 bytes, dense batches).
  constexpr std::uint64_t kGap = 64 << 10, kMaxSpan = 16 << 20;
  for (std::size_t i = first; i < segs_.size();) {
    std::size_t j = i + 1;
    std::uint64_t end = segs_[i].off + segs_[i].len;
    while (j < segs_.size() && segs_[j].off <= end + kGap && segs_[j].off + segs_[j].len - segs_[i].off <= kMaxSpan) {
      end = std::max(end, segs_[j].off + segs_[j].len);
      ++j;
    }
    groups_.push_back({&f, d, segs_[i].off, end - segs_[i].off, i, j});
    i = j;
  }
}

IoPool::IoPool(unsigned threads) {
  for (unsigned w = 1; w < std::max(threads, 1u); ++w) helpers_.emplace_back([this, w] { work(w); });
}

IoPool::~IoPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : helpers_) t.join();
}

void IoPool::work(unsigned worker) {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || tickets_ > 0; });
      if (stop_) return;
      --tickets_;
    }
    for (std::size_t i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*fn_)(i, worker);
      } catch (...) {
        keep_error(i);
      }
    }
    {
      std::lock_guard lk(mu_);
      --busy_;
    }
    done_cv_.notify_all();
  }
}

void IoPool::keep_error(std::size_t item) {
  std::lock_guard lk(mu_);
  if (!error_ || item < error_item_) {
    error_ = std::current_exception();
    error_item_ = item;
  }
}

void IoPool::run(std::size_t n, const std::function<void(std::size_t, unsigned)>& fn, unsigned max_threads) {
  // Helpers that take part: no more than there are items beyond the caller's first.
  const auto helpers = static_cast<unsigned>(
      std::min<std::size_t>({helpers_.size(), n > 0 ? n - 1 : 0, max_threads > 0 ? max_threads - 1 : 0}));
  if (helpers == 0) {
    for (std::size_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  {
    std::lock_guard lk(mu_);
    fn_ = &fn;
    n_ = n;
    next_ = 0;
    error_ = nullptr;
    error_item_ = 0;
    busy_ = helpers;
    tickets_ = helpers;
  }
  for (unsigned h = 0; h < helpers; ++h) cv_.notify_one();
  for (std::size_t i; (i = next_.fetch_add(1)) < n;) {
    try {
      fn(i, 0);
    } catch (...) {
      keep_error(i);
    }
  }
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [&] { return busy_ == 0; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void Source::read_hdf5(File& f, std::size_t d, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs,
                       std::uint64_t rows, std::byte* dst) {
  FileDataset& fd = f.ds[d];
  std::lock_guard lk(hdf5_mutex());
  H5Quiet quiet;
  const auto r = static_cast<std::size_t>(fd.rank);
  const std::uint64_t sb = infos_[d].sample_bytes;
  // Chunked: one H5Dread per chunk (runs split at chunk boundaries), since HDF5 1.10 maps an
  // irregular selection over many chunks at a cost of chunks x blocks. Contiguous: one read.
  std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> groups;
  if (fd.chunked) {
    std::uint64_t current = ~0ull;
    for (auto [s, len] : runs)
      while (len > 0) {
        const std::uint64_t c = s / fd.chunk_rows;
        const std::uint64_t take = std::min<std::uint64_t>(len, (c + 1) * fd.chunk_rows - s);
        if (c != current) groups.emplace_back(), current = c;
        groups.back().emplace_back(s, take);
        s += take;
        len -= take;
      }
  } else {
    groups.push_back(runs);
  }
  (void)rows;
  std::vector<hsize_t> start(r, 0), count(r, 1), block(fd.dims);
  for (const auto& g : groups) {
    UniqueHid fspace(H5Scopy(fd.space.get()));
    H5Sselect_none(fspace.get());
    std::uint64_t n = 0;
    for (const auto& [s, len] : g) {
      start[0] = s;
      block[0] = len;
      n += len;
      if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_OR, start.data(), nullptr, count.data(), block.data()) < 0)
        throw DataError(f.display, names_[d], with_hdf5("cannot select samples"));
    }
    std::vector<hsize_t> mdims(fd.dims);
    mdims[0] = n;
    UniqueHid mspace(H5Screate_simple(fd.rank, mdims.data(), nullptr));
    if (H5Dread(fd.dset.get(), fd.type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, dst) < 0)
      throw DataError(f.display, names_[d], with_hdf5("read failed (corrupt chunk or truncated file?)"));
    dst += n * sb;
  }
}

}  // namespace detail
}  // namespace sluice::reader
