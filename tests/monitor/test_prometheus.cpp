#define BOOST_TEST_MODULE monitor_prometheus
#include <boost/test/unit_test.hpp>

#include <sluice/monitor/prometheus.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace sluice::monitor;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Snapshot synthetic() {
  Snapshot s;
  s.elapsed_ns = 60'000'000'000;
  s.steps = 10;
  s.step_ns = 1'000'000'000;
  s.step_data_wait_ns = 250'000'000;
  s.step_allreduce_ns = 150'000'000;
  s.step_compute_ns = 600'000'000;
  s.step_time.record(100'000'000, 10);  // 10 steps of exactly 100 ms: quantiles are exact
  s.io_ops = 4, s.io_bytes = 4096, s.io_ns = 2'000'000;
  s.stalls = 2, s.stall_ns = 500'000'000;
  s.allreduces = 3, s.allreduce_bytes = 3'000'000, s.allreduce_ns = 150'000'000;
  return s;
}

Sample synthetic_sample() {
  Sample x;
  x.cpu_user_s = 12.5, x.cpu_sys_s = 1.25;
  x.rss_bytes = 1 << 20, x.rss_peak_bytes = 2 << 20;
  GpuSample g0;
  g0.index = 0, g0.util_percent = 87, g0.mem_used_bytes = 1'000'000, g0.mem_total_bytes = 2'000'000,
  g0.power_watts = 250.5;
  GpuSample g1;  // reports memory only
  g1.index = 1, g1.mem_used_bytes = 5;
  x.gpus = {g0, g1};
  return x;
}

PrometheusLabels plain_labels() { return {"1234", "alice", "proj", 3, "node07"}; }

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  const auto ls = lines(text);
  return std::find(ls.begin(), ls.end(), line) != ls.end();
}

// The exposition grammar (format 0.0.4), checked line by line; returns the first bad line or "".
std::string grammar_error(const std::string& text) {
  if (text.empty() || text.back() != '\n') return "<no final newline>";
  static const std::regex comment(R"(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex type(R"(# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))");
  static const std::regex label_value(R"re("([^"\\\n]|\\\\|\\"|\\n)*")re");
  static const std::regex sample(
      R"re([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\\\|\\"|\\n)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\\\|\\"|\\n)*")*\})? ([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|NaN|[-+]Inf))re");
  for (const std::string& l : lines(text)) {
    if (l.rfind("# TYPE ", 0) == 0) {
      if (!std::regex_match(l, type)) return l;
    } else if (l.rfind("#", 0) == 0) {
      if (!std::regex_match(l, comment)) return l;
    } else if (!std::regex_match(l, sample)) {
      return l;
    }
  }
  return "";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-prom-XXXXXX").string();
    BOOST_REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, ec);
    fs::remove_all(path, ec);
  }
};

PrometheusOptions writer_options(const fs::path& dir, Recorder& rec) {
  PrometheusOptions o;
  o.dir = dir.string();
  o.job_id = "4242";
  o.user = "bob";
  o.account = "acct";
  o.rank = 1;
  o.host = "n1";
  o.recorder = &rec;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(exact_lines) {
  const Sample x = synthetic_sample();
  const std::string t = render_prometheus(synthetic(), &x, plain_labels());
  BOOST_TEST_MESSAGE(t);
  // Expected lines, "@" standing for the common labels.
  const std::string L = R"(jobid="1234",user="alice",account="proj",rank="3",host="node07")";
  const std::string expected = R"(# HELP sluice_steps_total Training steps completed.
# TYPE sluice_steps_total counter
sluice_steps_total{@} 10
# TYPE sluice_step_seconds summary
sluice_step_seconds{@,quantile="0.5"} 0.1
sluice_step_seconds{@,quantile="0.95"} 0.1
sluice_step_seconds_sum{@} 1
sluice_step_seconds_count{@} 10
sluice_data_wait_seconds_total{@} 0.25
sluice_allreduce_seconds_total{@} 0.15
sluice_allreduce_bytes_total{@} 3000000
sluice_io_read_bytes_total{@} 4096
sluice_stall_seconds_total{@} 0.5
# TYPE sluice_cpu_seconds_total counter
sluice_cpu_seconds_total{@,mode="user"} 12.5
sluice_cpu_seconds_total{@,mode="system"} 1.25
# TYPE sluice_rss_bytes gauge
sluice_rss_bytes{@} 1048576
# TYPE sluice_gpu_utilization_ratio gauge
sluice_gpu_utilization_ratio{@,gpu="0"} 0.87
sluice_gpu_memory_used_bytes{@,gpu="0"} 1000000
sluice_gpu_memory_used_bytes{@,gpu="1"} 5
sluice_gpu_power_watts{@,gpu="0"} 250.5
)";
  for (std::string want : lines(expected)) {
    if (const auto at = want.find('@'); at != std::string::npos) want.replace(at, 1, L);
    BOOST_TEST(has_line(t, want), "missing: " << want);
  }
  // GPU 1 reports no utilization: no series for it.
  BOOST_TEST(t.find("sluice_gpu_utilization_ratio{" + L + ",gpu=\"1\"}") == std::string::npos);
  BOOST_TEST(t.back() == '\n');
}

BOOST_AUTO_TEST_CASE(families_once_and_counters_total) {
  const Sample x = synthetic_sample();
  const std::string t = render_prometheus(synthetic(), &x, plain_labels());
  std::map<std::string, int> help, type;
  std::map<std::string, std::string> types;
  std::set<std::string> sampled;
  for (const std::string& l : lines(t)) {
    std::istringstream in(l);
    std::string a, b, name, kind;
    if (l.rfind("# HELP ", 0) == 0) {
      in >> a >> b >> name;
      ++help[name];
    } else if (l.rfind("# TYPE ", 0) == 0) {
      in >> a >> b >> name >> kind;
      ++type[name];
      types[name] = kind;
    } else {
      sampled.insert(l.substr(0, l.find_first_of("{ ")));
    }
  }
  BOOST_TEST(help.size() == type.size());
  for (const auto& [name, n] : type) {
    BOOST_TEST(n == 1, name << " TYPE " << n << " times");
    BOOST_TEST(help[name] == 1, name << " HELP " << help[name] << " times");
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    BOOST_TEST((types[name] == "counter") == total, name << " is " << types[name]);
    BOOST_TEST(name.rfind("sluice_", 0) == 0, name);
  }
  // Every sample belongs to a declared family (summary: _sum and _count too).
  for (const std::string& s : sampled) {
    std::string fam = s;
    for (const char* suffix : {"_sum", "_count"})
      if (!type.count(fam) && fam.size() > std::strlen(suffix) &&
          fam.compare(fam.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        fam.resize(fam.size() - std::strlen(suffix));
    BOOST_TEST(type.count(fam) == 1u, s << " has no TYPE");
  }
  BOOST_TEST(types["sluice_step_seconds"] == "summary");
}

BOOST_AUTO_TEST_CASE(hostile_label_values_are_escaped) {
  PrometheusLabels l = plain_labels();
  l.user = "ev\"il\\us\ner";
  l.account = "a\\\"";
  const std::string t = render_prometheus(synthetic(), nullptr, l);
  BOOST_TEST(prometheus_escape_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  BOOST_TEST(has_line(t, R"(sluice_steps_total{jobid="1234",user="ev\"il\\us\ner",account="a\\\"",rank="3",host="node07"} 10)"));
  BOOST_TEST(grammar_error(t) == "");
  // No sample: no process or GPU families.
  BOOST_TEST(t.find("sluice_cpu_seconds_total") == std::string::npos);
  BOOST_TEST(t.find("sluice_gpu_") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(grammar) {
  const Sample x = synthetic_sample();
  BOOST_TEST(grammar_error(render_prometheus(synthetic(), &x, plain_labels())) == "");
  BOOST_TEST(grammar_error(render_prometheus(Snapshot{}, nullptr, PrometheusLabels{})) == "");
  // The check itself can fail.
  BOOST_TEST(grammar_error("sluice_x{a=\"b\"} 1") != "");                 // no final newline
  BOOST_TEST(grammar_error("sluice-x 1\n") != "");                        // bad name
  BOOST_TEST(grammar_error("sluice_x{a=\"b\nc\"} 1\n") != "");            // raw newline in a value
  BOOST_TEST(grammar_error("sluice_x{a=\"b\"c\"} 1\n") != "");            // raw quote
  BOOST_TEST(grammar_error("sluice_x one\n") != "");                      // bad value
  BOOST_TEST(grammar_error("# TYPE sluice_x countr\n") != "");            // bad type
  BOOST_TEST(grammar_error("sluice_x{a=\"b\\\\\"} 1e-3\n") == "");
}

BOOST_AUTO_TEST_CASE(writer_atomic_rewrite_remove) {
  TempDir d;
  Recorder rec;
  {
    PrometheusWriter w(writer_options(d.path, rec));
    BOOST_TEST_REQUIRE(w.enabled());
    const fs::path file = d.path / "sluice_job_4242_rank1.prom";
    BOOST_TEST(w.path() == file.string());
    BOOST_TEST_REQUIRE(w.write_now());
    auto listing = [&] {
      std::vector<std::string> names;
      for (const auto& e : fs::directory_iterator(d.path)) names.push_back(e.path().filename().string());
      return names;
    };
    BOOST_TEST(listing() == std::vector<std::string>{"sluice_job_4242_rank1.prom"});  // no .tmp left
    const std::string first = slurp(file);
    BOOST_TEST(has_line(first, R"(sluice_steps_total{jobid="4242",user="bob",account="acct",rank="1",host="n1"} 0)"));
    BOOST_TEST(grammar_error(first) == "");
    BOOST_TEST(first.find("sluice_cpu_seconds_total") != std::string::npos);  // /proc read without a sampler
    struct stat st1 {};
    BOOST_TEST_REQUIRE(::stat(file.c_str(), &st1) == 0);

    rec.step_begin();
    rec.step_end();
    BOOST_TEST_REQUIRE(w.write_now());
    const std::string second = slurp(file);
    BOOST_TEST(has_line(second, R"(sluice_steps_total{jobid="4242",user="bob",account="acct",rank="1",host="n1"} 1)"));
    struct stat st2 {};
    BOOST_TEST_REQUIRE(::stat(file.c_str(), &st2) == 0);
    BOOST_TEST(st1.st_ino != st2.st_ino);  // replaced by rename, not rewritten in place
    BOOST_TEST(listing().size() == 1u);
    BOOST_TEST(w.writes() == 2u);
    BOOST_TEST(w.error() == "");

    w.stop();
    BOOST_TEST(!fs::exists(file));
    BOOST_TEST(!w.write_now());  // stopped for good
    BOOST_TEST(!fs::exists(file));
  }
  BOOST_TEST(fs::is_empty(d.path));
}

BOOST_AUTO_TEST_CASE(writer_thread_and_destructor_removes) {
  TempDir d;
  Recorder rec;
  PrometheusOptions o = writer_options(d.path, rec);
  o.interval = 50ms;
  const fs::path file = d.path / "sluice_job_4242_rank1.prom";
  {
    PrometheusWriter w(o);
    w.start();
    for (int i = 0; i < 200 && w.writes() < 3; ++i) std::this_thread::sleep_for(10ms);
    BOOST_TEST(w.writes() >= 3u);
    BOOST_TEST(fs::exists(file));
  }
  BOOST_TEST(!fs::exists(file));
  BOOST_TEST(fs::is_empty(d.path));
}

BOOST_AUTO_TEST_CASE(environment) {
  TempDir d;
  Recorder rec;
  ::setenv("SLUICE_PROMETHEUS_DIR", d.path.c_str(), 1);
  ::setenv("SLURM_JOB_ID", "77/x", 1);
  ::setenv("SLURM_JOB_USER", "carol", 1);
  ::unsetenv("SLURM_JOB_ACCOUNT");
  ::setenv("SLURM_PROCID", "5", 1);
  PrometheusOptions o;
  o.recorder = &rec;
  PrometheusWriter w(o);
  BOOST_TEST(w.path() == (d.path / "sluice_job_77_x_rank5.prom").string());
  BOOST_TEST(w.labels().jobid == "77/x");
  BOOST_TEST(w.labels().user == "carol");
  BOOST_TEST(w.labels().account == "unknown");
  BOOST_TEST(w.labels().rank == 5);
  ::unsetenv("SLUICE_PROMETHEUS_DIR");
  ::unsetenv("SLURM_JOB_USER");
  PrometheusWriter off(o);
  BOOST_TEST(!off.enabled());
  BOOST_TEST(!off.write_now());  // nothing written, not an error
  BOOST_TEST(off.error() == "");
  off.start();
  off.stop();
  BOOST_TEST(!off.labels().user.empty());  // from the passwd entry
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_PROCID");
}

BOOST_AUTO_TEST_CASE(unwritable_dir_message_no_exception) {
  Recorder rec;
  const fs::path missing = fs::temp_directory_path() / "sluice-prom-does-not-exist" / "deeper";
  PrometheusOptions o = writer_options(missing, rec);
  o.interval = 20ms;
  PrometheusWriter w(o);
  BOOST_TEST(w.enabled());
  // Capture stderr.
  std::fflush(stderr);
  char tmpl[] = "/tmp/sluice-prom-stderr-XXXXXX";
  const int fd = mkstemp(tmpl);
  BOOST_TEST_REQUIRE(fd >= 0);
  const int saved = dup(2);
  dup2(fd, 2);
  bool ok = true;
  BOOST_CHECK_NO_THROW(ok = w.write_now());
  BOOST_CHECK_NO_THROW(w.write_now());
  w.start();
  std::this_thread::sleep_for(100ms);
  w.stop();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  const std::string err = slurp(tmpl);
  std::remove(tmpl);
  BOOST_TEST(!ok);
  BOOST_TEST(w.error().find(missing.string()) != std::string::npos, w.error());
  // One message, naming the directory.
  BOOST_TEST(err.find("sluice prometheus: ") != std::string::npos, err);
  BOOST_TEST(err.find(missing.string()) != std::string::npos, err);
  BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1, err);
}
