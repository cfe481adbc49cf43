#define BOOST_TEST_MODULE staging_spec
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/spec.hpp>

#include <climits>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace sluice;
using namespace sluice::staging;

namespace {

// The message must name the spec, so a user knows which of several options is wrong.
void expect_refused(const std::string& spec, const std::string& why) {
  try {
    parse_spec(spec);
    BOOST_ERROR("accepted hostile spec: " << spec);
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find(why) != std::string::npos, "'" << msg << "' should say '" << why << "'");
    BOOST_TEST(msg.find("stage spec '") != std::string::npos, msg);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(source_only_defaults_destination_to_its_last_component) {
  StageSpec s = parse_spec("/lustre/proj/imagenet");
  BOOST_TEST(s.src == "/lustre/proj/imagenet");
  BOOST_TEST(s.dst == "imagenet");
  BOOST_TEST(!s.shard);
}

BOOST_AUTO_TEST_CASE(destination_and_shard_flag) {
  StageSpec s = parse_spec("/lustre/proj/imagenet:data/train:shard");
  BOOST_TEST(s.src == "/lustre/proj/imagenet");
  BOOST_TEST(s.dst == "data/train");
  BOOST_TEST(s.shard);
  StageSpec t = parse_spec("/lustre/x:shard");  // the flag, not a destination called "shard"
  BOOST_TEST(t.dst == "x");
  BOOST_TEST(t.shard);
  BOOST_TEST(parse_spec("/lustre/x:./shard").dst == "shard");
}

BOOST_AUTO_TEST_CASE(paths_are_made_lexically_normal) {
  StageSpec s = parse_spec("//lustre/./proj//x/:./a//b/.");
  BOOST_TEST(s.src == "/lustre/proj/x");
  BOOST_TEST(s.dst == "a/b");
  BOOST_TEST(parse_spec("/lustre/x:.").dst == ".");  // the burst-buffer directory itself
}

BOOST_AUTO_TEST_CASE(hostile_specs_are_refused_naming_the_spec) {
  expect_refused("relative/path", "SRC must be an absolute path");
  expect_refused("/data:/etc", "must be relative");
  expect_refused("/data/../etc/shadow", "'..' component");
  expect_refused("/data:../../etc", "'..' component");
  expect_refused("/data:a/../../b", "'..' component");
  expect_refused("/data:a/..", "'..' component");
  expect_refused("", "empty part");
  expect_refused(":dst", "empty part");
  expect_refused("/data:", "empty part");
  expect_refused("/data::shard", "empty part");
  expect_refused("/a:b:c", "too many");
  expect_refused("/a:b:shard:shard", "too many");
  expect_refused("/", "root directory");
  expect_refused("/data\nfake log line", "control character");
  expect_refused("/data:x\ry", "control character");
  expect_refused("/data:\x1b[31mred", "control character");
  expect_refused(std::string("/data\0/x", 8), "control character");
  expect_refused("/" + std::string(PATH_MAX, 'a'), "PATH_MAX");
  expect_refused("/data:" + std::string(NAME_MAX + 1, 'b'), "NAME_MAX");
}

BOOST_AUTO_TEST_CASE(control_characters_are_escaped_in_messages) {
  try {
    parse_spec("/data\n\x1b[2J");
    BOOST_ERROR("accepted");
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find('\n') == std::string::npos);
    BOOST_TEST(msg.find('\x1b') == std::string::npos);
    BOOST_TEST(msg.find("\\x0a") != std::string::npos, msg);
  }
}

BOOST_AUTO_TEST_CASE(normalize_relative_refuses_escapes) {
  BOOST_TEST(normalize_relative("a/./b//c", "DST") == "a/b/c");
  BOOST_CHECK_THROW(normalize_relative("/abs", "DST"), InvalidArgument);
  BOOST_CHECK_THROW(normalize_relative("..", "DST"), InvalidArgument);
  BOOST_CHECK_THROW(normalize_relative("", "DST"), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(spec_lists_skip_comments_and_blank_lines) {
  auto specs = parse_spec_list("# training data\n\n  /lustre/a:x  \n\t# indented comment\n/lustre/b:y:shard\n", "m.txt");
  BOOST_REQUIRE(specs.size() == 2u);
  BOOST_TEST(specs[0].src == "/lustre/a");
  BOOST_TEST(specs[0].dst == "x");
  BOOST_TEST(specs[1].shard);
  BOOST_TEST(parse_spec_list("", "m").empty());
}

BOOST_AUTO_TEST_CASE(spec_list_errors_name_file_and_line) {
  try {
    parse_spec_list("/ok\n# c\n/bad:../x\n", "jobs.manifest");
    BOOST_ERROR("accepted");
  } catch (const InvalidArgument& e) {
    BOOST_TEST(std::string(e.what()).find("jobs.manifest:3: ") == 0u, e.what());
  }
  BOOST_CHECK_THROW(parse_spec_list("@/other/manifest\n", "m"), InvalidArgument);
  BOOST_CHECK_THROW(parse_spec_list(std::string(kMaxManifestBytes + 1, '#'), "m"), InvalidArgument);
  std::string many;
  for (std::size_t i = 0; i <= kMaxSpecs; ++i) many += "/d/" + std::to_string(i) + "\n";
  BOOST_CHECK_THROW(parse_spec_list(many, "m"), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(at_file_reads_a_manifest) {
  char path[] = "/tmp/sluice-spec-test-XXXXXX";
  int fd = ::mkstemp(path);
  BOOST_REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << "/lustre/a\n/lustre/b:bee\n";
  auto specs = parse_spec_arg(std::string("@") + path);
  std::remove(path);
  BOOST_REQUIRE(specs.size() == 2u);
  BOOST_TEST(specs[1].dst == "bee");
  BOOST_TEST(parse_spec_arg("/lustre/c").at(0).dst == "c");
  BOOST_CHECK_THROW(parse_spec_arg("@/nonexistent/manifest"), InvalidArgument);
  BOOST_CHECK_THROW(parse_spec_arg("@"), InvalidArgument);
}

namespace sluice::staging {
std::ostream& operator<<(std::ostream& os, const StageOutSpec& s) { return os << to_string(s); }
std::ostream& operator<<(std::ostream& os, const StageSpec& s) { return os << to_string(s); }
}  // namespace sluice::staging

BOOST_AUTO_TEST_CASE(stage_out_specs_take_a_relative_source_and_an_absolute_destination) {
  BOOST_TEST(parse_out_spec("results:/lustre/me/run1") == (StageOutSpec{"results", "/lustre/me/run1"}));
  BOOST_TEST(parse_out_spec(".:/lustre/me/all") == (StageOutSpec{".", "/lustre/me/all"}));
  BOOST_TEST(parse_out_spec("a//./b:/x//y/") == (StageOutSpec{"a/b", "/x/y"}));
  for (const char* bad : {"results", "results:", ":/x", "/abs:/x", "a:rel", "../up:/x", "a:/x/../y", "a:/x:/y",
                          "a:/", "a\n:/x"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_CHECK_EXCEPTION(parse_out_spec(bad), sluice::InvalidArgument, [](const sluice::InvalidArgument& e) {
        return std::string(e.what()).rfind("stage spec '", 0) == 0;
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(canonical_text_round_trips) {
  for (const char* text : {"/data/set", "/data/set:dst", "/data/set:.", "/data/set:shard:shard", "/data/set:a/b:shard",
                           "/data/shard"}) {
    BOOST_TEST_CONTEXT(text) {
      const StageSpec s = parse_spec(text);
      BOOST_TEST(parse_spec(to_string(s)) == s);
    }
  }
  const StageOutSpec o = parse_out_spec("out:/lustre/o");
  BOOST_TEST(to_string(o) == "out:/lustre/o");
  BOOST_TEST(parse_out_spec(to_string(o)) == o);
}
