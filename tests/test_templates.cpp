// Upstream targets with placeholders, filled from the incoming request's query.

#include "tests/support.hpp"

#include <boost/test/unit_test.hpp>

#include <fanout/service.hpp>
#include <stdexcept>

using namespace fanout;
using namespace fanout::test;

BOOST_AUTO_TEST_SUITE(test_templates)

BOOST_AUTO_TEST_CASE(placeholders_are_checked_when_configured) {
    auto s = fanout::make_service("echo", "http://h:8/users/{id}/orders?since={since}&x=1");
    BOOST_TEST(s.target == "/users/{id}/orders?since={since}&x=1");
    BOOST_TEST(s.params == (std::vector<std::string>{"id", "since"}), boost::test_tools::per_element());
    BOOST_TEST(fanout::make_service("plain", "http://h/users").params.empty());
    for (auto bad :
         {"http://h/users/{id", "http://h/users/id}", "http://h/users/{}", "http://h/users/{a-b}",
          "http://h/users/{a/b}", "http://{host}/users", "http://h:{port}/users",
          "http://h/fanout-param-0-"}) {
        BOOST_CHECK_THROW(fanout::make_service("echo", bad), std::invalid_argument);
    }
}

BOOST_AUTO_TEST_CASE(values_are_percent_encoded_into_their_place) {
    auto s = fanout::make_service("echo", "http://h/users/{id}?q={q}");
    std::vector<fanout::param> values{{"q", "a&b=c#d"}, {"id", "../x y/é"}};
    BOOST_TEST(fanout::expand_target(s, values) == "/users/..%2Fx%20y%2F%C3%A9?q=a%26b%3Dc%23d");
    std::vector<fanout::param> partial{{"id", "1"}};
    BOOST_CHECK_THROW(fanout::expand_target(s, partial), std::invalid_argument);
}

// "." and ".." stay as they are when percent-encoded ('.' is unreserved), and an upstream would
// take them as a dot-segment, leaving the placeholder's segment: refused in the path, not the query.
BOOST_AUTO_TEST_CASE(a_dot_segment_value_is_refused_in_the_path_only) {
    auto s = fanout::make_service("echo", "http://h/api/v1/users/{id}/profile?q={q}");
    for (auto dots : {".", ".."}) {
        std::vector<fanout::param> in_path{{"id", dots}, {"q", "1"}};
        try {
            fanout::expand_target(s, in_path);
            BOOST_ERROR("no exception for '" << dots << "'");
        } catch (std::invalid_argument const& e) {
            BOOST_TEST(std::string(e.what()).find("{id}") != std::string::npos, e.what());
        }
        std::vector<fanout::param> in_query{{"id", "1"}, {"q", dots}};
        BOOST_TEST(fanout::expand_target(s, in_query) == "/api/v1/users/1/profile?q=" + std::string(dots));
    }
    for (auto fine : {"...", "..x", "./", "../", "/", "%2E%2E"}) {
        std::vector<fanout::param> values{{"id", fine}, {"q", "1"}};
        BOOST_CHECK_NO_THROW(fanout::expand_target(s, values));
    }
    std::vector<fanout::param> encoded{{"id", "../"}, {"q", "1"}};
    BOOST_TEST(fanout::expand_target(s, encoded) == "/api/v1/users/..%2F/profile?q=1");
}

BOOST_AUTO_TEST_CASE(a_dot_segment_value_is_a_400_and_the_upstream_gets_nothing) {
    echo_upstream echo;
    harness h{
        {},
        {},
        {fanout::make_service("echo", echo.url("/api/v1/users/{id}/profile")),
         fanout::make_service("query", echo.url("/search?user={user}"))}};
    for (auto value : {"..", ".", "%2E%2E", "%2e", ".%2E"}) {
        auto r = fetch(h.port(), std::string("/api/aggregate/wg?user=1&id=") + value);
        BOOST_TEST_REQUIRE(r.has_value(), value);
        BOOST_TEST(r->result_int() == 400, value);
        BOOST_TEST(r->body().find("'id'") != std::string::npos, r->body());
    }
    // In a query the same values are data.
    auto a = get(h.port(), "/api/aggregate/wg?id=1&user=..");
    BOOST_TEST_REQUIRE(a.status == 200u);
    BOOST_TEST(echoed_target(a, "query") == "/search?user=..");
    BOOST_TEST(echoed_target(a, "echo") == "/api/v1/users/1/profile");
    BOOST_TEST(echo.counters().requests == 2u);  // the request just made, nothing before it
}

BOOST_AUTO_TEST_CASE(a_slash_in_a_value_stays_encoded) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/users/{id}/profile"))}};
    for (auto value : {"a/b", "a%2Fb", "../x", "..%2F"}) {
        auto a = get(h.port(), std::string("/api/aggregate/wg?id=") + value);
        BOOST_TEST_REQUIRE(a.status == 200u, value);
        auto const expected = value == std::string_view("..%2F")  ? std::string("..%2F")
                              : value == std::string_view("../x") ? std::string("..%2Fx")
                                                                  : std::string("a%2Fb");
        BOOST_TEST(echoed_target(a) == "/users/" + expected + "/profile", value);
    }
}

BOOST_AUTO_TEST_CASE(a_target_takes_its_values_from_the_query_on_every_endpoint) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/users/{id}/orders?since={since}"))}};
    for (auto path :
         {"/api/aggregate/wg", "/api/aggregate/channel", "/api/aggregate/channel-with-context-timeout",
          "/api/aggregate/errgroup"}) {
        auto a = get(h.port(), std::string(path) + "?since=2026-01-01&id=a%2Fb%20c&other=1");
        BOOST_TEST_REQUIRE(a.status == 200u, path);
        BOOST_TEST(echoed_target(a) == "/users/a%2Fb%20c/orders?since=2026-01-01", path);
    }
}

BOOST_AUTO_TEST_CASE(a_missing_or_oversized_value_is_a_400) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/users/{id}"))}};
    auto missing = fetch(h.port(), "/api/aggregate/wg?other=1");
    BOOST_TEST_REQUIRE(missing.has_value());
    BOOST_TEST(missing->result_int() == 400);
    BOOST_TEST(missing->body().find("'id'") != std::string::npos, missing->body());
    auto huge = fetch(h.port(), "/api/aggregate/wg?id=" + std::string(2000, 'x'));
    BOOST_TEST_REQUIRE(huge.has_value());
    BOOST_TEST(huge->result_int() == 400);
    // Endpoints that aggregate nothing need no value.
    auto health = fetch(h.port(), "/healthz");
    BOOST_TEST_REQUIRE(health.has_value());
    BOOST_TEST(health->result_int() == 200);
}

BOOST_AUTO_TEST_SUITE_END()
