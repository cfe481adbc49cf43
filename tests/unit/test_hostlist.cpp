#define BOOST_TEST_MODULE hostlist
#include <sluice/common/error.hpp>
#include <sluice/common/hostlist.hpp>

#include <boost/test/unit_test.hpp>

using sluice::expand_hostlist;
using V = std::vector<std::string>;

BOOST_AUTO_TEST_CASE(plain_names_and_ranges_in_slurm_order) {
  BOOST_TEST(expand_hostlist("node1") == V{"node1"});
  BOOST_TEST(expand_hostlist("node[1-3]") == (V{"node1", "node2", "node3"}));
  BOOST_TEST(expand_hostlist("gpu[1,3-4]-ib,login") == (V{"gpu1-ib", "gpu3-ib", "gpu4-ib", "login"}));
}

BOOST_AUTO_TEST_CASE(zero_padding_is_kept) {
  BOOST_TEST(expand_hostlist("n[08-10]") == (V{"n08", "n09", "n10"}));
}

BOOST_AUTO_TEST_CASE(malformed_lists_are_refused_by_name) {
  for (const char* bad : {"n[1-", "n]1[", "n[3-1]", "n[a-b]", "a,,b", "a,", "n[1][2]", "n[1-2]x[3]", "n[[1]]"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_CHECK_EXCEPTION(expand_hostlist(bad), sluice::InvalidArgument, [](const sluice::InvalidArgument& e) {
        return std::string(e.what()).find("host list") != std::string::npos;
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(huge_expansions_are_refused) {
  BOOST_CHECK_THROW(expand_hostlist("n[0-999999999]"), sluice::InvalidArgument);
  BOOST_CHECK_THROW(expand_hostlist("n[1-20]", 10), sluice::InvalidArgument);
  BOOST_TEST(expand_hostlist("n[1-10]", 10).size() == 10u);
}
