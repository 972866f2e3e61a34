#define BOOST_TEST_MODULE engram_pki
#include <boost/test/unit_test.hpp>
