#include "tests/support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>
#include <future>

using namespace fanout;
using namespace fanout::test;
using upstream::sim_behaviour;
namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;

namespace {

// The client and its upstreams on one event loop, driven from the test thread.
struct direct {
    net::io_context ioc{1};
    upstream::simulator sim;
    upstream::client client;

    direct(std::vector<upstream::sim_service> services, upstream::client_options options = {})
        : sim(ioc.get_executor(), std::move(services)), client(ioc.get_executor(), urls(sim), options) {
        sim.start();
    }

    static std::vector<upstream::service> urls(upstream::simulator const& s) {
        std::vector<upstream::service> out;
        for (std::size_t i = 0; i < s.size(); ++i) out.push_back(upstream::make_service(s.name(i), s.url(i)));
        return out;
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
    upstream::client_options options;
    options.max_idle_per_service = 1;
    direct d{{sim("users", sim_behaviour::ok, 50ms)}, options};
    int done = 0;
    for (int i = 0; i < 4; ++i) {
        net::co_spawn(d.ioc, d.client.fetch(0), [&](std::exception_ptr, upstream::fetch_result r) {
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
    std::optional<upstream::fetch_result> result;
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
    std::optional<upstream::fetch_result> result;
    net::cancellation_signal cancel;
    net::co_spawn(
        d.ioc, d.client.fetch(0),
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, upstream::fetch_result r) {
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

// Each completion token gets (error_code, fetch_result), the code being the failure's kind.
BOOST_AUTO_TEST_CASE(async_fetch_takes_any_completion_token) {
    direct d{{sim("users"), sim("orders", sim_behaviour::fail)}};
    int done = 0;
    d.client.async_fetch(0, [&](boost::system::error_code ec, upstream::fetch_result r) {
        BOOST_TEST(!ec);
        BOOST_TEST(r.ok());
        ++done;
    });
    auto failed = d.client.async_fetch(1, net::use_future);
    auto deferred = d.client.async_fetch(1);  // the default token: nothing starts yet
    net::co_spawn(
        d.ioc,
        [&]() -> net::awaitable<void> {
            auto [ec, r] = co_await d.client.async_fetch(1, net::as_tuple(net::use_awaitable));
            BOOST_TEST((ec == upstream::error_kind::status));
            BOOST_TEST(r.error->status == 500u);
            ++done;
        },
        net::detached
    );
    std::move(deferred)([&](boost::system::error_code ec, upstream::fetch_result) {
        BOOST_TEST((ec == upstream::error_kind::status));
        ++done;
    });
    for (int i = 0; i < 100 && (done < 3 || failed.wait_for(0s) != std::future_status::ready); ++i)
        d.ioc.run_one_for(100ms);
    BOOST_TEST(done == 3);
    // use_future: the error code becomes the future's exception.
    BOOST_CHECK_EXCEPTION(failed.get(), boost::system::system_error, [](auto const& e) {
        return e.code() == upstream::error_kind::status;
    });
}

// Terminal cancellation through the token's slot ends the fetch with error_kind::cancelled.
BOOST_AUTO_TEST_CASE(async_fetch_is_cancelled_through_its_slot) {
    direct d{{sim("users", sim_behaviour::hang)}};
    std::optional<boost::system::error_code> code;
    net::cancellation_signal cancel;
    d.client.async_fetch(
        0, net::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code ec, auto) { code = ec; })
    );
    net::steady_timer timer{d.ioc, 50ms};
    timer.async_wait([&](auto) { cancel.emit(net::cancellation_type::terminal); });
    d.ioc.run_for(300ms);
    BOOST_TEST_REQUIRE(code.has_value());
    BOOST_TEST((*code == upstream::error_kind::cancelled));
    BOOST_TEST(d.sim.counters(0).abandoned == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
