// sluice-report: reports from the per-job telemetry files and job records (docs/telemetry.md,
// "sluice-report job", "sluice-report cluster").
// `job`: one job's page (text, JSON or self-contained HTML). `cluster`: GPU-hours allocated and
// used over many jobs, from an SQLite index updated incrementally from the files.
#include "job_index.hpp"
#include "report_cluster.hpp"
#include "report_job.hpp"

#include <sluice/common/error.hpp>
#include <sluice/monitor/job_file.hpp>
#include <sluice/monitor/job_record.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace {

// Exit statuses (documented in --help).
constexpr int kExitData = 1, kExitUsage = 2;

// A usage error found after parsing (exit 2).
class Usage : public sluice::InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

std::string telemetry_dir(const std::string& arg) {
  if (!arg.empty()) return arg;
  if (const char* d = std::getenv("SLUICE_TELEMETRY_DIR"); d && *d) return d;
  throw Usage("no telemetry directory: give --dir DIR or set SLUICE_TELEMETRY_DIR (the directory the job wrote "
              "its job-<id>.h5 into)");
}

std::int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The job's record (SPANK plugin), when the id is a Slurm job id and the plugin wrote one.
std::optional<sluice::monitor::JobRecord> record_of(const std::filesystem::path& dir, const std::string& job_id) {
  std::uint64_t id = 0;
  const auto [p, ec] = std::from_chars(job_id.data(), job_id.data() + job_id.size(), id);
  if (ec != std::errc() || p != job_id.data() + job_id.size()) return std::nullopt;
  std::vector<std::string> skipped;
  auto rec = sluice::monitor::read_job_record(sluice::monitor::job_record_dir(dir), id, &skipped);
  for (const auto& why : skipped)
    std::fprintf(stderr, "sluice-report: skipped a job record: %s\n", sluice::escape_text(why).c_str());
  return rec;
}

void write_output(const std::string& text, const std::string& output) {
  if (output.empty() || output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) throw sluice::Error("cannot write the report to stdout");
    return;
  }
  std::ofstream f(output, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw sluice::Error("cannot write the report to '" + output + "'");
}

int run_job(const std::string& job_id, const std::string& dir_arg, const std::string& format, const std::string& output,
            bool ask_sacct) {
  namespace mon = sluice::monitor;
  namespace fs = std::filesystem;
  if (job_id.empty()) throw Usage("JOBID must not be empty");
  const fs::path dir = telemetry_dir(dir_arg);
  const fs::path path = mon::report::job_file_path(dir, job_id);
  const std::int64_t now = now_unix_ms();
  std::optional<mon::JobRecord> record = record_of(dir, job_id);
  std::error_code ec;
  using sluice::escape_text;
  if (!fs::exists(fs::symlink_status(path, ec))) {
    if (record)
      std::fprintf(stderr,
                   "sluice-report: job %s (user %s, %s) ran without the sluice runtime's telemetry: it has a job "
                   "record but no %s\n",
                   escape_text(job_id).c_str(), escape_text(record->user.empty() ? "unknown" : record->user).c_str(),
                   record->state().c_str(), escape_text(path.string()).c_str());
    else
      std::fprintf(stderr, "sluice-report: no telemetry for job %s: %s does not exist%s\n", escape_text(job_id).c_str(),
                   escape_text(path.string()).c_str(), fs::is_directory(dir, ec) ? "" : " (nor does the directory)");
    return kExitData;
  }
  // JobFileError names the file and object; the owner comes from the descriptor read.
  mon::JobFileOrigin origin;
  const mon::JobTelemetry job = mon::read_job_file(path, &origin);
  mon::report::ReportInputs inputs;
  inputs.file_owner_uid = origin.owner_uid;
  inputs.record = std::move(record);
  inputs.now_unix_ms = now;
  if (ask_sacct) {
    // Without slurmdbd sacct fails or says nothing: the report then rests on the record alone.
    inputs.sacct = mon::report::query_sacct(job_id, std::chrono::seconds(10));
  }
  const mon::report::JobReport r = mon::report::build_job_report(job, path.string(), inputs);
  // On stderr too: a JSON or HTML report may go to a file nobody reads at once.
  if (r.unverified && format != "text")
    std::fprintf(stderr, "sluice-report: %s\n", escape_text(mon::report::describe(*r.unverified)).c_str());
  write_output(format == "json"   ? mon::report::render_json(r)
               : format == "html" ? mon::report::render_html(r)
                                  : mon::report::render_text(r),
               output);
  return 0;
}

struct ClusterArgs {
  std::string dir, index, since = "now-7d", until = "now", by = "user", format = "text", output;
  std::size_t top = sluice::monitor::report::kDefaultWasters;
  bool quiet = false;
};

int run_cluster(const ClusterArgs& a) {
  namespace rep = sluice::monitor::report;
  namespace fs = std::filesystem;
  const fs::path dir = telemetry_dir(a.dir);
  const std::int64_t now = now_unix_ms();
  rep::ClusterOptions o;
  o.now_unix_ms = now;
  o.wasters = a.top;
  o.by = a.by == "account" ? rep::GroupBy::account : a.by == "partition" ? rep::GroupBy::partition : rep::GroupBy::user;
  try {
    o.since_unix_ms = rep::parse_time_arg(a.since, now);
  } catch (const sluice::InvalidArgument& e) {
    throw Usage(std::string("--since: ") + e.what());
  }
  try {
    o.until_unix_ms = rep::parse_time_arg(a.until, now);
  } catch (const sluice::InvalidArgument& e) {
    throw Usage(std::string("--until: ") + e.what());
  }
  if (o.until_unix_ms <= o.since_unix_ms) throw Usage("--until (" + a.until + ") must be after --since (" + a.since + ")");

  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::fprintf(stderr, "sluice-report: the telemetry directory %s %s\n", dir.c_str(),
                 fs::exists(dir, ec) ? "is not a directory" : "does not exist");
    return kExitData;
  }
  const fs::path index_file = a.index.empty() ? rep::default_index_path(dir) : fs::path(a.index);
  std::optional<rep::JobIndex> index;
  rep::UpdateStats stats;
  try {
    index.emplace(index_file);
    stats = index->update(dir);
  } catch (const rep::IndexError& e) {
    std::fprintf(stderr,
                 "sluice-report: %s\n  (the index must be your own, writable file: give --index FILE in a directory "
                 "only you can write; a damaged index can be deleted, it is rebuilt from the files)\n",
                 sluice::escape_text(e.what()).c_str());
    return kExitData;
  }
  if (!a.quiet && a.format == "text" && stats.files_read)
    std::fprintf(stderr, "sluice-report: index updated: %zu of %zu files read, %zu removed, %zu jobs re-derived\n",
                 stats.files_read, stats.files_seen, stats.files_removed, stats.jobs_updated);
  const rep::ClusterReport r = rep::build_cluster_report(*index, o);
  write_output(a.format == "json"   ? rep::render_json(r)
               : a.format == "csv"  ? rep::render_csv(r)
               : a.format == "html" ? rep::render_html(r)
                                    : rep::render_text(r),
               a.output);
  // Text goes to a terminal: the skipped files are in it. Other formats: say so on stderr.
  if (!r.skipped.empty() && a.format != "text")
    std::fprintf(stderr, "sluice-report: skipped %zu file(s) that could not be read, e.g. %s\n", r.skipped.size(),
                 sluice::escape_text(r.skipped.front().reason).c_str());
  if (!r.unverified.empty() && a.format != "text")
    std::fprintf(stderr, "sluice-report: %zu unverified job file(s) not counted (owner not the job's user), e.g. %s\n",
                 r.unverified.size(), sluice::escape_text(rep::describe(r.unverified.front())).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-report: reports from sluice's per-job telemetry files (job-<id>.h5, written by the job's\n"
      "JobTelemetryWriter into the telemetry directory) and the SPANK plugin's job records (records/; docs/telemetry.md).\n"
      "`job` prints one job's page, like jobstats: header, CPU/memory/GPU utilization, step-time statistics per\n"
      "rank, data-wait and allreduce shares, bus bandwidth, stragglers, and notes from rules.\n"
      "`cluster` sums GPU-hours allocated and used over all jobs in a time window, per user, account or partition."};
  app.footer(
      "COMMANDS\n"
      "  job JOBID [--dir DIR] [--format text|json|html] [--no-sacct] [-o FILE]\n"
      "  cluster [--dir DIR] [--since T] [--until T] [--by user|account|partition]\n"
      "          [--format text|csv|json|html] [--index FILE] [--top N] [-o FILE]\n"
      "  Run `sluice-report job --help` or `sluice-report cluster --help` for their options.\n\n"
      "EXAMPLES\n"
      "  sluice-report job 123456 --dir /lustre/telemetry\n"
      "  sluice-report cluster --dir /lustre/telemetry --since now-30d --by account\n"
      "  SLUICE_TELEMETRY_DIR=/lustre/telemetry sluice-report job 123456 --format json\n"
      "  sluice-report job 123456 --format html -o job-123456.html   # one self-contained file\n\n"
      "RULES (notes)\n"
      "  idle GPUs: a GPU with mean utilization < 5 %; input-bound: data wait >= 20 % of step time\n"
      "  (moderately: 5-20 %); stragglers: own time per step >= the file's threshold x the median;\n"
      "  memory over-requested: peak RSS <= 50 % of the request (the request comes from sacct);\n"
      "  ended early: Slurm saw exit 0 but the job file is a checkpoint (cancelled, timed out, killed);\n"
      "  clock skew: the job record's end precedes its start (the nodes' clocks disagree).\n"
      "  Rules whose inputs the file lacks are skipped and listed as such.\n\n"
      "ENVIRONMENT\n"
      "  SLUICE_TELEMETRY_DIR  the telemetry directory when --dir is not given\n\n"
      "EXIT STATUS\n"
      "  0 success; 1 data error (no file for that job, a damaged or foreign file: the message names it;\n"
      "  or the report cannot be written); 2 usage error.");
  app.require_subcommand(1);

  std::string job_id, dir, format = "text", output;
  bool no_sacct = false;
  auto* job = app.add_subcommand(
      "job", "One job's report from DIR/job-JOBID.h5. A checkpoint (the job still running, or killed) is reported "
             "as incomplete, with the time its data reaches. Fields the file does not hold (user, account, "
             "partition, Slurm state, memory request) are printed as unknown (JSON null).");
  job->add_option("JOBID", job_id, "the job id the file was written under (usually $SLURM_JOB_ID)")->required();
  job->add_option("-d,--dir", dir, "the telemetry directory (default: $SLUICE_TELEMETRY_DIR)")->type_name("DIR");
  job->add_option("-f,--format", format, "text (default), json, or html (one self-contained page: inline CSS and "
                                         "SVG, no scripts, no external resources)")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"text", "json", "html"}));
  job->add_option("-o,--output", output, "write the report to FILE instead of stdout")->type_name("FILE");
  job->add_flag("--no-sacct", no_sacct,
                "do not ask Slurm's accounting. By default, when `sacct` is in PATH and answers within 10 s, its "
                "State, ExitCode, memory request and allocated TRES fill what the job record lacks (sacct's state "
                "wins: it knows CANCELLED, TIMEOUT, OUT_OF_MEMORY); without slurmdbd the report rests on the record");

  ClusterArgs ca;
  auto* cluster = app.add_subcommand(
      "cluster",
      "GPU-hours over all jobs that overlap a time window: allocated (from the job records) and used (allocated x "
      "the job's mean GPU utilization, from its job file), efficiency (used / allocated, over the jobs whose "
      "utilization is known), GPU-hours of idle GPUs (mean utilization < 5 %), input-bound jobs (data wait >= 20 % "
      "of step time), a table per user, account or partition, the largest wasters (allocated - used), and "
      "GPU-hours per hour, day or week. A job's GPU-hours are clipped to the window; a running job counts up to "
      "now. The figures come from an SQLite index (default: your own, ~/.cache/sluice/index-<hash of DIR>.sqlite), "
      "brought up to date at every "
      "run by reading only the job files and records that are new or changed. Files that cannot be read (damaged, "
      "truncated, foreign) are skipped and listed; the report covers the rest.");
  cluster->add_option("-d,--dir", ca.dir, "the telemetry directory (default: $SLUICE_TELEMETRY_DIR)")->type_name("DIR");
  cluster->add_option("--since", ca.since,
                      "start of the window (default now-7d): YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), unix seconds, "
                      "now, or now-<n><s|m|h|d|w>")
      ->type_name("T");
  cluster->add_option("--until", ca.until, "end of the window, excluded (default now); same forms as --since")
      ->type_name("T");
  cluster->add_option("-b,--by", ca.by, "group the table by user (default), account or partition")
      ->type_name("KEY")
      ->check(CLI::IsMember({"user", "account", "partition"}));
  cluster->add_option("-f,--format", ca.format,
                      "text (default), csv (the per-group table), json (everything, schema sluice.report.cluster/1), "
                      "or html (one self-contained page: inline CSS and SVG charts, no scripts, no external resources)")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"text", "csv", "json", "html"}));
  cluster->add_option("--index", ca.index,
                      "the SQLite index file (default ${XDG_CACHE_HOME:-~/.cache}/sluice/index-<hash of DIR>.sqlite); "
                      "it must be yours and not writable by others (a link or someone else's file is refused)")
      ->type_name("FILE");
  cluster->add_option("--top", ca.top, "how many of the largest wasters to list (default 10)")
      ->type_name("N")
      ->check(CLI::Range(0, 100000));
  cluster->add_option("-o,--output", ca.output, "write the report to FILE instead of stdout")->type_name("FILE");
  cluster->add_flag("-q,--quiet", ca.quiet, "do not print the index update line on stderr");
  cluster->footer(
      "EXAMPLES\n"
      "  sluice-report cluster --dir /lustre/telemetry                        # the last 7 days, by user\n"
      "  sluice-report cluster --since 2026-11-01 --until 2026-12-01 --by account --format csv\n"
      "  sluice-report cluster --since now-30d --format html -o cluster.html   # one self-contained page\n"
      "  sluice-report cluster --dir /lustre/telemetry --index /var/lib/sluice/index.sqlite\n\n"
      "ENVIRONMENT\n"
      "  SLUICE_TELEMETRY_DIR  the telemetry directory when --dir is not given\n\n"
      "EXIT STATUS\n"
      "  0 report written (files that could not be read are skipped and listed: \"skipped N file(s)\");\n"
      "  1 data error: the telemetry directory is missing, the index cannot be created or updated (give --index),\n"
      "    or the report cannot be written; 2 usage error (a bad --since/--until names the option).");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is a "parse error" that exits 0
  }

  try {
    if (job->parsed()) return run_job(job_id, dir, format, output, !no_sacct);
    if (cluster->parsed()) return run_cluster(ca);
  } catch (const Usage& e) {
    std::fprintf(stderr, "sluice-report: %s\nRun with --help for more information.\n", sluice::escape_text(e.what()).c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-report: %s\n", sluice::escape_text(e.what()).c_str());
    return kExitData;
  }
  return kExitUsage;
}
