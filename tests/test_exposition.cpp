// The metrics page as a scraper and an alert rule read it.
#include "tests/support.hpp"

#include <boost/test/unit_test.hpp>

#include <fanout/metrics.hpp>
#include <string>

using namespace fanout;
using namespace fanout::test;

namespace {

// A registry of one loop for the seed's routes, its shard claimed for the test to write.
struct one_shard {
    server::metrics_registry registry;
    server::metrics_shard& shard;

    explicit one_shard(std::vector<std::string> services)
        : registry(std::move(services), 1), shard(registry.claim(0)) {}
    ~one_shard() { registry.release(0); }
};

std::string const wg_labels = R"(endpoint="wg",route="/api/aggregate/wg")";

}  // namespace

BOOST_AUTO_TEST_SUITE(test_exposition)

// A 3x regression of a sub-millisecond answer and a hung request must both be visible.
BOOST_AUTO_TEST_CASE(a_tenth_of_a_millisecond_and_thirty_seconds_fall_in_finite_buckets) {
    one_shard m{{"users"}};
    m.shard.count_request(server::endpoint::wg, 0, 200, 100us);
    m.shard.count_request(server::endpoint::wg, 0, 200, 300us);
    m.shard.count_request(server::endpoint::wg, 0, 200, 30s);
    m.shard.services[0].duration.observe(100us);
    m.shard.services[0].duration.observe(30s);
    auto const text = m.registry.render();
    auto request_bucket = [&](std::string const& le) {
        return metric(text, "fanout_request_duration_seconds_bucket{" + wg_labels + ",le=\"" + le + "\"}");
    };
    BOOST_TEST(request_bucket("5e-05") == 0);
    BOOST_TEST(request_bucket("0.0001") == 1);
    BOOST_TEST(request_bucket("0.00025") == 1);
    BOOST_TEST(request_bucket("0.0005") == 2);
    BOOST_TEST(request_bucket("10") == 2);
    BOOST_TEST(request_bucket("30") == 3);
    BOOST_TEST(request_bucket("60") == 3);
    BOOST_TEST(request_bucket("+Inf") == 3);
    auto upstream_bucket = [&](std::string const& le) {
        return metric(
            text, R"(fanout_upstream_request_duration_seconds_bucket{service="users",le=")" + le + "\"}"
        );
    };
    BOOST_TEST(upstream_bucket("0.0001") == 1);
    BOOST_TEST(upstream_bucket("10") == 1);
    BOOST_TEST(upstream_bucket("30") == 2);
}

BOOST_AUTO_TEST_SUITE_END()
