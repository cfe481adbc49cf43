#define BOOST_TEST_MODULE staging_manifest
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/hash.hpp>
#include <sluice/staging/manifest.hpp>

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;

namespace {

struct Sandbox {
  fs::path dir;
  UniqueFd fd;
  Sandbox() {
    char tmpl[] = "/tmp/sluice-manifest-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    fd = open_root(dir.string(), false);
  }
  ~Sandbox() { fs::remove_all(dir); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_through_the_file) {
  Sandbox s;
  Manifest m;
  m.files["a/b.h5"] = {"/lustre/a/b.h5", 123, 1700000000123456789, 0x0123456789abcdefull, 0,
                       ManifestEntry::State::Staged};
  m.files["big"] = {"/lustre/big", 5u << 20, 42, 0xffull, 1u << 20, ManifestEntry::State::Staged};
  m.files["later"] = {"/lustre/later", 7, 1, 0, 0, ManifestEntry::State::Pending};
  Manifest::save(s.fd.get(), m.to_json());
  Manifest back = Manifest::load(s.fd.get());
  BOOST_TEST((back.files == m.files));
  // Written atomically: only the manifest is left, no temporary file.
  BOOST_TEST(std::distance(fs::directory_iterator(s.dir), fs::directory_iterator()) == 1);
  const std::string text = m.to_json();
  BOOST_TEST(text.find("\"xxh3\": \"0123456789abcdef\"") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(absent_manifest_is_empty) {
  Sandbox s;
  BOOST_TEST(Manifest::load(s.fd.get()).files.empty());
}

BOOST_AUTO_TEST_CASE(corrupt_manifest_is_an_error_naming_it) {
  Sandbox s;
  for (const char* bad : {"{not json", "{\"version\":2,\"files\":[]}",
                          "{\"version\":1,\"files\":[{\"path\":\"x\",\"source\":\"/x\",\"size\":1,\"mtime_ns\":1,"
                          "\"chunk_size\":0,\"state\":\"staged\",\"xxh3\":\"nothex\"}]}"}) {
    { std::ofstream(s.dir / kManifestName) << bad; }
    try {
      Manifest::load(s.fd.get());
      BOOST_ERROR("accepted " << bad);
    } catch (const Error& e) {
      BOOST_TEST(std::string(e.what()).find((s.dir / kManifestName).string()) != std::string::npos, e.what());
    }
  }
}

// The documented digest layout, computed independently of hash_file.
BOOST_AUTO_TEST_CASE(chunked_digest_is_xxh3_of_little_endian_chunk_digests) {
  Sandbox s;
  std::string data(2500, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  { std::ofstream(s.dir / "f", std::ios::binary) << data; }
  UniqueFd fd(::open((s.dir / "f").c_str(), O_RDONLY));
  unsigned char le[3 * 8];
  for (int c = 0; c < 3; ++c) {
    const std::uint64_t d = XXH3_64bits(data.data() + c * 1000, c == 2 ? 500 : 1000);
    for (int b = 0; b < 8; ++b) le[c * 8 + b] = static_cast<unsigned char>(d >> (8 * b));
  }
  BOOST_TEST(hash_file(fd.get(), data.size(), 1000, "f") == XXH3_64bits(le, sizeof le));
  BOOST_TEST(hash_file(fd.get(), data.size(), 0, "f") == XXH3_64bits(data.data(), data.size()));
  BOOST_TEST(hash_file(fd.get(), data.size(), 4096, "f") == XXH3_64bits(data.data(), data.size()));
  BOOST_CHECK_THROW(hash_file(fd.get(), data.size() + 1, 0, "f"), Error);  // shorter than recorded
}

BOOST_AUTO_TEST_CASE(hex_digests) {
  BOOST_TEST(to_hex(0xabcull) == "0000000000000abc");
  BOOST_TEST(from_hex("0000000000000abc") == 0xabcull);
  BOOST_CHECK_THROW(from_hex("abc"), InvalidArgument);
  BOOST_CHECK_THROW(from_hex("000000000000ABCD"), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(to_json_writes_what_nlohmann_would) {
  // to_json is written by hand for speed; it must stay the text json::dump(1) gives.
  Manifest m;
  BOOST_TEST(m.to_json() == nlohmann::json({{"version", 1}, {"files", nlohmann::json::array()}}).dump(1) + "\n");
  m.files["a/b.h5"] = {"/lustre/x/a/b.h5", 123, 1700000000123456789, 0x0123456789abcdefull, 0, ManifestEntry::State::Staged};
  m.files["sp ace \"q\" \\ \t\n\x01 \xc3\xa9"] = {"/src/\xe2\x82\xac", 0, -5, 0, 64 << 20, ManifestEntry::State::Pending};
  nlohmann::json files = nlohmann::json::array();
  for (const auto& [path, e] : m.files)
    files.push_back({{"path", path},
                     {"source", e.source},
                     {"size", e.size},
                     {"mtime_ns", e.mtime_ns},
                     {"xxh3", e.state == ManifestEntry::State::Staged ? to_hex(e.xxh3) : ""},
                     {"chunk_size", e.chunk_size},
                     {"state", e.state == ManifestEntry::State::Staged ? "staged" : "pending"}});
  BOOST_TEST(m.to_json() == nlohmann::json({{"version", 1}, {"files", files}}).dump(1) + "\n");
  BOOST_TEST((Manifest::from_json(m.to_json(), "test").files == m.files));
}
