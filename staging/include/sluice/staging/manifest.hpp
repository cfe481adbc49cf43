// The staging manifest: DST/.sluice-manifest.json records what was staged into DST, so an
// interrupted stage resumes (files whose source is unchanged are skipped) and a staged
// file can be verified later. Written atomically (temporary file, fsync, rename).
//
// {"version":1,"files":[{"path":"a/b.h5","source":"/lustre/x/a/b.h5","size":123,
//   "mtime_ns":1700000000123456789,"xxh3":"0123456789abcdef","chunk_size":0,"state":"staged"}]}
//
// state "pending": planned by a stage that may have been interrupted (the final name, if
// present, came from that stage and may be replaced); "staged": renamed into place with
// the digest of the data as written (see hash.hpp for chunk_size).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sluice::staging {

inline constexpr const char* kManifestName = ".sluice-manifest.json";

struct ManifestEntry {
  enum class State { Pending, Staged };
  std::string source;  // absolute path of the source file
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;  // source mtime
  std::uint64_t xxh3 = 0;     // meaningful when staged
  std::uint64_t chunk_size = 0;
  State state = State::Pending;
  bool operator==(const ManifestEntry&) const = default;
};

struct Manifest {
  std::map<std::string, ManifestEntry> files;  // key: path relative to the manifest's directory

  std::string to_json() const;
  // Throws Error naming ORIGIN when the text is not a manifest.
  static Manifest from_json(const std::string& text, const std::string& origin);

  // Reads DIR/.sluice-manifest.json (opened beneath DIR); absent gives an empty manifest.
  static Manifest load(int dir);
  // Writes JSON as DIR/.sluice-manifest.json atomically.
  static void save(int dir, const std::string& json);
};

}  // namespace sluice::staging
