// A per-process scratch directory for the reader tests, removed when the test exits.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace sluice::reader::test {

// NAME: what the directory is for, in its name under the temp directory.
inline std::filesystem::path scratch_dir(const std::string& name) {
  namespace fs = std::filesystem;
  static const fs::path dir = [&] {
    fs::path d = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  static const struct Cleanup {
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup;
  return dir;
}

}  // namespace sluice::reader::test
