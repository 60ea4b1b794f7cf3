// The upstream series after scripted scenarios, read by value from the metrics page: requests sent
// by outcome, failures by kind, cancellations by reason, refusals by the breaker, and what the
// answer and the logs say of the same events.

#include "server/metrics_shard.hpp"
#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/aggregator.hpp>
#include <string>

using namespace fanout;
using namespace fanout::test;

namespace {

std::string const errgroup = "/api/aggregate/errgroup";

// The series of one service's upstream requests, by name.
struct series {
    std::string const& page;
    std::string service;

    double requests(std::string_view outcome) const {
        return metric(
            page, R"(fanout_upstream_request_duration_seconds_count{service=")" + service + R"(",outcome=")" +
                      std::string(outcome) + "\"}"
        );
    }
    double failed(std::string_view kind) const {
        return metric(
            page, R"(fanout_upstream_failures_total{service=")" + service + R"(",kind=")" +
                      std::string(kind) + "\"}"
        );
    }
    double cancelled(std::string_view reason) const {
        return metric(
            page, R"(fanout_upstream_cancellations_total{service=")" + service + R"(",reason=")" +
                      std::string(reason) + "\"}"
        );
    }
    double all_failures() const {
        double n = 0;
        for (auto kind : {"timeout", "connect", "status", "invalid_json", "too_large", "protocol", "tls"})
            n += failed(kind);
        return n;
    }
    double all_cancellations() const {
        double n = 0;
        for (auto reason : {"client_gone", "sibling_failed", "deadline", "shutdown", "hedge_lost"})
            n += cancelled(reason);
        return n;
    }
    double circuit_open() const {
        return metric(page, R"(fanout_upstream_circuit_open_total{service=")" + service + "\"}");
    }
};

// One event loop driven from the test's thread (a mounted aggregator), so that every request meets
// the same circuit breaker.
struct one_loop {
    boost::asio::io_context ioc;
    fanout::aggregator agg;

    explicit one_loop(fanout::options o) : agg(ioc.get_executor(), std::move(o)) {}

    aggregate_answer get(std::string target) {
        auto answer = boost::asio::co_spawn(
            ioc, agg.handle(boost::beast::http::verb::get, target), boost::asio::use_future
        );
        ioc.restart();
        ioc.run();
        auto res = answer.get();
        aggregate_answer a;
        a.status = res.result_int();
        a.body = boost::json::parse(res.body());
        return a;
    }
    std::string page() { return agg.metrics().render(); }
};

std::string message_of(aggregate_answer const& a, std::string_view service) {
    return std::string(a.body.at("errors").at(service).at("message").as_string());
}

fanout::service refusing(std::string name) {
    return fanout::make_service(std::move(name), "http://127.0.0.1:" + std::to_string(closed_port()) + "/");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_upstream_series)

// The sibling errgroup cancelled did not fail: no failure, one cancelled request, and the service
// that failed is the only one with a failure.
BOOST_AUTO_TEST_CASE(an_errgroup_cancellation_is_not_a_failure) {
    harness h{{sim("broken", sim_behaviour::fail), sim("slow", sim_behaviour::ok, 300ms)}};
    auto const a = get(h.port(), errgroup);
    BOOST_TEST(a.status == 502u);
    BOOST_TEST(kind_of(a, "slow") == "cancelled");
    std::string page;
    BOOST_TEST(eventually([&] {
        page = scrape(h.port());
        return series{page, "slow"}.requests("cancelled") == 1;
    }));
    series const slow{page, "slow"}, broken{page, "broken"};
    BOOST_TEST(slow.cancelled("sibling_failed") == 1);
    BOOST_TEST(slow.all_cancellations() == 1);
    BOOST_TEST(slow.all_failures() == 0);
    BOOST_TEST(slow.requests("ok") == 0);
    BOOST_TEST(slow.requests("error") == 0);
    BOOST_TEST(broken.failed("status") == 1);
    BOOST_TEST(broken.all_failures() == 1);
    BOOST_TEST(broken.requests("error") == 1);
    BOOST_TEST(broken.all_cancellations() == 0);
    BOOST_TEST(page.find("kind=\"cancelled\"") == std::string::npos);
    BOOST_TEST(page.find("kind=\"circuit_open\"") == std::string::npos);
}

// Refused by the open circuit: no request, so nothing in the request histogram nor the failures;
// counted apart.
BOOST_AUTO_TEST_CASE(a_circuit_open_fetch_is_not_a_request) {
    echo_upstream echo;
    echo.answer_status(500);
    fanout::options o;
    auto svc = fanout::make_service("echo", echo.url("/e"));
    svc.breaker_failures = 2;
    svc.breaker_cooldown = 1h;  // longer than the test: open stays open
    o.upstreams = {svc};
    one_loop loop{o};
    for (int i = 0; i < 2; ++i) BOOST_TEST(kind_of(loop.get(wg), "echo") == "status");
    for (int i = 0; i < 3; ++i) BOOST_TEST(kind_of(loop.get(wg), "echo") == "circuit_open");
    BOOST_TEST(echo.counters().requests == 2u);
    auto const page = loop.page();
    series const u{page, "echo"};
    BOOST_TEST(u.requests("error") == 2);
    BOOST_TEST(u.requests("ok") == 0);
    BOOST_TEST(u.requests("cancelled") == 0);
    BOOST_TEST(u.failed("status") == 2);
    BOOST_TEST(u.all_failures() == 2);
    BOOST_TEST(u.circuit_open() == 3);
}

// A service refusing connections, with retries and a breaker: the retry that meets the circuit
// the first two failures opened is not sent, and the fetch fails as they did: connect, in the
// answer, the failure log and the metrics; the breaker's line says what opened it.
BOOST_AUTO_TEST_CASE(a_refused_connection_under_retries_and_a_breaker_is_connect) {
    captured_events log;
    fanout::options o;
    log.attach(o, "info");
    auto svc = refusing("refused");
    svc.max_retries = 3;
    svc.retry_backoff = 1ms;
    svc.breaker_failures = 2;
    svc.breaker_cooldown = 1h;
    o.upstreams = {svc};
    one_loop loop{o};

    auto const first = loop.get(wg);
    BOOST_TEST(first.status == 502u);
    BOOST_TEST(kind_of(first, "refused") == "connect");
    BOOST_TEST(message_of(first, "refused").find("cannot connect to 127.0.0.1:") == 0u);
    auto const failures = log.with(R"("event":"upstream_failure")");
    BOOST_TEST_REQUIRE(failures.size() == 1u);
    BOOST_TEST(failures[0].find(R"("kind":"connect")") != std::string::npos, failures[0]);
    auto const opened = log.with(R"("event":"circuit_breaker","service":"refused","state":"open")");
    BOOST_TEST_REQUIRE(opened.size() == 1u);
    BOOST_TEST(
        opened[0].find(R"("failures":2,"kind":"connect","message":"cannot connect to 127.0.0.1:)") !=
            std::string::npos,
        opened[0]
    );

    auto page = loop.page();
    {
        series const u{page, "refused"};
        BOOST_TEST(u.failed("connect") == 2);
        BOOST_TEST(u.all_failures() == 2);
        BOOST_TEST(u.requests("error") == 2);
        BOOST_TEST(u.circuit_open() == 1);  // the retry it refused
        BOOST_TEST(metric(page, R"(fanout_upstream_failure_retries_total{service="refused"})") == 1);
    }

    // Later fetches are refused outright: that much, the answer says.
    BOOST_TEST(kind_of(loop.get(wg), "refused") == "circuit_open");
    page = loop.page();
    series const u{page, "refused"};
    BOOST_TEST(u.circuit_open() == 2);
    BOOST_TEST(u.requests("error") == 2);
}

// A hedge answers while the first request hangs: the first is cancelled, as the loser.
BOOST_AUTO_TEST_CASE(a_hedge_that_wins_cancels_the_first_request_as_lost) {
    echo_upstream echo;
    // The first request read hangs. Whichever of the two that is, the other answers and wins:
    // the hung one was sent, so one request is lost either way.
    echo.counters().hang_next = 1;
    fanout::options o;
    auto svc = fanout::make_service("echo", echo.url("/e"));
    svc.hedge_after = 50ms;
    svc.hedge_budget = 1;
    o.upstreams = {svc};
    one_loop loop{o};
    BOOST_TEST(kind_of(loop.get(wg), "echo") == "ok");
    auto const page = loop.page();
    series const u{page, "echo"};
    BOOST_TEST(u.cancelled("hedge_lost") == 1);
    BOOST_TEST(u.all_cancellations() == 1);
    BOOST_TEST(u.requests("ok") == 1);
    BOOST_TEST(u.requests("cancelled") == 1);
    BOOST_TEST(u.all_failures() == 0);
    BOOST_TEST(
        metric(page, R"(fanout_upstream_hedges_total{service="echo",outcome="won"})") +
            metric(page, R"(fanout_upstream_hedges_total{service="echo",outcome="lost"})") ==
        1
    );
}

// The request's deadline (its caller's choice) cancels; the service's own timeout, and max_fetch,
// fail.
BOOST_AUTO_TEST_CASE(a_deadline_cancels_and_a_service_timeout_fails) {
    fanout::options o;
    o.max_fetch = 2000ms;  // far past the deadline: a slow loop still tells the two apart
    auto bounded = fanout::make_service("bounded", "http://127.0.0.1:1/");
    bounded.timeout = 100ms;
    o.upstreams = {bounded};
    harness h{{sim("hung", sim_behaviour::hang), sim("bounded", sim_behaviour::hang)}, o};

    auto const a = get(h.port(), context_timeout + "?timeout_ms=300");
    BOOST_TEST(kind_of(a, "hung") == "timeout");
    BOOST_TEST(kind_of(a, "bounded") == "timeout");
    // wg has no deadline: the service's timeout, and max_fetch for the other.
    auto const b = get(h.port(), wg);
    BOOST_TEST(kind_of(b, "bounded") == "timeout");
    BOOST_TEST(kind_of(b, "hung") == "timeout");
    std::string page;
    BOOST_TEST(eventually([&] {
        page = scrape(h.port());
        return series{page, "bounded"}.failed("timeout") == 2 && series{page, "hung"}.failed("timeout") == 1;
    }));
    series const hung{page, "hung"}, own{page, "bounded"};
    BOOST_TEST(hung.cancelled("deadline") == 1);
    BOOST_TEST(hung.all_cancellations() == 1);
    BOOST_TEST(hung.failed("timeout") == 1);
    BOOST_TEST(hung.all_failures() == 1);
    BOOST_TEST(hung.requests("cancelled") == 1);
    BOOST_TEST(hung.requests("error") == 1);
    BOOST_TEST(own.failed("timeout") == 2);
    BOOST_TEST(own.all_failures() == 2);
    BOOST_TEST(own.all_cancellations() == 0);
    BOOST_TEST(own.requests("error") == 2);
}

// A client leaving a deadline-bound request: its upstream request is cancelled for that reason.
BOOST_AUTO_TEST_CASE(a_client_leaving_cancels_as_client_gone) {
    harness h{{sim("hung", sim_behaviour::hang)}};
    blocking_client c{h.port()};
    c.send_get(errgroup + "?timeout_ms=5000");
    BOOST_TEST_REQUIRE(eventually([&] { return h.counters("hung").requests == 1; }));
    c.close();
    std::string page;
    BOOST_TEST(eventually([&] {
        page = scrape(h.port());
        return series{page, "hung"}.all_cancellations() == 1;
    }));
    series const u{page, "hung"};
    BOOST_TEST(u.cancelled("client_gone") == 1);
    BOOST_TEST(u.all_failures() == 0);
}

// A request still waiting at the end of the shutdown grace is cancelled for that reason.
BOOST_AUTO_TEST_CASE(the_end_of_the_shutdown_grace_cancels_as_shutdown) {
    harness h{{sim("hung", sim_behaviour::hang)}};
    blocking_client c{h.port()};
    c.send_get(wg);
    BOOST_TEST_REQUIRE(eventually([&] { return h.counters("hung").requests == 1; }));
    shutdown_all(h, 100ms);
    BOOST_TEST_REQUIRE(h.wait_stopped(10s));
    std::string const page = h.server().metrics().render();
    series const u{page, "hung"};
    BOOST_TEST(u.cancelled("shutdown") == 1);
    BOOST_TEST(u.all_cancellations() == 1);
    BOOST_TEST(u.all_failures() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
