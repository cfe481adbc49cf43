#define BOOST_TEST_MODULE monitor_sampler
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/monitor/sampler.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

using namespace sluice::monitor;
using namespace std::chrono_literals;

namespace {

SamplerOptions no_gpu(std::chrono::milliseconds interval = 10000ms) {
  SamplerOptions o;
  o.interval = interval;
  o.nvml_path.clear();
  return o;
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Waits (bounded) until pred() holds; the bound only guards against a hang.
template <typename Pred>
bool eventually(Pred pred, std::chrono::seconds limit = 30s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_reading_is_sane) {
  const Sample s = read_process_sample();
  BOOST_TEST(s.rss_bytes > 0u);
  BOOST_TEST(s.rss_peak_bytes >= s.rss_bytes);
  BOOST_TEST(s.cpu_user_s + s.cpu_sys_s >= 0.0);
  BOOST_TEST(s.io_known);
  BOOST_TEST(s.read_bytes > 0u);  // the loader read this executable's libraries
  BOOST_TEST(s.unix_ms > 1600000000000);
  BOOST_TEST(s.gpus.empty());
}

BOOST_AUTO_TEST_CASE(memory_touched_shows_in_rss) {
  Sampler smp(no_gpu());
  const Sample before = smp.sample_now();
  constexpr std::size_t kBytes = 256u << 20;
  auto block = std::make_unique<char[]>(kBytes);
  for (std::size_t i = 0; i < kBytes; i += 4096) block[i] = char(i);  // touch every page
  const Sample after = smp.sample_now();
  BOOST_TEST(after.rss_bytes >= before.rss_bytes + kBytes * 9 / 10);
  BOOST_TEST(after.rss_peak_bytes >= after.rss_bytes);
  volatile char keep = block[kBytes - 4096];
  (void)keep;
}

BOOST_AUTO_TEST_CASE(file_read_and_write_show_in_io) {
  const auto path = std::filesystem::temp_directory_path() / ("sluice-mon-io-" + std::to_string(::getpid()));
  constexpr std::size_t kBytes = 16u << 20;
  Sampler smp(no_gpu());
  const Sample s0 = smp.sample_now();
  {
    std::vector<char> buf(kBytes, 'x');
    std::ofstream f(path, std::ios::binary);
    f.write(buf.data(), std::streamsize(buf.size()));
  }
  const Sample s1 = smp.sample_now();
  {
    std::vector<char> buf(kBytes);
    std::ifstream f(path, std::ios::binary);
    f.read(buf.data(), std::streamsize(buf.size()));
    BOOST_TEST(std::size_t(f.gcount()) == kBytes);
  }
  const Sample s2 = smp.sample_now();
  std::filesystem::remove(path);
  BOOST_TEST(s0.io_known);
  BOOST_TEST(s1.write_bytes - s0.write_bytes >= kBytes);
  BOOST_TEST(s2.read_bytes - s1.read_bytes >= kBytes);  // page cache or not: rchar counts it
  BOOST_TEST(s2.t_s >= s0.t_s);
}

BOOST_AUTO_TEST_CASE(busy_loop_shows_in_cpu_time) {
  Sampler smp(no_gpu());
  const Sample before = smp.sample_now();
  const double start = thread_cpu_s();
  volatile std::uint64_t x = 0;
  while (thread_cpu_s() - start < 0.5)
    for (int i = 0; i < 100000; ++i) x = x + std::uint64_t(i);
  const Sample after = smp.sample_now();
  const double used = (after.cpu_user_s + after.cpu_sys_s) - (before.cpu_user_s + before.cpu_sys_s);
  BOOST_TEST(used >= 0.45);  // 0.5 s of this thread's CPU, in clock ticks (10 ms)
  BOOST_TEST(after.cpu_user_s - before.cpu_user_s >= 0.3);
}

BOOST_AUTO_TEST_CASE(fake_nvml_gives_gpu_series) {
  SamplerOptions o;
  o.nvml_path = FAKE_NVML_METRICS_PATH;
  Sampler smp(o);
  BOOST_TEST(smp.gpu_count() == 2);
  const Sample s = smp.sample_now();
  BOOST_TEST_REQUIRE(s.gpus.size() == 2u);
  BOOST_TEST(s.gpus[0].index == 0);
  BOOST_TEST(s.gpus[0].util_percent.value_or(999) == 40u);
  BOOST_TEST(s.gpus[1].util_percent.value_or(999) == 90u);
  BOOST_TEST(s.gpus[0].mem_util_percent.value_or(999) == 10u);
  BOOST_TEST(s.gpus[0].mem_used_bytes.value_or(0) == 1ull << 30);
  BOOST_TEST(s.gpus[1].mem_used_bytes.value_or(0) == 2ull << 30);
  BOOST_TEST(s.gpus[1].mem_total_bytes.value_or(0) == 16ull << 30);
  BOOST_TEST(s.gpus[0].power_watts.value_or(0) == 150.5);
  BOOST_TEST(!s.gpus[1].power_watts.has_value());  // NOT_SUPPORTED: absent, not an error
}

BOOST_AUTO_TEST_CASE(nvml_without_metric_calls_gives_gpus_without_values) {
  // tests/unit/fake_nvml.c has only the topology calls (as an old driver would).
  SamplerOptions o;
  o.nvml_path = FAKE_NVML_PATH;
  Sampler smp(o);
  const Sample s = smp.sample_now();
  BOOST_TEST_REQUIRE(s.gpus.size() == 2u);
  BOOST_TEST(!s.gpus[0].util_percent.has_value());
  BOOST_TEST(!s.gpus[0].mem_used_bytes.has_value());
  BOOST_TEST(!s.gpus[0].power_watts.has_value());
}

BOOST_AUTO_TEST_CASE(no_nvml_means_no_gpu_series) {
  SamplerOptions o;
  o.nvml_path = "libnvidia-ml-does-not-exist.so.1";
  Sampler smp(o);
  BOOST_TEST(smp.gpu_count() == 0);
  BOOST_TEST(smp.sample_now().gpus.empty());
  Sampler off(no_gpu());
  BOOST_TEST(off.sample_now().gpus.empty());
}

BOOST_AUTO_TEST_CASE(thread_samples_until_stopped) {
  Sampler smp(no_gpu(20ms));
  BOOST_TEST(!smp.running());
  smp.start();
  smp.start();  // no second thread
  BOOST_TEST(smp.running());
  BOOST_TEST(eventually([&] { return smp.samples().size() >= 4; }));
  BOOST_TEST(smp.stop());
  BOOST_TEST(!smp.running());
  const auto samples = smp.samples();
  for (std::size_t i = 1; i < samples.size(); ++i) {
    BOOST_TEST(samples[i].t_s > samples[i - 1].t_s);
    BOOST_TEST(samples[i].cpu_user_s + samples[i].cpu_sys_s >= samples[i - 1].cpu_user_s + samples[i - 1].cpu_sys_s);
  }
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(smp.samples().size() == samples.size());  // nothing after stop
  smp.start();  // restartable
  BOOST_TEST(eventually([&] { return smp.samples().size() > samples.size(); }));
  BOOST_TEST(smp.stop());
}

BOOST_AUTO_TEST_CASE(stop_wakes_a_long_interval_at_once) {
  Sampler smp(no_gpu(std::chrono::hours(1)));
  smp.start();
  BOOST_TEST(eventually([&] { return smp.samples().size() == 1; }));  // the first, at start
  BOOST_TEST(smp.stop(10000ms));  // returns when the thread has ended, within the deadline
  BOOST_TEST(!smp.running());
  BOOST_TEST(smp.samples().size() == 1u);
}

BOOST_AUTO_TEST_CASE(stop_is_bounded_by_its_deadline_when_a_sample_is_stuck) {
  ::setenv("FAKE_NVML_SLEEP_MS", "3000", 1);
  {
    SamplerOptions o;
    o.nvml_path = FAKE_NVML_METRICS_PATH;
    o.interval = 10ms;
    Sampler smp(o);
    smp.start();
    std::this_thread::sleep_for(200ms);  // the first sample is inside the 3 s "driver" call
    BOOST_TEST(!smp.stop(100ms));        // gave up waiting; the thread finishes on its own
    BOOST_TEST(!smp.running());
    BOOST_TEST(smp.stop());              // nothing left to stop
  }  // destructor: nothing to wait for
  ::unsetenv("FAKE_NVML_SLEEP_MS");
}

BOOST_AUTO_TEST_CASE(ring_buffer_is_bounded_oldest_first) {
  SamplerOptions o = no_gpu();
  o.capacity = 3;
  Sampler smp(o);
  std::vector<double> ts;
  for (int i = 0; i < 5; ++i) ts.push_back(smp.sample_now().t_s);
  const auto s = smp.samples();
  BOOST_TEST_REQUIRE(s.size() == 3u);
  BOOST_TEST(smp.dropped() == 2u);
  BOOST_TEST(s[0].t_s == ts[2]);
  BOOST_TEST(s[2].t_s == ts[4]);
}

BOOST_AUTO_TEST_CASE(bad_options_are_rejected) {
  SamplerOptions o = no_gpu(0ms);
  BOOST_CHECK_THROW(Sampler{o}, sluice::InvalidArgument);
  o = no_gpu();
  o.capacity = 0;
  BOOST_CHECK_THROW(Sampler{o}, sluice::InvalidArgument);
}
