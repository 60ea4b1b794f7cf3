#include "handlers/handlers.hpp"
#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>

#include <array>

using namespace fanout;
using namespace fanout::test;
namespace json = boost::json;
namespace net = boost::asio;

namespace {

struct endpoint {
    std::string path;
    std::string pattern;
    bool has_deadline;
};

std::array<endpoint, 4> const endpoints{{
    {"/api/aggregate/wg", "wg", false},
    {"/api/aggregate/channel", "channel", false},
    {"/api/aggregate/channel-with-context-timeout", "context-timeout", true},
    {"/api/aggregate/errgroup", "errgroup", true},
}};

endpoint const& by_pattern(std::string_view pattern) {
    for (auto const& e : endpoints)
        if (e.pattern == pattern) return e;
    throw std::invalid_argument("no pattern");
}

std::string message_of(aggregate_answer const& a, std::string_view service) {
    auto const* e = a.body.at("errors").as_object().if_contains(service);
    return e ? std::string(e->at("message").as_string()) : std::string("(none)");
}

bool has_result(aggregate_answer const& a, std::string_view service) {
    return a.body.at("results").as_object().contains(service);
}

std::vector<fanout::sim_service> healthy() {
    return {sim("users"), sim("orders"), sim("inventory")};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_endpoints)

BOOST_AUTO_TEST_CASE(healthy_services_on_every_endpoint) {
    harness h{healthy()};
    for (auto const& e : endpoints) {
        BOOST_TEST_CONTEXT(e.path) {
            auto a = get(h.port(), e.path);
            BOOST_TEST(a.status == 200u);
            BOOST_TEST(a.complete_header == "true");
            auto const& body = a.body.as_object();
            BOOST_TEST(body.at("pattern").as_string() == e.pattern);
            BOOST_TEST(body.at("results").as_object().size() == 3u);
            BOOST_TEST(body.at("results").at("users").at("service").as_string() == "users");
            BOOST_TEST(body.at("results").at("inventory").at("items").as_array().size() == 3u);
            BOOST_TEST(body.at("errors").as_object().empty());
            BOOST_TEST(body.at("complete").as_bool());
            BOOST_TEST(body.at("elapsed_ms").is_number());
        }
    }
}

BOOST_AUTO_TEST_CASE(fetches_run_concurrently) {
    harness h{
        {sim("users", sim_behaviour::ok, 300ms), sim("orders", sim_behaviour::ok, 300ms),
         sim("inventory", sim_behaviour::ok, 300ms)}};
    for (auto const& e : endpoints) {
        BOOST_TEST_CONTEXT(e.path) {
            auto a = get(h.port(), e.path);
            BOOST_TEST(a.status == 200u);
            BOOST_TEST(a.took >= 300ms);
        }
    }
    // Run at once, not one after the other: while the middle service hangs, the services before
    // and after it still get their requests (fetched in either order, one at a time, one of them
    // would wait behind the hung one for ever).
    harness hung{{sim("users"), sim("orders", sim_behaviour::hang), sim("inventory")}};
    std::uint64_t n = 0;
    for (auto const& e : endpoints) {
        BOOST_TEST_CONTEXT(e.path) {
            blocking_client c{hung.port()};
            c.send_get(e.path + "?timeout_ms=10000");
            ++n;
            BOOST_TEST(eventually([&] {
                return hung.counters("orders").requests == n && hung.counters("users").answered == n &&
                       hung.counters("inventory").answered == n;
            }));
        }
    }
}

BOOST_AUTO_TEST_CASE(one_slow_service) {
    harness h{{sim("users"), sim("orders"), sim("inventory", sim_behaviour::ok, 700ms)}};
    // The deadline variants answer at the deadline with what they have.
    auto ct = get(h.port(), by_pattern("context-timeout").path + "?timeout_ms=150");
    BOOST_TEST(ct.status == 200u);
    BOOST_TEST(ct.complete_header == "false");
    BOOST_TEST(ct.took >= 150ms);
    BOOST_TEST(has_result(ct, "users"));
    BOOST_TEST(has_result(ct, "orders"));
    BOOST_TEST(kind_of(ct, "inventory") == "timeout");
    BOOST_TEST(message_of(ct, "inventory") == "no answer within 150 ms");
    BOOST_TEST(ct.body.at("complete").as_bool() == false);
    // It did not wait for the slow service: that one saw its connection closed, unanswered.
    BOOST_TEST(eventually([&] { return h.counters("inventory").abandoned == 1; }));
    BOOST_TEST(h.counters("inventory").answered == 0u);

    auto eg = get(h.port(), by_pattern("errgroup").path + "?timeout_ms=150");
    BOOST_TEST(eg.status == 504u);
    BOOST_TEST(kind_of(eg, "inventory") == "timeout");
    BOOST_TEST(message_of(eg, "inventory") == "no answer within 150 ms");
    BOOST_TEST(eventually([&] { return h.counters("inventory").abandoned == 2; }));
    BOOST_TEST(h.counters("inventory").answered == 0u);

    // The wait-for-all patterns wait for it.
    for (auto pattern : {"wg", "channel"}) {
        BOOST_TEST_CONTEXT(pattern) {
            auto a = get(h.port(), by_pattern(pattern).path + "?timeout_ms=150");
            BOOST_TEST(a.status == 200u);
            BOOST_TEST(a.took >= 700ms);
            BOOST_TEST(a.body.at("complete").as_bool());
            BOOST_TEST(has_result(a, "inventory"));
        }
    }
}

BOOST_AUTO_TEST_CASE(one_hung_service) {
    harness h{{sim("users"), sim("orders"), sim("inventory", sim_behaviour::hang)}};
    auto ct = get(h.port(), by_pattern("context-timeout").path + "?timeout_ms=200");
    BOOST_TEST(ct.status == 200u);
    BOOST_TEST(has_result(ct, "users"));
    BOOST_TEST(kind_of(ct, "inventory") == "timeout");
    BOOST_TEST(message_of(ct, "inventory") == "no answer within 200 ms");

    auto eg = get(h.port(), by_pattern("errgroup").path + "?timeout_ms=200");
    BOOST_TEST(eg.status == 504u);
    BOOST_TEST(kind_of(eg, "inventory") == "timeout");
    BOOST_TEST(message_of(eg, "inventory") == "no answer within 200 ms");
    // Both gave up on the hung upstream by closing the connection.
    BOOST_TEST(eventually([&] { return h.counters("inventory").abandoned == 2; }));

    // The documented drawback of wait-for-all: the request hangs with the service.
    std::uint64_t sent = 2;
    for (auto pattern : {"wg", "channel"}) {
        BOOST_TEST_CONTEXT(pattern) {
            blocking_client c{h.port()};
            c.send_get(by_pattern(pattern).path + "?timeout_ms=200");
            ++sent;
            BOOST_TEST(eventually([&] { return h.counters("inventory").requests == sent; }));
            // Long past the 200 ms it was given, no answer: showing that takes time to pass.
            BOOST_TEST(!c.read(1200ms).has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(all_failed_is_502) {
    harness h{
        {sim("users", sim_behaviour::fail), sim("orders", sim_behaviour::invalid_json),
         sim("inventory", sim_behaviour::fail)}};
    for (auto const& e : endpoints) {
        BOOST_TEST_CONTEXT(e.path) {
            auto a = get(h.port(), e.path);
            BOOST_TEST(a.status == 502u);
            BOOST_TEST(a.complete_header == "false");
            BOOST_TEST(a.body.at("results").as_object().empty());
            BOOST_TEST(!a.body.at("errors").as_object().empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(all_timed_out_is_504) {
    harness h{{sim("users", sim_behaviour::hang), sim("orders", sim_behaviour::hang)}};
    for (auto pattern : {"context-timeout", "errgroup"}) {
        BOOST_TEST_CONTEXT(pattern) {
            auto a = get(h.port(), by_pattern(pattern).path + "?timeout_ms=100");
            BOOST_TEST(a.status == 504u);
            BOOST_TEST(kind_of(a, "users") == "timeout");
            BOOST_TEST(kind_of(a, "orders") == "timeout");
        }
    }
}

BOOST_AUTO_TEST_CASE(deadline_defaults_to_the_option_and_is_capped) {
    fanout::options opts;
    opts.timeout = 150ms;
    opts.max_timeout = 300ms;
    harness h{{sim("users"), sim("orders", sim_behaviour::hang)}, opts};
    auto by_default = get(h.port(), by_pattern("context-timeout").path);
    BOOST_TEST(by_default.status == 200u);
    BOOST_TEST(by_default.took >= 150ms);
    BOOST_TEST(kind_of(by_default, "orders") == "timeout");
    BOOST_TEST(message_of(by_default, "orders") == "no answer within 150 ms");
    auto capped = get(h.port(), by_pattern("errgroup").path + "?timeout_ms=600000");
    BOOST_TEST(capped.status == 504u);
    BOOST_TEST(capped.took >= 300ms);
    BOOST_TEST(kind_of(capped, "orders") == "timeout");
    BOOST_TEST(message_of(capped, "orders") == "no answer within 300 ms");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_error_kinds)

BOOST_AUTO_TEST_CASE(every_kind_is_reported) {
    harness h{
        {sim("ok"), sim("status", sim_behaviour::fail), sim("invalid_json", sim_behaviour::invalid_json),
         sim("too_large", sim_behaviour::huge), sim("garbage", sim_behaviour::garbage),
         sim("close_early", sim_behaviour::close_early), sim("timeout", sim_behaviour::hang)},
        {},
        {fanout::make_service("connect", "http://127.0.0.1:" + std::to_string(closed_port()) + "/")}};
    // A deadline long enough for the slowest kind (a body over the limit) under TSan on a busy machine.
    auto a = get(h.port(), by_pattern("context-timeout").path + "?timeout_ms=2000");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.complete_header == "false");
    BOOST_TEST(has_result(a, "ok"));
    BOOST_TEST(a.body.at("results").as_object().size() == 1u);
    BOOST_TEST(kind_of(a, "status") == "status");
    BOOST_TEST(a.body.at("errors").at("status").at("status").as_int64() == 500);
    BOOST_TEST(kind_of(a, "invalid_json") == "invalid_json");
    BOOST_TEST(kind_of(a, "too_large") == "too_large");
    BOOST_TEST(kind_of(a, "garbage") == "protocol");
    BOOST_TEST(kind_of(a, "close_early") == "protocol");
    BOOST_TEST(kind_of(a, "timeout") == "timeout");
    BOOST_TEST(kind_of(a, "connect") == "connect");
    for (auto const& [name, error] : a.body.at("errors").as_object())
        BOOST_TEST(!error.at("message").as_string().empty(), name);
}

BOOST_AUTO_TEST_CASE(wait_for_all_patterns_report_them_too) {
    harness h{
        {sim("ok"), sim("status", sim_behaviour::fail), sim("invalid_json", sim_behaviour::invalid_json),
         sim("too_large", sim_behaviour::huge), sim("garbage", sim_behaviour::garbage)},
        {},
        {fanout::make_service("connect", "http://127.0.0.1:" + std::to_string(closed_port()) + "/")}};
    for (auto pattern : {"wg", "channel"}) {
        BOOST_TEST_CONTEXT(pattern) {
            auto a = get(h.port(), by_pattern(pattern).path);
            BOOST_TEST(a.status == 200u);
            BOOST_TEST(kind_of(a, "status") == "status");
            BOOST_TEST(kind_of(a, "invalid_json") == "invalid_json");
            BOOST_TEST(kind_of(a, "too_large") == "too_large");
            BOOST_TEST(kind_of(a, "garbage") == "protocol");
            BOOST_TEST(kind_of(a, "connect") == "connect");
        }
    }
}

BOOST_AUTO_TEST_CASE(body_limit_is_configurable) {
    fanout::options opts;
    opts.max_upstream_body = 100;  // the simulated bodies are a few hundred bytes
    harness h{{sim("users"), sim("orders")}, opts};
    auto a = get(h.port(), by_pattern("wg").path);
    BOOST_TEST(a.status == 502u);
    BOOST_TEST(kind_of(a, "users") == "too_large");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_cancellation)

BOOST_AUTO_TEST_CASE(errgroup_first_failure_cancels_the_others) {
    harness h{
        {sim("users", sim_behaviour::ok, 800ms), sim("orders", sim_behaviour::fail),
         sim("inventory", sim_behaviour::ok, 800ms)}};
    auto a = get(h.port(), by_pattern("errgroup").path + "?timeout_ms=5000");
    BOOST_TEST(a.status == 502u);
    BOOST_TEST(a.took < 800ms);  // waited for neither slow one
    BOOST_TEST(kind_of(a, "orders") == "status");
    BOOST_TEST(kind_of(a, "users") == "cancelled");
    BOOST_TEST(message_of(a, "users") == "cancelled: orders failed");
    BOOST_TEST(kind_of(a, "inventory") == "cancelled");
    // The slow upstreams see their connections closed before they answered.
    BOOST_TEST(eventually([&] { return h.counters("users").abandoned == 1; }));
    BOOST_TEST(eventually([&] { return h.counters("inventory").abandoned == 1; }));
    BOOST_TEST(h.counters("users").answered == 0u);
    BOOST_TEST(h.counters("inventory").answered == 0u);

    // A cancelled connection is closed, never pooled: the next request needs a new one.
    get(h.port(), by_pattern("errgroup").path);
    // Its connect starts before orders can fail it, so the simulator accepts it, maybe after get returns.
    BOOST_TEST(eventually([&] { return h.counters("users").connections == 2; }));
    BOOST_TEST(h.counters("orders").connections <= h.threads());  // its answer left it pooled
}

BOOST_AUTO_TEST_CASE(deadline_cancels_the_late_fetch) {
    harness h{{sim("users"), sim("orders", sim_behaviour::ok, 1500ms)}};
    auto a = get(h.port(), by_pattern("context-timeout").path + "?timeout_ms=100");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(kind_of(a, "orders") == "timeout");
    // Closed, not left to answer: abandoned and answered exclude each other, no time limit needed.
    BOOST_TEST(eventually([&] { return h.counters("orders").abandoned == 1; }));
    BOOST_TEST(h.counters("orders").answered == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_channel)

BOOST_AUTO_TEST_CASE(no_producer_outlives_the_handler) {
    net::io_context ioc{1};
    fanout::simulator upstreams{
        ioc.get_executor(),
        {sim("users"), sim("orders", sim_behaviour::ok, 50ms), sim("inventory", sim_behaviour::fail)}};
    std::vector<fanout::service> services;
    for (std::size_t i = 0; i < upstreams.size(); ++i)
        services.push_back(fanout::make_service(upstreams.name(i), upstreams.url(i)));
    fanout::client client{ioc.get_executor(), services, {}};
    fanout::handler_context ctx{client};
    upstreams.start();

    std::optional<fanout::reply> reply;
    std::size_t live_at_return = 99;
    net::co_spawn(ioc, fanout::channel(ctx, {1000ms}), [&](std::exception_ptr e, fanout::reply r) {
        BOOST_TEST(!e);
        live_at_return = ctx.stats->channel_producers_live;
        reply = std::move(r);
        upstreams.cancel();  // the simulator's own sockets are the only other work
    });
    ioc.run_for(10s);
    BOOST_TEST_REQUIRE(reply.has_value());
    BOOST_TEST(reply->status == 200u);
    BOOST_TEST(live_at_return == 0u);
    // run_for returned because no operation of any kind was left, not because its time ran out.
    BOOST_TEST(ioc.stopped());
}

BOOST_AUTO_TEST_CASE(none_left_after_requests_through_the_server) {
    harness h{{sim("users"), sim("orders", sim_behaviour::ok, 30ms), sim("inventory", sim_behaviour::fail)}};
    for (int i = 0; i < 5; ++i) {
        auto a = get(h.port(), by_pattern("channel").path);
        BOOST_TEST(a.status == 200u);
        BOOST_TEST(h.channel_producers_live() == 0u);
    }
}

BOOST_AUTO_TEST_SUITE_END()
