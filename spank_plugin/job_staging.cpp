#include "job_staging.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/hostlist.hpp>
#include <sluice/common/unique_handle.hpp>
#include <sluice/common/user_process.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <cstring>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <memory>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::spank {

using staging::JobStageStatus;
using staging::StagePhase;

// --- What the user asked --------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> job_control_env(const JobStaging& staging) {
  std::vector<std::pair<std::string, std::string>> env;
  auto joined = [](const auto& specs) {
    std::string text;
    for (const auto& s : specs) text += staging::to_string(s) + "\n";
    return text;
  };
  if (!staging.in.empty()) env.emplace_back(kStageInVar, joined(staging.in));
  if (!staging.out.empty()) env.emplace_back(kStageOutVar, joined(staging.out));
  env.emplace_back(kStageModeVar, staging.async ? "async" : "sync");
  return env;
}

std::size_t request_bytes(const JobStaging& staging) {
  std::size_t n = 0;
  for (const auto& s : staging.in) n += staging::to_string(s).size() + 1;
  for (const auto& s : staging.out) n += staging::to_string(s).size() + 1;
  return n;
}

void check_request_size(const JobStaging& staging) {
  const std::size_t n = request_bytes(staging);
  if (n <= kMaxRequestBytes) return;
  throw InvalidArgument("the staging request (" + std::to_string(staging.in.size()) + " --stage-in and " +
                        std::to_string(staging.out.size()) + " --stage-out specs, one line each) is " + std::to_string(n) +
                        " bytes; at most " + std::to_string(kMaxRequestBytes) + " bytes (" +
                        std::to_string(kMaxRequestBytes / 1024) +
                        " KiB) can be passed to the job's nodes: stage whole directories rather than their files, or "
                        "shorten the paths");
}

bool parse_stage_mode_async(const std::string& mode) {
  if (mode == "sync") return false;
  if (mode == "async") return true;
  throw InvalidArgument("invalid --stage-mode value '" + quote_input(mode) + "' (valid: sync, async)");
}

JobStaging job_staging_from_env(const GetEnv& getenv) {
  JobStaging s;
  auto var = [&](const char* name) { return getenv(std::string("SPANK_") + name); };
  if (auto in = var(kStageInVar)) s.in = staging::parse_spec_list(*in, "--stage-in");
  if (auto out = var(kStageOutVar)) {
    std::istringstream lines(*out);
    std::string line;
    while (std::getline(lines, line))
      if (!line.empty()) s.out.push_back(staging::parse_out_spec(line));
    if (s.out.size() > staging::kMaxSpecs) throw InvalidArgument("more than " + std::to_string(staging::kMaxSpecs) + " --stage-out specs");
  }
  if (auto mode = var(kStageModeVar)) s.async = parse_stage_mode_async(*mode);
  check_request_size(s);
  return s;
}

// --- Who and where ----------------------------------------------------------------------

namespace {

std::uint64_t env_number(const GetEnv& getenv, const std::string& name) {
  const auto v = getenv(name);
  if (!v || v->empty() || v->size() > 19 || v->find_first_not_of("0123456789") != std::string::npos)
    throw Error("the job's environment has no valid " + name);
  return std::stoull(*v);
}

}  // namespace

JobIdentity job_identity_from_env(const GetEnv& getenv) {
  JobIdentity j;
  j.job_id = env_number(getenv, "SLURM_JOB_ID");
  j.uid = static_cast<uid_t>(env_number(getenv, "SLURM_JOB_UID"));
  j.gid = static_cast<gid_t>(env_number(getenv, "SLURM_JOB_GID"));
  j.node = getenv("SLURMD_NODENAME").value_or("");
  auto list = getenv("SLURM_JOB_NODELIST");
  if (!list) list = getenv("SLURM_NODELIST");
  if (list) j.nodes = expand_hostlist(*list);
  return j;
}

std::size_t JobIdentity::node_index() const {
  auto it = std::find(nodes.begin(), nodes.end(), node);
  if (node.empty() || it == nodes.end())
    throw Error("this node (" + quote_input(node) + ") is not in the job's node list");
  return static_cast<std::size_t>(it - nodes.begin());
}

std::string job_bb_dir(const PluginConfig& config, std::uint64_t job_id) {
  return config.bb_root + "/job_" + std::to_string(job_id);
}

std::string user_cache_dir(const PluginConfig& config, uid_t uid) {
  return config.bb_root + "/.cache/uid_" + std::to_string(uid);
}

// --- Root's part: directories it owns or hands over ---------------------------------

namespace {

UniqueFd open_dir_nofollow(int at, const std::string& name, const std::string& shown) {
  UniqueFd fd(::openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw SystemError("cannot open the directory " + quote_input(shown), errno);
  return fd;
}

// BB_ROOT, created (0755) when missing; must be root's and writable by root only, or a
// user could plant a job_N symlink for root to follow.
UniqueFd open_bb_root(const PluginConfig& config) {
  std::string partial;
  std::size_t pos = 0;
  while ((pos = config.bb_root.find('/', pos + 1)) != std::string::npos) {
    partial = config.bb_root.substr(0, pos);
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      throw SystemError("cannot create bb_root's parent " + quote_input(partial), errno);
  }
  if (::mkdir(config.bb_root.c_str(), 0755) != 0 && errno != EEXIST)
    throw SystemError("cannot create bb_root " + quote_input(config.bb_root), errno);
  UniqueFd fd = open_dir_nofollow(AT_FDCWD, config.bb_root, config.bb_root);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SystemError("cannot stat bb_root " + quote_input(config.bb_root), errno);
  if (st.st_uid != 0 || (st.st_mode & 022) != 0)
    throw Error("bb_root " + quote_input(config.bb_root) + " must belong to root and be writable by root only");
  return fd;
}

// A directory NAME under AT for the user: created 0700 and handed over, or reused when
// it is already the user's (a requeued job, a resumed stage).
void make_user_dir(int at, const std::string& name, const std::string& shown, uid_t uid, gid_t gid) {
  if (::mkdirat(at, name.c_str(), 0700) != 0 && errno != EEXIST)
    throw SystemError("cannot create " + quote_input(shown), errno);
  UniqueFd fd = open_dir_nofollow(at, name, shown);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SystemError("cannot stat " + quote_input(shown), errno);
  if (st.st_uid != uid && st.st_uid != 0)
    throw Error(quote_input(shown) + " exists and belongs to uid " + std::to_string(st.st_uid) + ", not the job's user");
  if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), 0700) != 0)
    throw SystemError("cannot hand " + quote_input(shown) + " to uid " + std::to_string(uid), errno);
}

using Clock = std::chrono::steady_clock;

std::uint64_t process_start_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  for (int i = 3; i <= 22 && fields >> f; ++i)
    if (i == 22) return std::stoull(f);
  return 0;
}

// True once FD (a pidfd) says its process exited, or after TIMEOUT without that.
bool wait_pidfd(int fd, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (rc > 0) return true;
    if (rc == 0 || (rc < 0 && errno != EINTR)) return false;
  }
}

// Stops the async supervisor the prolog started, named by root's own state (never by the
// user's view): a pidfd pins the process, and it is ours only if its start time is the one
// the supervisor recorded for itself. SIGTERM makes it stop its stager's process group
// (SIGTERM, SIGCONT, SIGKILL after a grace) and record that; SIGKILL is the fallback, and
// its stager then dies with it (PR_SET_PDEATHSIG). Returns once it is gone or after ~40 s.
void stop_supervisor(const JobStageStatus& state) {
  if (state.stager_pid <= 1 || state.stager_pid > std::numeric_limits<pid_t>::max()) return;
  const pid_t pid = static_cast<pid_t>(state.stager_pid);
  const long raw = ::syscall(SYS_pidfd_open, pid, 0);
  if (raw < 0) return;  // gone
  UniqueFd pidfd(static_cast<int>(raw));
  if (state.stager_start == 0 || process_start_ticks(pid) != state.stager_start) return;  // not ours (pid reused)
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0) != 0) return;
  if (wait_pidfd(pidfd.get(), std::chrono::seconds(30))) return;
  ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  wait_pidfd(pidfd.get(), std::chrono::seconds(10));
}

bool stop_requested(int stop_fd) {
  if (stop_fd < 0) return false;
  pollfd p{stop_fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// --- The user's part: sluice-stage runs as the job's user ---------------------------

struct StageRun {
  const PluginConfig& config;
  const JobIdentity& job;
  UserCredentials user;
  JobStageStatus& status;
  Clock::time_point last_save{};
  // The whole stage's end (stage_in_timeout / stage_out_timeout), and the knob that set it.
  std::optional<Clock::time_point> deadline;
  std::string deadline_setting;
  unsigned deadline_s = 0;
  int stop_fd = -1;  // the async supervisor's signalfd: the epilog asked it to stop

  void save(bool force) {
    const auto now = Clock::now();
    if (!force && now - last_save < std::chrono::seconds(1)) return;
    last_save = now;
    staging::save_job_state(config.bb_root, status);
  }

  void set_deadline(unsigned seconds, const char* setting) {
    deadline = Clock::now() + std::chrono::seconds(seconds);
    deadline_s = seconds;
    deadline_setting = setting;
  }
  unsigned seconds_left() const {
    if (!deadline) return 3600;
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(*deadline - Clock::now()).count();
    return static_cast<unsigned>(std::max<long long>(left, 1));
  }
  std::string deadline_reason() const {
    return "did not finish within the site's time limit of " + std::to_string(deadline_s) + " s (" + deadline_setting +
           " in plugstack.conf); stopped";
  }

  std::vector<std::string> env() const {
    return {"PATH=/usr/bin:/bin", "HOME=" + user.home, "USER=" + user.name, "LOGNAME=" + user.name, "LANG=C.UTF-8",
            "SLURM_JOB_ID=" + std::to_string(job.job_id)};
  }

  // Runs `sluice-stage ARGS --progress-json`; progress lines move the status's counters
  // (BASE: what earlier specs did). Returns "" or the reason it failed.
  std::string run(std::vector<std::string> args, const std::string& what) {
    const bool copies = args[0] == "in" || args[0] == "out";
    args.insert(args.begin(), config.stage_tool);
    if (copies) args.push_back("--progress-json");
    if (copies && config.stage_jobs) {
      args.push_back("--jobs");
      args.push_back(std::to_string(config.stage_jobs));
    }
    const JobStageStatus base = status;
    if (deadline && Clock::now() >= *deadline) return what + ": " + deadline_reason();
    UserProcess p;
    try {
      UserProcessOptions options;
      options.argv = args;
      options.env = env();
      options.own_process_group = true;  // stopped as a whole at the deadline or job end
      options.die_with_parent = true;    // and with the prolog or supervisor, if that is killed
      p = spawn_as_user(user, options);
    } catch (const std::exception& e) {
      return what + ": " + e.what();
    }
    auto on_line = [&](const std::string& line) {
      try {
        const auto j = nlohmann::json::parse(line);
        status.bytes_done = base.bytes_done + j.value("bytes_done", std::uint64_t{0});
        status.bytes_total = base.bytes_total + j.value("bytes_total", std::uint64_t{0});
        status.files_done = base.files_done + j.value("files_done", std::uint64_t{0});
        status.files_total = base.files_total + j.value("files_total", std::uint64_t{0});
        status.seconds = base.seconds + j.value("seconds", 0.0);
        save(false);
      } catch (const std::exception&) {
        // Not a progress line (the user's tool is ours, but its output is not trusted).
      }
    };
    int rc = 0;
    try {
      rc = p.wait(on_line, deadline, stop_fd);
    } catch (const DeadlineExceeded&) {
      return what + ": " + deadline_reason();
    } catch (const std::exception& e) {
      return what + ": " + e.what();
    }
    if (p.stopped()) return what + ": stopped at job end";
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 0) return "";
    // sluice-stage's last stderr lines say what went wrong, naming the file.
    std::vector<std::string> lines;
    std::istringstream err(p.stderr_text());
    for (std::string line; std::getline(err, line);)
      if (!line.empty() && line.rfind("Run with --help", 0) != 0) lines.push_back(line);
    std::string reason;
    for (std::size_t i = lines.size() > 2 ? lines.size() - 2 : 0; i < lines.size(); ++i)
      reason += (reason.empty() ? "" : " ") + lines[i];
    if (reason.empty()) reason = "sluice-stage " + describe_wait_status(rc);
    return what + ": " + escape_text(reason);
  }
};

std::vector<std::string> stage_in_args(const PluginConfig& config, const JobIdentity& job, const std::string& bb,
                                       const staging::StageSpec& spec) {
  std::vector<std::string> args = {"in", spec.src, spec.dst == "." ? bb : bb + "/" + spec.dst, "--beneath", bb};
  if (config.cache_max > 0) {
    args.insert(args.end(), {"--cache-dir", user_cache_dir(config, job.uid), "--cache-max", std::to_string(config.cache_max)});
  }
  if (spec.shard && job.nodes.size() > 1)
    args.insert(args.end(), {"--shard", std::to_string(job.node_index()) + "/" + std::to_string(job.nodes.size())});
  return args;
}

// Stages every --stage-in spec in order; the first failure ends it.
void stage_in_all(StageRun& run, const JobStaging& staging) {
  const std::string bb = job_bb_dir(run.config, run.job.job_id);
  for (const staging::StageSpec& spec : staging.in) {
    std::string failure;
    if (stop_requested(run.stop_fd)) failure = "stage-in of " + staging::to_string(spec) + ": stopped at job end";
    else try {
      failure = run.run(stage_in_args(run.config, run.job, bb, spec), "stage-in of " + staging::to_string(spec));
    } catch (const std::exception& e) {
      failure = "stage-in of " + staging::to_string(spec) + ": " + e.what();
    }
    if (!failure.empty()) {
      run.status.phase = StagePhase::Failed;
      run.status.error = failure;
      run.status.stager_pid = 0;
      run.save(true);
      return;
    }
  }
  run.status.phase = StagePhase::Ready;
  run.status.stager_pid = 0;
  run.save(true);
}

// Async: a root supervisor outside slurmd's process tree (double fork, own session) runs
// the stage and keeps the state current; the prolog returns once the supervisor has
// recorded itself (pid and start time) in root's state, so the epilog can find and verify
// it. SIGTERM (the epilog) arrives on a signalfd: the supervisor stops its stager's process
// group, records that, and exits.
void start_async_stage_in(StageRun& run, const JobStaging& staging) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw SystemError("pipe2", errno);
  UniqueFd rd(fds[0]), wr(fds[1]);
  const pid_t child = ::fork();
  if (child < 0) throw SystemError("fork", errno);
  if (child == 0) {
    rd.reset();
    ::setsid();
    const pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild > 0 ? 0 : 1);
    // The supervisor: no descriptor of slurmd's stays open but the pipe to the prolog.
    UniqueFd devnull(::open("/dev/null", O_RDWR));
    for (int fd = 0; fd < 3; ++fd) ::dup2(devnull.get(), fd);
    for (int fd = 3; fd < 1024; ++fd)
      if (fd != wr.get()) ::close(fd);
    (void)devnull.release();
    ::signal(SIGHUP, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    run.stop_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
    const pid_t self = ::getpid();
    run.status.stager_pid = self;
    run.status.stager_start = process_start_ticks(self);
    try {
      run.save(true);
    } catch (...) {
      ::_exit(1);
    }
    (void)!::write(wr.get(), &self, sizeof self);
    wr.reset();
    try {
      stage_in_all(run, staging);
    } catch (...) {
    }
    ::_exit(0);
  }
  wr.reset();
  pid_t supervisor = -1;
  ssize_t got;
  while ((got = ::read(rd.get(), &supervisor, sizeof supervisor)) < 0 && errno == EINTR) {
  }
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (got != sizeof supervisor || supervisor <= 0) throw Error("could not start the async stage-in");
}

// Status records of jobs long gone (their burst buffer removed) would pile up, one per job
// and node: a week after its last update a record whose job_ID directory is gone is removed.
void prune_old_status(int bb_root) {
  UniqueFd dir(::openat(bb_root, staging::kStatusDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return;
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::fdopendir(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0)), ::closedir);
  if (!listing) return;
  const std::time_t cutoff = std::time(nullptr) - 7 * 24 * 3600;
  UniqueFd state(::openat(bb_root, staging::kStateDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  while (const dirent* e = ::readdir(listing.get())) {
    const std::string name = e->d_name;
    if (name.rfind("job_", 0) != 0 || name.size() < 10 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_mtime > cutoff) continue;
    const std::string job_dir = name.substr(0, name.size() - 5);
    struct stat bb {};
    if (::fstatat(bb_root, job_dir.c_str(), &bb, AT_SYMLINK_NOFOLLOW) == 0) continue;  // results kept: keep the record
    if (state) ::unlinkat(state.get(), name.c_str(), 0);
    ::unlinkat(dir.get(), name.c_str(), 0);
  }
}

}  // namespace

std::string expand_destination(const std::string& dst, const JobIdentity& job) {
  std::string out;
  for (std::size_t i = 0; i < dst.size(); ++i) {
    if (dst[i] != '%' || i + 1 == dst.size()) {
      out += dst[i];
      continue;
    }
    const char c = dst[++i];
    if (c == 'N') out += job.node;
    else if (c == 'j') out += std::to_string(job.job_id);
    else if (c == '%') out += '%';
    else out += std::string("%") + c;  // not ours: kept as written
  }
  return out;
}

void prolog_stage(const PluginConfig& config, const JobIdentity& job, const JobStaging& staging) {
  UniqueFd bb_root = open_bb_root(config);
  prune_old_status(bb_root.get());
  const std::string job_dir = "job_" + std::to_string(job.job_id);
  make_user_dir(bb_root.get(), job_dir, job_bb_dir(config, job.job_id), job.uid, job.gid);
  if (config.cache_max > 0) {
    if (::mkdirat(bb_root.get(), ".cache", 0755) != 0 && errno != EEXIST)
      throw SystemError("cannot create " + quote_input(config.bb_root + "/.cache"), errno);
    UniqueFd cache = open_dir_nofollow(bb_root.get(), ".cache", config.bb_root + "/.cache");
    make_user_dir(cache.get(), "uid_" + std::to_string(job.uid), user_cache_dir(config, job.uid), job.uid, job.gid);
  }

  JobStageStatus status;
  status.job_id = job.job_id;
  status.node = job.node;
  status.uid = job.uid;
  status.bb_dir = job_bb_dir(config, job.job_id);
  status.mode = staging.async ? "async" : "sync";
  status.phase = staging.in.empty() ? StagePhase::Ready : StagePhase::StagingIn;
  staging::save_job_state(config.bb_root, status);
  if (staging.in.empty()) return;

  StageRun run{config, job, {}, status, {}, std::nullopt, {}, 0, -1};
  run.set_deadline(config.stage_in_timeout_s, "stage_in_timeout");
  try {
    run.user = lookup_user(job.uid, job.gid);
  } catch (const std::exception& e) {
    status.phase = StagePhase::Failed;
    status.error = std::string("stage-in: ") + e.what();
    run.save(true);
    return;
  }
  if (staging.async)
    start_async_stage_in(run, staging);
  else
    stage_in_all(run, staging);
}

std::string epilog_stage(const PluginConfig& config, const JobIdentity& job, const JobStaging& staging) {
  // Root's own state only: the user's view (.status) is theirs to rewrite.
  std::optional<JobStageStatus> loaded = staging::load_job_state(config.bb_root, job.job_id);
  if (!loaded) return "";  // the prolog made no burst buffer here (or it was removed)
  // An async stage-in still running: stop it (its manifest keeps what is complete), then
  // read what the supervisor recorded last.
  if (loaded->stager_pid > 0) {
    stop_supervisor(*loaded);
    if (auto after = staging::load_job_state(config.bb_root, job.job_id)) loaded = after;
  }
  JobStageStatus status = *loaded;
  status.stager_pid = 0;
  status.stager_start = 0;
  // The identity is the epilog's own (slurmd's environment), never the record's.
  status.job_id = job.job_id;
  status.uid = job.uid;
  status.node = job.node;
  status.bb_dir = job_bb_dir(config, job.job_id);

  // No task ran here when a sync stage-in failed: there is nothing to stage out. An async
  // job's tasks ran whatever its stage-in did.
  const bool stage_in_failed = status.phase == StagePhase::Failed && !status.stage_out_failed && status.mode != "async";
  const std::string stage_in_error = status.error;
  StageRun run{config, job, {}, status, {}, std::nullopt, {}, 0, -1};
  run.set_deadline(config.stage_out_timeout_s, "stage_out_timeout");
  const std::string bb = job_bb_dir(config, job.job_id);
  status.phase = StagePhase::StagingOut;
  status.bytes_done = status.bytes_total = status.files_done = status.files_total = 0;
  status.seconds = 0;
  std::string failure;
  try {
    run.user = lookup_user(job.uid, job.gid);
  } catch (const std::exception& e) {
    failure = std::string("stage-out: ") + e.what();
  }
  run.save(true);
  for (const staging::StageOutSpec& spec : staging.out) {
    if (!failure.empty() || stage_in_failed) break;
    // A lock on the destination is waited for only as long as the stage-out may still take.
    failure = run.run({"out", spec.src == "." ? bb : bb + "/" + spec.src, expand_destination(spec.dst, job), "--if-exists",
                       "--source-label", job.node.empty() ? "node" : job.node, "--wait-lock",
                       std::to_string(run.seconds_left())},
                      "stage-out of " + staging::to_string(spec));
  }
  if (!failure.empty()) {
    status.phase = StagePhase::Failed;
    status.stage_out_failed = true;
    status.error = failure + " (the job's files are kept in " + bb + ")";
    run.save(true);
    return status.error;
  }

  // Removing the burst buffer has its own short bound: it is root's cleanup, not the user's.
  run.set_deadline(std::max(run.seconds_left(), 60u), "stage_out_timeout");
  // Stage-out done: root removes the directory it created once it is empty. A job that
  // left files there has them removed by the user (no symlink is followed) first; most
  // jobs without staging leave it empty and cost no process.
  UniqueFd bb_root = open_bb_root(config);
  const std::string name = "job_" + std::to_string(job.job_id);
  std::string removal;
  if (::unlinkat(bb_root.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    if (errno == ENOTEMPTY || errno == EEXIST) {
      removal = run.run({"clean", bb}, "removing the burst buffer");
      if (removal.empty() && ::unlinkat(bb_root.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        removal = "cannot remove " + bb + ": " + std::string(::strerrordesc_np(errno));
    } else {
      removal = "cannot remove " + bb + ": " + std::string(::strerrordesc_np(errno));
    }
  }
  status.phase = removal.empty() && !stage_in_failed ? StagePhase::Done : StagePhase::Failed;
  status.error = !removal.empty() ? removal : stage_in_failed ? stage_in_error : "";
  run.save(true);
  return removal;
}

}  // namespace sluice::spank
