#define BOOST_TEST_MODULE engram_persistence
#include <boost/test/unit_test.hpp>
