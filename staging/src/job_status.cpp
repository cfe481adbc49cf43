#include <sluice/staging/job_status.hpp>

#include <sluice/common/error.hpp>
#include <sluice/common/root_files.hpp>
#include <sluice/common/unique_handle.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <ctime>

namespace sluice::staging {

using nlohmann::json;

namespace {
constexpr std::pair<StagePhase, std::string_view> kPhases[] = {
    {StagePhase::StagingIn, "staging-in"}, {StagePhase::Ready, "ready"},   {StagePhase::StagingOut, "staging-out"},
    {StagePhase::Done, "done"},            {StagePhase::Failed, "failed"},
};
// A status file is small; anything bigger is not ours.
constexpr std::size_t kMaxStatusBytes = 1 << 20;
}  // namespace

std::string_view to_string(StagePhase phase) {
  for (const auto& [p, name] : kPhases)
    if (p == phase) return name;
  return "unknown";
}

StagePhase stage_phase_from_string(std::string_view name) {
  for (const auto& [p, n] : kPhases)
    if (n == name) return p;
  throw InvalidArgument("unknown staging phase " + quote_input(name));
}

std::string JobStageStatus::to_json() const {
  return json{{"version", 1},
              {"job_id", job_id},
              {"node", node},
              {"uid", uid},
              {"bb_dir", bb_dir},
              {"mode", mode},
              {"phase", std::string(to_string(phase))},
              {"bytes_done", bytes_done},
              {"bytes_total", bytes_total},
              {"files_done", files_done},
              {"files_total", files_total},
              {"seconds", seconds},
              {"updated_unix", updated_unix},
              {"error", error},
              {"stager_pid", stager_pid},
              {"stager_start", stager_start},
              {"stage_out_failed", stage_out_failed}}
             .dump(1) +
         "\n";
}

JobStageStatus JobStageStatus::from_json(const std::string& text, const std::string& origin) {
  try {
    const json j = json::parse(text);
    if (j.at("version").get<int>() != 1) throw Error("unknown version " + j.at("version").dump());
    JobStageStatus s;
    s.job_id = j.at("job_id").get<std::uint64_t>();
    s.node = j.at("node").get<std::string>();
    s.uid = j.at("uid").get<std::uint32_t>();
    s.bb_dir = j.at("bb_dir").get<std::string>();
    s.mode = j.at("mode").get<std::string>();
    s.phase = stage_phase_from_string(j.at("phase").get<std::string>());
    s.bytes_done = j.at("bytes_done").get<std::uint64_t>();
    s.bytes_total = j.at("bytes_total").get<std::uint64_t>();
    s.files_done = j.at("files_done").get<std::uint64_t>();
    s.files_total = j.at("files_total").get<std::uint64_t>();
    s.seconds = j.at("seconds").get<double>();
    s.updated_unix = j.at("updated_unix").get<std::int64_t>();
    s.error = j.at("error").get<std::string>();
    s.stager_pid = j.at("stager_pid").get<std::int64_t>();
    s.stager_start = j.at("stager_start").get<std::uint64_t>();
    s.stage_out_failed = j.at("stage_out_failed").get<bool>();
    return s;
  } catch (const json::exception& e) {
    throw Error(origin + ": not a sluice staging status file: " + e.what());
  } catch (const Error& e) {
    throw Error(origin + ": not a sluice staging status file: " + e.what());
  }
}

std::string job_status_path(const std::string& bb_root, std::uint64_t job_id) {
  return bb_root + "/" + kStatusDirName + "/job_" + std::to_string(job_id) + ".json";
}

std::optional<JobStageStatus> load_job_status(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("cannot open the staging status " + quote_input(path), errno);
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SystemError("cannot read the staging status " + quote_input(path), errno);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxStatusBytes) throw Error(quote_input(path) + " is too large for a staging status file");
  }
  return JobStageStatus::from_json(text, path);
}

void save_job_status(const std::string& bb_root, const JobStageStatus& status) {
  // Root writes here: the directory must be its own, or a user could swap the files.
  const std::string dir = bb_root + "/" + kStatusDirName;
  UniqueFd dfd = open_owned_dir(dir, "the staging status directory");
  JobStageStatus copy = status;
  copy.updated_unix = static_cast<std::int64_t>(std::time(nullptr));
  replace_file_at(dfd.get(), dir, "job_" + std::to_string(status.job_id) + ".json", copy.to_json(), 0400,
                  static_cast<uid_t>(status.uid));
}

namespace {
std::string state_dir(const std::string& bb_root) { return bb_root + "/" + kStateDirName; }
std::string record_name(std::uint64_t job_id) { return "job_" + std::to_string(job_id) + ".json"; }
}  // namespace

void save_job_state(const std::string& bb_root, const JobStageStatus& status) {
  const std::string dir = state_dir(bb_root);
  UniqueFd dfd = open_owned_dir(dir, "the staging state directory", /*private_dir=*/true);
  JobStageStatus copy = status;
  copy.updated_unix = static_cast<std::int64_t>(std::time(nullptr));
  replace_file_at(dfd.get(), dir, record_name(status.job_id), copy.to_json(), 0600);
  // The user's view never names the supervisor's start time: nothing of it is for users.
  copy.stager_start = 0;
  save_job_status(bb_root, copy);
}

std::optional<JobStageStatus> load_job_state(const std::string& bb_root, std::uint64_t job_id) {
  const std::string dir = state_dir(bb_root);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dfd) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("cannot open the staging state directory " + quote_input(dir), errno);
  }
  struct stat st {};
  if (::fstat(dfd.get(), &st) != 0) throw SystemError("cannot stat " + quote_input(dir), errno);
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
    throw Error("the staging state directory " + quote_input(dir) + " must belong to uid " +
                std::to_string(::geteuid()) + " with mode 0700; not trusted");
  const auto text = read_owned_file(dfd.get(), dir, record_name(job_id), kMaxStatusBytes);
  if (!text) return std::nullopt;
  const std::string origin = dir + "/" + record_name(job_id);
  JobStageStatus s = JobStageStatus::from_json(*text, origin);
  if (s.job_id != job_id) throw Error(origin + " names job " + std::to_string(s.job_id) + "; not trusted");
  return s;
}

void remove_job_state(const std::string& bb_root, std::uint64_t job_id) {
  ::unlink((state_dir(bb_root) + "/" + record_name(job_id)).c_str());
  ::unlink(job_status_path(bb_root, job_id).c_str());
}

}  // namespace sluice::staging
