// Communicator::allocate_shared and the shm path's direct protocol, under mpirun with any
// rank count (and on emulated nodes): the buffer contract (size, zero fill, alignment), every
// type and op against the reference and bit-identical to the same call on heap buffers, in
// place and out of place, buffers at an offset inside the allocation; that the direct
// protocol ran exactly when every local rank's buffers were shared (ShmGroup::direct_calls),
// and that a rank with a heap buffer, or one that freed its shared buffer, sends every rank
// down the staged path with the same result.
//
// Usage: mpirun -np N test_shared_buffers [--large COUNT]
// Exit status 0 only when every rank saw every check pass.
#include "harness.hpp"
#include "shm_group.hpp"

#include <dirent.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdint>
#include <string>

using namespace sluice::coll;
using namespace sluice::coll::test;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  ++failures;
}

// Whether the direct protocol applies to a call of `bytes` when every rank's buffers are shared.
bool direct_expected(const Communicator& c, std::size_t bytes) {
  return c.node_count() == 1 && c.local_size() > 1 && c.options().shm && bytes > c.options().shm_flat_bytes;
}

std::string describe(DataType t, ReduceOp op, std::size_t count, bool in_place) {
  return std::string(name(t)) + " " + std::string(name(op)) + " count " + std::to_string(count) +
         (in_place ? " in place" : " out of place");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::size_t large = 1 << 20;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--large") large = std::stoul(argv[i + 1]);
  {
    Communicator comm(MPI_COMM_WORLD);
    const int n = comm.size(), me = comm.rank();
    const long page = ::sysconf(_SC_PAGESIZE);

    // The buffer itself: this rank's size (ranks may differ), zero-filled, page-aligned.
    {
      const std::size_t bytes = 10000 + std::size_t(me) * 123;
      SharedBuffer b = comm.allocate_shared(bytes);
      expect(bool(b) && b.size() == bytes, "allocate_shared: size " + std::to_string(b.size()), me);
      expect(reinterpret_cast<std::uintptr_t>(b.data()) % std::uintptr_t(page) == 0, "allocate_shared: page-aligned", me);
      bool zero = true;
      for (unsigned char c : b.as<unsigned char>()) zero = zero && c == 0;
      expect(zero, "allocate_shared: zero-filled", me);
      SharedBuffer empty = comm.allocate_shared(0);
      expect(bool(empty) && empty.size() == 0 && empty.data() != nullptr, "allocate_shared(0)", me);
    }

    // All or none: rank 0 asks for more than /dev/shm holds. It gets SystemError, every other
    // rank Error; nobody keeps a part, and no name is left in /dev/shm. Later allocations and
    // the direct protocol work as before.
    struct statvfs shm_fs {};
    const bool shm_limited = ::statvfs("/dev/shm", &shm_fs) == 0 && shm_fs.f_blocks > 0 &&
                             double(shm_fs.f_blocks) * double(shm_fs.f_frsize) < double(std::size_t{1} << 50);
    if (comm.node_count() == 1 && comm.local_size() > 1 && comm.options().shm && shm_limited) {
      const std::size_t huge = std::size_t{1} << 50;
      std::string got = "nothing";
      try {
        (void)comm.allocate_shared(me == 0 ? huge : 4096);
      } catch (const sluice::SystemError& e) {
        got = std::string("SystemError: ") + e.what();
      } catch (const sluice::Error& e) {
        got = std::string("Error: ") + e.what();
      }
      if (me == 0)
        expect(got.rfind("SystemError: ", 0) == 0 && got.find("reserving") != std::string::npos,
               "rank 0 asking for 1 PiB: " + got, me);
      else
        expect(got.rfind("Error: ", 0) == 0 && got.find("another rank") != std::string::npos,
               "a peer of the rank that could not allocate: " + got, me);
      MPI_Barrier(MPI_COMM_WORLD);
      const std::string mine = "sluice-buf-" + std::to_string(::getpid()) + "-";
      bool left = false;
      if (DIR* d = ::opendir("/dev/shm")) {
        while (const dirent* e = ::readdir(d)) left = left || std::string(e->d_name).rfind(mine, 0) == 0;
        ::closedir(d);
      }
      expect(!left, "a failed allocate_shared left a name in /dev/shm", me);
    }

    // Every type and op, in place and out of place, at counts on both sides of the flat
    // limit and a large one; results must match the reference and the heap-buffer call bit
    // for bit. The buffers sit at an offset of 3 elements inside their allocations.
    const std::vector<std::size_t> counts = {17, 4099, 65537, large + 3};
    constexpr std::size_t kOffset = 3;
    for (int t = 0; t < kDataTypeCount; ++t) {
      for (int o = 0; o < kReduceOpCount; ++o) {
        const auto type = DataType(t);
        const auto op = ReduceOp(o);
        const std::size_t esz = size_of(type);
        for (std::size_t count : counts) {
          if (count > 100000 && !training_pair(type, op)) continue;
          const std::size_t bytes = count * esz;
          SharedBuffer send = comm.allocate_shared((count + kOffset) * esz);
          SharedBuffer recv = comm.allocate_shared((count + kOffset + 1) * esz);
          char* s = static_cast<char*>(send.data()) + kOffset * esz;
          char* r = static_cast<char*>(recv.data()) + kOffset * esz;
          std::vector<char> expected(bytes), heap_in(bytes), heap_out(bytes);
          fill_expected(type, op, n, expected.data(), count);
          for (int in_place = 0; in_place < 2; ++in_place) {
            const std::string what = describe(type, op, count, in_place != 0);
            fill_input(type, op, me, heap_in.data(), count);
            comm.allreduce(heap_in.data(), in_place ? heap_in.data() : heap_out.data(), count, type, op);
            const char* heap_result = in_place ? heap_in.data() : heap_out.data();

            fill_input(type, op, me, in_place ? r : s, count);
            r[bytes] = char(0x77);  // guards around the vector
            r[-1] = char(0x66);
            const std::uint64_t before = ShmGroup::direct_calls();
            comm.allreduce(in_place ? r : s, r, count, type, op);
            const std::uint64_t ran = ShmGroup::direct_calls() - before;
            expect(std::memcmp(r, expected.data(), bytes) == 0, what + ": differs from the reference", me);
            expect(std::memcmp(r, heap_result, bytes) == 0, what + ": differs from the heap-buffer result", me);
            expect(r[bytes] == char(0x77) && r[-1] == char(0x66), what + ": wrote outside the vector", me);
            expect(ran == (direct_expected(comm, bytes) ? 1u : 0u),
                   what + ": direct protocol ran " + std::to_string(ran) + " times", me);
          }
        }
      }
    }

    // Direct calls back to back (no other protocol's synchronisation between them): each
    // result must be complete when the call returns on every rank, before anyone's next call
    // overwrites the inputs.
    {
      const std::size_t count = 300007;
      SharedBuffer in = comm.allocate_shared(count * sizeof(std::int64_t));
      SharedBuffer out = comm.allocate_shared(count * sizeof(std::int64_t));
      auto x = in.as<std::int64_t>();
      auto y = out.as<std::int64_t>();
      const std::uint64_t before = ShmGroup::direct_calls();
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < count; ++i) x[i] = std::int64_t(i) * (me + 1) + round;
        comm.allreduce(x.data(), y.data(), count, DataType::i64, ReduceOp::sum);
        bool right = true;
        for (std::size_t i = 0; i < count && right; i += 97)
          right = y[i] == std::int64_t(i) * n * (n + 1) / 2 + std::int64_t(n) * round;
        right = right && y[count - 1] == std::int64_t(count - 1) * n * (n + 1) / 2 + std::int64_t(n) * round;
        expect(right, "back-to-back direct call " + std::to_string(round) + ": wrong result", me);
      }
      expect(ShmGroup::direct_calls() - before == (direct_expected(comm, count * 8) ? 20u : 0u),
             "back-to-back calls: direct protocol count", me);
    }

    // One rank's output on the heap, or one rank without its shared buffer any more: every
    // rank takes the staged path (nobody writes into memory it cannot map) and gets the same.
    const std::size_t count = 65537;
    const std::size_t bytes = count * sizeof(float);
    std::vector<float> expected(count);
    fill_expected(DataType::f32, ReduceOp::sum, n, expected.data(), count);
    SharedBuffer send = comm.allocate_shared(bytes);
    SharedBuffer recv = comm.allocate_shared(bytes);
    std::vector<float> heap(count);
    for (int odd_one = 0; odd_one < n; ++odd_one) {
      fill_input(DataType::f32, ReduceOp::sum, me, send.data(), count);
      float* out = me == odd_one ? heap.data() : recv.as<float>().data();
      const std::uint64_t before = ShmGroup::direct_calls();
      comm.allreduce(send.data(), out, count, DataType::f32, ReduceOp::sum);
      expect(std::memcmp(out, expected.data(), bytes) == 0,
             "rank " + std::to_string(odd_one) + " with a heap output: wrong result", me);
      expect(ShmGroup::direct_calls() == before,
             "rank " + std::to_string(odd_one) + " with a heap output: the direct protocol ran", me);
    }
    if (me == n - 1) {
      std::vector<float> mine(send.as<float>().begin(), send.as<float>().end());
      send = SharedBuffer();  // freed on this rank only
      const std::uint64_t before = ShmGroup::direct_calls();
      comm.allreduce(mine.data(), heap.data(), count, DataType::f32, ReduceOp::sum);
      expect(std::memcmp(heap.data(), expected.data(), bytes) == 0, "after freeing: wrong result", me);
      expect(ShmGroup::direct_calls() == before, "after freeing: the direct protocol ran", me);
    } else {
      const std::uint64_t before = ShmGroup::direct_calls();
      comm.allreduce(send.data(), recv.data(), count, DataType::f32, ReduceOp::sum);
      expect(std::memcmp(recv.data(), expected.data(), bytes) == 0, "a peer freed its buffer: wrong result", me);
      expect(ShmGroup::direct_calls() == before, "a peer freed its buffer: the direct protocol ran", me);
    }
    // Fresh buffers on every rank: direct again.
    SharedBuffer again = comm.allocate_shared(bytes);
    fill_input(DataType::f32, ReduceOp::sum, me, again.data(), count);
    const std::uint64_t before = ShmGroup::direct_calls();
    comm.allreduce(again.data(), again.data(), count, DataType::f32, ReduceOp::sum);
    expect(std::memcmp(again.data(), expected.data(), bytes) == 0, "fresh buffers: wrong result", me);
    expect(ShmGroup::direct_calls() - before == (direct_expected(comm, bytes) ? 1u : 0u),
           "fresh buffers: direct protocol count", me);

    const int total = all_failures(failures, MPI_COMM_WORLD);
    if (me == 0) std::printf("shared buffers: %d ranks, %d nodes: %d failures\n", n, comm.node_count(), total);
    failures = total;
  }
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
