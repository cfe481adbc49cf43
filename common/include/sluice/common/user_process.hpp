// Running a program as a job's user from a root process (the SPANK plugin's prolog and
// epilog). The child drops to the user's uid, gid and supplementary groups before exec, so
// every path the program touches is checked by the kernel against the user's rights, never
// root's. Everything the child needs is prepared before fork(): between fork and exec it
// only makes async-signal-safe calls, as a fork of a threaded daemon must.
#pragma once

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
  // both close, then reaps the child. Returns the exit status as from waitpid(). Gives up
  // and kills the child at DEADLINE (std::nullopt: none); then throws Error.
  int wait(const std::function<void(const std::string& line)>& on_line,
           std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  const std::string& stderr_text() const { return err_text_; }

 private:
  friend UserProcess spawn_as_user(const UserCredentials&, const UserProcessOptions&);
  friend UserProcess spawn_process(const UserProcessOptions&);
  UserProcess(pid_t pid, UniqueFd out, UniqueFd err) : pid_(pid), out_(std::move(out)), err_(std::move(err)) {}
  pid_t pid_ = -1;
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
