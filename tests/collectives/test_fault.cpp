// Failure handling under mpirun --enable-recovery (so mpirun lets the survivors run on):
//   --kill R    rank R SIGKILLs itself from a helper thread while allreduces are running
//   --stall R   rank R SIGSTOPs itself the same way (the first survivor SIGKILLs it afterwards)
//   --mismatch R  rank R calls one allreduce with a different count
//   --destroy 1   survivors also destroy the communicator afterwards (it must not hang on the
//                 failed peer) and report how long that took (destroy_ms)
//   --shared 1    the buffer comes from allocate_shared (the shm path's direct protocol)
// Every survivor must end with a sluice::coll error naming R (mismatch: any error of that
// kind), and prints "RESULT rank=.. error=.. peer=.. ms=.." where ms is the time from the
// start of the failing call. check_fault.sh checks the lines and that nothing hung.
#include "harness.hpp"
#include "shm_group.hpp"

#include <csignal>
#include <chrono>
#include <optional>
#include <thread>
#include <unistd.h>

using namespace sluice::coll;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::string mode = "kill", algo = "auto";
  int victim = 1;
  std::size_t count = 1 << 18;
  bool destroy = false, shared = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--kill" || a == "--stall" || a == "--mismatch") mode = a.substr(2), victim = std::stoi(argv[i + 1]);
    if (a == "--algo") algo = argv[i + 1];
    if (a == "--count") count = std::stoul(argv[i + 1]);
    if (a == "--destroy") destroy = std::string(argv[i + 1]) == "1";
    if (a == "--shared") shared = std::string(argv[i + 1]) == "1";
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> pids(static_cast<std::size_t>(size));
  int me = int(::getpid());
  MPI_Allgather(&me, 1, MPI_INT, pids.data(), 1, MPI_INT, MPI_COMM_WORLD);

  std::optional<Communicator> comm;
  comm.emplace(MPI_COMM_WORLD);
  const AllreduceOptions call{*parse_algorithm(algo)};
  // count + 1: the mismatching rank's one call reads one element more.
  std::vector<float> heap;
  SharedBuffer shared_buf;
  std::span<float> buf;
  if (shared) {
    shared_buf = comm->allocate_shared((count + 1) * sizeof(float));
    buf = shared_buf.as<float>();
  } else {
    heap.resize(count + 1);
    buf = heap;
  }
  std::fill(buf.begin(), buf.end(), 1.0f);
  if (rank == victim && mode != "mismatch") {
    std::thread([stall = mode == "stall"] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ::raise(stall ? SIGSTOP : SIGKILL);
    }).detach();
  }
  auto t0 = std::chrono::steady_clock::now();
  std::string error = "none", what;
  int peer = -1;
  for (int it = 0; it < 1000000; ++it) {
    t0 = std::chrono::steady_clock::now();
    try {
      const std::size_t n = (mode == "mismatch" && rank == victim && it == 20) ? count + 1 : count;
      comm->allreduce(buf.data(), buf.data(), n, DataType::f32, ReduceOp::avg, call);
    } catch (const PeerDied& e) {
      error = "PeerDied", peer = e.peer(), what = e.what();
    } catch (const PeerTimeout& e) {
      error = "PeerTimeout", peer = e.peer(), what = e.what();
    } catch (const MismatchError& e) {
      error = "MismatchError", peer = e.peer(), what = e.what();
    } catch (const PeerError& e) {
      error = "PeerError", peer = e.peer(), what = e.what();
    } catch (const std::exception& e) {
      error = std::string("other:") + e.what();
    }
    if (error != "none") {
      std::fprintf(stderr, "rank %d: %s: %s\n", rank, error.c_str(), what.c_str());
      // With shared buffers the calls before the failure must have taken the direct protocol.
      if (shared && ShmGroup::direct_calls() == 0) error = "other:the direct protocol never ran";
      break;
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  // A later call must refuse at once.
  bool refused = false;
  try {
    comm->allreduce(buf.data(), buf.data(), count, DataType::f32, ReduceOp::sum, call);
  } catch (const BrokenCommunicator&) {
    refused = true;
  } catch (...) {
  }
  long long destroy_ms = -1;
  if (destroy) {
    const auto t1 = std::chrono::steady_clock::now();
    comm.reset();
    destroy_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1).count();
  }
  std::printf("RESULT rank=%d error=%s peer=%d ms=%lld refused=%d destroy_ms=%lld\n", rank, error.c_str(), peer,
              (long long)ms, refused ? 1 : 0, destroy_ms);
  std::fflush(stdout);
  if (mode == "stall" && rank == (victim == 0 ? 1 : 0)) ::kill(pids[std::size_t(victim)], SIGKILL);
  // The communicator's MPI state is undefined now (ULFM would be needed to go on): leave
  // without MPI_Finalize, which could wait on the dead rank.
  std::_Exit(0);
}
