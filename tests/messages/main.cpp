#define BOOST_TEST_MODULE engram_messages
#include <boost/test/unit_test.hpp>
