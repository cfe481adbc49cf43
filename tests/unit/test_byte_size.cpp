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
