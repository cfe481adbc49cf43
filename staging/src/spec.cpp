#include <sluice/staging/spec.hpp>

#include <sluice/common/error.hpp>

#include <climits>
#include <fstream>
#include <sstream>

namespace sluice::staging {
namespace {

// Messages quote user input; control characters are shown escaped so a hostile spec
// cannot forge log lines or terminal sequences.
std::string quoted(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 200) out += "...";
  return out + "'";
}

[[noreturn]] void bad(std::string_view spec, const std::string& why) {
  throw InvalidArgument("stage spec " + quoted(spec) + ": " + why);
}

void check_text(std::string_view text, std::string_view what) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) throw InvalidArgument(std::string(what) + " " + quoted(text) + ": control character in path");
  if (text.size() >= PATH_MAX)
    throw InvalidArgument(std::string(what) + " " + quoted(text) + ": longer than PATH_MAX (" +
                          std::to_string(PATH_MAX - 1) + " bytes)");
}

// Lexically normal components: empty and '.' components dropped, '..' refused.
std::string join_components(std::string_view path, std::string_view what) {
  std::string out;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    if (c == "..") throw InvalidArgument(std::string(what) + " " + quoted(path) + ": '..' component");
    if (c.size() > NAME_MAX)
      throw InvalidArgument(std::string(what) + " " + quoted(path) + ": component longer than NAME_MAX");
    if (!c.empty() && c != ".") {
      if (!out.empty()) out += '/';
      out += c;
    }
    i = j + 1;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string normalize_relative(std::string_view path, std::string_view what) {
  check_text(path, what);
  if (path.empty()) throw InvalidArgument(std::string(what) + " is empty");
  if (path.front() == '/') throw InvalidArgument(std::string(what) + " " + quoted(path) + ": must be relative");
  std::string out = join_components(path, what);
  return out.empty() ? "." : out;
}

StageSpec parse_spec(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) bad(text, "control character");
  if (text.size() >= 2 * PATH_MAX) bad(text, "too long");
  std::vector<std::string_view> parts;
  for (std::size_t i = 0;;) {
    std::size_t j = text.find(':', i);
    parts.push_back(text.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  StageSpec spec;
  if (parts.size() >= 2 && parts.back() == "shard") {
    spec.shard = true;
    parts.pop_back();
  }
  if (parts.size() > 2) bad(text, "too many ':'-separated parts (expected SRC[:DST][:shard]; paths may not contain ':')");
  for (auto p : parts)
    if (p.empty()) bad(text, "empty part (expected SRC[:DST][:shard])");

  std::string_view src = parts[0];
  if (src.front() != '/') bad(text, "SRC must be an absolute path");
  std::string rel;
  try {
    check_text(src, "SRC");
    rel = join_components(src, "SRC");
    if (parts.size() == 2) spec.dst = normalize_relative(parts[1], "DST");
  } catch (const InvalidArgument& e) {
    bad(text, e.what());
  }
  if (rel.empty()) bad(text, "SRC is the root directory");
  spec.src = "/" + rel;
  if (parts.size() == 1) spec.dst = rel.substr(rel.rfind('/') + 1);  // SRC's last component
  return spec;
}

StageOutSpec parse_out_spec(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) bad(text, "control character");
  if (text.size() >= 2 * PATH_MAX) bad(text, "too long");
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) bad(text, "expected SRC:DST (SRC in the burst buffer, DST an absolute path)");
  const std::string_view src = text.substr(0, colon), dst = text.substr(colon + 1);
  if (dst.find(':') != std::string_view::npos) bad(text, "too many ':' (expected SRC:DST; paths may not contain ':')");
  if (src.empty() || dst.empty()) bad(text, "empty part (expected SRC:DST)");
  if (dst.front() != '/') bad(text, "DST must be an absolute path");
  StageOutSpec spec;
  try {
    spec.src = normalize_relative(src, "SRC");
    check_text(dst, "DST");
    spec.dst = "/" + join_components(dst, "DST");
  } catch (const InvalidArgument& e) {
    bad(text, e.what());
  }
  if (spec.dst == "/") bad(text, "DST is the root directory");
  return spec;
}

std::string to_string(const StageSpec& spec) {
  std::string dst = spec.dst == "shard" ? "./shard" : spec.dst;
  return spec.src + ":" + dst + (spec.shard ? ":shard" : "");
}

std::string to_string(const StageOutSpec& spec) { return spec.src + ":" + spec.dst; }

std::vector<StageSpec> parse_spec_list(std::string_view text, std::string_view origin) {
  if (text.size() > kMaxManifestBytes)
    throw InvalidArgument(std::string(origin) + ": larger than " + std::to_string(kMaxManifestBytes) + " bytes");
  std::vector<StageSpec> specs;
  std::size_t line_no = 0;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = trim(text.substr(i, j - i));
    ++line_no;
    i = j + 1;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = std::string(origin) + ":" + std::to_string(line_no) + ": ";
    if (line.front() == '@') throw InvalidArgument(where + "manifests may not include other manifests");
    if (specs.size() == kMaxSpecs) throw InvalidArgument(where + "more than " + std::to_string(kMaxSpecs) + " specs");
    try {
      specs.push_back(parse_spec(line));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(where + e.what());
    }
  }
  return specs;
}

std::vector<StageSpec> parse_spec_arg(std::string_view arg) {
  if (arg.empty() || arg.front() != '@') return {parse_spec(arg)};
  std::string path(arg.substr(1));
  check_text(path, "manifest");
  if (path.empty()) throw InvalidArgument("stage spec '@': no manifest file named");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidArgument("manifest " + quoted(path) + ": cannot be read");
  std::string text(kMaxManifestBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw InvalidArgument("manifest " + quoted(path) + ": read error");
  return parse_spec_list(text, path);
}

}  // namespace sluice::staging
