#include <sluice/common/user_process.hpp>

#include <sluice/common/error.hpp>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sluice {

UserCredentials lookup_user(uid_t uid, gid_t gid) {
  UserCredentials c;
  c.uid = uid;
  c.gid = gid;
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  int rc;
  while ((rc = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 22))
    buf.resize(buf.size() * 4);
  if (rc != 0) throw SystemError("cannot look up uid " + std::to_string(uid), rc);
  if (found == nullptr) throw Error("uid " + std::to_string(uid) + " is not in the password database");
  c.name = pw.pw_name;
  c.home = pw.pw_dir ? pw.pw_dir : "/";
  int n = 64;
  for (int tries = 0; tries < 8; ++tries) {
    c.groups.assign(static_cast<std::size_t>(n), 0);
    int count = n;
    if (::getgrouplist(c.name.c_str(), gid, c.groups.data(), &count) >= 0) {
      c.groups.resize(static_cast<std::size_t>(count));
      return c;
    }
    n = count > n ? count : n * 4;
  }
  throw Error("cannot list the groups of user " + quote_input(c.name));
}

UserProcess::UserProcess(UserProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), group_(o.group_), stopped_(o.stopped_), out_(std::move(o.out_)),
      err_(std::move(o.err_)), err_text_(std::move(o.err_text_)) {}

UserProcess& UserProcess::operator=(UserProcess&& o) noexcept {
  if (this != &o) {
    UserProcess old(std::move(*this));  // kills and reaps a child this one still owned
    pid_ = std::exchange(o.pid_, -1);
    group_ = o.group_;
    stopped_ = o.stopped_;
    out_ = std::move(o.out_);
    err_ = std::move(o.err_);
    err_text_ = std::move(o.err_text_);
  }
  return *this;
}

UserProcess::~UserProcess() { kill_and_reap(); }

// The pid (and with it the group id it leads) stays ours until it is reaped, even as a
// zombie: signalling it can never reach a process someone else started.
void UserProcess::signal(int sig) const {
  if (pid_ <= 0) return;
  if (group_) ::kill(-pid_, sig);
  ::kill(pid_, sig);
}

void UserProcess::kill_and_reap() noexcept {
  if (pid_ <= 0) return;
  signal(SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (group_) ::kill(-pid_, SIGKILL);  // a member that outlived its leader; the id is still unused
  pid_ = -1;
}

namespace {

UniqueFd open_pidfd(pid_t pid) {
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return UniqueFd(fd < 0 ? -1 : static_cast<int>(fd));
}

}  // namespace

int UserProcess::wait(const std::function<void(const std::string&)>& on_line,
                      std::optional<std::chrono::steady_clock::time_point> deadline, int stop_fd,
                      std::chrono::milliseconds stop_grace) {
  using Clock = std::chrono::steady_clock;
  std::string out_buf;
  constexpr std::size_t kKeepStderr = 64 * 1024;
  UniqueFd exited = open_pidfd(pid_);  // readable once the child has exited
  std::optional<Clock::time_point> kill_at;  // after a stop request: SIGKILL then
  bool child_gone = false;
  std::optional<Clock::time_point> drain_until;  // after the exit: what is left in the pipes
  auto consume = [&](int fd, bool is_out) -> bool {  // false at EOF
    char buf[65536];
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0) return errno == EINTR || errno == EAGAIN;
    if (got == 0) return false;
    if (is_out) {
      out_buf.append(buf, static_cast<std::size_t>(got));
      std::size_t nl;
      while ((nl = out_buf.find('\n')) != std::string::npos) {
        if (on_line) on_line(out_buf.substr(0, nl));
        out_buf.erase(0, nl + 1);
      }
      if (out_buf.size() > (1u << 20)) out_buf.clear();  // a runaway line is not progress
    } else {
      err_text_.append(buf, static_cast<std::size_t>(got));
      if (err_text_.size() > kKeepStderr) err_text_.erase(0, err_text_.size() - kKeepStderr);
    }
    return true;
  };
  while (out_ || err_) {
    const auto now = Clock::now();
    if (deadline && now >= *deadline) {
      const pid_t pid = pid_;
      kill_and_reap();
      throw DeadlineExceeded("process " + std::to_string(pid) + " did not finish in time; killed");
    }
    if (kill_at && now >= *kill_at) {
      signal(SIGKILL);
      kill_at.reset();
    }
    if (drain_until && now >= *drain_until) break;  // a descendant holds the pipes: stop reading
    pollfd fds[4];
    nfds_t n = 0;
    if (out_) fds[n++] = {out_.get(), POLLIN, 0};
    if (err_) fds[n++] = {err_.get(), POLLIN, 0};
    const bool watch_exit = exited && !child_gone;
    if (watch_exit) fds[n++] = {exited.get(), POLLIN, 0};
    const bool watch_stop = stop_fd >= 0 && !stopped_;
    if (watch_stop) fds[n++] = {stop_fd, POLLIN, 0};
    auto until = [&](std::optional<Clock::time_point> t) {
      return t ? static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(*t - now).count()) + 1 : 1000LL;
    };
    long long timeout_ms = 1000;  // also bounds a missed wakeup
    for (auto t : {deadline, kill_at, drain_until}) timeout_ms = std::min(timeout_ms, until(t));
    const int rc = ::poll(fds, n, static_cast<int>(std::max<long long>(timeout_ms, 0)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw SystemError("poll on a child's output", errno);
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (watch_stop && fds[i].fd == stop_fd) {
        stopped_ = true;
        signal(SIGTERM);
        signal(SIGCONT);  // a stopped child must run to see its SIGTERM
        kill_at = Clock::now() + stop_grace;
      } else if (watch_exit && fds[i].fd == exited.get()) {
        child_gone = true;
        drain_until = Clock::now() + std::chrono::seconds(1);
      } else {
        const bool is_out = out_ && fds[i].fd == out_.get();
        if (!consume(fds[i].fd, is_out)) (is_out ? out_ : err_).reset();
      }
    }
  }
  out_.reset();
  err_.reset();
  if (!out_buf.empty() && on_line) on_line(out_buf);
  int status = 0;
  for (;;) {
    if (::waitpid(pid_, &status, 0) >= 0) break;
    if (errno != EINTR) throw SystemError("waitpid " + std::to_string(pid_), errno);
  }
  if (group_) ::kill(-pid_, SIGKILL);  // members left behind die with their leader's group
  pid_ = -1;
  return status;
}

namespace {

// Async-signal-safe: write a fixed message and exit (between fork and exec).
[[noreturn]] void child_fail(const char* what, int code) {
  const int err = errno;
  const char* reason = ::strerrordesc_np(err);
  auto put = [](const char* s) {
    if (s) (void)!::write(STDERR_FILENO, s, ::strlen(s));
  };
  put("sluice: cannot start the staging process as the job's user: ");
  put(what);
  put(": ");
  put(reason ? reason : "unknown error");
  put("\n");
  ::_exit(code);
}

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw SystemError("pipe2", errno);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

namespace {

struct Spawned {
  pid_t pid;
  bool group;
  UniqueFd out, err;
};

// CREDS: the identity the child drops to; nullptr: the caller's own.
Spawned spawn(const UserCredentials* creds_or_null, const UserProcessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty() || options.argv[0][0] != '/')
    throw InvalidArgument("spawning a program needs an absolute program path");
  const bool drop = creds_or_null != nullptr;
  const UserCredentials creds = drop ? *creds_or_null : UserCredentials{};
  // Everything the child uses is built before fork: no allocation after it.
  std::vector<char*> argv, envp;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::vector<gid_t> groups = creds.groups;
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) throw SystemError("open /dev/null", errno);
  Pipe out = make_pipe(), err = make_pipe();

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw SystemError("fork", errno);
  if (pid == 0) {
    // Child. Standard descriptors first, then nothing else stays open.
    if (::dup2(devnull.get(), STDIN_FILENO) < 0 || ::dup2(out.write.get(), STDOUT_FILENO) < 0 ||
        ::dup2(err.write.get(), STDERR_FILENO) < 0)
      ::_exit(126);
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    // Ignored signals survive exec; the program must stop on SIGTERM (scancel, epilog).
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.new_session && ::setsid() < 0) child_fail("setsid", 126);
    if (!options.new_session && options.own_process_group && ::setpgid(0, 0) != 0) child_fail("setpgid", 126);
    if (drop && ::setgroups(groups.size(), groups.data()) != 0) child_fail("setgroups", 126);
    if (drop && ::setresgid(creds.gid, creds.gid, creds.gid) != 0) child_fail("setresgid", 126);
    if (drop && ::setresuid(creds.uid, creds.uid, creds.uid) != 0) child_fail("setresuid", 126);
    if (drop && creds.uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) {
      errno = EPERM;
      child_fail("root privileges could be regained after dropping them", 126);
    }
    // After the identity change, which clears it; a parent already gone is caught by getppid.
    if (options.die_with_parent && (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent))
      child_fail("PR_SET_PDEATHSIG (the starting process is gone)", 126);
    if (::chdir(options.cwd.c_str()) != 0) child_fail("chdir", 126);
    ::execve(argv[0], argv.data(), envp.data());
    child_fail(argv[0], 127);
  }
  // Both sides set the group, so it exists before the caller can signal it.
  if (options.own_process_group || options.new_session) ::setpgid(pid, pid);
  return Spawned{pid, options.own_process_group || options.new_session, std::move(out.read), std::move(err.read)};
}

}  // namespace

UserProcess spawn_as_user(const UserCredentials& creds, const UserProcessOptions& options) {
  Spawned s = spawn(&creds, options);
  return UserProcess(s.pid, s.group, std::move(s.out), std::move(s.err));
}

UserProcess spawn_process(const UserProcessOptions& options) {
  Spawned s = spawn(nullptr, options);
  return UserProcess(s.pid, s.group, std::move(s.out), std::move(s.err));
}

std::optional<std::string> find_program(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
  const char* path = std::getenv("PATH");
  std::string_view rest(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  while (true) {
    const std::size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    if (!dir.empty() && dir.front() == '/') {
      std::string candidate = std::string(dir) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(colon + 1);
  }
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return "killed by signal " + std::to_string(WTERMSIG(status)) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "ended with status " + std::to_string(status);
}

}  // namespace sluice
