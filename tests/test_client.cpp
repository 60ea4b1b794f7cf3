#include "tests/support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>
#include <fanout/combinators.hpp>
#include <future>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;

namespace {

// The client and its upstreams on one event loop, driven from the test thread.
struct direct {
    net::io_context ioc{1};
    fanout::simulator sim;
    fanout::client client;

    direct(std::vector<fanout::sim_service> services, fanout::client_options options = {})
        : sim(ioc.get_executor(), std::move(services)), client(ioc.get_executor(), urls(sim), options) {
        sim.start();
    }

    static std::vector<fanout::service> urls(fanout::simulator const& s) {
        std::vector<fanout::service> out;
        for (std::size_t i = 0; i < s.size(); ++i) out.push_back(fanout::make_service(s.name(i), s.url(i)));
        return out;
    }
};

// A service named by a host name: the client resolves it in the background from its creation.
std::vector<fanout::service> at_localhost(fanout::simulator const& s) {
    return {fanout::make_service(s.name(0), "http://localhost:" + std::to_string(s.port(0)) + "/")};
}

// Runs what is ready to run (the loop stops whenever it runs out of work: restarted first).
void run_ready(net::io_context& ioc) {
    ioc.restart();
    ioc.poll();
}

// Runs the loop until done() or 10 s have passed.
template <class Done>
void run_until(net::io_context& ioc, Done done) {
    ioc.restart();
    auto const give_up = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < give_up) ioc.run_one_for(100ms);
}

// Keeps each question for the test to answer, as a resolver waiting on its server would.
struct held_resolver {
    std::shared_ptr<std::vector<fanout::resolve_handler>> held =
        std::make_shared<std::vector<fanout::resolve_handler>>();

    fanout::client_options options() {
        fanout::client_options o;
        o.resolve = [held = held](std::string const&, std::uint16_t, fanout::resolve_handler done) {
            held->push_back(std::move(done));
        };
        return o;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_client)

BOOST_AUTO_TEST_CASE(sequential_requests_reuse_a_handful_of_connections) {
    harness h{{sim("users"), sim("orders"), sim("inventory")}};
    for (int i = 0; i < 100; ++i) BOOST_TEST_REQUIRE(get(h.port(), "/api/aggregate/wg").status == 200u);
    for (auto name : {"users", "orders", "inventory"}) {
        BOOST_TEST(h.counters(name).requests == 100u, name);
        BOOST_TEST(h.counters(name).connections <= 3 * h.threads(), name);  // each loop has its pool
    }
    auto stats = h.upstream_stats();
    BOOST_TEST(stats.opened <= 9 * h.threads());
    BOOST_TEST(stats.reused >= 300 - 9 * h.threads());
}

BOOST_AUTO_TEST_CASE(connection_closed_while_idle_is_retried) {
    harness h{{sim("users", sim_behaviour::close_after_response), sim("orders")}};
    for (int i = 0; i < 5; ++i) {
        auto a = get(h.port(), "/api/aggregate/wg");
        BOOST_TEST(a.status == 200u);
        BOOST_TEST(a.complete_header == "true");
    }
    // Each request after the first (on its loop) found its pooled connection closed and resent it.
    BOOST_TEST(h.upstream_stats().retried <= 4u);
    BOOST_TEST(h.upstream_stats().retried >= 5 - h.threads());
    BOOST_TEST(h.counters("users").connections == 5u);
    BOOST_TEST(h.counters("users").requests == 5u);
}

BOOST_AUTO_TEST_CASE(idle_pool_is_bounded) {
    fanout::client_options options;
    options.max_idle_per_service = 1;
    direct d{{sim("users", sim_behaviour::ok, 50ms)}, options};
    int done = 0;
    for (int i = 0; i < 4; ++i) {
        net::co_spawn(d.ioc, d.client.fetch(0), [&](std::exception_ptr, fanout::fetch_result r) {
            BOOST_TEST(r.ok());
            if (++done == 4) d.sim.cancel();
        });
    }
    d.ioc.run_for(10s);
    BOOST_TEST(done == 4);
    BOOST_TEST(d.client.stats().opened == 4u);
    BOOST_TEST(d.client.idle_connections(0) == 1u);
}

BOOST_AUTO_TEST_CASE(race_loser_closes_its_connection) {
    direct d{{sim("users", sim_behaviour::hang)}};
    std::optional<fanout::fetch_result> result;
    std::optional<std::size_t> winner;
    auto fetch_into = [&]() -> net::awaitable<void> { result = co_await d.client.fetch(0); };
    auto race = [&]() -> net::awaitable<void> {
        net::steady_timer timer{d.ioc, 50ms};
        auto w = co_await (fetch_into() || timer.async_wait(net::as_tuple(net::use_awaitable)));
        winner = w.index();
    };
    net::co_spawn(d.ioc, race, net::detached);
    d.ioc.run_for(300ms);
    BOOST_TEST_REQUIRE(winner.has_value());
    BOOST_TEST(*winner == 1u);
    BOOST_TEST_REQUIRE(result.has_value());
    BOOST_TEST(to_string(result->error->kind) == "cancelled");
    BOOST_TEST(d.client.idle_connections(0) == 0u);
    BOOST_TEST(d.sim.counters(0).abandoned == 1u);  // the upstream saw the close
}

BOOST_AUTO_TEST_CASE(fetch_reports_cancellation_as_a_value) {
    direct d{{sim("users", sim_behaviour::hang)}};
    std::optional<fanout::fetch_result> result;
    net::cancellation_signal cancel;
    net::co_spawn(
        d.ioc, d.client.fetch(0),
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, fanout::fetch_result r) {
                BOOST_TEST(!e);
                result = std::move(r);
            }
        )
    );
    net::steady_timer timer{d.ioc, 50ms};
    timer.async_wait([&](auto) { cancel.emit(net::cancellation_type::terminal); });
    d.ioc.run_for(300ms);
    BOOST_TEST_REQUIRE(result.has_value());
    BOOST_TEST_REQUIRE(!result->ok());
    BOOST_TEST(to_string(result->error->kind) == "cancelled");
    BOOST_TEST(d.client.idle_connections(0) == 0u);
}

// Each completion token gets the same fetch_result, a failure included: a callback, use_future,
// use_awaitable, and the default token (deferred).
BOOST_AUTO_TEST_CASE(async_fetch_takes_any_completion_token) {
    direct d{{sim("users"), sim("orders", sim_behaviour::fail)}};
    int done = 0;
    d.client.async_fetch(0, [&](fanout::fetch_result r) {
        BOOST_TEST(r.ok());
        ++done;
    });
    auto failed = d.client.async_fetch(1, net::use_future);
    auto deferred = d.client.async_fetch(1);  // the default token: nothing starts yet
    net::co_spawn(
        d.ioc,
        [&]() -> net::awaitable<void> {
            fanout::fetch_result r = co_await d.client.async_fetch(1, net::use_awaitable);  // never throws
            BOOST_TEST_REQUIRE(!r.ok());
            BOOST_TEST((r.error->code() == fanout::error_kind::status));
            BOOST_TEST(r.error->status == 500u);
            ++done;
        },
        net::detached
    );
    std::move(deferred)([&](fanout::fetch_result r) {
        BOOST_TEST_REQUIRE(!r.ok());
        BOOST_TEST((r.error->kind == fanout::error_kind::status));
        ++done;
    });
    for (int i = 0; i < 100 && (done < 3 || failed.wait_for(0s) != std::future_status::ready); ++i)
        d.ioc.run_one_for(100ms);
    BOOST_TEST(done == 3);
    auto r = failed.get();  // a value, not an exception
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == fanout::error_kind::status));
    BOOST_TEST(r.error->status == 500u);
}

// One `within` over four kinds of operation, each given `deferred`: a timer, a socket read, a
// co_spawned coroutine and fetches. The fetch that hangs is cancelled at the deadline (its
// upstream sees the connection dropped); the failing one is a value, as through any token.
BOOST_AUTO_TEST_CASE(within_mixes_a_timer_a_socket_read_a_coroutine_and_fetches) {
    direct d{{sim("orders", sim_behaviour::fail), sim("slow", sim_behaviour::hang)}};
    net::ip::tcp::acceptor acceptor{d.ioc, {net::ip::make_address("127.0.0.1"), 0}};
    net::ip::tcp::socket reader{d.ioc}, writer{d.ioc};
    reader.connect(acceptor.local_endpoint());
    acceptor.accept(writer);
    net::write(writer, net::buffer("hi", 2));
    char buf[16];
    net::steady_timer timer{d.ioc, 1ms};
    auto coroutine = []() -> net::awaitable<int> { co_return 42; };
    std::optional<bool> checked;
    net::co_spawn(
        d.ioc,
        [&]() -> net::awaitable<void> {
            auto [waited, read, computed, failed, hung] = co_await within(
                500ms, timer.async_wait(net::deferred),
                reader.async_read_some(net::buffer(buf), net::deferred),
                net::co_spawn(d.ioc, coroutine(), net::deferred), d.client.async_fetch(0, net::deferred),
                d.client.async_fetch(1, net::deferred)
            );
            BOOST_TEST(waited.ok());
            BOOST_TEST((read.ok() && *read.value == 2u));
            BOOST_TEST((computed.ok() && *computed.value == 42));
            BOOST_TEST_REQUIRE(failed.value.has_value());  // a failed fetch is a value
            BOOST_TEST((failed.value->error && failed.value->error->status == 500u));
            BOOST_TEST((hung.error == group_error::timeout));
            checked = true;
        },
        net::detached
    );
    run_until(d.ioc, [&] { return checked.has_value() && d.sim.counters(1).abandoned == 1u; });
    BOOST_TEST(checked.has_value());
    BOOST_TEST(d.sim.counters(1).abandoned == 1u);
}

// Terminal cancellation through the token's slot ends the fetch with error_kind::cancelled.
BOOST_AUTO_TEST_CASE(async_fetch_is_cancelled_through_its_slot) {
    direct d{{sim("users", sim_behaviour::hang)}};
    std::optional<boost::system::error_code> code;
    net::cancellation_signal cancel;
    d.client.async_fetch(0, net::bind_cancellation_slot(cancel.slot(), [&](fanout::fetch_result r) {
                             code = r.ok() ? boost::system::error_code{} : r.error->code();
                         }));
    net::steady_timer timer{d.ioc, 50ms};
    timer.async_wait([&](auto) { cancel.emit(net::cancellation_type::terminal); });
    d.ioc.run_for(300ms);
    BOOST_TEST_REQUIRE(code.has_value());
    BOOST_TEST((*code == fanout::error_kind::cancelled));
    BOOST_TEST(d.sim.counters(0).abandoned == 1u);
}

// A fetch made as the client is created finds no address yet; after async_wait_resolved it connects.
BOOST_AUTO_TEST_CASE(a_fetch_after_async_wait_resolved_finds_the_service) {
    net::io_context ioc{1};
    fanout::simulator s{ioc.get_executor(), {sim("users")}};
    s.start();
    {
        fanout::client c{ioc.get_executor(), at_localhost(s), {}};
        std::optional<fanout::fetch_result> r;
        c.async_fetch(0, [&](fanout::fetch_result res) { r = std::move(res); });
        run_until(ioc, [&] { return r.has_value(); });
        BOOST_TEST_REQUIRE(r.has_value());
        BOOST_TEST_REQUIRE(!r->ok());
        BOOST_TEST((r->error->code() == fanout::error_kind::connect));
        BOOST_TEST(r->error->message.find("resolving localhost") != std::string::npos, r->error->message);
    }
    fanout::client c{ioc.get_executor(), at_localhost(s), {}};
    std::optional<boost::system::error_code> waited;
    std::optional<fanout::fetch_result> r;
    c.async_wait_resolved([&](boost::system::error_code ec) {
        waited = ec;
        c.async_fetch(0, [&](fanout::fetch_result res) { r = std::move(res); });
    });
    BOOST_TEST(!waited.has_value());  // never inside the call
    run_until(ioc, [&] { return r.has_value(); });
    BOOST_TEST_REQUIRE(waited.has_value());
    BOOST_TEST(!*waited, waited->message());
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->ok(), (r->ok() ? "" : r->error->message));
    BOOST_TEST(s.counters(0).requests == 1u);
    s.cancel();
}

// Every first resolution ends, one of them in failure: the wait completes with its error; IP
// literals need no resolution.
BOOST_AUTO_TEST_CASE(async_wait_resolved_reports_the_first_service_without_an_address) {
    net::io_context ioc{1};
    held_resolver resolver;
    std::vector services{
        fanout::make_service("literal", "http://127.0.0.1:1/"),
        fanout::make_service("found", "http://found.test/"),
        fanout::make_service("missing", "http://missing.test/"),
        fanout::make_service("late", "http://late.test/")};
    fanout::client c{ioc.get_executor(), services, resolver.options()};
    std::optional<boost::system::error_code> waited;
    c.async_wait_resolved([&](boost::system::error_code ec) { waited = ec; });
    run_until(ioc, [&] { return resolver.held->size() == 3; });
    BOOST_TEST_REQUIRE(resolver.held->size() == 3u);  // the three names, not the literal
    (*resolver.held)[0]({}, {{net::ip::make_address("127.0.0.1"), 80}});
    (*resolver.held)[1](net::error::host_not_found, {});
    run_ready(ioc);
    BOOST_TEST(!waited.has_value());  // "late" has not answered
    (*resolver.held)[2](net::error::host_not_found_try_again, {});
    run_until(ioc, [&] { return waited.has_value(); });
    BOOST_TEST_REQUIRE(waited.has_value());
    BOOST_TEST((*waited == net::error::host_not_found), waited->message());  // "missing", the first

    // Nothing to wait for: at once, but not inside the call.
    fanout::client literal{ioc.get_executor(), {services[0]}, {}};
    std::optional<boost::system::error_code> at_once;
    literal.async_wait_resolved([&](boost::system::error_code ec) { at_once = ec; });
    BOOST_TEST(!at_once.has_value());
    run_ready(ioc);
    BOOST_TEST_REQUIRE(at_once.has_value());
    BOOST_TEST(!*at_once);
}

// Terminal cancellation, and the client going, end the wait with operation_aborted; the
// resolution is not cancelled and still counts for a later wait.
BOOST_AUTO_TEST_CASE(async_wait_resolved_is_cancelled_through_its_slot_and_by_the_client_going) {
    net::io_context ioc{1};
    held_resolver resolver;
    std::vector services{fanout::make_service("svc", "http://svc.test:8080/")};
    auto c = std::make_unique<fanout::client>(ioc.get_executor(), services, resolver.options());
    std::optional<boost::system::error_code> cancelled, destroyed, later;
    net::cancellation_signal cancel;
    c->async_wait_resolved(net::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code ec) {
        cancelled = ec;
    }));
    run_until(ioc, [&] { return resolver.held->size() == 1; });
    BOOST_TEST_REQUIRE(resolver.held->size() == 1u);
    cancel.emit(net::cancellation_type::terminal);
    run_until(ioc, [&] { return cancelled.has_value(); });
    BOOST_TEST_REQUIRE(cancelled.has_value());
    BOOST_TEST((*cancelled == net::error::operation_aborted), cancelled->message());

    c->async_wait_resolved([&](boost::system::error_code ec) { later = ec; });
    run_ready(ioc);
    (*resolver.held)[0]({}, {{net::ip::make_address("127.0.0.1"), 8080}});
    run_until(ioc, [&] { return later.has_value(); });
    BOOST_TEST_REQUIRE(later.has_value());
    BOOST_TEST(!*later);
    BOOST_TEST(resolver.held->size() == 1u);  // asked once

    auto d = std::make_unique<fanout::client>(ioc.get_executor(), services, resolver.options());
    d->async_wait_resolved([&](boost::system::error_code ec) { destroyed = ec; });
    run_ready(ioc);
    d.reset();
    run_until(ioc, [&] { return destroyed.has_value(); });
    BOOST_TEST_REQUIRE(destroyed.has_value());
    BOOST_TEST((*destroyed == net::error::operation_aborted), destroyed->message());
}

// index_of finds a service by name, and says when there is none; a bad index is an exception,
// and so is a name given twice.
BOOST_AUTO_TEST_CASE(services_are_found_by_name) {
    direct d{{sim("users"), sim("orders", sim_behaviour::fail)}};
    BOOST_TEST((d.client.index_of("users") == std::optional<std::size_t>(0)));
    BOOST_TEST((d.client.index_of("orders") == std::optional<std::size_t>(1)));
    for (auto unknown : {"inventory", "user", "users ", "USERS", ""})
        BOOST_TEST(!d.client.index_of(unknown).has_value(), unknown);
    auto index = d.client.index_of("orders");
    BOOST_TEST_REQUIRE(index.has_value());
    auto f = d.client.async_fetch(*index, net::use_future);
    run_until(d.ioc, [&] { return f.wait_for(0s) == std::future_status::ready; });
    auto r = f.get();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == fanout::error_kind::status));  // orders answers 500: it was orders
    BOOST_CHECK_THROW(static_cast<void>(d.client.fetch(2)), std::out_of_range);
    BOOST_CHECK_THROW(d.client.async_fetch(2, net::detached), std::out_of_range);
    std::vector twice{
        fanout::make_service("users", "http://127.0.0.1:1/"),
        fanout::make_service("users", "http://127.0.0.1:2/")};
    BOOST_CHECK_THROW(fanout::client(d.ioc.get_executor(), twice, {}), std::invalid_argument);
    d.sim.cancel();
}

BOOST_AUTO_TEST_SUITE_END()
