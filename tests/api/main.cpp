#define BOOST_TEST_MODULE engram_api
#include <boost/test/unit_test.hpp>
