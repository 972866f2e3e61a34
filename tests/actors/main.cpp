#define BOOST_TEST_MODULE engram_actors
#include <boost/test/unit_test.hpp>
