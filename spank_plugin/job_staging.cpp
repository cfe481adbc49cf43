#include "job_staging.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/hostlist.hpp>
#include <sluice/common/unique_handle.hpp>
#include <sluice/common/user_process.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
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

bool same_process_alive(std::int64_t pid, std::uint64_t start) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  return process_start_ticks(static_cast<pid_t>(pid)) == start;
}

// --- The user's part: sluice-stage runs as the job's user ---------------------------

struct StageRun {
  const PluginConfig& config;
  const JobIdentity& job;
  UserCredentials user;
  JobStageStatus& status;
  std::chrono::steady_clock::time_point last_save{};

  void save(bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_save < std::chrono::seconds(1)) return;
    last_save = now;
    staging::save_job_status(config.bb_root, status);
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
    UserProcess p;
    try {
      p = spawn_as_user(user, {args, env(), "/", false});
    } catch (const std::exception& e) {
      return what + ": " + e.what();
    }
    const int rc = p.wait([&](const std::string& line) {
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
    });
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
    return what + ": " + reason;
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
    try {
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
// the stage and keeps the status current; the prolog returns at once. SIGTERM (epilog)
// reaches the whole session: sluice-stage stops cleanly, its manifest says what is ready.
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
    if (grandchild != 0) {
      (void)!::write(wr.get(), &grandchild, sizeof grandchild);
      ::_exit(grandchild > 0 ? 0 : 1);
    }
    // The supervisor: no descriptor of slurmd's stays open, and SIGTERM is for its child.
    UniqueFd devnull(::open("/dev/null", O_RDWR));
    for (int fd = 0; fd < 3; ++fd) ::dup2(devnull.get(), fd);
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    try {
      stage_in_all(run, staging);
    } catch (...) {
    }
    ::_exit(0);
  }
  wr.reset();
  pid_t grandchild = -1;
  while (::read(rd.get(), &grandchild, sizeof grandchild) < 0 && errno == EINTR) {
  }
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (grandchild <= 0) throw Error("could not start the async stage-in");
  run.status.stager_pid = grandchild;
  run.status.stager_start = process_start_ticks(grandchild);
  // The supervisor may already have finished and written its result: keep that one.
  auto current = staging::load_job_status(staging::job_status_path(run.config.bb_root, run.job.job_id));
  if (current && current->phase == StagePhase::StagingIn) run.save(true);
}

// Status records of jobs long gone (their burst buffer removed) would pile up, one per job
// and node: a week after its last update a record whose job_ID directory is gone is removed.
void prune_old_status(int bb_root) {
  UniqueFd dir(::openat(bb_root, staging::kStatusDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return;
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::fdopendir(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0)), ::closedir);
  if (!listing) return;
  const std::time_t cutoff = std::time(nullptr) - 7 * 24 * 3600;
  while (const dirent* e = ::readdir(listing.get())) {
    const std::string name = e->d_name;
    if (name.rfind("job_", 0) != 0 || name.size() < 10 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_mtime > cutoff) continue;
    const std::string job_dir = name.substr(0, name.size() - 5);
    struct stat bb {};
    if (::fstatat(bb_root, job_dir.c_str(), &bb, AT_SYMLINK_NOFOLLOW) == 0) continue;  // results kept: keep the record
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
  staging::save_job_status(config.bb_root, status);
  if (staging.in.empty()) return;

  StageRun run{config, job, {}, status};
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
  const std::string status_path = staging::job_status_path(config.bb_root, job.job_id);
  std::optional<JobStageStatus> loaded = staging::load_job_status(status_path);
  if (!loaded) return "";  // the prolog made no burst buffer here (or it was removed)
  JobStageStatus status = *loaded;

  // An async stage-in still running: stop it (its manifest keeps what is complete).
  if (same_process_alive(status.stager_pid, status.stager_start)) {
    ::kill(-static_cast<pid_t>(status.stager_pid), SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (same_process_alive(status.stager_pid, status.stager_start) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (same_process_alive(status.stager_pid, status.stager_start)) ::kill(-static_cast<pid_t>(status.stager_pid), SIGKILL);
  }
  status.stager_pid = 0;

  // No task ran here when stage-in failed: there is nothing to stage out.
  const bool stage_in_failed = status.phase == StagePhase::Failed && !status.stage_out_failed;
  const std::string stage_in_error = status.error;
  StageRun run{config, job, {}, status};
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
    failure = run.run({"out", spec.src == "." ? bb : bb + "/" + spec.src, expand_destination(spec.dst, job), "--if-exists",
                       "--source-label", job.node.empty() ? "node" : job.node, "--wait-lock", "3600"},
                      "stage-out of " + staging::to_string(spec));
  }
  if (!failure.empty()) {
    status.phase = StagePhase::Failed;
    status.stage_out_failed = true;
    status.error = failure + " (the job's files are kept in " + bb + ")";
    run.save(true);
    return status.error;
  }

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
