// sluice-stage: copy training data into node-local storage (in) and results back (out),
// resumable, verified, in parallel.
#include <sluice/common/error.hpp>
#include <sluice/staging/clean.hpp>
#include <sluice/staging/copier.hpp>

#include "job_mode.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace {

std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void on_signal(int) { g_cancel.store(true); }

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.1f} {}", b, units[u]);
}

std::string eta(const sluice::staging::Progress& p) {
  if (p.bytes_done == 0 || p.seconds <= 0) return "--:--";
  const double rate = static_cast<double>(p.bytes_done) / p.seconds;
  const auto left = static_cast<long>(static_cast<double>(p.bytes_total - p.bytes_done) / rate);
  return fmt::format("{}:{:02}", left / 60, left % 60);
}

// A bar redrawn in place on a terminal (at most 10x/s), plain lines every 2 s otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

  void operator()(const sluice::staging::Progress& p) {
    if (quiet_) return;
    const double every = tty_ ? 0.1 : 2.0;
    if (p.seconds - last_ < every) return;
    last_ = p.seconds;
    const double rate = p.seconds > 0 ? static_cast<double>(p.bytes_done) / p.seconds / 1e6 : 0;
    const double frac = p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
    if (tty_) {
      const int width = 24, fill = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r\033[K[%s%s] %3.0f%% %s/%s  %llu/%llu files  %.0f MB/s  ETA %s",
                   std::string(static_cast<std::size_t>(fill), '#').c_str(),
                   std::string(static_cast<std::size_t>(width - fill), '.').c_str(), frac * 100,
                   human_bytes(static_cast<double>(p.bytes_done)).c_str(),
                   human_bytes(static_cast<double>(p.bytes_total)).c_str(),
                   static_cast<unsigned long long>(p.files_done), static_cast<unsigned long long>(p.files_total), rate,
                   eta(p).c_str());
      drawn_ = true;
    } else {
      std::fprintf(stderr, "sluice-stage: %s of %s, %llu/%llu files, %.0f MB/s, ETA %s\n",
                   human_bytes(static_cast<double>(p.bytes_done)).c_str(),
                   human_bytes(static_cast<double>(p.bytes_total)).c_str(),
                   static_cast<unsigned long long>(p.files_done), static_cast<unsigned long long>(p.files_total), rate,
                   eta(p).c_str());
    }
  }

  void done() {
    if (drawn_) std::fputs("\r\033[K", stderr);
  }

 private:
  bool quiet_, tty_;
  bool drawn_ = false;
  double last_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-stage: copy a job's data between the shared file system and node-local storage.\n"
      "Copies a file or a directory tree with parallel workers (big files in parallel chunks), writes every file\n"
      "under a temporary name and renames it when complete, and records each staged file (size, source mtime,\n"
      "XXH3-64 digest) in DST/.sluice-manifest.json, so running the same command again skips what is already\n"
      "staged and resumes an interrupted copy. Symlinks inside SRC are refused, never followed; nothing is\n"
      "written outside DST even if DST holds symlinks. An existing file in DST that sluice did not stage from\n"
      "SRC is never overwritten."};
  app.footer(
      "EXAMPLES\n"
      "  sluice-stage in /lustre/proj/imagenet /local/bb/$SLURM_JOB_ID/imagenet --jobs 8\n"
      "  sluice-stage in /lustre/proj/imagenet /local/bb/$SLURM_JOB_ID/imagenet --verify   # re-check, repair\n"
      "  sluice-stage in /lustre/proj/model.ckpt /local/bb/$SLURM_JOB_ID/                  # a file into a dir\n"
      "  sluice-stage out /local/bb/$SLURM_JOB_ID/results /lustre/proj/runs/$SLURM_JOB_ID\n\n"
      "MODES\n"
      "  Files keep their owner permission bits (mode & 0700) and mtime; directories are 0700.\n"
      "  A directory SRC is mirrored at DST (DST/x is SRC/x). A file SRC is copied to DST, or into DST when DST is\n"
      "  an existing directory.\n\n"
      "EXIT STATUS\n"
      "  0 success; 1 failure or interruption (the message names the file at fault; run again to resume);\n"
      "  2 usage error.");
  app.require_subcommand(1);

  std::string src, dst;
  unsigned jobs = 0;
  std::uint64_t chunk = 64ull << 20;
  bool verify = false, quiet = false;
  bool progress_json = false;
  std::string beneath;

  auto add_common = [&](CLI::App* sub) {
    sub->add_option("SRC", src, "file or directory to copy")->required();
    sub->add_option("DST", dst, "destination (created if missing)")->required();
    sub->add_option("-j,--jobs", jobs, fmt::format("worker threads (default min(8, 2 x CPUs) = {})",
                                                   sluice::staging::default_jobs()))
        ->check(CLI::Range(1u, 256u));
    sub->add_option("--chunk-size", chunk, "files larger than this are copied in parallel chunks of this size "
                                           "(bytes, or with a unit: 16MiB, 1GiB; default 64MiB)")
        ->transform(CLI::AsSizeValue(false))
        ->check(CLI::Range(std::uint64_t{1} << 20, std::uint64_t{1} << 40));
    sub->add_flag("-q,--quiet", quiet, "no progress, only the summary line");
    sub->add_flag("--progress-json", progress_json,
                  "progress as one JSON object per line on stdout (bytes_done, bytes_total, files_done, files_total, "
                  "seconds), at most twice a second and once at the end; for the SPANK plugin's status record");
  };
  auto* in = app.add_subcommand("in", "Stage SRC (shared file system) into DST (node-local). Files already staged "
                                      "from an unchanged source are skipped.");
  add_common(in);
  in->add_flag("--verify", verify, "before skipping a staged file, re-hash it and compare with the manifest; "
                                   "a corrupt copy is copied again");
  in->add_option("--beneath", beneath,
                 "DST must be inside this directory: every directory from it down to DST is created (0700) and "
                 "none may be a symlink (the SPANK plugin passes the job's burst buffer)");
  std::string clean_dir;
  auto* clean = app.add_subcommand("clean", "Remove everything inside DIR (the job's burst buffer at job end) without "
                                            "following symlinks or entering other file systems; DIR itself stays.");
  clean->add_option("DIR", clean_dir, "directory to empty")->required();
  auto* out = app.add_subcommand("out", "Copy results SRC (node-local) to DST (shared file system); every file is "
                                        "verified by hash against its source after the copy.");
  add_common(out);
  bool if_exists = false;
  out->add_flag("--if-exists", if_exists,
                "a SRC that does not exist is not an error: nothing to copy from this node (the SPANK plugin's "
                "stage-out, where often only some nodes write results)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is a "parse error" that exits 0
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  if (clean->parsed()) {
    try {
      const sluice::staging::CleanResult r = sluice::staging::clean_tree(clean_dir);
      std::printf("sluice-stage: clean %s: removed %llu files and %llu directories\n", clean_dir.c_str(),
                  static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.dirs));
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-stage: %s\n", e.what());
      return 1;
    }
  }

  ProgressPrinter printer(quiet || progress_json);
  sluice::staging::cli::JsonProgress json_progress;
  sluice::staging::Progress last_progress;
  try {
    sluice::staging::StageRequest req;
    req.source = std::filesystem::absolute(src).lexically_normal().string();
    if (req.source.size() > 1 && req.source.back() == '/') req.source.pop_back();
    req.destination = dst;
    struct stat src_st {};
    if (if_exists && ::lstat(req.source.c_str(), &src_st) != 0 && errno == ENOENT) {
      std::printf("sluice-stage: out %s: does not exist, nothing to copy\n", req.source.c_str());
      return 0;
    }
    std::optional<sluice::staging::cli::BeneathDestination> inside;
    if (!beneath.empty()) {
      inside.emplace(beneath, std::filesystem::path(dst).lexically_normal().string(),
                     std::filesystem::is_directory(req.source));
      req.destination = inside->path();
    }
    req.jobs = jobs;
    req.chunk_size = chunk;
    req.verify = verify;
    req.verify_after_copy = out->parsed();
    req.cancel = &g_cancel;
    req.on_progress = [&](const sluice::staging::Progress& p) {
      printer(p);
      last_progress = p;
      if (progress_json) json_progress(p);
    };
    sluice::staging::StageResult r = sluice::staging::stage_tree(req);
    printer.done();
    if (progress_json) json_progress(last_progress, true);
    const double mbps = r.seconds > 0 ? static_cast<double>(r.bytes_copied) / r.seconds / 1e6 : 0;
    std::printf("sluice-stage: %s %s -> %s: %llu files, copied %llu (%s), skipped %llu unchanged, repaired %llu, "
                "in %.2f s (%.0f MB/s)\n",
                out->parsed() ? "out" : "in", req.source.c_str(), dst.c_str(),
                static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.files_copied),
                human_bytes(static_cast<double>(r.bytes_copied)).c_str(),
                static_cast<unsigned long long>(r.files_skipped), static_cast<unsigned long long>(r.files_repaired),
                r.seconds, mbps);
    return 0;
  } catch (const std::exception& e) {
    printer.done();
    std::fprintf(stderr, "sluice-stage: %s\n", e.what());
    return 1;
  }
}
