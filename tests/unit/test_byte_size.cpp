#define BOOST_TEST_MODULE byte_size
#include <sluice/common/error.hpp>
#include <sluice/common/strings.hpp>

#include <boost/test/unit_test.hpp>

using sluice::parse_byte_size;

BOOST_AUTO_TEST_CASE(units_are_binary_multiples) {
  BOOST_TEST(parse_byte_size("512", "x") == 512u);
  BOOST_TEST(parse_byte_size("64K", "x") == 65536u);
  BOOST_TEST(parse_byte_size("64kib", "x") == 65536u);
  BOOST_TEST(parse_byte_size("1.5G", "x") == 1610612736u);
  BOOST_TEST(parse_byte_size("2TiB", "x") == 2199023255552u);
  BOOST_TEST(parse_byte_size("0", "x") == 0u);
}

BOOST_AUTO_TEST_CASE(bad_sizes_name_the_setting) {
  for (const char* bad : {"", "G", "-1", "1.5", "12Q", "1e3", "99999999999999P", "1 G"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_CHECK_EXCEPTION(parse_byte_size(bad, "cache_max"), sluice::InvalidArgument,
                            [](const sluice::InvalidArgument& e) {
                              return std::string(e.what()).rfind("cache_max '", 0) == 0;
                            });
    }
  }
}

// escape_text lives beside quote_input; both are the only way user text reaches a log.
BOOST_AUTO_TEST_CASE(escape_text_keeps_names_but_no_control_bytes) {
  using sluice::escape_text;
  BOOST_TEST(escape_text("data/shard-01.h5") == "data/shard-01.h5");
  BOOST_TEST(escape_text("caf\xc3\xa9 \xe6\x97\xa5") == "caf\xc3\xa9 \xe6\x97\xa5");  // é, 日 kept
  BOOST_TEST(escape_text("evil\nsluice: forged \x1b[31mred") ==
             "evil\\x0asluice: forged \\x1b[31mred");
  BOOST_TEST(escape_text("a\\x0ab") == "a\\x0ab");  // idempotent on quote_input's output
  BOOST_TEST(escape_text(escape_text("x\ny")) == "x\\x0ay");
  BOOST_TEST(escape_text("\xc2\x9b" "2J") == "\\xc2\\x9b2J");  // C1 CSI as UTF-8
  BOOST_TEST(escape_text("\x9b" "2J") == "\\x9b2J");           // raw 8-bit CSI
  BOOST_TEST(escape_text("\xc0\xaf") == "\\xc0\\xaf");        // overlong '/'
  BOOST_TEST(escape_text("\x7f") == "\\x7f");
  const std::string long_name(5000, 'x');
  BOOST_TEST(escape_text(long_name) == long_name);  // not truncated, unlike quote_input
}
