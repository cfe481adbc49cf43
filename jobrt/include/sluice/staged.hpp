// sluice job runtime: the job's burst buffer ($SLUICE_BB) and the files staged into it.
// With --stage-mode=async the tasks start while stage-in runs: a file appears under its
// final name only once complete, so a reader waits for each file it needs, not for the
// whole dataset.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

struct StagedData {
  std::string bb_dir;       // $SLUICE_BB: this node's burst buffer for the job
  std::string status_path;  // $SLUICE_STAGE_STATUS: the node's staging record
  bool async = false;       // $SLUICE_STAGE_MODE == "async"
};

// std::nullopt outside a sluice job (no SLUICE_BB).
std::optional<StagedData> staged_data_from_environment();

enum class StageInState { Running, Ready, Failed };

// The stage-in's state on this node, from the status record; ERROR (when not null) gets
// the reason of a failure. Throws sluice::Error when the record cannot be read.
StageInState stage_in_state(const StagedData& data, std::string* error = nullptr);

// Waits until PATH (relative to the burst buffer, or absolute inside it) is staged.
// true: it is there, complete. false: the stage-in finished and PATH is not on this node
// (in shard mode, another node's share). Throws sluice::Error when the stage-in failed
// (with its reason) or TIMEOUT passed first (naming PATH).
bool wait_for_staged(const StagedData& data, const std::string& path, std::chrono::milliseconds timeout);

// The files staged so far into DIR (a stage-in destination inside the burst buffer),
// relative to it, sorted, as DIR/.sluice-manifest.json records them. In shard mode: this
// node's share. Throws sluice::Error when the manifest cannot be read.
std::vector<std::string> staged_files(const std::string& dir);

}  // namespace sluice
