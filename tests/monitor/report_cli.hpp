// Runs the sluice-report CLI (SLUICE_REPORT_PATH, set by tests/monitor/CMakeLists.txt) for the
// report tests: exit status, stdout and stderr, with $SLUICE_TELEMETRY_DIR unset unless ENV
// says otherwise. Output files go to SCRATCH.
#pragma once

#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sluice::monitor::test {

struct Run {
  int status = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline Run run_report_cli(const std::filesystem::path& scratch, const std::string& args,
                          const std::string& env = "env -u SLUICE_TELEMETRY_DIR") {
  const std::filesystem::path o = scratch / "cli.out", e = scratch / "cli.err";
  const std::string cmd = env + " " + SLUICE_REPORT_PATH + " " + args + " >" + o.string() + " 2>" + e.string();
  const int w = std::system(cmd.c_str());
  Run r;
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
  r.out = slurp(o);
  r.err = slurp(e);
  BOOST_TEST_MESSAGE(cmd << " -> " << r.status << "\n" << r.err);
  return r;
}

// Checks that HTML is one self-contained page (a whole document, balanced <svg> elements, no
// script, link or external resource) and returns its number of <svg> charts.
inline std::ptrdiff_t checked_self_contained_svgs(const std::string& html) {
  auto has = [&](const char* what) { return html.find(what) != std::string::npos; };
  BOOST_TEST(html.rfind("<!DOCTYPE html>", 0) == 0u);
  BOOST_TEST(has("</html>\n"));
  std::ptrdiff_t open = 0, close = 0;
  for (std::size_t at = 0; (at = html.find("<svg", at)) != std::string::npos; ++at) ++open;
  for (std::size_t at = 0; (at = html.find("</svg>", at)) != std::string::npos; ++at) ++close;
  BOOST_TEST(open == close);
  for (const char* bad : {"http:", "https:", "//", "<script", "url(", "src=", "href=", "@import", "<link"})
    BOOST_TEST(!has(bad), "found " << bad);
  return open;
}

}  // namespace sluice::monitor::test
