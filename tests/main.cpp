#define BOOST_TEST_MODULE fanout
#include <boost/test/unit_test.hpp>
