#define BOOST_TEST_MODULE engram_federation
#include <boost/test/unit_test.hpp>
