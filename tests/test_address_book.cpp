// The address book: host names resolved off the request path (a fetch never waits for a resolver,
// and a resolver that never answers neither blocks a connect nor keeps run() from returning),
// addresses taken in turn, those that refuse passed over, and the last good addresses kept when a
// refresh fails. Real sockets on loopback; resolvers of the test's own where it decides the answer.

#include "upstream/address_book.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

using namespace fanout;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

fanout::service named(std::string host, std::uint16_t port = 80) {
    fanout::service s;
    s.name = "svc";
    s.host = std::move(host);
    s.port = port;
    return s;
}

tcp::endpoint loopback(std::uint16_t port) {
    return {net::ip::make_address("127.0.0.1"), port};
}

std::string str(std::optional<tcp::endpoint> const& e) {
    if (!e) return "none";
    return e->address().to_string() + ":" + std::to_string(e->port());
}

// An acceptor on loopback that counts the connections that reached it: a completed connect waits
// in its backlog, so taking them without blocking counts them all.
struct listener {
    tcp::acceptor acceptor;
    std::vector<tcp::socket> accepted;

    explicit listener(net::io_context& ioc) : acceptor(ioc, loopback(0)) { acceptor.non_blocking(true); }
    tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }
    std::size_t take() {
        std::size_t n = 0;
        for (;;) {
            error_code ec;
            auto s = acceptor.accept(ec);
            if (ec) return n;
            accepted.push_back(std::move(s));
            ++n;
        }
    }
};

// A loopback address where nothing listens: connecting is refused.
tcp::endpoint refusing(net::io_context& ioc) {
    tcp::acceptor a{ioc, loopback(0)};
    return a.local_endpoint();  // closed again when `a` goes
}

// Runs the loop until it has nothing left to do; false if it still had after 10 s. No work guard:
// returning is what shows that a pending resolution does not keep the loop alive.
bool runs_dry(net::io_context& ioc) {
    ioc.restart();
    ioc.run_for(10s);
    return ioc.stopped();
}

error_code connect(net::io_context& ioc, fanout::address_book& book, tcp::socket& s, std::size_t i = 0) {
    auto f = net::co_spawn(ioc, book.connect(s, i), net::use_future);
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    return f.get();
}

// Runs the loop until `d` has passed on its clock: for a test of what becomes due with time.
void let_pass(net::io_context& ioc, std::chrono::milliseconds d) {
    net::steady_timer timer{ioc, d};
    bool passed = false;
    timer.async_wait([&](error_code) { passed = true; });
    ioc.restart();
    while (!passed) ioc.run_one();
}

// Answers every question at once (on the caller's thread) with what answer() says.
struct scripted_resolver {
    std::function<std::pair<error_code, std::vector<tcp::endpoint>>()> answer;
    std::shared_ptr<int> calls = std::make_shared<int>(0);

    fanout::resolve_function function() {
        return [answer = answer,
                calls = calls](std::string const&, std::uint16_t, fanout::resolve_handler done) {
            ++*calls;
            auto [ec, addresses] = answer();
            done(ec, std::move(addresses));
        };
    }
};

// Never answers; keeps the handlers it was given, as a resolver whose server hangs would.
struct hung_resolver {
    std::shared_ptr<std::vector<fanout::resolve_handler>> held =
        std::make_shared<std::vector<fanout::resolve_handler>>();

    fanout::resolve_function function() {
        return [held = held](std::string const&, std::uint16_t, fanout::resolve_handler done) {
            held->push_back(std::move(done));
        };
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_address_book)

BOOST_AUTO_TEST_CASE(localhost_resolves_with_asio_and_connects) {
    net::io_context ioc;
    listener server{ioc};
    std::vector services{
        fanout::make_service("local", "http://localhost:" + std::to_string(server.endpoint().port()) + "/")};
    fanout::address_book book{ioc.get_executor(), services};

    // Nothing resolved before the loop runs: no answer, and a reason.
    BOOST_TEST(!book.next(0));
    BOOST_TEST(book.why_none(0) == "resolving localhost");
    BOOST_TEST_REQUIRE(runs_dry(ioc));  // the resolution was pending I/O, and then it was done
    BOOST_TEST_REQUIRE(book.size(0) >= 1u);
    BOOST_TEST(book.stats(0).succeeded == 1u);
    BOOST_TEST(book.stats(0).failed == 0u);
    BOOST_TEST(book.why_none(0) == "");
    auto address = book.next(0);
    BOOST_TEST_REQUIRE(address.has_value());
    BOOST_TEST(address->address().is_loopback());
    BOOST_TEST(address->port() == server.endpoint().port());

    tcp::socket s{ioc};
    BOOST_TEST(!connect(ioc, book, s));
    BOOST_TEST(s.is_open());
    BOOST_TEST(server.take() == 1u);
}

BOOST_AUTO_TEST_CASE(ip_literal_is_its_own_address_and_never_resolved) {
    net::io_context ioc;
    scripted_resolver r{[] { return std::pair{error_code{}, std::vector{loopback(1)}}; }};
    std::vector services{named("127.0.0.1", 8080), named("::1", 8081)};
    fanout::address_book book{ioc.get_executor(), services, r.function()};
    BOOST_TEST(str(book.next(0)) == str(loopback(8080)));
    BOOST_TEST(str(book.next(1)) == str(tcp::endpoint(net::ip::make_address("::1"), 8081)));
    BOOST_TEST(runs_dry(ioc));
    BOOST_TEST(*r.calls == 0);
    BOOST_TEST(book.size(0) == 1u);
}

BOOST_AUTO_TEST_CASE(hung_resolver_fails_connect_at_once_and_lets_run_return) {
    net::io_context ioc;
    hung_resolver r;
    std::vector services{named("backend.invalid", 8080)};
    fanout::address_book book{ioc.get_executor(), services, r.function()};
    BOOST_TEST_REQUIRE(runs_dry(ioc));  // the resolver was asked, and its silence holds nothing
    BOOST_TEST_REQUIRE(r.held->size() == 1u);

    BOOST_TEST(!book.next(0));
    BOOST_TEST(book.why_none(0) == "resolving backend.invalid");
    tcp::socket s{ioc};
    BOOST_TEST(connect(ioc, book, s) == net::error::host_not_found_try_again);
    BOOST_TEST(book.size(0) == 0u);
    BOOST_TEST(r.held->size() == 1u);  // one question at a time

    // A late answer, from another thread, is taken on the loop.
    listener server{ioc};
    std::thread([&] { r.held->front()({}, {server.endpoint()}); }).join();
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST(str(book.next(0)) == str(server.endpoint()));
    BOOST_TEST(!connect(ioc, book, s));
    BOOST_TEST(server.take() == 1u);
    // A second answer to the same question is ignored, good or bad.
    r.held->front()({}, {loopback(1)});
    r.held->front()(net::error::host_not_found, {});
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST(str(book.next(0)) == str(server.endpoint()));
    BOOST_TEST(book.size(0) == 1u);
    BOOST_TEST(book.stats(0).succeeded == 1u);
    BOOST_TEST(book.stats(0).failed == 0u);
}

BOOST_AUTO_TEST_CASE(connects_take_the_addresses_in_turn) {
    net::io_context ioc;
    listener a{ioc}, b{ioc};
    scripted_resolver r{[&] { return std::pair{error_code{}, std::vector{a.endpoint(), b.endpoint()}}; }};
    std::vector services{named("pair.test")};
    fanout::address_book book{ioc.get_executor(), services, r.function()};
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST_REQUIRE(book.size(0) == 2u);

    for (int i = 0; i < 3; ++i) {
        tcp::socket s1{ioc}, s2{ioc};
        BOOST_TEST_REQUIRE(!connect(ioc, book, s1));
        BOOST_TEST_REQUIRE(!connect(ioc, book, s2));
        BOOST_TEST(a.take() == 1u);
        BOOST_TEST(b.take() == 1u);
    }
    BOOST_TEST(*r.calls == 1);  // within the refresh interval, no new question
}

BOOST_AUTO_TEST_CASE(refusing_address_is_passed_over_for_the_skip_period) {
    net::io_context ioc;
    listener good{ioc};
    auto const bad = refusing(ioc);
    scripted_resolver r{[&] { return std::pair{error_code{}, std::vector{bad, good.endpoint()}}; }};
    std::vector services{named("half.test")};
    fanout::address_book_options o;
    o.skip = 1min;  // longer than the test, however slow the machine
    fanout::address_book book{ioc.get_executor(), services, r.function(), o};
    BOOST_TEST_REQUIRE(runs_dry(ioc));

    // The first connect meets the refusing address first, marks it and goes on to the good one.
    tcp::socket s{ioc};
    BOOST_TEST_REQUIRE(!connect(ioc, book, s));
    BOOST_TEST(good.take() == 1u);
    // Within the skip period turns go to the good one only.
    for (int i = 0; i < 4; ++i) BOOST_TEST(str(book.next(0)) == str(good.endpoint()));
    for (int i = 0; i < 3; ++i) {
        tcp::socket t{ioc};
        BOOST_TEST_REQUIRE(!connect(ioc, book, t));
        BOOST_TEST(good.take() == 1u);
    }
}

BOOST_AUTO_TEST_CASE(every_address_refusing_fails_after_trying_each_once) {
    net::io_context ioc;
    auto const bad1 = refusing(ioc), bad2 = refusing(ioc);
    scripted_resolver r{[&] { return std::pair{error_code{}, std::vector{bad1, bad2}}; }};
    std::vector services{named("down.test")};
    fanout::address_book book{ioc.get_executor(), services, r.function()};
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    tcp::socket s{ioc};
    BOOST_TEST(connect(ioc, book, s) == net::error::connection_refused);
    BOOST_TEST(!s.is_open());
    // Both are skipped now: the one whose skip period ends first comes next.
    BOOST_TEST(str(book.next(0)) == str(bad1));
}

BOOST_AUTO_TEST_CASE(cancelled_connect_stops_at_once) {
    net::io_context ioc;
    listener server{ioc};
    scripted_resolver r{[&] { return std::pair{error_code{}, std::vector{server.endpoint()}}; }};
    std::vector services{named("one.test")};
    fanout::address_book book{ioc.get_executor(), services, r.function()};
    BOOST_TEST_REQUIRE(runs_dry(ioc));

    // Cancelled before connect() starts, and not thrown at (so connect's own check is what stops it).
    tcp::socket s{ioc};
    net::cancellation_signal cancel;
    auto attempt = [&]() -> net::awaitable<error_code> {
        co_await net::this_coro::throw_if_cancelled(false);
        cancel.emit(net::cancellation_type::terminal);
        auto ec = co_await book.connect(s, 0);
        co_return ec;
    };
    auto f = net::co_spawn(ioc, attempt, net::bind_cancellation_slot(cancel.slot(), net::use_future));
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST(f.get() == net::error::operation_aborted);
    BOOST_TEST(server.take() == 0u);
}

BOOST_AUTO_TEST_CASE(failed_refresh_keeps_the_last_good_addresses) {
    net::io_context ioc;
    listener server{ioc};
    int answers = 0;
    scripted_resolver r{[&] {
        if (answers++ == 0) return std::pair{error_code{}, std::vector{server.endpoint()}};
        return std::pair{error_code{net::error::host_not_found}, std::vector<tcp::endpoint>{}};
    }};
    std::vector services{named("flaky.test")};
    fanout::address_book_options o;
    o.refresh = 1ms;
    fanout::address_book book{ioc.get_executor(), services, r.function(), o};
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST_REQUIRE(book.size(0) == 1u);
    let_pass(ioc, 2ms);  // the refresh interval: no thread to wait for, only the clock

    // Due: the refresh starts, and the answer is the current address, at once.
    BOOST_TEST(str(book.next(0)) == str(server.endpoint()));
    BOOST_TEST(*r.calls == 2);
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST(book.stats(0).failed == 1u);
    BOOST_TEST(str(book.next(0)) == str(server.endpoint()));
    BOOST_TEST(book.why_none(0) == "");
    tcp::socket s{ioc};
    BOOST_TEST(!connect(ioc, book, s));
    BOOST_TEST(server.take() == 1u);
}

BOOST_AUTO_TEST_CASE(failure_without_addresses_is_the_reason_and_is_retried) {
    net::io_context ioc;
    scripted_resolver r{[] {
        return std::pair{error_code{net::error::host_not_found}, std::vector<tcp::endpoint>{}};
    }};
    std::vector services{named("nowhere.test")};
    fanout::address_book_options o;
    o.refresh = 0ms;  // resolved at start only; the retry still applies until one succeeds
    fanout::address_book book{ioc.get_executor(), services, r.function(), o};
    BOOST_TEST_REQUIRE(runs_dry(ioc));
    BOOST_TEST(
        book.why_none(0) == "cannot resolve nowhere.test: " + error_code(net::error::host_not_found).message()
    );
    tcp::socket s{ioc};
    BOOST_TEST(connect(ioc, book, s) == net::error::host_not_found);
    BOOST_TEST(*r.calls == 1);  // the retry is not due yet (its timing: a test below)
}

// A first resolution never answered ends the wait for it when it is given up, as timed_out.
BOOST_AUTO_TEST_CASE(first_resolutions_ends_when_an_unanswered_one_is_given_up) {
    net::io_context ioc;
    hung_resolver r;
    std::vector services{named("127.0.0.1", 8080), named("backend.invalid", 8080)};
    fanout::address_book book{
        ioc.get_executor(),
        services,
        r.function(),
        {.refresh = 30s, .retry = 1s, .skip = 2s, .give_up = 100ms}};
    auto const start = std::chrono::steady_clock::now();
    auto f = net::co_spawn(ioc, book.first_resolutions(), net::use_future);
    BOOST_TEST_REQUIRE(runs_dry(ioc));  // the wait is work; it ends
    BOOST_TEST((std::chrono::steady_clock::now() - start >= 100ms));
    BOOST_TEST((f.get() == net::error::timed_out));
    BOOST_TEST(book.stats(1).failed == 1u);
    BOOST_TEST(r.held->size() == 2u);  // given up, and asked again
}

BOOST_AUTO_TEST_CASE(destroyed_with_a_resolution_pending) {
    // A custom resolver answering after the book is gone: the answer is dropped.
    {
        net::io_context ioc;
        hung_resolver r;
        std::vector services{named("late.test")};
        {
            fanout::address_book book{ioc.get_executor(), services, r.function()};
            BOOST_TEST_REQUIRE(runs_dry(ioc));
        }
        BOOST_TEST_REQUIRE(r.held->size() == 1u);
        r.held->front()({}, {loopback(1)});
        BOOST_TEST(runs_dry(ioc));
    }
    // Asio's resolver: cancelled by the destructor, its completion finds nothing to touch.
    {
        net::io_context ioc;
        std::vector services{named("localhost")};
        {
            fanout::address_book book{ioc.get_executor(), services};
            ioc.poll_one();  // starts the resolution
        }
        BOOST_TEST(runs_dry(ioc));
    }
    // And before the resolution even started.
    {
        net::io_context ioc;
        std::vector services{named("localhost")};
        { fanout::address_book book{ioc.get_executor(), services}; }
        BOOST_TEST(runs_dry(ioc));
    }
}

// ---- one service's addresses and resolutions without I/O, the time passed in (service_addresses)

namespace {

using addresses = fanout::service_addresses;
using to_do = addresses::to_do;
auto const t0 = std::chrono::steady_clock::time_point{} + 1000h;

fanout::address_book_options timing() {
    return {.refresh = 30s, .retry = 1s, .skip = 2s, .give_up = 10s};
}

}  // namespace

BOOST_AUTO_TEST_CASE(unanswered_resolution_is_given_up_and_asked_again) {
    addresses a{"backend.invalid", 8080, timing()};
    BOOST_TEST((a.due(t0) == to_do::resolve));
    BOOST_TEST(a.generation() == 1u);
    BOOST_TEST((a.due(t0 + 10s - 1ns) == to_do::nothing));  // one question at a time
    BOOST_TEST((a.next_due() == t0 + 10s));
    BOOST_TEST(!a.resolved_once());
    BOOST_TEST((a.due(t0 + 10s) == to_do::give_up_and_resolve));
    BOOST_TEST(a.generation() == 2u);
    BOOST_TEST(a.resolved_once());
    BOOST_TEST(a.stats().failed == 1u);
    BOOST_TEST((a.error() == net::error::timed_out));
    BOOST_TEST(!a.pick(t0 + 10s));

    // The first question's late addresses are still good news; the second's failure then keeps them.
    BOOST_TEST(a.answer(1, {}, {loopback(1)}, t0 + 11s));
    BOOST_TEST(a.resolving());  // the second is still under way
    BOOST_TEST(a.answer(2, net::error::host_not_found, {}, t0 + 12s));
    BOOST_TEST(!a.resolving());
    BOOST_TEST(str(a.pick(t0 + 12s)) == str(loopback(1)));
    BOOST_TEST(a.stats().succeeded == 1u);
    BOOST_TEST(a.stats().failed == 2u);
    // With addresses, a failed refresh is tried again after the refresh interval, not retry.
    BOOST_TEST((a.due(t0 + 12s + 30s - 1ns) == to_do::nothing));
    BOOST_TEST((a.due(t0 + 12s + 30s) == to_do::resolve));
}

BOOST_AUTO_TEST_CASE(late_failure_of_a_given_up_resolution_and_second_answers_are_ignored) {
    addresses a{"backend.invalid", 8080, timing()};
    a.due(t0);
    a.due(t0 + 10s);  // gives up question 1, asks question 2
    BOOST_TEST(!a.answer(1, net::error::host_not_found, {}, t0 + 11s));  // counted when given up
    BOOST_TEST(a.stats().failed == 1u);
    BOOST_TEST(a.answer(2, {}, {loopback(1)}, t0 + 11s));
    BOOST_TEST(!a.answer(2, {}, {loopback(2)}, t0 + 11s));
    BOOST_TEST(!a.answer(1, {}, {loopback(3)}, t0 + 11s));  // older than the last taken
    BOOST_TEST(a.endpoints().size() == 1u);
    BOOST_TEST(str(a.endpoints()[0]) == str(loopback(1)));
}

BOOST_AUTO_TEST_CASE(refusing_address_comes_back_after_its_skip_period) {
    addresses a{"half.test", 80, timing()};
    a.due(t0);
    BOOST_TEST_REQUIRE(a.answer(1, {}, {loopback(1), loopback(2)}, t0));
    a.refused(loopback(1), t0);
    for (int i = 0; i < 3; ++i) BOOST_TEST(str(a.pick(t0 + 2s - 1ns)) == str(loopback(2)));
    BOOST_TEST(str(a.pick(t0 + 2s)) == str(loopback(1)));
    BOOST_TEST(str(a.pick(t0 + 2s)) == str(loopback(2)));  // in turn again
}

BOOST_AUTO_TEST_CASE(every_address_skipped_gives_the_one_whose_skip_ends_first) {
    addresses a{"down.test", 80, timing()};
    a.due(t0);
    a.answer(1, {}, {loopback(1), loopback(2)}, t0);
    a.refused(loopback(2), t0);
    a.refused(loopback(1), t0 + 1s);
    BOOST_TEST(str(a.pick(t0 + 1s)) == str(loopback(2)));
    std::vector tried{loopback(2)};
    BOOST_TEST(str(a.pick(t0 + 1s, tried)) == str(loopback(1)));
    tried.push_back(loopback(1));
    BOOST_TEST(!a.pick(t0 + 1s, tried));
}

BOOST_AUTO_TEST_CASE(refresh_keeps_the_skip_period_of_an_address_that_stays) {
    addresses a{"half.test", 80, timing()};
    a.due(t0);
    a.answer(1, {}, {loopback(1), loopback(2)}, t0);
    a.refused(loopback(1), t0 + 1s);
    BOOST_TEST((a.due(t0 + 30s - 1ns) == to_do::nothing));
    BOOST_TEST((a.due(t0 + 30s) == to_do::resolve));
    BOOST_TEST(a.answer(2, {}, {loopback(3), loopback(1), loopback(1)}, t0 + 30s));  // duplicates dropped
    BOOST_TEST(a.endpoints().size() == 2u);
    for (int i = 0; i < 3; ++i) BOOST_TEST(str(a.pick(t0 + 3s - 1ns)) == str(loopback(3)));
    BOOST_TEST(a.stats().succeeded == 2u);
}

BOOST_AUTO_TEST_CASE(failure_without_addresses_is_retried_after_retry_even_without_refresh) {
    auto o = timing();
    o.refresh = 0ms;  // resolved at start only, once it succeeds
    addresses a{"nowhere.test", 80, o};
    a.due(t0);
    BOOST_TEST(a.answer(1, net::error::host_not_found, {}, t0));
    BOOST_TEST((a.error() == net::error::host_not_found));
    BOOST_TEST((a.due(t0 + 1s - 1ns) == to_do::nothing));
    BOOST_TEST((a.due(t0 + 1s) == to_do::resolve));
    BOOST_TEST(a.answer(2, {}, {loopback(1)}, t0 + 1s));
    BOOST_TEST(!a.error());
    BOOST_TEST((a.due(t0 + 1000h) == to_do::nothing));  // never again
}

BOOST_AUTO_TEST_CASE(a_resolver_that_throws_is_asked_again_after_retry) {
    addresses a{"flaky.test", 80, timing()};
    BOOST_TEST((a.due(t0) == to_do::resolve));
    a.start_failed(t0);
    BOOST_TEST(!a.resolving());
    BOOST_TEST((a.due(t0 + 1s - 1ns) == to_do::nothing));
    BOOST_TEST((a.due(t0 + 1s) == to_do::resolve));
}

BOOST_AUTO_TEST_CASE(an_ip_literal_is_never_due) {
    addresses a{"::1", 8081, timing()};
    BOOST_TEST(a.literal());
    BOOST_TEST(a.resolved_once());
    BOOST_TEST((a.due(t0) == to_do::nothing));
    BOOST_TEST(str(a.pick(t0)) == str(tcp::endpoint(net::ip::make_address("::1"), 8081)));
}

BOOST_AUTO_TEST_SUITE_END()
