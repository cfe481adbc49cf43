// Internals of the sharded reader: HDF5 handles, the global HDF5 lock, the logical dataset.
#pragma once

#include <sluice/common/unique_handle.hpp>
#include <sluice/reader.hpp>

#include <hdf5.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <string>
#include <vector>

namespace sluice::reader::detail {

// Every HDF5 call sluice makes holds this (recursive) lock (docs/reader.md, "Threading"): Debian's
// serial libhdf5 is built thread-safe, its Open MPI build is not, and a user may link either.
std::recursive_mutex& hdf5_mutex();

struct HidTraits {
  static hid_t invalid() noexcept { return H5I_INVALID_HID; }
  static void close(hid_t h) noexcept;  // H5Fclose / H5Dclose / ... by H5Iget_type
};
using UniqueHid = UniqueHandle<hid_t, HidTraits>;

// Turns HDF5's automatic error printing off for the calling thread while alive, and
// restores it after; message() is the innermost HDF5 error of the last failure.
class H5Quiet {
 public:
  H5Quiet();
  ~H5Quiet();
  H5Quiet(const H5Quiet&) = delete;
  H5Quiet& operator=(const H5Quiet&) = delete;
  static std::string message();  // "" when HDF5 recorded nothing

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Helper threads for direct reads (pread needs no lock): run(n, fn) calls fn(i, worker) for
// every i < n on the helpers and the caller (worker 0), and rethrows the exception of the
// lowest item that failed (the same error whichever thread got there first).
// `max_threads` caps how many take part (caller included): copies out of memory want no
// more threads than CPUs, since every helper woken is a context switch the call waits for.
class IoPool {
 public:
  explicit IoPool(unsigned threads);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;
  unsigned threads() const noexcept { return static_cast<unsigned>(helpers_.size()) + 1; }
  void run(std::size_t n, const std::function<void(std::size_t, unsigned)>& fn, unsigned max_threads = ~0u);

 private:
  void work(unsigned worker);
  void keep_error(std::size_t item);  // in a catch block
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> helpers_;
  const std::function<void(std::size_t, unsigned)>* fn_ = nullptr;
  std::size_t n_ = 0;
  std::atomic<std::size_t> next_{0};
  unsigned tickets_ = 0;  // helpers still to join the current run
  unsigned busy_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::size_t error_item_ = 0;
};

// One block of the RAM window: anonymous memory aligned to 2 MiB and advised as huge pages,
// so that copying samples out of it at random costs few TLB misses (the page cache the raw
// read copies from is mapped with huge pages by the kernel).
class WindowBlock {
 public:
  WindowBlock() = default;
  explicit WindowBlock(std::size_t bytes);  // throws std::bad_alloc
  WindowBlock(WindowBlock&& o) noexcept : p_(std::exchange(o.p_, nullptr)), mapped_(o.mapped_) {}
  WindowBlock& operator=(WindowBlock&& o) noexcept;
  WindowBlock(const WindowBlock&) = delete;
  WindowBlock& operator=(const WindowBlock&) = delete;
  ~WindowBlock();
  std::byte* get() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept { *this = WindowBlock(); }

 private:
  std::byte* p_ = nullptr;
  std::size_t mapped_ = 0;
};

// One dataset of one file.
struct FileDataset {
  UniqueHid dset;
  UniqueHid type;        // the file's type, used as memory type (no conversion)
  UniqueHid space;       // the file dataspace (copied per read)
  int rank = 0;
  std::vector<hsize_t> dims;
  bool direct = false;   // unfiltered and allocated: pread at known offsets, no HDF5 call
  std::uint64_t offset = 0;               // contiguous: where the data starts
  bool chunked = false;
  hsize_t chunk_rows = 0;                 // samples per chunk (first chunk dimension)
  std::vector<std::uint64_t> chunk_addr;  // direct chunked: file offset of each chunk
};

struct File {
  std::string path;      // what is read (staged copy or source)
  std::string display;   // what the user gave
  UniqueHid fid;
  UniqueFd fd;           // for direct reads
  struct Mapping {  // use_mmap: the whole file, read-only
    const std::byte* p = nullptr;
    std::uint64_t size = 0;
    Mapping() = default;
    Mapping(Mapping&& o) noexcept : p(std::exchange(o.p, nullptr)), size(o.size) {}
    Mapping& operator=(Mapping&&) = delete;
    ~Mapping();
  } map;
  std::uint64_t first = 0, count = 0;  // global sample range
  std::vector<FileDataset> ds;         // one per dataset, in options order
  std::uint64_t size = 0;              // bytes, at open
  // ram_window_bytes: the file's blocks held in memory (null: not loaded), by offset / block.
  std::vector<WindowBlock> window;
  // The same file opened with O_DIRECT, for window blocks (-1: refused, or not tried yet
  // while window_direct_tried is false).
  UniqueFd window_fd;
  bool window_direct_tried = false;
};

// The logical dataset: every file, validated.
class Source {
 public:
  // PATHS: what to open; DISPLAY: the names the user gave (for messages).
  Source(const std::vector<std::string>& paths, const std::vector<std::string>& display, const ReaderOptions& o);
  ~Source();
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  std::uint64_t samples() const noexcept { return n_; }
  const std::vector<DatasetInfo>& infos() const noexcept { return infos_; }

  // Reads the samples SORTED_UNIQUE (ascending global ids) into OUT[d] (row i = the i-th id).
  // Returns the bytes read. Throws DataError naming file and dataset.
  std::uint64_t read(const std::vector<std::uint64_t>& sorted_unique, const std::vector<std::byte*>& out);
  // Bytes held in the RAM window (ReaderOptions::ram_window_bytes).
  std::uint64_t window_bytes() const noexcept { return window_used_; }
  // Clairvoyance: asks the kernel to start reading these samples' bytes (direct datasets
  // only; posix_fadvise WILLNEED), so a later read() finds them in the page cache.
  void advise(const std::vector<std::uint64_t>& sorted_unique);

 private:
  void open_file(File& f, const ReaderOptions& o, std::size_t index);
  void read_hdf5(File& f, std::size_t d, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs,
                 std::uint64_t rows, std::byte* dst);
  // A direct read: one pread of [off, off+span) serving segments [first, last) of segs_.
  struct Seg {
    std::uint64_t off, len;
    std::byte* dst;
  };
  struct Group {
    File* f;
    std::size_t d;
    std::uint64_t off, span;
    std::size_t first, last;
  };
  void plan_direct(File& f, std::size_t d, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs, std::byte* dst);
  bool pread_direct(File& f, std::byte* dst, std::uint64_t bytes, std::uint64_t off);
  void pread_all(File& f, std::size_t d, std::byte* dst, std::uint64_t len, std::uint64_t off);
  // The RAM window: loads the blocks the planned groups need while the budget lasts; a group
  // whose span lies in loaded blocks is then served from memory.
  void fill_window();
  bool in_window(const File& f, std::uint64_t off, std::uint64_t len) const;
  void copy_from_window(const File& f, std::uint64_t off, std::uint64_t len, std::byte* dst) const;
  std::uint64_t window_budget_ = 0, window_used_ = 0, window_block_ = 0;
  std::vector<Seg> segs_;
  std::vector<Group> groups_;
  std::vector<std::vector<std::byte>> scratch_;  // per worker, for gap-merged reads
  std::unique_ptr<IoPool> pool_;

  std::vector<File> files_;
  std::vector<DatasetInfo> infos_;
  std::vector<std::string> names_;
  std::uint64_t n_ = 0;
  std::size_t batch_ = 1;
  unsigned io_threads_ = 1;
  unsigned cpus_ = 1;  // CPUs this process may run on (copies out of memory use no more)
};

// Source paths -> the paths to read: staged copies where $SLUICE_BB's manifests list them.
std::vector<std::string> resolve_staged(const std::vector<std::string>& files, const ReaderOptions& o);

}  // namespace sluice::reader::detail
