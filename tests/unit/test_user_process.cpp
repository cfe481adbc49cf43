#define BOOST_TEST_MODULE user_process
#include <sluice/common/error.hpp>
#include <sluice/common/user_process.hpp>

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
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
