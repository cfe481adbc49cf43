// The runtime's view of staged data: waiting per file during an async stage-in.
#define BOOST_TEST_MODULE jobrt_staged
#include <sluice/common/error.hpp>
#include <sluice/staged.hpp>
#include <sluice/staging/job_status.hpp>

#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sluice::staging::JobStageStatus;
using sluice::staging::StagePhase;

namespace {

struct BurstBuffer {
  fs::path root = fs::temp_directory_path() / ("sluice-jobrt-" + std::to_string(::getpid()));
  sluice::StagedData data;
  JobStageStatus status;
  BurstBuffer() {
    fs::remove_all(root);
    fs::create_directories(root / "job_7");
    ::chmod(root.c_str(), 0755);
    data.bb_dir = (root / "job_7").string();
    data.status_path = sluice::staging::job_status_path(root.string(), 7);
    data.async = true;
    status.job_id = 7;
    status.uid = ::geteuid();
    status.bb_dir = data.bb_dir;
    status.mode = "async";
    set(StagePhase::StagingIn);
  }
  ~BurstBuffer() { fs::remove_all(root); }
  void set(StagePhase phase, const std::string& error = "") {
    status.phase = phase;
    status.error = error;
    sluice::staging::save_job_status(root.string(), status);
  }
  void stage(const std::string& rel) { std::ofstream(root / "job_7" / rel) << "data"; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_reader_waits_for_its_file_not_for_the_whole_stage) {
  BurstBuffer bb;
  std::thread stager([&] {
    std::this_thread::sleep_for(150ms);
    bb.stage("a.h5");  // the stage goes on: status still staging-in
  });
  const auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(sluice::wait_for_staged(bb.data, "a.h5", 10s));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 100ms));  // it did wait
  stager.join();
  BOOST_TEST((sluice::stage_in_state(bb.data) == sluice::StageInState::Running));
}

BOOST_AUTO_TEST_CASE(a_file_of_another_node_is_reported_absent_once_the_stage_is_done) {
  BurstBuffer bb;
  bb.stage("mine.h5");
  bb.set(StagePhase::Ready);
  BOOST_TEST(sluice::wait_for_staged(bb.data, bb.data.bb_dir + "/mine.h5", 1s));
  BOOST_TEST(!sluice::wait_for_staged(bb.data, "other-node.h5", 1s));
}

BOOST_AUTO_TEST_CASE(a_failed_stage_in_is_an_error_with_its_reason) {
  BurstBuffer bb;
  bb.set(StagePhase::Failed, "stage-in of /data:data: out of space");
  BOOST_CHECK_EXCEPTION(sluice::wait_for_staged(bb.data, "x.h5", 1s), sluice::Error, [](const sluice::Error& e) {
    return std::string(e.what()).find("out of space") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(waiting_has_a_deadline_naming_the_file) {
  BurstBuffer bb;
  BOOST_CHECK_EXCEPTION(sluice::wait_for_staged(bb.data, "late.h5", 100ms), sluice::Error, [](const sluice::Error& e) {
    return std::string(e.what()).find("late.h5") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(environment_gives_the_burst_buffer) {
  ::unsetenv("SLUICE_BB");
  BOOST_TEST(!sluice::staged_data_from_environment().has_value());
  ::setenv("SLUICE_BB", "/tmp/bb/job_1", 1);
  ::setenv("SLUICE_STAGE_STATUS", "/tmp/bb/.status/job_1.json", 1);
  ::setenv("SLUICE_STAGE_MODE", "async", 1);
  auto d = sluice::staged_data_from_environment();
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->bb_dir == "/tmp/bb/job_1");
  BOOST_TEST(d->async);
}
