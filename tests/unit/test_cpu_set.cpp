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
