// The job's telemetry file over MPI: every rank's recorder snapshot and sampler series
// gathered to rank 0, which writes one HDF5 file per job (job_file.hpp) into the telemetry
// directory, checkpointed every `checkpoint_interval` and marked complete by finish().
// Library sluice_monitor_mpi (the only monitor target linking MPI; docs/telemetry.md).
//
//   sluice::monitor::JobTelemetryWriter tw(MPI_COMM_WORLD);   // collective
//   for (...) { step(); tw.tick(); }                            // every rank, e.g. once a step
//   tw.finish();                                                // collective: complete = 1
//
// Protocol, on a duplicate of the communicator (user traffic is untouched), with
// non-blocking collectives only, so tick() never waits for another rank and cannot deadlock
// against the user's own collectives between two ticks: rank 0 decides that a checkpoint is
// due and broadcasts it (MPI_Ibcast, posted ahead by the others and tested in their tick());
// every rank then posts its data (MPI_Igather of the sizes, MPI_Igatherv of the bytes);
// rank 0 writes the file in the tick() that sees the gather complete. A tick() with nothing
// due costs one MPI_Test (rank 0: one clock read). finish() blocks until the final gather is
// done on every rank.
// All MPI calls happen inside the constructor, tick() and finish(), on the calling thread
// (MPI_THREAD_FUNNELED is enough when that is the main thread).
//
// Failures to write never throw and never stop training: the first is printed to stderr
// once ("sluice telemetry: ..."), error() keeps the last; later writes are still tried.
#pragma once

#include <sluice/monitor/job_file.hpp>

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::monitor {

class Recorder;
class Sampler;

struct JobTelemetryOptions {
  // Where job files go. Empty: $SLUICE_TELEMETRY_DIR; both empty: nothing is written (not an
  // error). Created if missing. Rank 0's value counts.
  std::string dir;
  // Checkpoint period; zero: only the final write.
  std::chrono::milliseconds checkpoint_interval{std::chrono::minutes(5)};
  // Empty: $SLURM_JOB_ID, else "local-<host>-<pid>" of rank 0.
  std::string job_id;
  Recorder* recorder = nullptr;      // nullptr: default_recorder()
  const Sampler* sampler = nullptr;  // the series; nullptr: no series
  StragglerOptions stragglers;
};

class JobTelemetryWriter {
 public:
  // Collective over comm. Never throws for a bad directory (see error()).
  explicit JobTelemetryWriter(MPI_Comm comm, JobTelemetryOptions opts = {});
  // Does not communicate: call finish() first on every rank (a writer destroyed without it
  // leaves the last checkpoint, complete = 0, which is what a killed job leaves too).
  ~JobTelemetryWriter();
  JobTelemetryWriter(const JobTelemetryWriter&) = delete;
  JobTelemetryWriter& operator=(const JobTelemetryWriter&) = delete;

  // False when no directory is configured or it cannot be written (same on every rank).
  bool enabled() const noexcept { return enabled_; }
  // Rank 0: the job file's path ("" when disabled); other ranks: "".
  const std::string& path() const noexcept { return path_; }
  // Rank 0: the last failure ("" if none); other ranks: "".
  const std::string& error() const noexcept { return error_; }
  std::uint64_t writes() const noexcept { return writes_; }  // files written by rank 0

  // Every rank, regularly (e.g. once a step; the same number of calls is not needed).
  // Starts a checkpoint when one is due, serves and completes it; never waits for another
  // rank. False when rank 0's last write failed (error()).
  bool tick();
  // Collective: the final gather and write (complete = 1); waits for every rank. Later calls
  // do nothing. False when rank 0's write failed.
  bool finish();

 private:
  enum Command : std::int32_t { kNone = 0, kCheckpoint = 1, kFinal = 2 };
  // One gather: this rank's bytes and, at rank 0, everyone's.
  struct Round {
    bool active = false, counted = false, final = false;
    MPI_Request count_req = MPI_REQUEST_NULL, data_req = MPI_REQUEST_NULL;
    int count = 0;
    std::vector<std::byte> bytes, all;
    std::vector<int> counts, displs;
  };
  bool root() const noexcept { return rank_ == 0; }
  void post_receive();                  // non-root: the next command broadcast
  void start_round(Command c);          // encode this rank's data, post the gathers
  bool progress_root(bool block);       // rank 0: advance the round; write when done
  void serve();                         // non-root: the command arrived
  bool write(const Round& r);
  void fail(const std::string& msg);

  JobTelemetryOptions opts_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool enabled_ = false, finished_ = false, closed_ = false, reported_ = false, ok_ = true;
  MPI_Request cmd_req_ = MPI_REQUEST_NULL;
  std::int32_t command_ = kNone;
  Round round_;
  std::chrono::steady_clock::time_point next_checkpoint_;
  std::string job_id_, path_, error_;
  std::uint64_t writes_ = 0;
};

}  // namespace sluice::monitor
