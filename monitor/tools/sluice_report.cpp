// sluice-report: reports from the per-job telemetry files (docs/telemetry.md, "sluice-report job").
// `job`: one job's page (text, JSON or self-contained HTML). `cluster` is not built yet.
#include "report_job.hpp"

#include <sluice/common/error.hpp>
#include <sluice/monitor/job_file.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

int run_job(const std::string& job_id, const std::string& dir_arg, const std::string& format, const std::string& output) {
  namespace mon = sluice::monitor;
  namespace fs = std::filesystem;
  if (job_id.empty()) throw Usage("JOBID must not be empty");
  const fs::path dir = telemetry_dir(dir_arg);
  const fs::path path = mon::report::job_file_path(dir, job_id);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::fprintf(stderr, "sluice-report: no telemetry for job %s: %s does not exist%s\n", job_id.c_str(),
                 path.c_str(), fs::is_directory(dir, ec) ? "" : " (nor does the directory)");
    return kExitData;
  }
  const mon::JobTelemetry job = mon::read_job_file(path);  // JobFileError names the file and object
  const mon::report::JobReport r = mon::report::build_job_report(job, path.string());
  const std::string text = format == "json"   ? mon::report::render_json(r)
                           : format == "html" ? mon::report::render_html(r)
                                              : mon::report::render_text(r);
  if (output.empty() || output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) throw sluice::Error("cannot write the report to stdout");
    return 0;
  }
  std::ofstream f(output, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw sluice::Error("cannot write the report to '" + output + "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-report: reports from sluice's per-job telemetry files (job-<id>.h5, written by the job's\n"
      "JobTelemetryWriter into the telemetry directory; docs/telemetry.md).\n"
      "`job` prints one job's page, like jobstats: header, CPU/memory/GPU utilization, step-time statistics per\n"
      "rank, data-wait and allreduce shares, bus bandwidth, stragglers, and notes from rules."};
  app.footer(
      "COMMANDS\n"
      "  job JOBID [--dir DIR] [--format text|json|html] [-o FILE]\n"
      "  cluster   (not built yet: a summary over many jobs' files, with an SQLite index)\n"
      "  Run `sluice-report job --help` for its options.\n\n"
      "EXAMPLES\n"
      "  sluice-report job 123456 --dir /lustre/telemetry\n"
      "  SLUICE_TELEMETRY_DIR=/lustre/telemetry sluice-report job 123456 --format json\n"
      "  sluice-report job 123456 --format html -o job-123456.html   # one self-contained file\n\n"
      "RULES (notes)\n"
      "  idle GPUs: a GPU with mean utilization < 5 %; input-bound: data wait >= 20 % of step time\n"
      "  (moderately: 5-20 %); stragglers: own time per step >= the file's threshold x the median;\n"
      "  memory over-requested: peak RSS <= 50 % of the request (skipped: the file holds no request).\n"
      "  Rules whose inputs the file lacks are skipped and listed as such.\n\n"
      "ENVIRONMENT\n"
      "  SLUICE_TELEMETRY_DIR  the telemetry directory when --dir is not given\n\n"
      "EXIT STATUS\n"
      "  0 success; 1 data error (no file for that job, a damaged or foreign file: the message names it;\n"
      "  or the report cannot be written); 2 usage error.");
  app.require_subcommand(1);

  std::string job_id, dir, format = "text", output;
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is a "parse error" that exits 0
  }

  try {
    if (job->parsed()) return run_job(job_id, dir, format, output);
  } catch (const Usage& e) {
    std::fprintf(stderr, "sluice-report: %s\nRun with --help for more information.\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-report: %s\n", e.what());
    return kExitData;
  }
  return kExitUsage;
}
