#define BOOST_TEST_MODULE engram_e2e
#include <boost/test/unit_test.hpp>
