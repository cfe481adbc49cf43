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

namespace {

// A JSON string as nlohmann::json::dump writes it. Plain ASCII (the usual path) is
// written directly; anything else goes through nlohmann (same escapes, same refusal of
// invalid UTF-8), so the text stays what from_json parses.
void append_string(std::string& out, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += json(s).dump();
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

}  // namespace

// The same text as json{...}.dump(1) (keys sorted, one-space indent), written by hand: a
// stage of 20,000 files writes its manifest several times, and building a json tree for it
// took a quarter of a second each time.
std::string Manifest::to_json() const {
  std::string out = "{\n \"files\": [";
  out.reserve(files.size() * 220 + 64);
  bool first = true;
  for (const auto& [path, e] : files) {
    const bool staged = e.state == ManifestEntry::State::Staged;
    out += first ? "\n  {\n   \"chunk_size\": " : ",\n  {\n   \"chunk_size\": ";
    first = false;
    out += std::to_string(e.chunk_size);
    out += ",\n   \"mtime_ns\": ";
    out += std::to_string(e.mtime_ns);
    out += ",\n   \"path\": ";
    append_string(out, path);
    out += ",\n   \"size\": ";
    out += std::to_string(e.size);
    out += ",\n   \"source\": ";
    append_string(out, e.source);
    out += staged ? ",\n   \"state\": \"staged\",\n   \"xxh3\": \"" : ",\n   \"state\": \"pending\",\n   \"xxh3\": \"";
    if (staged) out += to_hex(e.xxh3);
    out += "\"\n  }";
  }
  out += files.empty() ? "],\n \"version\": 1\n}\n" : "\n ],\n \"version\": 1\n}\n";
  return out;
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
