#define BOOST_TEST_MODULE engram_core
#include <boost/test/unit_test.hpp>
