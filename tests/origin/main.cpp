#define BOOST_TEST_MODULE engram_origin
#include <boost/test/unit_test.hpp>
