// Hedged requests and retries within their budgets (service::hedge_*, max_retries), seen from
// the upstream's side: how many connections and requests it got, and which it saw closed.

#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;

namespace {

// One client on an event loop driven from the test's thread.
struct loop {
    net::io_context ioc{1};
    fanout::client client;

    explicit loop(fanout::service s, fanout::client_options o = {})
        : client(ioc.get_executor(), {std::move(s)}, std::move(o)) {}

    template <class T>
    T run(net::awaitable<T> op) {
        auto f = net::co_spawn(ioc, std::move(op), net::use_future);
        ioc.restart();
        ioc.run();
        return f.get();
    }
    fanout::fetch_result fetch(fanout::fetch_context const& context = {}) {
        return run(client.fetch(0, {}, context));
    }
    std::optional<fanout::fetch_result> fetch(std::chrono::milliseconds limit) {
        return run(fetch_within(client, limit));
    }
};

fanout::service hedging(std::string url, std::chrono::milliseconds after, double budget = 1) {
    auto s = fanout::make_service("echo", url);
    s.hedge_after = after;
    s.hedge_budget = budget;
    return s;
}

fanout::service retrying(std::string url, unsigned retries, double budget = 0.2, unsigned min_per_s = 10) {
    auto s = fanout::make_service("echo", url);
    s.max_retries = retries;
    s.retry_backoff = 1ms;
    s.retry_budget = budget;
    s.retry_min_per_s = min_per_s;
    return s;
}

// `n` fetches one after the other; counts those that failed.
net::awaitable<void> fetch_many(fanout::client& c, int n, int& failed) {
    for (int i = 0; i < n; ++i)
        if (!(co_await c.fetch(0)).ok()) ++failed;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_resilience)

BOOST_AUTO_TEST_CASE(hedge_is_sent_after_the_delay_and_the_loser_is_closed) {
    echo_upstream echo;
    echo.counters().hang_next = 1;  // the first request is never answered
    loop l{hedging(echo.url("/h"), 50ms)};
    auto r = l.fetch();
    BOOST_TEST_REQUIRE(r.ok(), r.error->message);
    BOOST_TEST(r.attempts.hedged);
    BOOST_TEST(r.attempts.hedge_won);
    BOOST_TEST(r.elapsed >= 50ms);
    BOOST_TEST(echo.counters().requests == 2u);
    BOOST_TEST(echo.counters().connections == 2u);
    // The first request's connection was closed, not pooled; the winner's was pooled.
    BOOST_TEST(eventually([&] { return echo.counters().abandoned == 1u; }));
    BOOST_TEST(l.client.idle_connections(0) == 1u);
}

BOOST_AUTO_TEST_CASE(a_hedge_that_wins_closes_a_first_request_whose_answer_is_coming) {
    echo_upstream echo;
    echo.counters().slow_next = 1;  // the first request is answered after 1 s
    fanout::client_options o;
    o.settle_time = 3000ms;  // long enough for that answer, were the loser left to settle
    loop l{hedging(echo.url("/h"), 20ms), o};
    auto r = l.fetch();  // returns once nothing is left to run
    BOOST_TEST_REQUIRE(r.ok());
    BOOST_TEST(r.attempts.hedge_won);
    BOOST_TEST(l.client.idle_connections(0) == 1u);  // only the winner's
    BOOST_TEST(l.client.stats().settled_kept == 0u);
}

BOOST_AUTO_TEST_CASE(no_hedge_for_an_answer_within_the_delay) {
    echo_upstream echo;
    loop l{hedging(echo.url("/h"), 2000ms)};
    for (int i = 0; i < 3; ++i) {
        auto r = l.fetch();
        BOOST_TEST(r.ok());
        BOOST_TEST(!r.attempts.hedged);
    }
    BOOST_TEST(echo.counters().requests == 3u);
    BOOST_TEST(echo.counters().connections == 1u);
}

// Many first requests answer about when their hedge is due: the loser of each race, whichever it
// is, is cancelled, and never the fetch.
BOOST_AUTO_TEST_CASE(a_hedge_racing_its_first_request_never_fails_the_fetch) {
    echo_upstream echo;
    loop l{hedging(echo.url("/h"), 1ms)};
    int failed = 0;
    for (int i = 0; i < 16; ++i) net::co_spawn(l.ioc, fetch_many(l.client, 40, failed), net::detached);
    l.ioc.run();
    BOOST_TEST(failed == 0);
    BOOST_TEST(echo.counters().requests >= 640u);
}

BOOST_AUTO_TEST_CASE(hedge_budget_bounds_the_extra_requests) {
    echo_upstream echo;
    echo.counters().hang_next = 1000;  // nothing is answered: every fetch is due a hedge
    // A quarter of a hedge per fetch: the 4th and the 8th fetches have one.
    loop l{hedging(echo.url("/h"), 5ms, 0.25)};
    for (int i = 0; i < 8; ++i) BOOST_TEST(!l.fetch(300ms).has_value());
    // Counted on the client's side, once its loop has nothing left to run: exact, however late the
    // upstream sees them.
    BOOST_TEST(l.client.stats().opened == 10u);
    BOOST_TEST(eventually([&] { return echo.counters().requests == 10u; }));
    BOOST_TEST(eventually([&] { return echo.counters().abandoned == 10u; }));  // every one closed
}

BOOST_AUTO_TEST_CASE(quantile_hedging_waits_for_enough_samples) {
    echo_upstream echo;
    auto s = fanout::make_service("echo", echo.url("/q"));
    s.hedge_quantile = 0.5;
    s.hedge_budget = 1;
    loop l{s};
    // No latency known yet: a hung request is not hedged.
    echo.counters().hang_next = 1;
    BOOST_TEST(!l.fetch(300ms).has_value());
    BOOST_TEST(eventually([&] { return echo.counters().abandoned == 1u; }));
    BOOST_TEST(echo.counters().requests == 1u);
    for (int i = 0; i < 120; ++i) BOOST_TEST_REQUIRE(l.fetch().ok());  // some of them hedged
    // Now the median of quick answers: the hung request is hedged long before 5 s.
    auto const before = echo.counters().requests.load();
    echo.counters().hang_next = 1;
    auto r = l.fetch(5000ms);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->ok());
    // Hedged. Which of the two requests the upstream reads first, and so hangs, is up to its
    // scheduling (under TSan the hedge is sometimes read first): either may be the one answered.
    BOOST_TEST(r->attempts.hedged);
    BOOST_TEST(echo.counters().requests == before + 2);
}

BOOST_AUTO_TEST_CASE(a_connection_failing_before_the_answer_is_retried) {
    echo_upstream echo;
    echo.counters().drop_next = 2;  // the first two connections close without an answer
    loop l{retrying(echo.url("/r"), 3)};
    auto r = l.fetch();
    BOOST_TEST_REQUIRE(r.ok(), r.error->message);
    BOOST_TEST(r.attempts.retries == 2u);
    BOOST_TEST(echo.counters().connections == 3u);
    BOOST_TEST(echo.counters().requests == 1u);
}

BOOST_AUTO_TEST_CASE(connect_failures_are_retried_up_to_max_retries) {
    loop l{retrying("http://127.0.0.1:" + std::to_string(closed_port()) + "/", 3)};
    auto r = l.fetch();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::connect));
    BOOST_TEST(r.attempts.retries == 3u);
    BOOST_TEST(!r.attempts.over_budget);
}

BOOST_AUTO_TEST_CASE(an_answer_cut_short_is_not_retried) {
    net::io_context sim_ioc{1};
    fanout::simulator cut{sim_ioc.get_executor(), {sim("cut", fanout::sim_behaviour::close_early)}};
    cut.start();
    std::thread sim_thread{[&] { sim_ioc.run(); }};
    loop l{retrying(cut.url(0), 3)};
    auto r = l.fetch();
    net::post(sim_ioc, [&] { cut.cancel(); });
    sim_thread.join();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::protocol));
    BOOST_TEST(r.answer_started);
    BOOST_TEST(r.attempts.retries == 0u);
    BOOST_TEST(cut.counters(0).requests == 1u);
}

BOOST_AUTO_TEST_CASE(retry_budget_is_a_share_of_fetches) {
    // Half a retry per fetch and no floor: the first fetch may not retry, the second once.
    loop l{retrying("http://127.0.0.1:" + std::to_string(closed_port()) + "/", 3, 0.5, 0)};
    auto first = l.fetch();
    BOOST_TEST(first.attempts.retries == 0u);
    BOOST_TEST(first.attempts.over_budget);
    auto second = l.fetch();
    BOOST_TEST(second.attempts.retries == 1u);
    BOOST_TEST(second.attempts.over_budget);
}

BOOST_AUTO_TEST_CASE(retry_budget_has_a_floor_per_second) {
    loop l{retrying("http://127.0.0.1:" + std::to_string(closed_port()) + "/", 5, 0, 2)};
    auto r = l.fetch();
    BOOST_TEST((r.error->kind == error_kind::connect));
    BOOST_TEST(r.attempts.retries == 2u);
    BOOST_TEST(r.attempts.over_budget);
}

BOOST_AUTO_TEST_CASE(no_retry_past_the_deadline) {
    auto s = retrying("http://127.0.0.1:" + std::to_string(closed_port()) + "/", 5);
    s.retry_backoff = 2000ms;  // at least 1 s: more than the time left
    loop l{s};
    auto r = l.fetch({std::chrono::steady_clock::now() + 500ms});
    BOOST_TEST((r.error->kind == error_kind::connect));  // the failure as it happened
    BOOST_TEST(r.attempts.retries == 0u);
    BOOST_TEST(!r.attempts.over_budget);
    BOOST_TEST(r.elapsed < 1000ms);  // it did not wait the backoff (the arithmetic: test_policy)
}

// A fetch given up after its request was written: the answer is read in the background and the
// connection pooled (client_options::settle_time), or closed when it does not come in time.
BOOST_AUTO_TEST_CASE(a_cancelled_fetch_whose_answer_comes_keeps_its_connection) {
    echo_upstream echo;
    echo.counters().slow_next = 1;
    fanout::client_options o;
    o.settle_time = 3000ms;
    loop l{fanout::make_service("echo", echo.url("/s")), o};
    auto& c = l.client;
    BOOST_TEST(!l.run(fetch_within(c, 200ms)).has_value());  // given up; the answer comes at 1 s
    BOOST_TEST(c.idle_connections(0) == 1u);                 // run() returned once the answer was read
    BOOST_TEST(c.stats().settled_kept == 1u);
    BOOST_TEST(l.run(c.fetch(0)).ok());
    BOOST_TEST(echo.counters().connections == 1u);  // the same connection served both
}

BOOST_AUTO_TEST_CASE(a_hedged_fetch_cancelled_from_outside_keeps_its_connection) {
    echo_upstream echo;
    echo.counters().slow_next = 1;
    fanout::client_options o;
    o.settle_time = 3000ms;
    loop l{hedging(echo.url("/h"), 2000ms), o};  // its hedge not due yet when the caller gives up
    BOOST_TEST(!l.fetch(200ms).has_value());
    BOOST_TEST(l.client.stats().settled_kept == 1u);
    BOOST_TEST(l.client.idle_connections(0) == 1u);
}

BOOST_AUTO_TEST_CASE(a_cancelled_fetch_whose_answer_is_late_closes_its_connection) {
    echo_upstream echo;
    echo.counters().hang_next = 1;
    fanout::client_options o;
    o.settle_time = 50ms;
    loop l{fanout::make_service("echo", echo.url("/s")), o};
    auto& c = l.client;
    BOOST_TEST(!l.run(fetch_within(c, 200ms)).has_value());
    BOOST_TEST(c.idle_connections(0) == 0u);
    BOOST_TEST(c.stats().settled_closed == 1u);
    BOOST_TEST(eventually([&] { return echo.counters().abandoned == 1u; }));
}

BOOST_AUTO_TEST_SUITE_END()

// Host names through the client (client_options::resolve): a fetch never waits for the resolver.
BOOST_AUTO_TEST_SUITE(test_resolve)

BOOST_AUTO_TEST_CASE(a_hung_resolver_never_holds_a_fetch_to_its_deadline) {
    net::io_context ioc{1};
    fanout::resolve_handler held;  // never called
    fanout::client_options o;
    o.resolve = [&](std::string const&, std::uint16_t, fanout::resolve_handler done) {
        held = std::move(done);
    };
    fanout::client c{ioc.get_executor(), {fanout::make_service("slow", "http://dns.invalid:9/x")}, o};
    auto f = net::co_spawn(ioc, c.fetch(0, {}, {std::chrono::steady_clock::now() + 5s}), net::use_future);
    ioc.run();  // returns: nothing waits for the resolver
    auto r = f.get();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::connect));
    BOOST_TEST(r.error->message.find("resolving dns.invalid") != std::string::npos, r.error->message);
    BOOST_TEST(r.elapsed < 1s);           // well before the deadline
    BOOST_TEST(static_cast<bool>(held));  // it was asked
}

BOOST_AUTO_TEST_CASE(a_name_is_resolved_once_and_its_addresses_reused) {
    echo_upstream echo;
    auto const port = static_cast<std::uint16_t>(std::stoi(echo.url("").substr(echo.url("").rfind(':') + 1)));
    net::io_context ioc{1};
    int asked = 0;
    fanout::client_options o;
    o.resolve = [&](std::string const& host, std::uint16_t p, fanout::resolve_handler done) {
        ++asked;
        BOOST_TEST(host == "users.internal");
        done({}, {{net::ip::make_address("127.0.0.1"), p}});
    };
    fanout::client c{
        ioc.get_executor(),
        {fanout::make_service("users", "http://users.internal:" + std::to_string(port) + "/u")},
        o};
    // The first resolution is under way from the start: the fetch after it finds the address.
    ioc.poll();
    for (int i = 0; i < 3; ++i) {
        auto f = net::co_spawn(ioc, c.fetch(0), net::use_future);
        ioc.restart();
        ioc.run();
        auto r = f.get();
        BOOST_TEST(r.ok(), (r.ok() ? "" : r.error->message));
    }
    BOOST_TEST(asked == 1);
    BOOST_TEST(echo.counters().requests == 3u);
}

BOOST_AUTO_TEST_SUITE_END()
