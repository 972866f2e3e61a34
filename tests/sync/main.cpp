#define BOOST_TEST_MODULE engram_sync
#include <boost/test/unit_test.hpp>
