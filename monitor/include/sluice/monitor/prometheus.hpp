// Live metrics: one rank's recorder snapshot and latest sampler reading in the Prometheus
// text exposition format 0.0.4, written as a file for node_exporter's textfile collector
// (`--collector.textfile.directory`). Part of sluice_monitor (no MPI, no HDF5).
//
//   sluice::monitor::PrometheusWriter pw;   // dir from $SLUICE_PROMETHEUS_DIR; none: off
//   pw.start();                             // rewrites the file every 15 s
//   ...                                     // the job runs
//   pw.stop();                              // (or the destructor) removes the file
//
// File: <dir>/sluice_job_<jobid>_rank<r>.prom, replaced atomically (written as
// <dir>/.sluice_job_<jobid>_rank<r>.prom.tmp, then renamed), so the collector never reads a
// partial file. Failures never throw and never stop training: the first is printed to stderr
// once ("sluice prometheus: ..."), error() keeps the last; later writes are still tried.
// Metric names and types: docs/telemetry.md, "Live metrics (Prometheus)".
#pragma once

#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::monitor {

// The labels every series of one file carries (rank < 0 or empty host: label left out).
struct PrometheusLabels {
  std::string jobid, user, account;
  int rank = -1;
  std::string host;
};

// A label value escaped per the format: backslash, double quote and newline as \\, \" and \n.
std::string prometheus_escape_label(std::string_view v);

// The exposition text (HELP and TYPE once per family, every line ending in '\n'). `latest`:
// the process and GPU reading (nullptr: no cpu/rss/gpu families).
std::string render_prometheus(const Snapshot& snap, const Sample* latest, const PrometheusLabels& labels);

struct PrometheusOptions {
  // Where the file goes. Empty: $SLUICE_PROMETHEUS_DIR; both empty: nothing is written (not an
  // error). Not created: it is node_exporter's textfile directory.
  std::string dir;
  std::chrono::milliseconds interval{15000};  // start()'s period
  // Empty / negative: $SLURM_JOB_ID (else "local-<pid>"), $SLURM_JOB_USER (else the passwd
  // name of the uid), $SLURM_JOB_ACCOUNT (else "unknown"), $SLURM_PROCID (else 0), the host name.
  std::string job_id, user, account, host;
  int rank = -1;
  Recorder* recorder = nullptr;      // nullptr: default_recorder()
  const Sampler* sampler = nullptr;  // latest sample; nullptr: read /proc/self at each write
};

class PrometheusWriter {
 public:
  explicit PrometheusWriter(PrometheusOptions opts = {});
  ~PrometheusWriter();  // stop()
  PrometheusWriter(const PrometheusWriter&) = delete;
  PrometheusWriter& operator=(const PrometheusWriter&) = delete;

  bool enabled() const noexcept { return !path_.empty(); }  // a directory is configured
  const std::string& path() const noexcept { return path_; }  // "" when disabled
  const PrometheusLabels& labels() const noexcept { return labels_; }
  std::string error() const;      // the last failure ("" if none)
  std::uint64_t writes() const;   // files written

  // Writes the file now (any thread). False when disabled or the write failed.
  bool write_now() noexcept;
  // Starts the thread: writes at once, then every interval. No-op when disabled or running.
  void start() noexcept;
  // Ends the thread (if any) and removes the file. Later calls do nothing more.
  void stop() noexcept;

  struct State;

 private:
  PrometheusOptions opts_;
  PrometheusLabels labels_;
  std::string path_, tmp_path_;
  std::shared_ptr<State> st_;
};

}  // namespace sluice::monitor
