#define BOOST_TEST_MODULE engram_http
#include <boost/test/unit_test.hpp>
