// Source paths -> staged copies, from the manifests of $SLUICE_BB (docs/staging.md): each
// stage-in destination DST holds DST/.sluice-manifest.json whose entries name their source.
#include "internal.hpp"

#include <sluice/staged.hpp>
#include <sluice/staging/manifest.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <thread>

namespace fs = std::filesystem;

namespace sluice::reader::detail {
namespace {

struct StagedEntry {
  std::string path;  // absolute, inside the burst buffer
  bool staged = false;
};

// Every manifest under BB: the burst buffer itself and directories up to 3 levels down. A
// directory holding a manifest is a stage destination whose manifest covers its whole tree,
// so it is not descended into (a staged dataset of a million files is never listed);
// dot-directories (the stager's temporaries, the node cache) are skipped.
void add_manifest(const fs::path& dir, std::map<std::string, StagedEntry>& by_source, bool* found_any) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return;
  staging::Manifest m;
  try {
    m = staging::Manifest::load(fd.get());
  } catch (const Error&) {
    return;  // being rewritten, or not ours: the source stays readable
  }
  *found_any = true;
  for (const auto& [rel, e] : m.files)
    by_source[fs::path(e.source).lexically_normal().string()] = {(dir / rel).lexically_normal().string(),
                                                                 e.state == staging::ManifestEntry::State::Staged};
}

std::map<std::string, StagedEntry> load_manifests(const std::string& bb, bool* found_any) {
  std::map<std::string, StagedEntry> by_source;
  std::vector<std::pair<fs::path, int>> todo{{fs::path(bb), 0}};
  while (!todo.empty()) {
    auto [dir, depth] = todo.back();
    todo.pop_back();
    std::error_code ec;
    if (fs::exists(dir / staging::kManifestName, ec)) {
      add_manifest(dir, by_source, found_any);
      continue;
    }
    if (depth >= 3) continue;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->is_symlink(ec) || !it->is_directory(ec)) continue;
      if (it->path().filename().string().starts_with(".")) continue;
      todo.emplace_back(it->path(), depth + 1);
    }
  }
  return by_source;
}

}  // namespace

std::vector<std::string> resolve_staged(const std::vector<std::string>& files, const ReaderOptions& o) {
  std::vector<std::string> out(files);
  if (!o.use_staged) return out;
  const auto data = staged_data_from_environment();
  if (!data) return out;

  bool any = false;
  auto map = load_manifests(data->bb_dir, &any);
  // Async: the stager writes its plan (pending entries) before the first copy; until a
  // manifest appears, and while the stage-in runs, wait for it.
  if (data->async) {
    const auto deadline = std::chrono::steady_clock::now() + o.staged_timeout;
    while (!any && stage_in_state(*data) == StageInState::Running && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      map = load_manifests(data->bb_dir, &any);
    }
  }
  for (std::string& f : out) {
    std::error_code ec;
    fs::path abs = fs::absolute(f, ec).lexically_normal();
    auto it = map.find(abs.string());
    if (it == map.end()) {
      const fs::path canon = fs::weakly_canonical(abs, ec);
      if (!ec) it = map.find(canon.string());
    }
    if (it == map.end()) continue;  // not staged: read the source
    if (data->async) {
      if (wait_for_staged(*data, it->second.path, o.staged_timeout)) f = it->second.path;
    } else if (it->second.staged) {
      f = it->second.path;
    }
  }
  return out;
}

}  // namespace sluice::reader::detail
