// The plugin's staging core (prolog/epilog work), with the real sluice-stage run as an
// unprivileged user: what a job may stage, where it lands, what is kept on failure.
#define BOOST_TEST_MODULE job_staging
#include "job_staging.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/job_status.hpp>

#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::spank;
using staging::StagePhase;

namespace {

GetEnv env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

constexpr uid_t kNobody = 65534;

// A scratch area the unprivileged user can traverse: sources, results, a bb_root.
struct Scratch {
  fs::path root = fs::path("/var/tmp") / ("sluice-job-staging-" + std::to_string(::getpid()));
  PluginConfig config;
  JobIdentity job;
  Scratch() {
    fs::remove_all(root);
    fs::create_directories(root / "src" / "ds" / "sub");
    fs::create_directories(root / "results");
    for (const char* f : {"ds/a.bin", "ds/sub/b.bin"}) std::ofstream(root / "src" / f) << "payload of " << f;
    std::ofstream(root / "src" / "secret") << "root only";
    ::chmod((root / "src" / "secret").c_str(), 0600);
    for (auto& p : fs::recursive_directory_iterator(root))
      if (p.is_directory()) ::chmod(p.path().c_str(), 0755);
    ::chmod(root.c_str(), 0755);
    ::chown((root / "results").c_str(), kNobody, kNobody);
    config.bb_root = (root / "bb").string();
    config.stage_tool = SLUICE_STAGE_TOOL;
    job.job_id = 42;
    job.uid = kNobody;
    job.gid = kNobody;
    job.node = "node1";
    job.nodes = {"node1"};
  }
  ~Scratch() { fs::remove_all(root); }
  staging::JobStageStatus status() const {
    auto s = staging::load_job_status(staging::job_status_path(config.bb_root, job.job_id));
    BOOST_REQUIRE(s.has_value());
    return *s;
  }
  fs::path bb() const { return job_bb_dir(config, job.job_id); }
};

bool have_root() { return ::geteuid() == 0; }

}  // namespace

BOOST_AUTO_TEST_CASE(request_round_trips_through_the_job_control_environment) {
  JobStaging s;
  s.in = {staging::parse_spec("/lustre/ds:data:shard"), staging::parse_spec("/lustre/model.pt")};
  s.out = {staging::parse_out_spec("out:/lustre/runs/%j/%N")};
  s.async = true;
  std::map<std::string, std::string> vars;
  for (const auto& [name, value] : job_control_env(s)) vars["SPANK_" + name] = value;
  const JobStaging back = job_staging_from_env(env_of(vars));
  BOOST_TEST(back.in.size() == 2u);
  BOOST_TEST((back.in[0] == s.in[0]));
  BOOST_TEST((back.in[1] == s.in[1]));
  BOOST_TEST((back.out[0] == s.out[0]));
  BOOST_TEST(back.async);
}

BOOST_AUTO_TEST_CASE(the_prolog_parses_the_users_values_again) {
  // The job control environment comes from the submitting side: never trusted.
  BOOST_CHECK_THROW(job_staging_from_env(env_of({{"SPANK_SLUICE_STAGE_IN", "/x:../../etc\n"}})), InvalidArgument);
  BOOST_CHECK_THROW(job_staging_from_env(env_of({{"SPANK_SLUICE_STAGE_OUT", "/abs:/x\n"}})), InvalidArgument);
  BOOST_CHECK_THROW(job_staging_from_env(env_of({{"SPANK_SLUICE_STAGE_MODE", "later"}})), InvalidArgument);
  BOOST_CHECK_THROW(job_staging_from_env(env_of({{"SPANK_SLUICE_STAGE_IN", "@/etc/shadow\n"}})), InvalidArgument);
  BOOST_TEST(job_staging_from_env(env_of({})).empty());
}

BOOST_AUTO_TEST_CASE(identity_comes_from_slurmd_and_must_be_complete) {
  const JobIdentity j = job_identity_from_env(env_of({{"SLURM_JOB_ID", "7"},
                                                      {"SLURM_JOB_UID", "1001"},
                                                      {"SLURM_JOB_GID", "1002"},
                                                      {"SLURMD_NODENAME", "gpu03"},
                                                      {"SLURM_JOB_NODELIST", "gpu[01-04]"}}));
  BOOST_TEST(j.job_id == 7u);
  BOOST_TEST(j.uid == 1001u);
  BOOST_TEST(j.node_index() == 2u);
  BOOST_CHECK_THROW(job_identity_from_env(env_of({{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_GID", "1"}})), Error);
  BOOST_CHECK_THROW(job_identity_from_env(env_of({{"SLURM_JOB_ID", "7x"}, {"SLURM_JOB_UID", "1"}, {"SLURM_JOB_GID", "1"}})),
                    Error);
  JobIdentity stranger = j;
  stranger.node = "login1";
  BOOST_CHECK_THROW(stranger.node_index(), Error);
}

BOOST_AUTO_TEST_CASE(stage_out_destinations_name_the_node_and_job) {
  JobIdentity j;
  j.job_id = 99;
  j.node = "gpu07";
  BOOST_TEST(expand_destination("/lustre/runs/%j/%N", j) == "/lustre/runs/99/gpu07");
  BOOST_TEST(expand_destination("/x/100%%/%q/%", j) == "/x/100%/%q/%");
}

BOOST_AUTO_TEST_CASE(stage_in_and_out_as_the_user_then_the_burst_buffer_goes) {
  if (!have_root()) return;  // changes identity; CI runs as root
  Scratch s;
  JobStaging req;
  req.in = {staging::parse_spec((s.root / "src" / "ds").string())};
  req.out = {staging::parse_out_spec("out:" + (s.root / "results" / "%N").string())};
  prolog_stage(s.config, s.job, req);
  BOOST_TEST((s.status().phase == StagePhase::Ready));
  struct stat st {};
  BOOST_REQUIRE(::stat(s.bb().c_str(), &st) == 0);
  BOOST_TEST(st.st_uid == kNobody);
  BOOST_TEST((st.st_mode & 07777) == 0700u);
  BOOST_REQUIRE(::stat((s.bb() / "ds" / "sub" / "b.bin").c_str(), &st) == 0);
  BOOST_TEST(st.st_uid == kNobody);  // written by the user, not by root

  fs::create_directories(s.bb() / "out");
  std::ofstream(s.bb() / "out" / "model.pt") << "weights";
  ::chown((s.bb() / "out").c_str(), kNobody, kNobody);
  ::chown((s.bb() / "out" / "model.pt").c_str(), kNobody, kNobody);
  BOOST_TEST(epilog_stage(s.config, s.job, req) == "");
  BOOST_TEST(fs::exists(s.root / "results" / "node1" / "model.pt"));
  BOOST_TEST(!fs::exists(s.bb()));
  BOOST_TEST((s.status().phase == StagePhase::Done));
}

BOOST_AUTO_TEST_CASE(a_file_the_user_cannot_read_fails_the_stage_in_naming_it) {
  if (!have_root()) return;
  Scratch s;
  JobStaging req;
  req.in = {staging::parse_spec((s.root / "src" / "secret").string())};
  prolog_stage(s.config, s.job, req);
  const auto st = s.status();
  BOOST_TEST((st.phase == StagePhase::Failed));
  BOOST_TEST(st.error.find("secret") != std::string::npos, st.error);
  BOOST_TEST(st.error.find("Permission denied") != std::string::npos, st.error);
  BOOST_TEST(!fs::exists(s.bb() / "secret"));
  // Nothing ran there: the epilog has nothing to stage out and removes the burst buffer.
  BOOST_TEST(epilog_stage(s.config, s.job, req) == "");
  BOOST_TEST(!fs::exists(s.bb()));
  BOOST_TEST((s.status().phase == StagePhase::Failed));  // the reason stays visible
}

BOOST_AUTO_TEST_CASE(a_failed_stage_out_keeps_the_results) {
  if (!have_root()) return;
  Scratch s;
  JobStaging req;
  req.out = {staging::parse_out_spec("out:" + (s.root / "src" / "not-writable").string())};
  prolog_stage(s.config, s.job, req);
  fs::create_directories(s.bb() / "out");
  std::ofstream(s.bb() / "out" / "model.pt") << "weights";
  ::chown((s.bb() / "out").c_str(), kNobody, kNobody);
  const std::string failure = epilog_stage(s.config, s.job, req);
  BOOST_TEST(failure.find("stage-out of out:") != std::string::npos, failure);
  BOOST_TEST(failure.find("kept in " + s.bb().string()) != std::string::npos, failure);
  BOOST_TEST(fs::exists(s.bb() / "out" / "model.pt"));
  const auto st = s.status();
  BOOST_TEST((st.phase == StagePhase::Failed));
  BOOST_TEST(st.stage_out_failed);
}

BOOST_AUTO_TEST_CASE(a_hostile_bb_root_is_refused) {
  if (!have_root()) return;
  Scratch s;
  fs::create_directories(s.config.bb_root);
  ::chmod(s.config.bb_root.c_str(), 0777);  // anyone could plant job_42 -> /etc
  BOOST_CHECK_EXCEPTION(prolog_stage(s.config, s.job, {}), Error, [](const Error& e) {
    return std::string(e.what()).find("writable by root only") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(week_old_records_of_removed_burst_buffers_are_pruned) {
  if (!have_root()) return;
  Scratch s;
  prolog_stage(s.config, s.job, {});  // creates bb_root/.status
  const fs::path status_dir = fs::path(s.config.bb_root) / ".status";
  auto write_old = [&](const std::string& name) {
    std::ofstream(status_dir / name) << "{}";
    const struct timespec times[2] = {{0, UTIME_OMIT}, {std::time(nullptr) - 8 * 24 * 3600, 0}};
    ::utimensat(AT_FDCWD, (status_dir / name).c_str(), times, 0);
  };
  write_old("job_1.json");                          // gone job: pruned
  write_old("job_2.json");                          // results kept in job_2: stays
  fs::create_directories(fs::path(s.config.bb_root) / "job_2");
  std::ofstream(status_dir / "job_3.json") << "{}";  // recent: stays
  JobIdentity next = s.job;
  next.job_id = 43;
  prolog_stage(s.config, next, {});
  BOOST_TEST(!fs::exists(status_dir / "job_1.json"));
  BOOST_TEST(fs::exists(status_dir / "job_2.json"));
  BOOST_TEST(fs::exists(status_dir / "job_3.json"));
  BOOST_TEST(fs::exists(status_dir / "job_42.json"));
}

namespace {
// A stand-in for sluice-stage that never finishes (a user who SIGSTOPped theirs).
fs::path write_stuck_tool(const fs::path& dir) {
  const fs::path tool = dir / "stuck-stage";
  std::ofstream(tool) << "#!/bin/sh\nexec sleep 300\n";
  ::chmod(tool.c_str(), 0755);
  return tool;
}
// Running (a zombie has exited: the container's init may be slow to reap it).
bool process_exists(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return !text.empty() && paren != std::string::npos && text.compare(paren + 2, 1, "Z") != 0;
}
}  // namespace

// The user owns their view of the status and may rewrite it: the epilog must read root's
// state only, so a forged view neither names a process for root to signal nor redirects
// another job's record.
BOOST_AUTO_TEST_CASE(the_epilog_never_acts_on_the_users_view) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  Scratch s;
  JobStaging none;
  prolog_stage(s.config, s.job, none);
  const fs::path view = staging::job_status_path(s.config.bb_root, s.job.job_id);
  const fs::path state = fs::path(s.config.bb_root) / ".state" / "job_42.json";
  struct stat st {};
  BOOST_REQUIRE(::stat(state.c_str(), &st) == 0);
  BOOST_TEST(st.st_uid == 0u);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_REQUIRE(::stat(state.parent_path().c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
  // A root process group the attacker names, and another job they name.
  const pid_t victim = ::fork();
  if (victim == 0) {
    ::setpgid(0, 0);
    ::pause();
    ::_exit(0);
  }
  ::setpgid(victim, victim);
  // Killed and reaped however the case ends: a live decoy would hold ctest's output pipe.
  struct ReapOnExit {
    pid_t pid;
    ~ReapOnExit() {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{victim};
  staging::JobStageStatus forged = s.status();
  forged.job_id = 7;
  forged.uid = 0;
  forged.bb_dir = "/tmp/attacker";
  forged.stager_pid = victim;
  {  // its real start time, as an attacker reads it from /proc
    std::ifstream in("/proc/" + std::to_string(victim) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string f;
    for (int i = 3; i <= 22 && fields >> f; ++i)  // field 22 is starttime
      if (i == 22) forged.stager_start = std::stoull(f);
  }
  ::chmod(view.c_str(), 0600);
  std::ofstream(view, std::ios::trunc) << forged.to_json();
  BOOST_TEST(epilog_stage(s.config, s.job, none) == "");
  BOOST_TEST(process_exists(victim));
  BOOST_TEST(!fs::exists(staging::job_status_path(s.config.bb_root, 7)));
  const staging::JobStageStatus after = s.status();
  BOOST_TEST(after.job_id == 42u);
  BOOST_TEST(after.uid == kNobody);
  BOOST_TEST(after.bb_dir == s.bb().string());
  BOOST_TEST((after.phase == StagePhase::Done));
}

// Root's state is trusted only when it is root's alone.
BOOST_AUTO_TEST_CASE(root_state_that_others_could_write_is_refused) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  Scratch s;
  prolog_stage(s.config, s.job, JobStaging{});
  const fs::path state = fs::path(s.config.bb_root) / ".state" / "job_42.json";
  ::chown(state.c_str(), kNobody, kNobody);
  BOOST_CHECK_EXCEPTION(staging::load_job_state(s.config.bb_root, 42), Error, [](const Error& e) {
    return std::string(e.what()).find("not trusted") != std::string::npos;
  });
  ::chown(state.c_str(), 0, 0);
  ::chmod(state.parent_path().c_str(), 0755);
  BOOST_CHECK_THROW(staging::load_job_state(s.config.bb_root, 42), Error);
}

// A sync stage-in that never ends is stopped at stage_in_timeout; the job fails with the
// reason and no stager is left.
BOOST_AUTO_TEST_CASE(a_stuck_stage_in_ends_at_its_deadline) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  Scratch s;
  s.config.stage_tool = write_stuck_tool(s.root).string();
  s.config.stage_in_timeout_s = 2;
  JobStaging req;
  req.in = {staging::parse_spec((s.root / "src" / "ds").string())};
  const auto t0 = std::chrono::steady_clock::now();
  prolog_stage(s.config, s.job, req);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)));
  const staging::JobStageStatus st = s.status();
  BOOST_TEST((st.phase == StagePhase::Failed));
  BOOST_TEST(st.error.find("time limit of 2 s (stage_in_timeout") != std::string::npos, st.error);
  BOOST_TEST(std::system("! pgrep -u 65534 -f 'sleep 300' >/dev/null") == 0);
}

// An async stage-in is stopped by the epilog through root's own record, its stager's whole
// group with it, and the status is not rewritten after the epilog.
BOOST_AUTO_TEST_CASE(the_epilog_stops_an_async_stage_in_and_everything_it_started) {
  if (!have_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  Scratch s;
  s.config.stage_tool = write_stuck_tool(s.root).string();
  JobStaging req;
  req.in = {staging::parse_spec((s.root / "src" / "ds").string())};
  req.async = true;
  prolog_stage(s.config, s.job, req);
  const auto state = staging::load_job_state(s.config.bb_root, s.job.job_id);
  BOOST_REQUIRE(state.has_value());
  BOOST_TEST(state->stager_pid > 1);
  const pid_t supervisor = static_cast<pid_t>(state->stager_pid);
  for (int i = 0; i < 100 && std::system("pgrep -u 65534 -f 'sleep 300' >/dev/null") != 0; ++i) ::usleep(50000);
  BOOST_TEST(std::system("pkill -STOP -u 65534 -f 'sleep 300'") == 0);  // the user stops it
  const auto t0 = std::chrono::steady_clock::now();
  epilog_stage(s.config, s.job, req);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)));
  BOOST_TEST(!process_exists(supervisor));
  BOOST_TEST(std::system("! pgrep -u 65534 -f 'sleep 300' >/dev/null") == 0);
  const auto phase = s.status().phase;
  ::sleep(1);
  BOOST_TEST((s.status().phase == phase));
}

// The request travels to every node in one environment string: over the bound, it is
// refused (here, and at submission by the option callbacks), with the size and the limit.
BOOST_AUTO_TEST_CASE(staging_requests_are_bounded_in_bytes) {
  JobStaging s;
  const std::string dst = "/lustre/" + std::string(200, 'p');
  while (request_bytes(s) + dst.size() + 12 <= kMaxRequestBytes)
    s.out.push_back(staging::parse_out_spec("o" + std::to_string(s.out.size()) + ":" + dst));
  BOOST_CHECK_NO_THROW(check_request_size(s));
  s.out.push_back(staging::parse_out_spec("one:" + dst));
  BOOST_CHECK_EXCEPTION(check_request_size(s), InvalidArgument, [](const InvalidArgument& e) {
    const std::string m = e.what();
    return m.find("staging request") != std::string::npos && m.find("at most 65536 bytes (64 KiB)") != std::string::npos;
  });
  std::map<std::string, std::string> vars;
  for (const auto& [name, value] : job_control_env(s)) vars["SPANK_" + name] = value;
  BOOST_CHECK_THROW(job_staging_from_env(env_of(vars)), InvalidArgument);
}
