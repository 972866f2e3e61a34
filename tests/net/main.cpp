#define BOOST_TEST_MODULE engram_net
#include <boost/test/unit_test.hpp>
