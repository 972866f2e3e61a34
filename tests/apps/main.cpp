#define BOOST_TEST_MODULE engram_apps
#include <boost/test/unit_test.hpp>
