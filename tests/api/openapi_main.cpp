#define BOOST_TEST_MODULE engram_openapi
#include <boost/test/unit_test.hpp>
