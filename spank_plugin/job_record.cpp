#include "job_record.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace sluice::spank {
namespace {

std::optional<long long> parse_integer(std::string_view s) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string env_or_empty(const GetEnv& getenv, const char* name) { return getenv(name).value_or(""); }

// "0,1,3" or "0-3" (Slurm's GPU index lists); std::nullopt when malformed.
std::optional<std::vector<int>> parse_index_list(const std::string& value) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= value.size() && !value.empty()) {
    const std::size_t comma = std::min(value.find(',', pos), value.size());
    const std::string_view item(value.data() + pos, comma - pos);
    const std::size_t dash = item.find('-');
    const auto lo = parse_integer(item.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? lo : parse_integer(item.substr(dash + 1));
    if (!lo || !hi || *lo < 0 || *hi < *lo || *hi - *lo > 4096 || *hi > 1 << 20) return std::nullopt;
    for (long long i = *lo; i <= *hi; ++i) out.push_back(static_cast<int>(i));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

std::vector<std::uint32_t> expand_cpus_per_node(const std::string& value) {
  auto bad = [&] { return InvalidArgument("SLURM_JOB_CPUS_PER_NODE=" + quote_input(value) + " is not N[(xK)],..."); };
  std::vector<std::uint32_t> out;
  std::size_t pos = 0;
  while (pos < value.size()) {
    const std::size_t comma = std::min(value.find(',', pos), value.size());
    const std::string_view item(value.data() + pos, comma - pos);
    const std::size_t paren = item.find('(');
    const auto cpus = parse_integer(item.substr(0, paren));
    long long repeat = 1;
    if (paren != std::string_view::npos) {
      if (item.size() < paren + 4 || item.substr(paren, 2) != "(x" || item.back() != ')') throw bad();
      const auto r = parse_integer(item.substr(paren + 2, item.size() - paren - 3));
      if (!r) throw bad();
      repeat = *r;
    }
    if (!cpus || *cpus < 0 || *cpus > (1LL << 31) || repeat < 1 || repeat > (1 << 20) ||
        out.size() + static_cast<std::size_t>(repeat) > (1u << 20))
      throw bad();
    out.insert(out.end(), static_cast<std::size_t>(repeat), static_cast<std::uint32_t>(*cpus));
    pos = comma + 1;
  }
  if (out.empty()) throw bad();
  return out;
}

monitor::NodeJobRecord node_record_from_env(const GetEnv& getenv, const JobIdentity& job, std::int64_t now_unix_ms) {
  monitor::NodeJobRecord r;
  r.job_id = job.job_id;
  r.node = job.node;
  r.nodes = job.nodes;
  r.uid = static_cast<std::uint32_t>(job.uid);
  r.user = env_or_empty(getenv, "SLURM_JOB_USER");
  r.account = env_or_empty(getenv, "SLURM_JOB_ACCOUNT");
  r.partition = env_or_empty(getenv, "SLURM_JOB_PARTITION");
  r.cluster = env_or_empty(getenv, "SLURM_CLUSTER_NAME");
  r.start_unix_ms = now_unix_ms;
  if (auto cpn = getenv("SLURM_JOB_CPUS_PER_NODE")) {
    try {
      const std::vector<std::uint32_t> cpus = expand_cpus_per_node(*cpn);
      const auto it = std::find(job.nodes.begin(), job.nodes.end(), job.node);
      const std::size_t i = it == job.nodes.end() ? 0 : static_cast<std::size_t>(it - job.nodes.begin());
      // One value for all nodes ("4(x2)") or one per node.
      r.cpus = i < cpus.size() ? cpus[i] : cpus.back();
    } catch (const InvalidArgument&) {
      r.cpus = 0;  // unknown: the report says so rather than guess
    }
  }
  if (auto gpus = getenv("SLURM_JOB_GPUS"); gpus && *gpus != "NoDevFiles")
    r.gpus = parse_index_list(*gpus).value_or(std::vector<int>{});
  return r;
}

void add_job_end(monitor::NodeJobRecord& r, const GetEnv& getenv, std::int64_t now_unix_ms) {
  r.end_unix_ms = now_unix_ms;
  if (auto ec2 = getenv("SLURM_JOB_EXIT_CODE2")) {
    const std::size_t colon = ec2->find(':');
    const auto code = parse_integer(std::string_view(*ec2).substr(0, colon));
    const auto sig = colon == std::string::npos ? std::optional<long long>(0)
                                                : parse_integer(std::string_view(*ec2).substr(colon + 1));
    if (code && sig && *code >= 0 && *code < 256 && *sig >= 0 && *sig < 256) {
      r.exit_code = static_cast<int>(*code);
      r.exit_signal = static_cast<int>(*sig);
      return;
    }
  }
  if (auto ec = getenv("SLURM_JOB_EXIT_CODE")) {  // a wait(2) status
    if (const auto st = parse_integer(*ec); st && *st >= 0 && *st <= 0xffff) {
      const int status = static_cast<int>(*st);
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
      r.exit_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
  }
}

void add_stage_in(monitor::NodeJobRecord& r, const staging::JobStageStatus& s) {
  if (s.phase != staging::StagePhase::StagingIn && s.phase != staging::StagePhase::Ready &&
      !(s.phase == staging::StagePhase::Failed && !s.stage_out_failed))
    return;  // the figures are stage-out's already
  r.stage_in_bytes = s.bytes_done;
  r.stage_in_s = s.seconds;
  if (s.phase == staging::StagePhase::Failed) r.stage_error = "stage-in: " + s.error;
}

void add_stage_out(monitor::NodeJobRecord& r, const staging::JobStageStatus& s) {
  if (s.phase != staging::StagePhase::Done && s.phase != staging::StagePhase::Failed &&
      s.phase != staging::StagePhase::StagingOut)
    return;
  r.stage_out_bytes = s.bytes_done;
  r.stage_out_s = s.seconds;
  if (s.phase == staging::StagePhase::Failed && s.stage_out_failed) r.stage_error = "stage-out: " + s.error;
}

void write_job_record(const PluginConfig& config, const monitor::NodeJobRecord& r) {
  if (config.telemetry_dir.empty()) return;
  monitor::write_node_record(monitor::job_record_dir(config.telemetry_dir), r);
}

monitor::NodeJobRecord load_start_record(const PluginConfig& config, const JobIdentity& job,
                                         monitor::NodeJobRecord fallback) {
  if (config.telemetry_dir.empty()) return fallback;
  const auto path = monitor::job_record_dir(config.telemetry_dir) / monitor::node_record_file_name(job.job_id, job.node);
  try {
    monitor::NodeJobRecord r = monitor::read_node_record_file(path);
    if (r.job_id == job.job_id && r.node == job.node) return r;
  } catch (const std::exception&) {
    // No start record (the prolog did not run or could not write it): the epilog's own view.
  }
  return fallback;
}

std::size_t remove_job_metrics(const PluginConfig& config, std::uint64_t job_id, uid_t uid) {
  if (config.prometheus_dir.empty()) return 0;
  UniqueFd dfd(::open(config.prometheus_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) {
    if (errno == ENOENT) return 0;
    throw SystemError("cannot open the Prometheus textfile directory " + quote_input(config.prometheus_dir), errno);
  }
  const int list_fd = ::dup(dfd.get());
  DIR* dir = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
  if (!dir) {
    const int err = errno;
    if (list_fd >= 0) ::close(list_fd);
    throw SystemError("cannot list " + quote_input(config.prometheus_dir), err);
  }
  const std::string prefix = "sluice_job_" + std::to_string(job_id) + "_rank";
  std::vector<std::string> doomed;
  while (const dirent* e = ::readdir(dir)) {
    std::string_view name(e->d_name);
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);  // the writer's temporaries
    if (name.rfind(prefix, 0) != 0) continue;
    std::string_view rest = name.substr(prefix.size());
    const bool tmp = rest.size() > 9 && rest.substr(rest.size() - 9) == ".prom.tmp";
    const bool prom = rest.size() > 5 && rest.substr(rest.size() - 5) == ".prom";
    rest = rest.substr(0, rest.size() - (tmp ? 9 : prom ? 5 : 0));
    if ((tmp || prom) && parse_integer(rest)) doomed.emplace_back(e->d_name);
  }
  ::closedir(dir);
  std::size_t removed = 0;
  for (const std::string& name : doomed) {
    struct stat st {};
    if (::fstatat(dfd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;  // unlinkat never follows a link
    if (st.st_uid != uid) continue;  // another user's file: not this job's to remove
    if (::unlinkat(dfd.get(), name.c_str(), 0) == 0) ++removed;
  }
  return removed;
}

}  // namespace sluice::spank
