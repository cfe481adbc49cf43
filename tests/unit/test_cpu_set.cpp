#define BOOST_TEST_MODULE cpu_set
#include <boost/test/unit_test.hpp>

#include <sluice/common/cpu_set.hpp>
#include <sluice/common/error.hpp>

using sluice::CpuSet;

BOOST_AUTO_TEST_CASE(parses_and_prints_list_syntax) {
  CpuSet s = CpuSet::parse("0-3,8,10-11");
  BOOST_TEST(s.size() == 7u);
  BOOST_TEST(s.contains(8));
  BOOST_TEST(!s.contains(9));
  BOOST_TEST(s.to_string() == "0-3,8,10-11");
  BOOST_TEST(CpuSet::from_indices({5, 3, 4, 4, 9}).to_string() == "3-5,9");
  BOOST_TEST(CpuSet::parse("").empty());
}

BOOST_AUTO_TEST_CASE(set_algebra) {
  CpuSet a = CpuSet::range(0, 7), b = CpuSet::parse("4-11");
  BOOST_TEST((a & b).to_string() == "4-7");
  BOOST_TEST((a | b).to_string() == "0-11");
  BOOST_TEST((a - b).to_string() == "0-3");
  BOOST_TEST(a.contains(CpuSet::parse("1,3")));
  BOOST_TEST(!a.contains(b));
  BOOST_TEST(a.intersects(b));
}

BOOST_AUTO_TEST_CASE(rejects_malformed_and_hostile_lists) {
  for (const char* bad : {"a", "1-", "-1", "1,,2", "1--2", ",1", "1,", "0-99999999", "1 2", "0x3"}) {
    BOOST_TEST_CONTEXT("input " << bad) { BOOST_CHECK_THROW(CpuSet::parse(bad), sluice::InvalidArgument); }
  }
  try {
    CpuSet::parse("3-x", "GPU list");
    BOOST_FAIL("no exception");
  } catch (const sluice::InvalidArgument& e) {
    BOOST_TEST(std::string(e.what()).find("GPU list '3-x'") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(decimal_ascending_and_bounded) {
  BOOST_TEST(CpuSet::parse("010").to_string() == "10");  // decimal, never octal
  BOOST_TEST(CpuSet::parse("08").to_string() == "8");
  BOOST_CHECK_THROW(CpuSet::parse("0-1-2"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(CpuSet::parse("5-3"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(CpuSet::parse("0-4294967294"), sluice::InvalidArgument);  // refused before allocating
  BOOST_TEST(CpuSet::parse("65536").size() == 1u);
  BOOST_CHECK_THROW(CpuSet::parse("65537"), sluice::InvalidArgument);
}

// User text in messages is cut and escaped: a value cannot forge or flood slurmd's log.
BOOST_AUTO_TEST_CASE(messages_quote_hostile_input_safely) {
  try {
    CpuSet::parse("1\nslurmd: error: forged line " + std::string(200, 'x'));
    BOOST_FAIL("no exception");
  } catch (const sluice::InvalidArgument& e) {
    std::string m = e.what();
    BOOST_TEST(m.find('\n') == std::string::npos);
    BOOST_TEST(m.find("1\\x0aslurmd") != std::string::npos);
    BOOST_TEST(m.size() < 200u);
  }
  BOOST_TEST(sluice::quote_input("a\\b") == "a\\x5cb");
}
