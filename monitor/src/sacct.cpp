#include "sacct.hpp"

#include <sluice/common/user_process.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace sluice::monitor::report {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

template <typename T>
std::optional<T> number(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// A Slurm job id: digits, optionally an array or het suffix (123_4, 123+1).
bool slurm_job_id(const std::string& id) {
  if (id.empty() || id.size() > 32 || !std::isdigit(static_cast<unsigned char>(id[0]))) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '+'; });
}

}  // namespace

std::optional<std::uint64_t> parse_sacct_memory(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::string t = text;
  // Slurm before 21.08 appended n (per node) or c (per CPU) to ReqMem: the total is unknown.
  if (t.back() == 'n' || t.back() == 'c') return std::nullopt;
  std::uint64_t unit = 1ull << 20;  // a bare number is MB
  switch (t.back()) {
    case 'K': unit = 1ull << 10; t.pop_back(); break;
    case 'M': unit = 1ull << 20; t.pop_back(); break;
    case 'G': unit = 1ull << 30; t.pop_back(); break;
    case 'T': unit = 1ull << 40; t.pop_back(); break;
    default: break;
  }
  const auto v = number<double>(t);
  // !(x >= 0) also refuses NaN; the product is kept below 2^64 (1.8e19) before converting.
  if (!v || !(*v >= 0) || *v * static_cast<double>(unit) >= 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(*v * static_cast<double>(unit));
}

std::optional<SacctJob> parse_sacct_line(const std::string& line) {
  const std::vector<std::string> f = split(line, '|');
  if (f.size() != 8 || f[0].empty()) return std::nullopt;
  SacctJob j;
  j.user = f[1];
  j.account = f[2];
  j.partition = f[3];
  j.state = f[4].substr(0, f[4].find(' '));
  if (j.state.empty()) return std::nullopt;
  if (const auto colon = f[5].find(':'); colon != std::string::npos) {
    j.exit_code = number<int>(std::string_view(f[5]).substr(0, colon));
    j.exit_signal = number<int>(std::string_view(f[5]).substr(colon + 1));
  }
  for (const std::string& tres : split(f[6], ',')) {
    const auto eq = tres.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = tres.substr(0, eq), value = tres.substr(eq + 1);
    if (key == "mem") j.mem_bytes = parse_sacct_memory(value);
    else if (key == "gres/gpu") j.gpus = number<std::uint32_t>(value);
    else if (key == "cpu") j.cpus = number<std::uint32_t>(value);
  }
  if (!j.mem_bytes) j.mem_bytes = parse_sacct_memory(f[7]);
  return j;
}

std::optional<SacctJob> query_sacct(const std::string& job_id, std::chrono::milliseconds timeout, std::string* why) {
  auto none = [&](const std::string& reason) -> std::optional<SacctJob> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (!slurm_job_id(job_id)) return none("not a Slurm job id");
  const std::optional<std::string> sacct = find_program("sacct");
  if (!sacct) return none("sacct is not installed");
  std::vector<std::string> env;
  for (const char* name : {"SLURM_CONF", "PATH", "HOME", "TZ"})
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  // sacct -X -j ID prints one line per job (per array task); whatever is on PATH as "sacct"
  // may print without end for the whole timeout, so only the first lines are kept.
  constexpr std::size_t kMaxLines = 1000;
  std::vector<std::string> lines;
  std::size_t dropped = 0;
  int status = 0;
  std::string err;
  try {
    UserProcess p = spawn_process({{*sacct, "-j", job_id, "-X", "-n", "-P", "--noconvert", "-o", kSacctFormat}, env, "/", false});
    status = p.wait([&](const std::string& l) {
      if (lines.size() < kMaxLines) lines.push_back(l);
      else ++dropped;
    }, std::chrono::steady_clock::now() + timeout);
    err = p.stderr_text();
  } catch (const std::exception& e) {
    return none(std::string("sacct: ") + e.what());
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string first = err.substr(0, err.find('\n'));
    return none("sacct " + describe_wait_status(status) + (first.empty() ? "" : ": " + first));
  }
  for (const std::string& l : lines)
    if (auto j = parse_sacct_line(l)) return j;
  if (dropped > 0)
    return none("sacct printed " + std::to_string(lines.size() + dropped) + " lines for job " + job_id +
                "; none of the first " + std::to_string(kMaxLines) + " was a job line");
  return none("sacct knows no job " + job_id);
}

}  // namespace sluice::monitor::report
