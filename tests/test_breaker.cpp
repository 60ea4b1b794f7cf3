// The circuit breaker of a service: opens after consecutive failures, fails fast without
// connecting, lets one probe through after the cooldown, and closes or reopens on its outcome.
// On one event loop (a mounted aggregator driven from the test's thread), so that every request
// meets the same breaker.

#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/aggregator.hpp>

using namespace fanout;
using namespace fanout::test;

namespace {

struct one_loop {
    boost::asio::io_context ioc;
    fanout::aggregator agg;

    explicit one_loop(fanout::options o) : agg(ioc.get_executor(), std::move(o)) {}

    aggregate_answer get(std::string target) {
        auto start = std::chrono::steady_clock::now();
        auto answer = boost::asio::co_spawn(
            ioc, agg.handle(boost::beast::http::verb::get, target), boost::asio::use_future
        );
        ioc.restart();
        ioc.run();
        auto res = answer.get();
        aggregate_answer a;
        a.took =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        a.status = res.result_int();
        a.body = boost::json::parse(res.body());
        return a;
    }
    double metric(std::string const& series) { return test::metric(agg.metrics().render(), series); }
};

fanout::service with_breaker(fanout::service s, unsigned failures, std::chrono::milliseconds cooldown) {
    s.breaker_failures = failures;
    s.breaker_cooldown = cooldown;
    return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_breaker)

// The cooldown is longer than any test: open stays open (the timing of half-open is test_policy's).
BOOST_AUTO_TEST_CASE(opens_and_fails_fast_without_connecting) {
    echo_upstream echo;
    captured_events log;
    fanout::options o;
    log.attach(o, "info");
    o.upstreams = {with_breaker(fanout::make_service("echo", echo.url("/e")), 3, 1h)};
    one_loop loop{o};
    auto& seen = echo.counters();

    echo.answer_status(500);
    for (int i = 0; i < 3; ++i) BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_state{service="echo",loop="0",state="open"})") == 1);
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="open"})") == 1);
    BOOST_TEST(log.with(R"("event":"circuit_breaker","service":"echo","state":"open")").size() == 1u);

    // Open: no connection, no request; the answer says why.
    echo.answer_status(200);
    auto const connections = seen.connections.load();
    auto const requests = seen.requests.load();
    for (auto path :
         {"/api/aggregate/wg", "/api/aggregate/channel", "/api/aggregate/channel-with-context-timeout",
          "/api/aggregate/errgroup"}) {
        auto a = loop.get(path);
        BOOST_TEST(kind_of(a, "echo") == "circuit_open", path);
        BOOST_TEST(a.status == 502u, path);
        BOOST_TEST(
            std::string(a.body.at("errors").at("echo").at("message").as_string()).find("circuit open") == 0u
        );
    }
    BOOST_TEST(seen.connections.load() == connections);
    BOOST_TEST(seen.requests.load() == requests);
    BOOST_TEST(
        loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="half_open"})") <= 0
    );
    BOOST_TEST(loop.metric(R"(fanout_upstream_circuit_open_total{service="echo"})") == 4);
    BOOST_TEST(loop.metric(R"(fanout_upstream_failures_total{service="echo",kind="status"})") == 3);
}

// A cooldown of 0: the fetch after the one that opened it probes at once, so each transition is
// reported without waiting for a cooldown to pass.
BOOST_AUTO_TEST_CASE(a_probe_half_opens_it_and_closes_or_reopens_it) {
    echo_upstream echo;
    captured_events log;
    fanout::options o;
    log.attach(o, "info");
    o.upstreams = {with_breaker(fanout::make_service("echo", echo.url("/e")), 2, 0ms)};
    one_loop loop{o};
    auto& seen = echo.counters();

    echo.answer_status(503);
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    echo.answer_status(200);
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "ok");  // not consecutive
    echo.answer_status(404);                                             // the service is up: not a failure
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    echo.answer_status(503);
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_state{service="echo",loop="0",state="closed"})") == 1);
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_state{service="echo",loop="0",state="open"})") == 1);

    // The probe fails: open again.
    auto const requests = seen.requests.load();
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "status");
    BOOST_TEST(seen.requests.load() == requests + 1);
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="open"})") == 2);
    BOOST_TEST(
        loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="half_open"})") == 1
    );
    // The next probe succeeds: closed.
    echo.answer_status(200);
    BOOST_TEST(kind_of(loop.get("/api/aggregate/wg"), "echo") == "ok");
    BOOST_TEST(seen.requests.load() == requests + 2);
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_state{service="echo",loop="0",state="closed"})") == 1);
    BOOST_TEST(
        loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="half_open"})") == 2
    );
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_transitions_total{service="echo",to="closed"})") == 1);
    BOOST_TEST(log.with(R"("event":"circuit_breaker","service":"echo","state":"closed")").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_hung_service_opens_it_by_its_timeouts) {
    sim_runner upstreams{{sim("users"), sim("hung", fanout::sim_behaviour::hang)}};
    captured_events log;
    fanout::options o;
    log.attach(o, "info");
    o.upstreams = {
        fanout::parse_service(upstreams.upstream_flag(0)),
        with_breaker(fanout::parse_service(upstreams.upstream_flag(1)), 2, 10s)};
    one_loop loop{o};
    for (int i = 0; i < 2; ++i)
        BOOST_TEST(
            kind_of(loop.get("/api/aggregate/channel-with-context-timeout?timeout_ms=100"), "hung") ==
            "timeout"
        );
    // What opened it: its requests cut at their deadline, as timeouts.
    BOOST_TEST(
        log.with(
               R"("state":"open","cooldown_ms":10000,"failures":2,"kind":"timeout","message":"no answer within )"
        )
            .size() == 1u
    );
    auto const connections = upstreams.counters(1).connections.load();
    auto a = loop.get("/api/aggregate/channel-with-context-timeout?timeout_ms=5000");
    BOOST_TEST(kind_of(a, "hung") == "circuit_open");
    BOOST_TEST(a.status == 200u);  // users answered
    BOOST_TEST(a.took < 2500ms);   // not held to the deadline
    BOOST_TEST(upstreams.counters(1).connections.load() == connections);
}

BOOST_AUTO_TEST_CASE(a_fetch_cancelled_by_a_sibling_is_no_failure) {
    sim_runner upstreams{
        {sim("broken", fanout::sim_behaviour::fail), sim("slow", fanout::sim_behaviour::ok, 300ms)}};
    fanout::options o;
    o.upstreams = {
        fanout::parse_service(upstreams.upstream_flag(0)),
        with_breaker(fanout::parse_service(upstreams.upstream_flag(1)), 2, 10s)};
    one_loop loop{o};
    for (int i = 0; i < 4; ++i) {
        auto a = loop.get("/api/aggregate/errgroup");
        BOOST_TEST(kind_of(a, "slow") == "cancelled");
    }
    BOOST_TEST(loop.metric(R"(fanout_upstream_breaker_state{service="slow",loop="0",state="closed"})") == 1);
}

BOOST_AUTO_TEST_CASE(its_settings_come_from_the_config_file) {
    fanout::options o;
    fanout::apply_config(
        o,
        R"({"upstreams":[{"name":"a","url":"http://127.0.0.1:1/a","breaker_failures":5,"breaker_cooldown_ms":2500}]})"
    );
    BOOST_TEST(o.upstreams.at(0).breaker_failures == 5u);
    BOOST_TEST(o.upstreams.at(0).breaker_cooldown.count() == 2500);
    BOOST_CHECK_THROW(
        fanout::apply_config(o, R"({"upstreams":[{"name":"a","url":"http://h/a","breaker_failures":-1}]})"),
        std::invalid_argument
    );
    BOOST_CHECK_THROW(
        fanout::apply_config(o, R"({"upstreams":[{"name":"a","url":"http://h/a","breaker_cooldown_ms":0}]})"),
        std::invalid_argument
    );
}

BOOST_AUTO_TEST_SUITE_END()
