// Stage specs: what a user asks to stage, as given to --stage-in/--stage-out or in a
// manifest file. Parsing is strict because specs come from users and end up as paths
// that a privileged process may create under a job's burst-buffer directory.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::staging {

// SRC[:DST][:shard]
//   SRC    absolute path on the shared file system (file or directory)
//   DST    relative to the job's burst-buffer directory; default: SRC's last component
//   shard  flag: each node stages only its share (used by the shard mode, later)
// Paths may not contain ':' (the separator), control characters, or '..' components.
struct StageSpec {
  std::string src;  // absolute, lexically normal (no '.', no empty components, no trailing '/')
  std::string dst;  // relative, lexically normal; "." for the burst-buffer directory itself
  bool shard = false;
  bool operator==(const StageSpec&) const = default;
};

// --stage-out=SRC:DST
//   SRC  relative to the job's burst-buffer directory ("." for all of it)
//   DST  absolute path on the shared file system; it mirrors SRC (as `sluice-stage out`)
struct StageOutSpec {
  std::string src;  // relative, lexically normal
  std::string dst;  // absolute, lexically normal
  bool operator==(const StageOutSpec&) const = default;
};

// Bounds on manifest files: they are user input read by a privileged process.
inline constexpr std::size_t kMaxManifestBytes = 1 << 20;
inline constexpr std::size_t kMaxSpecs = 4096;

// One spec; throws InvalidArgument naming the spec and what is wrong with it.
StageSpec parse_spec(std::string_view text);

// The lines of a manifest: one spec per line; blank lines and lines whose first non-blank
// character is '#' are ignored; leading/trailing blanks are trimmed. `origin` names the
// source in messages ("FILE:LINE: ...").
std::vector<StageSpec> parse_spec_list(std::string_view text, std::string_view origin);

// A spec argument: "@FILE" reads a manifest file (no nesting), anything else is one spec.
std::vector<StageSpec> parse_spec_arg(std::string_view arg);

// One stage-out spec; throws InvalidArgument naming the spec.
StageOutSpec parse_out_spec(std::string_view text);

// The canonical text of a spec: parsing it gives the spec back (a destination named
// "shard" is written "./shard").
std::string to_string(const StageSpec& spec);
std::string to_string(const StageOutSpec& spec);

// Checks a relative path (no leading '/', no '..', no control characters, within
// PATH_MAX/NAME_MAX) and returns it lexically normal. `what` names it in messages.
std::string normalize_relative(std::string_view path, std::string_view what);

}  // namespace sluice::staging
