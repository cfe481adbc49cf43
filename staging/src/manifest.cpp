#include <sluice/staging/manifest.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/hash.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>

namespace sluice::staging {

using nlohmann::json;

std::string Manifest::to_json() const {
  json files_json = json::array();
  for (const auto& [path, e] : files) {
    files_json.push_back({{"path", path},
                          {"source", e.source},
                          {"size", e.size},
                          {"mtime_ns", e.mtime_ns},
                          {"xxh3", e.state == ManifestEntry::State::Staged ? to_hex(e.xxh3) : ""},
                          {"chunk_size", e.chunk_size},
                          {"state", e.state == ManifestEntry::State::Staged ? "staged" : "pending"}});
  }
  return json{{"version", 1}, {"files", std::move(files_json)}}.dump(1) + "\n";
}

Manifest Manifest::from_json(const std::string& text, const std::string& origin) {
  Manifest m;
  try {
    json j = json::parse(text);
    if (j.at("version").get<int>() != 1) throw Error("unknown version " + j.at("version").dump());
    for (const json& f : j.at("files")) {
      ManifestEntry e;
      e.source = f.at("source").get<std::string>();
      e.size = f.at("size").get<std::uint64_t>();
      e.mtime_ns = f.at("mtime_ns").get<std::int64_t>();
      e.chunk_size = f.at("chunk_size").get<std::uint64_t>();
      std::string state = f.at("state").get<std::string>();
      if (state == "staged") {
        e.state = ManifestEntry::State::Staged;
        e.xxh3 = from_hex(f.at("xxh3").get<std::string>());
      } else if (state != "pending") {
        throw Error("unknown state '" + state + "'");
      }
      m.files[f.at("path").get<std::string>()] = std::move(e);
    }
  } catch (const std::exception& e) {
    throw Error("staging manifest " + origin + " is unreadable (" + e.what() +
                "); remove it to stage again from scratch");
  }
  return m;
}

Manifest Manifest::load(int dir) {
  UniqueFd fd;
  try {
    fd = open_beneath(dir, kManifestName, O_RDONLY);
  } catch (const SystemError& e) {
    if (e.code() == ENOENT) return {};
    throw;
  }
  const std::string name = fd_path(dir) + "/" + kManifestName;
  std::string text;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("read " + name, errno);
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return from_json(text, name);
}

void Manifest::save(int dir, const std::string& json_text) {
  TempFile tmp(open_beneath(dir, ".", O_RDONLY | O_DIRECTORY), kManifestName, 0600);
  const std::string name = fd_path(dir) + "/" + tmp.temp_name();
  for (std::size_t done = 0; done < json_text.size();) {
    ssize_t n = ::write(tmp.fd(), json_text.data() + done, json_text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("write " + name, errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(tmp.fd()) != 0) throw SystemError("fsync " + name, errno);
  tmp.commit(/*replace=*/true);
  if (::fsync(dir) != 0) throw SystemError("fsync " + fd_path(dir), errno);
}

}  // namespace sluice::staging
