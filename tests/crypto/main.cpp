#define BOOST_TEST_MODULE engram_crypto
#include <boost/test/unit_test.hpp>
