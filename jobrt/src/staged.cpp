#include <sluice/common/error.hpp>
#include <sluice/staged.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/job_status.hpp>
#include <sluice/staging/manifest.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>

namespace sluice {

std::optional<StagedData> staged_data_from_environment() {
  const char* bb = std::getenv("SLUICE_BB");
  if (!bb || !*bb) return std::nullopt;
  StagedData d;
  d.bb_dir = bb;
  if (const char* s = std::getenv("SLUICE_STAGE_STATUS")) d.status_path = s;
  if (const char* m = std::getenv("SLUICE_STAGE_MODE")) d.async = std::string(m) == "async";
  return d;
}

StageInState stage_in_state(const StagedData& data, std::string* error) {
  if (data.status_path.empty()) return StageInState::Ready;  // nothing was staged in
  const auto status = staging::load_job_status(data.status_path);
  if (!status) throw Error("the staging record " + data.status_path + " does not exist");
  using staging::StagePhase;
  switch (status->phase) {
    case StagePhase::StagingIn:
      return StageInState::Running;
    case StagePhase::Failed:
      if (!status->stage_out_failed) {
        if (error) *error = status->error;
        return StageInState::Failed;
      }
      return StageInState::Ready;
    default:
      return StageInState::Ready;
  }
}

bool wait_for_staged(const StagedData& data, const std::string& path, std::chrono::milliseconds timeout) {
  std::string full = path;
  if (path.empty() || path.front() != '/') full = data.bb_dir + "/" + path;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    // A staged file only ever appears complete (temporary name, then rename).
    struct stat st {};
    if (::stat(full.c_str(), &st) == 0) return true;
    if (errno != ENOENT) throw SystemError("cannot stat the staged file " + full, errno);
    std::string why;
    const StageInState state = stage_in_state(data, &why);
    if (state == StageInState::Failed) throw Error("stage-in failed, " + full + " will not arrive: " + why);
    if (state == StageInState::Ready) return ::stat(full.c_str(), &st) == 0;
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error("timed out after " + std::to_string(timeout.count()) + " ms waiting for " + full + " to be staged");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::vector<std::string> staged_files(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw SystemError("cannot open the staged directory " + dir, errno);
  const staging::Manifest m = staging::Manifest::load(fd.get());
  std::vector<std::string> files;
  for (const auto& [rel, entry] : m.files)
    if (entry.state == staging::ManifestEntry::State::Staged) files.push_back(rel);
  return files;  // std::map: already sorted
}

}  // namespace sluice
