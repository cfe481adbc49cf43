// Running a program as a job's user from a root process (the SPANK plugin's prolog and
// epilog). The child drops to the user's uid, gid and supplementary groups before exec, so
// every path the program touches is checked by the kernel against the user's rights, never
// root's. Everything the child needs is prepared before fork(): between fork and exec it
// only makes async-signal-safe calls, as a fork of a threaded daemon must.
#pragma once

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

struct UserCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, as initgroups() would set them
  std::string name;
  std::string home;
};

// The user's name, home and groups from the password and group databases. Throws Error
// naming the uid when the user is unknown.
UserCredentials lookup_user(uid_t uid, gid_t gid);

struct UserProcessOptions {
  std::vector<std::string> argv;        // argv[0]: absolute path of the program
  std::vector<std::string> env;         // NAME=VALUE; nothing is inherited
  std::string cwd = "/";
  bool new_session = false;             // setsid(): signals to the caller's group miss it
  // The plugin's stagers: the child leads its own process group (set by parent and child,
  // so no signal can race it), which wait() signals as a whole; and it gets SIGKILL when
  // the thread that started it dies, so no stager outlives a killed prolog or supervisor.
  bool own_process_group = false;
  bool die_with_parent = false;
};

// wait() passed its deadline: the child's process group was killed and reaped.
class DeadlineExceeded : public Error {
 public:
  using Error::Error;
};

// A running child: its pid and the read ends of its stdout and stderr. The destructor
// kills (SIGKILL) and reaps a child that was neither waited for nor released.
class UserProcess {
 public:
  UserProcess() = default;
  UserProcess(UserProcess&&) noexcept;
  UserProcess& operator=(UserProcess&&) noexcept;
  ~UserProcess();

  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_.get(); }
  int stderr_fd() const { return err_.get(); }

  // Reads stdout line by line (each line to ON_LINE) and stderr (kept, last 64 KiB) until
  // the child exits, then reaps it. Returns the exit status as from waitpid(). The end is
  // the child's exit (a pidfd), not its pipes' EOF, so a descendant that kept them open
  // cannot hold the caller.
  //  - DEADLINE (std::nullopt: none): then the child (its process group, with
  //    own_process_group) is killed and reaped, and DeadlineExceeded is thrown.
  //  - STOP_FD (-1: none): when it becomes readable (a signalfd: the caller was told to
  //    stop), the child (group) gets SIGTERM and SIGCONT, then SIGKILL after STOP_GRACE;
  //    wait() returns its status and stopped() is true.
  int wait(const std::function<void(const std::string& line)>& on_line,
           std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt, int stop_fd = -1,
           std::chrono::milliseconds stop_grace = std::chrono::seconds(5));
  const std::string& stderr_text() const { return err_text_; }
  bool stopped() const { return stopped_; }

 private:
  friend UserProcess spawn_as_user(const UserCredentials&, const UserProcessOptions&);
  friend UserProcess spawn_process(const UserProcessOptions&);
  UserProcess(pid_t pid, bool group, UniqueFd out, UniqueFd err)
      : pid_(pid), group_(group), out_(std::move(out)), err_(std::move(err)) {}
  void signal(int sig) const;  // the child, or its whole group; only while it is unreaped
  void kill_and_reap() noexcept;
  pid_t pid_ = -1;
  bool group_ = false;
  bool stopped_ = false;
  UniqueFd out_, err_;
  std::string err_text_;
};

// Forks; the child closes every other descriptor, takes /dev/null as stdin, drops to CREDS
// (setgroups, setresgid, setresuid, then checks that root cannot be regained) and execs.
// Throws SystemError when the fork or pipes fail; a failed drop or exec makes the child
// exit 126/127 with the reason on its stderr. Root only (it changes identity).
UserProcess spawn_as_user(const UserCredentials& creds, const UserProcessOptions& options);

// The same, keeping the caller's identity (a tool running a helper such as sacct).
UserProcess spawn_process(const UserProcessOptions& options);

// The absolute path of NAME in $PATH (an executable file), std::nullopt when none.
std::optional<std::string> find_program(const std::string& name);

// "exited 3", "killed by signal 9": for messages.
std::string describe_wait_status(int status);

}  // namespace sluice
