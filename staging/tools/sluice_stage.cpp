// sluice-stage: copy training data into node-local storage (in) and results back (out),
// resumable, verified, in parallel; the node cache; a job's staging status.
#include <sluice/common/error.hpp>
#include <sluice/staging/cache.hpp>
#include <sluice/staging/clean.hpp>
#include <sluice/staging/copier.hpp>
#include <sluice/staging/job_status.hpp>

#include "job_mode.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <sys/prctl.h>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <limits>
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

// Exit statuses (documented in --help).
constexpr int kExitFailure = 1, kExitUsage = 2, kExitNoStatus = 3;

// Thrown for a usage error found after parsing (exit 2).
class Usage : public sluice::InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

bool parse_uint(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 19) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

// "I/N": this node's index (0-based, as SLURM_NODEID) of N nodes.
std::string check_shard_arg(const std::string& text) {
  const auto slash = text.find('/');
  std::uint64_t i = 0, n = 0;
  if (slash == std::string::npos || !parse_uint(std::string_view(text).substr(0, slash), i) ||
      !parse_uint(std::string_view(text).substr(slash + 1), n))
    return "--shard wants I/N (node I of N, I from 0), e.g. 0/4; got '" + text + "'";
  if (n < 1 || n > 100000) return "--shard " + text + ": N must be 1 to 100000";
  if (i >= n) return "--shard " + text + ": I must be 0 to " + std::to_string(n - 1);
  return {};
}

std::string format_time(std::int64_t unix_s) {
  if (unix_s <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  const long ago = static_cast<long>(std::time(nullptr) - t);
  return ago >= 0 ? fmt::format("{} ({} s ago)", buf, ago) : std::string(buf);
}

std::string percent(std::uint64_t done, std::uint64_t total) {
  return total ? fmt::format(" ({:.0f}%)", 100.0 * static_cast<double>(done) / static_cast<double>(total)) : "";
}

// SLUICE_BB_ROOT, else the parent of $SLUICE_BB (a job's directory), else the default.
std::string default_bb_root() {
  if (const char* r = std::getenv("SLUICE_BB_ROOT"); r && *r) return r;
  if (const char* bb = std::getenv("SLUICE_BB"); bb && *bb) {
    std::filesystem::path p = std::filesystem::path(bb).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // a trailing '/'
    return p.parent_path().string();
  }
  return "/var/tmp/sluice";
}

int run_status(const std::string& job_arg, const std::string& bb_root_arg, bool json) {
  std::uint64_t job = 0;
  if (!parse_uint(job_arg, job) || job == 0)
    throw Usage("JOBID must be a positive integer (a Slurm job id), not '" + sluice::quote_input(job_arg) + "'");
  const std::string bb_root = bb_root_arg.empty() ? default_bb_root() : bb_root_arg;
  const std::string path = sluice::staging::job_status_path(bb_root, job);
  const auto st = sluice::staging::load_job_status(path);
  if (!st) {
    std::fprintf(stderr, "sluice-stage: no staging status for job %llu on this node (no %s)\n",
                 static_cast<unsigned long long>(job), path.c_str());
    return kExitNoStatus;
  }
  if (json) {
    std::fputs(st->to_json().c_str(), stdout);
    return 0;
  }
  using sluice::staging::StagePhase;
  const double rate = st->seconds > 0 ? static_cast<double>(st->bytes_done) / st->seconds / 1e6 : 0;
  std::string results = "-";
  if (st->stage_out_failed) results = "kept in " + st->bb_dir + " (stage-out failed; copy them out by hand)";
  else if (st->phase == StagePhase::Done) results = "copied out; " + st->bb_dir + " removed";
  else if (st->phase == StagePhase::Failed) results = "kept in " + st->bb_dir;
  // The record's text (paths, the error) came from files the user named: escaped.
  using sluice::escape_text;
  std::printf("job %llu on %s (uid %u)\n", static_cast<unsigned long long>(st->job_id), escape_text(st->node).c_str(), st->uid);
  std::printf("  %-9s %s\n", "phase", std::string(sluice::staging::to_string(st->phase)).c_str());
  std::printf("  %-9s %s%s\n", "mode", escape_text(st->mode).c_str(),
              st->stager_pid > 0 ? fmt::format(" (stage-in running in pid {})", st->stager_pid).c_str() : "");
  std::printf("  %-9s %s\n", "bb dir", escape_text(st->bb_dir).c_str());
  std::printf("  %-9s %s of %s%s\n", "bytes", human_bytes(static_cast<double>(st->bytes_done)).c_str(),
              human_bytes(static_cast<double>(st->bytes_total)).c_str(), percent(st->bytes_done, st->bytes_total).c_str());
  std::printf("  %-9s %llu of %llu%s\n", "files", static_cast<unsigned long long>(st->files_done),
              static_cast<unsigned long long>(st->files_total), percent(st->files_done, st->files_total).c_str());
  std::printf("  %-9s %.0f MB/s over %.1f s\n", "rate", rate, st->seconds);
  std::printf("  %-9s %s\n", "updated", format_time(st->updated_unix).c_str());
  std::printf("  %-9s %s\n", "error", st->error.empty() ? "-" : escape_text(st->error).c_str());
  std::printf("  %-9s %s\n", "results", escape_text(results).c_str());
  return 0;
}

void print_cache_stats(const std::string& dir, const sluice::staging::CacheStats& s, bool json) {
  if (json) {
    std::printf("%s\n", nlohmann::json{{"cache_dir", dir},
                                        {"entries", s.entries},
                                        {"bytes", s.bytes},
                                        {"oldest_use_ns", s.oldest_use_ns},
                                        {"newest_use_ns", s.newest_use_ns},
                                        {"incomplete", s.incomplete}}
                                           .dump()
                                           .c_str());
    return;
  }
  std::printf("%s: %llu entries, %s (%llu bytes)\n", dir.c_str(), static_cast<unsigned long long>(s.entries),
              human_bytes(static_cast<double>(s.bytes)).c_str(), static_cast<unsigned long long>(s.bytes));
  if (s.entries > 0) {
    std::printf("  least recently used  %s\n", format_time(s.oldest_use_ns / 1000000000).c_str());
    std::printf("  most recently used   %s\n", format_time(s.newest_use_ns / 1000000000).c_str());
  }
  if (s.incomplete > 0)
    std::printf("  incomplete           %llu (left by interrupted stages; evict removes them after an hour)\n",
                static_cast<unsigned long long>(s.incomplete));
}

}  // namespace

int main(int argc, char** argv) {
  // Run by the plugin as the job's user: that user must not ptrace it (and steer what
  // root's prolog records) or read its memory. Harmless when a user runs it by hand.
  ::prctl(PR_SET_DUMPABLE, 0);
  CLI::App app{
      "sluice-stage: copy a job's data between the shared file system and node-local storage.\n"
      "Copies a file or a directory tree with parallel workers (big files in parallel chunks), writes every file\n"
      "under a temporary name and renames it when complete, and records each staged file (size, source mtime,\n"
      "XXH3-64 digest) in DST/.sluice-manifest.json, so running the same command again skips what is already\n"
      "staged and resumes an interrupted copy. Symlinks inside SRC are refused, never followed; nothing is\n"
      "written outside DST even if DST holds symlinks. An existing file in DST that sluice did not stage from\n"
      "SRC is never overwritten.\n"
      "With --cache-dir, files staged before on this node are hard-linked from the node cache instead of copied\n"
      "(a source that changed since - size, mtime, inode or ctime - is copied afresh). With --shard I/N, only\n"
      "node I's share of SRC is staged. `status` shows a job's staging on this node; `cache` inspects and trims\n"
      "a node cache."};
  app.footer(
      "COMMANDS\n"
      "  in SRC DST [--jobs N] [--chunk-size S] [--verify] [--cache-dir DIR [--cache-max S]] [--shard I/N]\n"
      "     [--beneath DIR] [--no-direct-io] [--progress-json] [-q]\n"
      "  out SRC DST [--jobs N] [--chunk-size S] [--if-exists] [--no-direct-io] [-q]\n"
      "  clean DIR\n"
      "  status JOBID [--bb-root DIR] [--json]\n"
      "  cache stats DIR [--json]\n"
      "  cache evict DIR --max S\n"
      "  Run `sluice-stage COMMAND --help` for each command's options and their defaults.\n\n"
      "EXAMPLES\n"
      "  sluice-stage in /lustre/proj/imagenet /local/bb/$SLURM_JOB_ID/imagenet --jobs 8\n"
      "  sluice-stage in /lustre/proj/imagenet /local/bb/$SLURM_JOB_ID/imagenet --verify   # re-check, repair\n"
      "  sluice-stage in /lustre/proj/model.ckpt /local/bb/$SLURM_JOB_ID/                  # a file into a dir\n"
      "  sluice-stage in /lustre/proj/imagenet /local/bb/$SLURM_JOB_ID/imagenet \\\n"
      "      --cache-dir /local/bb/.cache/uid_$UID --cache-max 500GiB                       # reuse across jobs\n"
      "  sluice-stage in /lustre/proj/shards /local/bb/$SLURM_JOB_ID/shards --shard $SLURM_NODEID/$SLURM_NNODES\n"
      "  sluice-stage out /local/bb/$SLURM_JOB_ID/results /lustre/proj/runs/$SLURM_JOB_ID\n"
      "  sluice-stage status $SLURM_JOB_ID\n"
      "  sluice-stage cache stats /local/bb/.cache/uid_$UID\n"
      "  sluice-stage cache evict /local/bb/.cache/uid_$UID --max 100GiB\n\n"
      "MODES\n"
      "  Files keep their owner permission bits (mode & 0700) and mtime; directories are 0700.\n"
      "  A directory SRC is mirrored at DST (DST/x is SRC/x). A file SRC is copied to DST, or into DST when DST is\n"
      "  an existing directory.\n\n"
      "SIZES\n"
      "  S is bytes, or a number with a unit: K, M, G, T (powers of 1024; KiB, MiB, GiB, TiB and KB, MB... too).\n\n"
      "ENVIRONMENT\n"
      "  SLUICE_BB_ROOT  burst-buffer root for `status` (default: the parent of $SLUICE_BB, else /var/tmp/sluice)\n\n"
      "FILES\n"
      "  DST/.sluice-manifest.json          what was staged into DST (per file: source, size, mtime, digest)\n"
      "  BB_ROOT/.status/job_JOBID.json     a job's staging status on this node (`status`)\n"
      "  CACHE/ab/<32 hex>[.meta]           node cache entries: a hard link of a staged file and its record\n\n"
      "EXIT STATUS\n"
      "  0 success; 1 failure or interruption (the message names the file at fault; run again to resume);\n"
      "  2 usage error; 3 (status) no staging status for that job on this node.");
  app.require_subcommand(1);

  std::string src, dst;
  unsigned jobs = 0;
  std::uint64_t chunk = 64ull << 20;
  bool verify = false, quiet = false, no_direct_io = false;
  std::string cache_dir, shard_arg;
  std::uint64_t cache_max = 0;
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
    sub->add_flag("--no-direct-io", no_direct_io,
                  "copy through the page cache. By default ranges of 4 MiB or more are read and written with "
                  "O_DIRECT where both file systems allow it (else copy_file_range, else read/write): a cold "
                  "dataset is read once from its disk and the writes are not throttled as dirty pages, but the "
                  "staged files are then not in this node's page cache");
    sub->add_flag("-q,--quiet", quiet, "no progress, only the summary line");
    sub->add_flag("--progress-json", progress_json,
                  "progress as one JSON object per line on stdout (bytes_done, bytes_total, files_done, files_total, "
                  "seconds), at most twice a second and once at the end; for the SPANK plugin's status record");
  };
  auto* in = app.add_subcommand("in", "Stage SRC (shared file system) into DST (node-local). Files already staged "
                                      "from an unchanged source are skipped.");
  add_common(in);
  in->add_flag("--verify", verify, "before skipping a staged file, re-hash it and compare with the manifest; "
                                   "a corrupt copy is copied again. Files linked from the node cache are re-hashed too");
  in->add_option("--cache-dir", cache_dir,
                 "node cache: link files staged before on this node (same source path, size, mtime, inode and "
                 "ctime) instead of copying them, and add the files copied now. Must be on DST's file system and "
                 "belong to you (mode 0700; created if missing). Default: no cache");
  in->add_option("--cache-max", cache_max,
                 "after staging, evict least recently used cache entries until the cache holds at most this many "
                 "bytes (e.g. 500GiB); files larger than this are not cached. Default 0: unbounded")
      ->transform(CLI::AsSizeValue(false))
      ->needs("--cache-dir");
  in->add_option("--shard", shard_arg,
                 "stage only node I's share of SRC's files, of N nodes (I from 0, e.g. $SLURM_NODEID/$SLURM_NNODES). "
                 "Every node computes the same split from the listing: heaviest files first, each to the least "
                 "loaded node. The manifest lists this node's files only. Default 0/1: everything")
      ->check([](const std::string& v) { return check_shard_arg(v); });
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
  std::string source_label;
  unsigned wait_lock_s = 0;
  out->add_option("--source-label", source_label,
                  "record sources in DST's manifest as LABEL:PATH (the SPANK plugin passes the node's name, so "
                  "nodes staging out into one DST never take each other's files for their own)");
  out->add_option("--wait-lock", wait_lock_s,
                  "wait up to this many seconds for another sluice-stage writing into DST (default 0: fail at once)")
      ->check(CLI::Range(0u, 86400u));
  out->add_flag("--if-exists", if_exists,
                "a SRC that does not exist is not an error: nothing to copy from this node (the SPANK plugin's "
                "stage-out, where often only some nodes write results)");

  std::string job_arg, bb_root;
  bool json = false;
  auto* status = app.add_subcommand("status", "Show job JOBID's staging on this node (from BB_ROOT/.status/"
                                              "job_JOBID.json): phase, mode, bytes and files done, rate, error, "
                                              "whether its results are kept. Exit 3 when there is none.");
  status->add_option("JOBID", job_arg, "the job id (a positive integer)")->required();
  status->add_option("--bb-root", bb_root, "burst-buffer root (default: $SLUICE_BB_ROOT, else the parent of "
                                           "$SLUICE_BB, else /var/tmp/sluice)");
  status->add_flag("--json", json, "print the status record as JSON");

  std::string cache_arg;
  std::uint64_t evict_max = 0;
  auto* cache = app.add_subcommand("cache", "Inspect or trim a node cache (see --cache-dir of `in`).");
  cache->require_subcommand(1);
  auto* stats = cache->add_subcommand("stats", "Print the cache's entries, bytes and least/most recent use.");
  stats->add_option("DIR", cache_arg, "the cache directory")->required();
  stats->add_flag("--json", json, "print them as JSON");
  auto* evict = cache->add_subcommand("evict", "Evict least recently used entries until the cache holds at most "
                                               "--max bytes (jobs still holding a link keep their data); also "
                                               "removes what interrupted stages left, once an hour old.");
  evict->add_option("DIR", cache_arg, "the cache directory")->required();
  evict->add_option("--max", evict_max, "bytes to keep at most, at least 1 (e.g. 100GiB; to empty a cache, remove it)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()))
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is a "parse error" that exits 0
  }

  try {
    if (status->parsed()) return run_status(job_arg, bb_root, json);
    if (stats->parsed()) {
      print_cache_stats(cache_arg, sluice::staging::cache_stats(cache_arg), json);
      return 0;
    }
    if (evict->parsed()) {
      const auto before = sluice::staging::cache_stats(cache_arg);
      sluice::staging::evict_cache(cache_arg, evict_max);
      const auto after = sluice::staging::cache_stats(cache_arg);
      std::printf("sluice-stage: cache %s: evicted %llu entries (%s); %llu entries, %s left\n", cache_arg.c_str(),
                  static_cast<unsigned long long>(before.entries - std::min(before.entries, after.entries)),
                  human_bytes(static_cast<double>(before.bytes - std::min(before.bytes, after.bytes))).c_str(),
                  static_cast<unsigned long long>(after.entries), human_bytes(static_cast<double>(after.bytes)).c_str());
      return 0;
    }
  } catch (const Usage& e) {
    std::fprintf(stderr, "sluice-stage: %s\nRun with --help for more information.\n", sluice::escape_text(e.what()).c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-stage: %s\n", sluice::escape_text(e.what()).c_str());
    return kExitFailure;
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  if (clean->parsed()) {
    try {
      const sluice::staging::CleanResult r = sluice::staging::clean_tree(clean_dir);
      std::printf("sluice-stage: clean %s: removed %llu files and %llu directories\n", sluice::escape_text(clean_dir).c_str(),
                  static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.dirs));
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-stage: %s\n", sluice::escape_text(e.what()).c_str());
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
      std::printf("sluice-stage: out %s: does not exist, nothing to copy\n", sluice::escape_text(req.source).c_str());
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
    req.direct_io = !no_direct_io;
    req.verify = verify;
    req.verify_after_copy = out->parsed();
    req.source_label = source_label;
    req.lock_wait = std::chrono::seconds(wait_lock_s);
    req.cancel = &g_cancel;
    req.on_progress = [&](const sluice::staging::Progress& p) {
      printer(p);
      last_progress = p;
      if (progress_json) json_progress(p);
    };
    if (in->parsed()) {
      req.cache_dir = cache_dir;
      req.cache_max = cache_max;
      if (!shard_arg.empty()) {
        const auto slash = shard_arg.find('/');
        req.shard_index = static_cast<unsigned>(std::stoul(shard_arg.substr(0, slash)));
        req.shard_count = static_cast<unsigned>(std::stoul(shard_arg.substr(slash + 1)));
      }
    }
    sluice::staging::StageResult r = sluice::staging::stage_tree(req);
    printer.done();
    if (progress_json) json_progress(last_progress, true);
    if (!r.note.empty()) std::fprintf(stderr, "sluice-stage: note: %s\n", sluice::escape_text(r.note).c_str());
    const double mbps = r.seconds > 0 ? static_cast<double>(r.bytes_copied) / r.seconds / 1e6 : 0;
    std::string extra;
    if (!req.cache_dir.empty())
      extra += fmt::format(", {} from cache ({})", r.files_from_cache, human_bytes(static_cast<double>(r.bytes_from_cache)));
    if (req.shard_count > 1)
      extra += fmt::format(", {} left to other shards (shard {}/{})", r.files_other_shards, req.shard_index, req.shard_count);
    std::printf("sluice-stage: %s %s -> %s: %llu files, copied %llu (%s), skipped %llu unchanged, repaired %llu%s, "
                "in %.2f s (%.0f MB/s)\n",
                out->parsed() ? "out" : "in", sluice::escape_text(req.source).c_str(), sluice::escape_text(dst).c_str(),
                static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.files_copied),
                human_bytes(static_cast<double>(r.bytes_copied)).c_str(),
                static_cast<unsigned long long>(r.files_skipped), static_cast<unsigned long long>(r.files_repaired),
                extra.c_str(), r.seconds, mbps);
    return 0;
  } catch (const std::exception& e) {
    printer.done();
    std::fprintf(stderr, "sluice-stage: %s\n", sluice::escape_text(e.what()).c_str());
    return kExitFailure;
  }
}
