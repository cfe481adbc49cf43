// sluice sharded HDF5 reader (sluice::reader). Each rank of a data-parallel job reads its
// share of one logical dataset (one or many HDF5 files, several aligned datasets such as
// `x` and `y`), in a fresh shuffle every epoch, prefetched by a background I/O thread into
// reusable buffers the caller borrows without a copy. Guide: docs/reader.md.
//
// This header needs neither HDF5 nor MPI. <sluice/reader_mpi.hpp> adds the MPI_Comm entry
// point (rank and size from a communicator, and a check that every rank opened the same data).
#pragma once

#include <sluice/common/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sluice::reader {

// Bad or unreadable data: a missing file or dataset, first dimensions that disagree, an
// unsupported type, a truncated or corrupt file. file() and dataset() say where (either
// may be empty when the error concerns the whole list).
class DataError : public Error {
 public:
  DataError(const std::string& file, const std::string& dataset, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  const std::string& dataset() const noexcept { return dataset_; }

 private:
  std::string file_, dataset_;
};

// An element type as stored in the file. Samples are delivered as the file's bytes, with no
// conversion: `bytes` per element, in `little_endian` order or not.
struct ElementType {
  enum class Kind { Int, UInt, Float };
  Kind kind = Kind::Float;
  std::size_t bytes = 4;
  bool little_endian = true;
  // "f32", "i64", "u8", ... with ">" prepended when big-endian.
  std::string name() const;
  bool operator==(const ElementType&) const = default;
};

// One of the aligned datasets of every sample.
struct DatasetInfo {
  std::string name;                         // e.g. "x"
  ElementType type;
  std::vector<std::uint64_t> sample_shape;  // the dimensions after the first ({} for a scalar label)
  std::size_t sample_bytes = 0;             // elements per sample x type.bytes
};

// What to do with the N mod (ranks x batch) samples that do not fill a last global step.
enum class Remainder {
  DropLast,  // floor(N / (ranks*batch)) steps; the left-over samples of this epoch's order are skipped
  Pad,       // ceil(N / (ranks*batch)) steps; the last is filled from the start of the order,
             // and those repeated samples are flagged in Batch::padded()
};

struct ReaderOptions {
  std::vector<std::string> files;              // one logical dataset, in this order
  std::vector<std::string> datasets{"x", "y"}; // aligned per sample; the first is the "main" one
  std::size_t batch_size = 32;                 // B: samples per batch per rank
  std::uint64_t seed = 0;                      // with the epoch, fixes each epoch's order
  bool shuffle = true;                         // false: order 0..N-1 every epoch
  Remainder remainder = Remainder::Pad;
  int rank = 0;                                // this rank; set by reader_mpi.hpp from a communicator
  int ranks = 1;
  std::size_t prefetch_depth = 4;              // ready (or in-flight) batches held ahead, >= 1
  std::uint64_t start_epoch = 0;
  // Staged data: when $SLUICE_BB is set, files the staging manifest lists by their source
  // path are read from the burst buffer (waiting for each in async mode up to staged_timeout).
  bool use_staged = true;
  std::chrono::milliseconds staged_timeout{std::chrono::minutes(30)};
  // Chunk cache per chunked dataset for compressed data (0: automatic, see docs/reader.md).
  std::size_t chunk_cache_bytes = 0;
  // Unfiltered datasets (contiguous, or chunked with whole samples per chunk) are read with
  // pread() at offsets HDF5 reports at open (no HDF5 call per batch, no lock). false: always
  // through H5Dread.
  bool direct_reads = true;
  // Threads issuing those preads in parallel (the I/O thread and io_threads-1 helpers; they
  // sleep between batches). Many help cold data (a deeper disk queue): 2 -> 8 threads took
  // cold shuffled reads from 0.28 to 0.67 GB/s in tests/bench/reader_bench.cpp.
  // HDF5 calls stay on the I/O thread.
  unsigned io_threads = 8;
  // Clairvoyant readahead: after reading a batch, the I/O thread tells the kernel which
  // samples the batches this many steps beyond the queue will need (posix_fadvise WILLNEED,
  // direct datasets only), so cold data arrives in the page cache before it is read. 0: off.
  std::size_t advise_ahead = 0;
  // Direct reads copy from a read-only mapping of each file instead of pread() (no system
  // call per sample: faster when the data is in the page cache). Off by default: a file
  // truncated by someone else while mapped raises SIGBUS, which no library can turn into an
  // exception. Use it for staged (node-local, private) copies.
  bool use_mmap = false;
  // Clairvoyant RAM window: up to this many bytes of the files are kept in memory, in blocks
  // (8 MiB, or window/16 when smaller, at least 4 KiB) read whole the first time a batch needs
  // one of their samples. Since every epoch is a permutation of the same samples, a window as
  // large as the data turns a shuffled epoch's many small random reads into one pass of large
  // reads (O_DIRECT where the file system allows it: disk to window, no page-cache copy), and
  // later epochs into memory copies (NoPFS's RAM stage, for data that fits). Blocks
  // are never evicted; samples outside the window are read as without it. Direct datasets
  // only (unfiltered); per reader, so ranks sharing a node each hold their own. 0: off.
  std::uint64_t ram_window_bytes = 0;
  // CUDA: every batch is also copied to device memory, in the CUDA context current on the
  // thread that creates the Reader (cudaSetDevice first). The batch buffers are then pinned
  // host memory; the I/O thread queues each batch's copy on its own stream right after reading
  // it, so copies overlap the next reads, and next() hands out a batch once its copy is done:
  // Batch::device_data(d). The driver is loaded at run time (libcuda.so.1); without it, or
  // without a current context, the constructor throws InvalidArgument.
  bool copy_to_device = false;
};

// The shuffle and the sharding, as pure functions (identical on every rank and platform).
namespace sharding {

// SplitMix64 (Steele, Lea, Flood 2014): the only generator used, integer-only.
std::uint64_t splitmix64(std::uint64_t& state) noexcept;

// The order of epoch EPOCH: a Fisher-Yates shuffle of 0..n-1 driven by SplitMix64 seeded
// with splitmix64-mix(seed, epoch); bounded draws by rejection (no modulo bias). With
// shuffle == false, the identity.
std::vector<std::uint64_t> epoch_order(std::uint64_t n, std::uint64_t seed, std::uint64_t epoch, bool shuffle = true);

// Global steps per epoch (each rank gets one batch of B per step). 0 when drop_last leaves nothing.
std::uint64_t steps_per_epoch(std::uint64_t n, int ranks, std::size_t batch, Remainder r) noexcept;

// The positions into epoch_order() of rank RANK's batch STEP: slots (step*ranks + rank)*B
// ... +B, each taken modulo n (padding repeats the start of the order). A slot >= n is a pad.
struct Slot {
  std::uint64_t position;  // index into the epoch's order
  bool padded;
};
std::vector<Slot> batch_slots(std::uint64_t n, int ranks, int rank, std::size_t batch, std::uint64_t step);

}  // namespace sharding

// Where the reader is: the next batch it will hand out. Restoring it (same files, ranks,
// batch size, seed) yields the very batch that would have come next.
struct ReaderState {
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
  std::uint64_t step = 0;      // next batch within the epoch
  std::uint64_t samples = 0;   // N, checked on restore
  int ranks = 1;               // checked on restore
  std::uint64_t batch_size = 0;
  bool shuffle = true;
  bool operator==(const ReaderState&) const = default;
  // One line of text: "sluice-reader-state/1 seed=.. epoch=.. step=.. samples=.. ranks=.. batch=.. shuffle=..".
  std::string to_string() const;
  // Throws InvalidArgument naming what is wrong.
  static ReaderState from_string(const std::string& text);
};

struct ReaderCounters {
  std::uint64_t batches = 0;          // handed to the caller
  std::uint64_t bytes_read = 0;       // sample bytes the I/O thread read
  double read_seconds = 0;            // I/O thread time spent reading batches
  double stall_seconds = 0;           // caller time blocked in next()
  double last_stall_seconds = 0;      // the last next() call's wait
  std::uint64_t window_bytes = 0;     // bytes held in the RAM window (ram_window_bytes)
};

class Reader;

// A batch lent to the caller: its memory stays valid, unchanged, until the Batch is
// destroyed (or moved from), which gives the buffer back for a later batch. Samples are in
// ascending global index order within the batch (the shuffle is across batches).
class Batch {
 public:
  Batch() = default;
  Batch(Batch&&) noexcept;
  Batch& operator=(Batch&&) noexcept;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  ~Batch();

  explicit operator bool() const noexcept { return slot_ != nullptr; }
  std::uint64_t epoch() const noexcept;
  std::uint64_t step() const noexcept;
  std::size_t size() const noexcept;                        // B
  std::span<const std::uint64_t> indices() const noexcept;  // global sample ids (0..N-1)
  std::span<const std::uint8_t> padded() const noexcept;    // 1: a repeat that pads the last step
  // All samples of dataset D (index into Reader::datasets()): size() x sample_bytes bytes.
  std::span<const std::byte> data(std::size_t d) const;
  std::span<const std::byte> sample(std::size_t d, std::size_t i) const;
  // copy_to_device: dataset D's samples in device memory (size() x sample_bytes, the same
  // bytes as data(d)), valid while the Batch lives. Throws InvalidArgument without it.
  const void* device_data(std::size_t d) const;
  // As T (sizeof(T) must equal the element size; the bytes are the file's, no conversion).
  template <typename T>
  std::span<const T> as(std::size_t d) const {
    auto b = data(d);
    check_element_size(d, sizeof(T));
    return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
  }

 struct Slot;  // internal (the reader's buffer)

 private:
  friend class Reader;
  void check_element_size(std::size_t d, std::size_t size) const;
  void release() noexcept;
  std::shared_ptr<void> owner_;  // keeps the reader's pool alive
  Slot* slot_ = nullptr;
};

class Reader {
 public:
  // Opens and validates every file (see DataError), then starts the I/O thread.
  explicit Reader(ReaderOptions options);
  ~Reader();
  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;

  const std::vector<DatasetInfo>& datasets() const noexcept;
  std::uint64_t samples() const noexcept;            // N, all files
  std::uint64_t steps_per_epoch() const noexcept;    // batches per rank per epoch
  // The paths actually read (staged copies where the manifest had them), in file order.
  const std::vector<std::string>& resolved_files() const noexcept;

  // The next batch (continuing into the next epoch after the last step). Blocks until the
  // I/O thread has it; throws the I/O thread's error (DataError naming file and dataset).
  Batch next();

  ReaderState state() const;            // where next() continues
  void restore(const ReaderState& s);   // drops prefetched batches; throws InvalidArgument on mismatch
  ReaderCounters counters() const;

 struct Impl;  // internal

 private:
  friend class Batch;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::reader
