// The gather of every rank's telemetry to rank 0 and the job file's checkpoints (gather_mpi.hpp).
#include <sluice/monitor/gather_mpi.hpp>

#include "rank_codec.hpp"

#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace sluice::monitor {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::int64_t unix_ms_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// "" when DIR exists (created if missing) and we may create files in it; else why not.
std::string check_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "not a directory";
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return std::strerror(errno);
  return "";
}

}  // namespace

JobTelemetryWriter::JobTelemetryWriter(MPI_Comm comm, JobTelemetryOptions opts) : opts_(std::move(opts)) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  if (!opts_.recorder) opts_.recorder = &default_recorder();
  int on = 0;
  if (root()) {
    const std::string dir = opts_.dir.empty() ? env("SLUICE_TELEMETRY_DIR") : opts_.dir;
    if (!dir.empty()) {
      job_id_ = !opts_.job_id.empty() ? opts_.job_id : env("SLURM_JOB_ID");
      if (job_id_.empty()) job_id_ = "local-" + node_name() + "-" + std::to_string(::getpid());
      path_ = (std::filesystem::path(dir) / job_file_name(job_id_)).string();
      const std::string why = check_dir(dir);
      if (why.empty())
        on = 1;
      else
        fail("cannot write job files to the telemetry directory '" + dir + "': " + why +
             "; this job's telemetry file is not written");
    }
  }
  MPI_Bcast(&on, 1, MPI_INT, 0, comm);
  enabled_ = on != 0;
  if (!enabled_) {
    path_.clear();
    return;
  }
  MPI_Comm_dup(comm, &comm_);
  next_checkpoint_ = std::chrono::steady_clock::now() + opts_.checkpoint_interval;
  if (!root()) post_receive();
}

JobTelemetryWriter::~JobTelemetryWriter() {
  // Pending collectives cannot be cancelled (MPI forbids it): without finish() the
  // duplicate communicator is left to MPI_Finalize.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && closed_ && !finalized) MPI_Comm_free(&comm_);
}

void JobTelemetryWriter::post_receive() {
  command_ = kNone;
  MPI_Ibcast(&command_, 1, MPI_INT32_T, 0, comm_, &cmd_req_);
}

void JobTelemetryWriter::start_round(Command c) {
  if (root()) {
    command_ = c;
    MPI_Ibcast(&command_, 1, MPI_INT32_T, 0, comm_, &cmd_req_);
  }
  RankInput mine;
  mine.rank = static_cast<std::uint32_t>(rank_);
  mine.host = node_name();
  mine.snapshot = opts_.recorder->snapshot();
  if (opts_.sampler) {
    mine.samples = opts_.sampler->samples();
    mine.samples_dropped = opts_.sampler->dropped();
  }
  // Rank 0 receives at most INT_MAX bytes in all (MPI counts are int): 1 MiB spare.
  const std::size_t budget = (std::size_t(INT_MAX) - (std::size_t(1) << 20)) / std::size_t(size_);
  Round& r = round_;
  r.bytes = detail::encode_rank(mine, budget);
  r.count = static_cast<int>(r.bytes.size());
  r.final = c == kFinal;
  r.active = true;
  r.counted = false;
  r.counts.assign(root() ? std::size_t(size_) : 0, 0);
  MPI_Igather(&r.count, 1, MPI_INT, r.counts.data(), 1, MPI_INT, 0, comm_, &r.count_req);
  // Only rank 0 needs the sizes first; the others post their bytes at once.
  if (!root()) MPI_Igatherv(r.bytes.data(), r.count, MPI_BYTE, nullptr, nullptr, nullptr, MPI_BYTE, 0, comm_, &r.data_req);
}

bool JobTelemetryWriter::progress_root(bool block) {
  Round& r = round_;
  auto done = [block](MPI_Request& q) {
    int flag = 1;
    if (block)
      MPI_Wait(&q, MPI_STATUS_IGNORE);
    else
      MPI_Test(&q, &flag, MPI_STATUS_IGNORE);
    return flag != 0;
  };
  if (!r.counted) {
    if (!done(r.count_req)) return ok_;
    r.displs.assign(std::size_t(size_), 0);
    std::size_t total = 0;
    for (int i = 0; i < size_; ++i) r.displs[i] = static_cast<int>(total), total += std::size_t(r.counts[i]);
    r.all.resize(total);
    r.counted = true;
    MPI_Igatherv(r.bytes.data(), r.count, MPI_BYTE, r.all.data(), r.counts.data(), r.displs.data(), MPI_BYTE, 0, comm_,
                 &r.data_req);
  }
  if (!done(r.data_req)) return ok_;
  MPI_Wait(&cmd_req_, MPI_STATUS_IGNORE);  // long since sent: everyone's data is here
  r.active = false;
  ok_ = write(r);
  next_checkpoint_ = std::chrono::steady_clock::now() + opts_.checkpoint_interval;  // after this write: no bunching
  return ok_;
}

bool JobTelemetryWriter::tick() {
  if (!enabled_ || finished_) return ok_;
  if (root()) {
    if (round_.active) return progress_root(false);
    if (opts_.checkpoint_interval.count() > 0 && std::chrono::steady_clock::now() >= next_checkpoint_) {
      start_round(kCheckpoint);
      return progress_root(false);
    }
    return ok_;
  }
  if (round_.active) {
    MPI_Request q[2] = {round_.count_req, round_.data_req};
    int flag = 0;
    MPI_Testall(2, q, &flag, MPI_STATUSES_IGNORE);
    round_.count_req = q[0], round_.data_req = q[1];
    if (flag) round_.active = false;
  }
  int arrived = 0;
  MPI_Test(&cmd_req_, &arrived, MPI_STATUS_IGNORE);
  if (arrived) serve();
  return true;
}

void JobTelemetryWriter::serve() {
  if (round_.active) {  // rank 0 sends a new command only after the last gather completed
    MPI_Request q[2] = {round_.count_req, round_.data_req};
    MPI_Waitall(2, q, MPI_STATUSES_IGNORE);
    round_.count_req = q[0], round_.data_req = q[1];
  }
  const auto c = static_cast<Command>(command_);
  start_round(c);
  if (c == kFinal)
    finished_ = true;
  else
    post_receive();
}

bool JobTelemetryWriter::finish() {
  if (!enabled_ || closed_) return ok_;
  closed_ = true;
  if (root()) {
    if (round_.active) progress_root(true);  // a checkpoint under way: the others serve it in finish()
    start_round(kFinal);
    finished_ = true;
    return progress_root(true);
  }
  while (!finished_) {  // serve the checkpoints rank 0 started before its finish(), then the final one
    MPI_Wait(&cmd_req_, MPI_STATUS_IGNORE);
    serve();
  }
  MPI_Request q[2] = {round_.count_req, round_.data_req};
  MPI_Waitall(2, q, MPI_STATUSES_IGNORE);
  round_ = Round{};
  return true;
}

bool JobTelemetryWriter::write(const Round& r) {
  std::vector<RankInput> ranks;
  try {
    for (int i = 0; i < size_; ++i)
      ranks.push_back(detail::decode_rank(std::span(r.all).subspan(std::size_t(r.displs[i]), std::size_t(r.counts[i])), i));
    JobTelemetry job = make_job_telemetry(job_id_, std::move(ranks), r.final, opts_.stragglers);
    job.written_at_unix_ms = unix_ms_now();
    write_job_file(path_, job);
  } catch (const std::exception& e) {
    fail(e.what());
    return false;
  }
  ++writes_;
  return true;
}

void JobTelemetryWriter::fail(const std::string& msg) {
  error_ = msg;
  if (reported_) return;
  reported_ = true;
  std::fprintf(stderr, "%s%s\n", msg.rfind("sluice telemetry: ", 0) == 0 ? "" : "sluice telemetry: ", msg.c_str());
}

}  // namespace sluice::monitor
