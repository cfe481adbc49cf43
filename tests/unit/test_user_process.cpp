#define BOOST_TEST_MODULE user_process
#include <sluice/common/error.hpp>
#include <sluice/common/user_process.hpp>

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

using namespace sluice;

namespace {
// The tests change identity, which needs root (CI runs as root); otherwise they say so.
bool have_root() { return ::geteuid() == 0; }

int run(const UserCredentials& c, std::vector<std::string> argv, std::vector<std::string>* lines = nullptr,
        std::string* err = nullptr) {
  UserProcess p = spawn_as_user(c, {argv, {"PATH=/usr/bin:/bin"}, "/", false});
  int status = p.wait([&](const std::string& l) {
    if (lines) lines->push_back(l);
  });
  if (err) *err = p.stderr_text();
  return status;
}
}  // namespace

BOOST_AUTO_TEST_CASE(child_runs_with_the_users_ids_and_groups_only) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  UserCredentials nobody = lookup_user(65534, 65534);
  BOOST_TEST(nobody.name == "nobody");
  std::vector<std::string> lines;
  int st = run(nobody, {"/bin/sh", "-c", "id -u; id -ru; id -g; id -G; echo $HOME"}, &lines);
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 0);
  BOOST_REQUIRE(lines.size() == 5u);
  BOOST_TEST(lines[0] == "65534");
  BOOST_TEST(lines[1] == "65534");
  BOOST_TEST(lines[2] == "65534");
  BOOST_TEST(lines[3] == "65534");  // root's groups are gone
  BOOST_TEST(lines[4] == "");       // nothing inherited from the caller's environment
}

BOOST_AUTO_TEST_CASE(child_cannot_read_what_the_user_cannot) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  char path[] = "/var/tmp/sluice-user-process-XXXXXX";
  int fd = ::mkstemp(path);
  BOOST_REQUIRE(fd >= 0);
  (void)!::write(fd, "secret\n", 7);
  ::fchmod(fd, 0600);
  ::close(fd);
  std::string err;
  int st = run(lookup_user(65534, 65534), {"/bin/cat", path}, nullptr, &err);
  ::unlink(path);
  BOOST_TEST(WEXITSTATUS(st) != 0);
  BOOST_TEST(err.find("Permission denied") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(descriptors_of_the_caller_are_not_inherited) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  int fd = ::open("/etc/hostname", O_RDONLY);  // no O_CLOEXEC on purpose
  BOOST_REQUIRE(fd >= 0);
  std::vector<std::string> lines;
  run(lookup_user(65534, 65534), {"/bin/sh", "-c", "ls /proc/self/fd | wc -l"}, &lines);
  ::close(fd);
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(std::stoi(lines[0]) <= 4);  // 0, 1, 2 and ls's own directory
}

BOOST_AUTO_TEST_CASE(exec_failure_and_deadline_are_reported) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  std::string err;
  int st = run(lookup_user(65534, 65534), {"/nonexistent/sluice-stage"}, nullptr, &err);
  BOOST_TEST(WEXITSTATUS(st) == 127);
  BOOST_TEST(err.find("/nonexistent/sluice-stage") != std::string::npos);
  UserProcess p = spawn_as_user(lookup_user(65534, 65534), {{"/bin/sleep", "30"}, {}, "/", false});
  const auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(p.wait(nullptr, t0 + std::chrono::milliseconds(300)), Error);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)));
  BOOST_CHECK_THROW(spawn_as_user(lookup_user(65534, 65534), {{"relative"}, {}, "/", false}), InvalidArgument);
  BOOST_CHECK_THROW(lookup_user(4000000000u, 0), Error);
  BOOST_TEST(describe_wait_status(9) == "killed by signal 9 (SIGKILL)");
}

BOOST_AUTO_TEST_CASE(spawn_process_keeps_the_callers_identity) {
  UserProcess p = spawn_process({{"/usr/bin/id", "-u"}, {"PATH=/usr/bin:/bin"}, "/", false});
  std::vector<std::string> lines;
  const int st = p.wait([&](const std::string& l) { lines.push_back(l); });
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 0);
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0] == std::to_string(::geteuid()));
  BOOST_CHECK_THROW(spawn_process({{"id"}, {}, "/", false}), InvalidArgument);  // absolute paths only
}

BOOST_AUTO_TEST_CASE(find_program_searches_path) {
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", "relative/dir:/nonexistent:/usr/bin", 1);
  BOOST_TEST(find_program("id").value_or("") == "/usr/bin/id");
  BOOST_TEST(!find_program("sluice-no-such-program"));
  BOOST_TEST(!find_program("bin/id"));  // a name, not a path
  BOOST_TEST(!find_program(""));
  ::setenv("PATH", saved.c_str(), 1);
}

namespace {
bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }
pid_t read_pid_file(const std::string& path) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    ::usleep(10000);
  }
  return -1;
}
// Dead or a zombie (a zombie's parent, here init or the test, reaps it later).
bool gone(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto paren = text.rfind(')');
    if (text.empty() || (paren != std::string::npos && text.compare(paren + 2, 1, "Z") == 0)) return true;
    ::usleep(10000);
  }
  return false;
}
UserProcessOptions stager_options(std::vector<std::string> argv) {
  UserProcessOptions o{std::move(argv), {"PATH=/usr/bin:/bin"}, "/", false};
  o.own_process_group = true;
  o.die_with_parent = true;
  return o;
}
}  // namespace

// What the plugin relies on to stop a stager: the deadline takes its whole process group,
// a grandchild that kept the pipes open included, and wait() returns at the deadline.
BOOST_AUTO_TEST_CASE(deadline_kills_the_whole_group_even_a_stopped_one) {
  const std::string pidfile = "/tmp/sluice-test-up-" + std::to_string(::getpid());
  ::unlink(pidfile.c_str());
  UserProcess p = spawn_process(stager_options({"/bin/sh", "-c", "sleep 300 & echo $! > " + pidfile + "; kill -STOP $$; wait"}));
  const pid_t grandchild = read_pid_file(pidfile);
  BOOST_REQUIRE(grandchild > 0);
  BOOST_TEST(::getpgid(grandchild) == p.pid());
  const auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(p.wait(nullptr, t0 + std::chrono::milliseconds(500)), DeadlineExceeded);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)));
  BOOST_TEST(gone(grandchild));
  ::unlink(pidfile.c_str());
}

BOOST_AUTO_TEST_CASE(stop_fd_terminates_a_stopped_child_and_its_group) {
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  UserProcess p = spawn_process(stager_options({"/bin/sh", "-c", "sleep 300 & kill -STOP $$; wait"}));
  ::usleep(200000);
  BOOST_REQUIRE(::write(fds[1], "x", 1) == 1);  // "stop now", as the supervisor's signalfd says
  const auto t0 = std::chrono::steady_clock::now();
  const int st = p.wait(nullptr, std::nullopt, fds[0], std::chrono::milliseconds(500));
  BOOST_TEST(p.stopped());
  BOOST_TEST(WIFSIGNALED(st));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)));
  ::close(fds[0]);
  ::close(fds[1]);
}

// A descendant that escaped nothing but kept stdout open must not hold wait() after the
// child itself exited.
BOOST_AUTO_TEST_CASE(wait_ends_at_the_childs_exit_not_its_pipes_eof) {
  UserProcessOptions o{{"/bin/sh", "-c", "echo first; (sleep 30 >&1 2>&1 &) ; exit 3"}, {"PATH=/usr/bin:/bin"}, "/", false};
  UserProcess p = spawn_process(o);
  std::vector<std::string> lines;
  const auto t0 = std::chrono::steady_clock::now();
  const int st = p.wait([&](const std::string& l) { lines.push_back(l); });
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)));
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 3);
  BOOST_TEST(lines.size() == 1u);
}

// A stager started by a process that dies (a killed prolog or supervisor) dies with it.
BOOST_AUTO_TEST_CASE(child_dies_with_the_process_that_started_it) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  const std::string pidfile = "/tmp/sluice-test-pdeath-" + std::to_string(::getpid());
  ::unlink(pidfile.c_str());
  const pid_t middle = ::fork();
  BOOST_REQUIRE(middle >= 0);
  if (middle == 0) {
    UserProcess p = spawn_as_user(lookup_user(65534, 65534), stager_options({"/bin/sh", "-c", "echo $$ > " + pidfile + "; exec sleep 300"}));
    ::usleep(300000);
    ::_exit(0);  // no destructor runs: only the parent-death signal can end the child
  }
  int st = 0;
  ::waitpid(middle, &st, 0);
  const pid_t stager = read_pid_file(pidfile);
  BOOST_REQUIRE(stager > 0);
  BOOST_TEST(gone(stager));
  if (alive(stager)) ::kill(stager, SIGKILL);
  ::unlink(pidfile.c_str());
}
