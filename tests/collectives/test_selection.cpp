// The selection rule and the cost model (collectives/README.md): one node -> shm; several
// nodes with several ranks each -> hierarchical; otherwise the cost model picks recursive
// doubling for small, Rabenseifner for middle and the ring for large messages. Also the
// SLUICE_* environment parsing.
#define BOOST_TEST_MODULE collectives_selection
#include <boost/test/unit_test.hpp>

#include "../../collectives/src/selection.hpp"

#include <sluice/collectives/communicator.hpp>

#include <cstdlib>
#include <string>

using namespace sluice::coll;

BOOST_AUTO_TEST_CASE(topology_decides_first) {
  const std::size_t seg = 256 * 1024;
  Topology one_node{8, 1, 8, true, true};
  for (std::size_t b : {std::size_t(4), std::size_t(1) << 20, std::size_t(1) << 28})
    BOOST_TEST(int(select_algorithm(b, one_node, seg)) == int(Algorithm::shm));
  Topology two_nodes{8, 2, 4, true, true};
  BOOST_TEST(int(select_algorithm(4, two_nodes, seg)) == int(Algorithm::hierarchical));
  Topology uneven{5, 2, 3, false, true};
  BOOST_TEST(int(select_algorithm(4, uneven, seg)) != int(Algorithm::hierarchical));
  Topology no_shm{8, 1, 8, true, false};
  BOOST_TEST(int(select_algorithm(4, no_shm, seg)) == int(Algorithm::recursive_doubling));
}

BOOST_AUTO_TEST_CASE(cost_model_orders_the_transport_algorithms_by_size) {
  const std::size_t seg = 256 * 1024;
  for (int n : {2, 3, 4, 8, 16, 64}) {
    BOOST_TEST_INFO("n=" << n);
    BOOST_TEST(int(select_transport_algorithm(4, n, seg)) == int(Algorithm::recursive_doubling));
    BOOST_TEST(int(select_transport_algorithm(std::size_t(256) << 20, n, seg)) != int(Algorithm::recursive_doubling));
  }
  // Many ranks, large message: the ring (bandwidth-optimal, and no fold for non-powers of two).
  BOOST_TEST(int(select_transport_algorithm(std::size_t(256) << 20, 6, seg)) == int(Algorithm::ring));
  // The choice changes monotonically: once large enough for the ring, larger stays ring.
  const CostModel m;
  bool seen_ring = false;
  for (std::size_t b = 4; b <= (std::size_t(1) << 30); b *= 2) {
    const Algorithm a = select_transport_algorithm(b, 12, seg, m);
    if (seen_ring) BOOST_TEST(int(a) == int(Algorithm::ring));
    seen_ring = seen_ring || a == Algorithm::ring;
  }
  BOOST_TEST(seen_ring);
}

BOOST_AUTO_TEST_CASE(environment_overrides) {
  ::setenv("SLUICE_ALLREDUCE_ALGO", "ring", 1);
  ::setenv("SLUICE_COLL_TIMEOUT_MS", "2000", 1);
  ::setenv("SLUICE_COLL_CHECK", "0", 1);
  Options o = Options::from_environment();
  BOOST_TEST(int(o.algorithm) == int(Algorithm::ring));
  BOOST_TEST(o.timeout.count() == 2000);
  BOOST_TEST(!o.check_signature);
  ::setenv("SLUICE_ALLREDUCE_ALGO", "bogus", 1);
  BOOST_CHECK_THROW(Options::from_environment(), sluice::InvalidArgument);
  ::setenv("SLUICE_ALLREDUCE_ALGO", "rd", 1);
  ::setenv("SLUICE_COLL_TIMEOUT_MS", "-5", 1);
  BOOST_CHECK_THROW(Options::from_environment(), sluice::InvalidArgument);
  ::unsetenv("SLUICE_ALLREDUCE_ALGO");
  ::unsetenv("SLUICE_COLL_TIMEOUT_MS");
  ::unsetenv("SLUICE_COLL_CHECK");
  BOOST_TEST(Options::from_environment().check_signature);
  BOOST_TEST(Options::from_environment().shm_direct_stream_bytes == 0u);  // 0: from the cache size
  ::setenv("SLUICE_COLL_SHM_DIRECT_STREAM", "4194304", 1);
  BOOST_TEST(Options::from_environment().shm_direct_stream_bytes == 4194304u);
  ::setenv("SLUICE_COLL_SHM_DIRECT_STREAM", "4M", 1);  // bytes only, like the other sizes
  BOOST_CHECK_THROW(Options::from_environment(), sluice::InvalidArgument);
  ::unsetenv("SLUICE_COLL_SHM_DIRECT_STREAM");
}

BOOST_AUTO_TEST_CASE(transport_from_environment) {
  ::unsetenv("SLUICE_COLL_TRANSPORT");
  BOOST_TEST(int(Options::from_environment().transport) == int(TransportKind::mpi));
  ::setenv("SLUICE_COLL_TRANSPORT", "ucx", 1);
  BOOST_TEST(int(Options::from_environment().transport) == int(TransportKind::ucx));
  ::setenv("SLUICE_COLL_TRANSPORT", "mpi", 1);
  BOOST_TEST(int(Options::from_environment().transport) == int(TransportKind::mpi));
  ::setenv("SLUICE_COLL_TRANSPORT", "verbs", 1);
  try {
    Options::from_environment();
    BOOST_ERROR("SLUICE_COLL_TRANSPORT=verbs accepted");
  } catch (const sluice::InvalidArgument& e) {  // the message names the variable and the choices
    BOOST_TEST(std::string(e.what()).find("SLUICE_COLL_TRANSPORT") != std::string::npos);
    BOOST_TEST(std::string(e.what()).find("mpi, ucx") != std::string::npos);
  }
  ::unsetenv("SLUICE_COLL_TRANSPORT");
  for (int t = 0; t <= int(TransportKind::ucx); ++t) BOOST_TEST(int(*parse_transport(name(TransportKind(t)))) == t);
}

BOOST_AUTO_TEST_CASE(names_round_trip) {
  for (int a = 0; a <= int(Algorithm::hierarchical); ++a)
    BOOST_TEST(int(*parse_algorithm(name(Algorithm(a)))) == a);
  for (int t = 0; t < kDataTypeCount; ++t) BOOST_TEST(int(*parse_datatype(name(DataType(t)))) == t);
  for (int o = 0; o < kReduceOpCount; ++o) BOOST_TEST(int(*parse_op(name(ReduceOp(o)))) == o);
  BOOST_TEST(!parse_algorithm("nope").has_value());
}
