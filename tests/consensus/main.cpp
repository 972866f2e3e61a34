#define BOOST_TEST_MODULE engram_consensus
#include <boost/test/unit_test.hpp>
