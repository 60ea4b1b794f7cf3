// The combinators over operations that are not HTTP fetches: timers and plain coroutines.

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/combinators.hpp>
#include <stdexcept>
#include <string>

using namespace fanout;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

// What happened to the children of one test.
struct trace {
    int started = 0;    // children that began to wait
    int cancelled = 0;  // children whose wait was cancelled
    int finished = 0;   // children that completed (any way)
};

// A value after `delay`; a cancelled wait throws operation_aborted (counted).
net::awaitable<int> after(std::chrono::milliseconds delay, int value, trace& t) {
    net::steady_timer timer{co_await net::this_coro::executor, delay};
    ++t.started;
    try {
        co_await timer.async_wait(net::use_awaitable);
    } catch (boost::system::system_error const&) {
        ++t.cancelled;
        ++t.finished;
        throw;
    }
    ++t.finished;
    co_return value;
}

net::awaitable<int> throws_after(std::chrono::milliseconds delay, trace& t) {
    co_await after(delay, 0, t);
    throw std::runtime_error("broken");
}

net::awaitable<void> nothing() {
    co_return;
}

net::awaitable<std::string> text(std::string s) {
    co_return s;
}

// Runs `op` on a fresh loop to its end, optionally cancelling it (terminal) once `cancel_after`
// has passed; returns its result. Fails the test if it does not complete within 10 s.
template <class T>
T run(net::io_context& ioc, net::awaitable<T> op, std::chrono::milliseconds cancel_after = 0ms) {
    std::optional<T> result;
    net::cancellation_signal cancel;
    net::steady_timer canceller{ioc, cancel_after};
    if (cancel_after > 0ms)
        canceller.async_wait([&](boost::system::error_code ec) {
            if (!ec) cancel.emit(net::cancellation_type::terminal);
        });
    net::co_spawn(
        ioc, std::move(op),
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, T r) {
                BOOST_TEST(!e);
                result.emplace(std::move(r));
                canceller.cancel();
            }
        )
    );
    auto const give_up = std::chrono::steady_clock::now() + 10s;
    while (!result && std::chrono::steady_clock::now() < give_up) ioc.run_one_for(100ms);
    BOOST_TEST_REQUIRE(result.has_value());
    return std::move(*result);
}

std::vector<net::awaitable<int>> children(auto&&... c) {
    std::vector<net::awaitable<int>> v;
    (v.push_back(std::move(c)), ...);
    return v;
}

// Every outcome of `c` in the order they arrive, even when cancelled.
net::awaitable<std::vector<std::pair<std::size_t, outcome<int>>>> read_all(
    std::vector<net::awaitable<int>> c, std::shared_ptr<std::size_t> live
) {
    co_await net::this_coro::throw_if_cancelled(false);
    auto arriving = as_completed(co_await net::this_coro::executor, std::move(c), live);
    BOOST_TEST(*live == arriving.size());
    std::vector<std::pair<std::size_t, outcome<int>>> out;
    while (arriving.remaining() > 0) out.push_back(co_await arriving.next());
    co_return out;
}

// A value without a default constructor (a child's value need not have one).
struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
};

net::awaitable<no_default> no_default_after(std::chrono::milliseconds delay, int value, trace& t) {
    co_return no_default(co_await after(delay, value, t));
}

net::awaitable<no_default> no_default_throws_after(std::chrono::milliseconds delay, trace& t) {
    co_await after(delay, 0, t);
    throw std::runtime_error("broken");
}

net::awaitable<int> at_once(int value) {
    co_return value;
}

// Whether fail_fast let out what its failure test threw (on the second child's value).
net::awaitable<bool> fail_fast_thrown_through(trace& t) {
    auto failed = [](int v) -> bool {
        if (v == 2) throw std::logic_error("cannot tell");
        return false;
    };
    try {
        co_await fail_fast(children(after(1h, 1, t), after(5ms, 2, t), after(1h, 3, t)), failed);
    } catch (std::logic_error const&) {
        co_return true;
    }
    co_return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_combinators)

BOOST_AUTO_TEST_CASE(wait_all_waits_for_every_child_and_keeps_errors_as_values) {
    net::io_context ioc;
    trace t;
    auto outs = run(ioc, wait_all(children(after(30ms, 1, t), throws_after(1ms, t), after(1ms, 3, t))));
    BOOST_TEST(t.finished == 3);  // the slowest too: nothing was cancelled
    BOOST_TEST(t.cancelled == 0);
    BOOST_TEST_REQUIRE(outs.size() == 3u);
    BOOST_TEST((outs[0].ok() && *outs[0].value == 1));
    BOOST_TEST(!outs[1].ok());
    BOOST_TEST((outs[1].error == group_error::exception));
    BOOST_TEST(static_cast<bool>(outs[1].exception));
    BOOST_TEST((outs[2].ok() && *outs[2].value == 3));
}

BOOST_AUTO_TEST_CASE(wait_all_of_a_fixed_set_keeps_each_childs_type) {
    net::io_context ioc;
    trace t;
    auto [a, b, c] = run(ioc, wait_all(after(5ms, 7, t), text("seven"), nothing()));
    BOOST_TEST(*a.value == 7);
    BOOST_TEST(*b.value == "seven");
    BOOST_TEST(c.ok());
}

BOOST_AUTO_TEST_CASE(wait_all_is_held_by_a_hung_child_until_cancelled) {
    net::io_context ioc;
    trace t;
    auto outs = run(ioc, wait_all(children(after(1ms, 1, t), after(1h, 2, t))), 50ms);
    BOOST_TEST((outs[0].ok() && *outs[0].value == 1));
    BOOST_TEST((outs[1].error == net::error::operation_aborted));
    BOOST_TEST(t.cancelled == 1);
}

BOOST_AUTO_TEST_CASE(within_reports_the_late_children_as_timeouts_and_cancels_them) {
    net::io_context ioc;
    trace t;
    auto outs = run(ioc, within(50ms, children(after(1ms, 1, t), after(1h, 2, t), throws_after(1ms, t))));
    BOOST_TEST((outs[0].ok() && *outs[0].value == 1));
    BOOST_TEST((outs[1].error == group_error::timeout));
    BOOST_TEST((outs[2].error == group_error::exception));
    BOOST_TEST(t.cancelled == 1);
    BOOST_TEST(t.finished == 3);  // the late one was cancelled before `within` completed
}

BOOST_AUTO_TEST_CASE(within_cancelled_before_its_deadline_reports_no_timeout) {
    net::io_context ioc;
    trace t;
    auto [fast, hung] = run(ioc, within(1h, after(1ms, 1, t), after(1h, 2, t)), 50ms);
    BOOST_TEST(*fast.value == 1);
    BOOST_TEST((hung.error == net::error::operation_aborted));
    BOOST_TEST(t.cancelled == 1);
}

BOOST_AUTO_TEST_CASE(fail_fast_reports_the_first_failure_and_cancels_the_others) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, fail_fast(children(after(1h, 1, t), throws_after(5ms, t), after(1h, 3, t))));
    BOOST_TEST_REQUIRE(r.first_failure.has_value());
    BOOST_TEST(*r.first_failure == 1u);
    BOOST_TEST((r.outcomes[1].error == group_error::exception));
    BOOST_TEST((r.outcomes[0].error == net::error::operation_aborted));
    BOOST_TEST((r.outcomes[2].error == net::error::operation_aborted));
    BOOST_TEST(t.cancelled == 2);
}

BOOST_AUTO_TEST_CASE(fail_fast_takes_a_value_as_a_failure_when_told) {
    net::io_context ioc;
    trace t;
    auto negative = [](int v) { return v < 0; };
    auto r = run(ioc, fail_fast(children(after(1h, 1, t), after(5ms, -1, t)), negative));
    BOOST_TEST_REQUIRE(r.first_failure.has_value());
    BOOST_TEST(*r.first_failure == 1u);
    BOOST_TEST(*r.outcomes[1].value == -1);  // the failing value is kept
    BOOST_TEST(t.cancelled == 1);
}

// A value `failed` rejects is a failure in its outcome too, not only in first_failure: a caller
// testing ok() must not take it for a success.
BOOST_AUTO_TEST_CASE(fail_fast_value_taken_as_a_failure_is_not_ok) {
    net::io_context ioc;
    trace t;
    auto negative = [](int v) { return v < 0; };
    auto r = run(ioc, fail_fast(children(after(1ms, 1, t), after(5ms, -1, t), after(1h, 3, t)), negative));
    BOOST_TEST_REQUIRE(r.first_failure.has_value());
    BOOST_TEST(*r.first_failure == 1u);
    BOOST_TEST(r.outcomes[0].ok());  // accepted before the failure
    BOOST_TEST(!r.outcomes[1].ok());
    BOOST_TEST((r.outcomes[1].error == group_error::failed));
    BOOST_TEST(*r.outcomes[1].value == -1);
    BOOST_TEST((r.outcomes[2].error == net::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(fail_fast_cancelled_from_outside_has_no_first_failure) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, fail_fast(after(1h, 1, t), after(1h, 2, t)), 50ms);
    BOOST_TEST(!r.first_failure.has_value());
    BOOST_TEST((std::get<0>(r.outcomes).error == net::error::operation_aborted));
    BOOST_TEST((std::get<1>(r.outcomes).error == net::error::operation_aborted));
    BOOST_TEST(t.cancelled == 2);
}

BOOST_AUTO_TEST_CASE(fail_fast_with_a_deadline_reports_the_late_as_timeouts) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, fail_fast(50ms, children(after(1ms, 1, t), after(1h, 2, t))));
    BOOST_TEST(!r.first_failure.has_value());
    BOOST_TEST(*r.outcomes[0].value == 1);
    BOOST_TEST((r.outcomes[1].error == group_error::timeout));
    BOOST_TEST(t.cancelled == 1);
}

BOOST_AUTO_TEST_CASE(as_completed_delivers_in_completion_order) {
    net::io_context ioc;
    trace t;
    auto live = std::make_shared<std::size_t>(0);
    auto outs = run(ioc, read_all(children(after(60ms, 0, t), after(1ms, 1, t), after(30ms, 2, t)), live));
    std::vector<std::size_t> order;
    for (auto& [index, outcome] : outs) {
        BOOST_TEST(*outcome.value == static_cast<int>(index));
        order.push_back(index);
    }
    BOOST_TEST(order == (std::vector<std::size_t>{1, 2, 0}), boost::test_tools::per_element());
    BOOST_TEST(*live == 0u);
}

// each(): the same order, in one coroutine.
net::awaitable<std::vector<std::size_t>> order_of(std::vector<net::awaitable<int>> c) {
    auto arriving = as_completed(co_await net::this_coro::executor, std::move(c));
    std::vector<std::size_t> order;
    co_await arriving.each([&](std::size_t index, outcome<int> o) {
        BOOST_TEST(*o.value == static_cast<int>(index));
        order.push_back(index);
    });
    BOOST_TEST(arriving.remaining() == 0u);
    co_return order;
}

BOOST_AUTO_TEST_CASE(as_completed_each_delivers_in_completion_order) {
    net::io_context ioc;
    trace t;
    auto order = run(ioc, order_of(children(after(60ms, 0, t), after(1ms, 1, t), after(30ms, 2, t))));
    BOOST_TEST(order == (std::vector<std::size_t>{1, 2, 0}), boost::test_tools::per_element());
}

// each_until(): the children still running at the deadline are cancelled, and their outcomes come.
net::awaitable<std::pair<bool, std::vector<outcome<int>>>> each_until_bound(
    std::vector<net::awaitable<int>> c, std::chrono::milliseconds bound
) {
    auto arriving = as_completed(co_await net::this_coro::executor, std::move(c));
    std::vector<outcome<int>> outs(arriving.size());
    bool const late =
        co_await arriving.each_until(bound, [&](std::size_t index, outcome<int> o) { outs[index] = o; });
    BOOST_TEST(arriving.remaining() == 0u);
    co_return std::pair{late, std::move(outs)};
}

BOOST_AUTO_TEST_CASE(as_completed_each_until_cancels_the_late_at_the_deadline) {
    net::io_context ioc;
    trace t;
    auto [late, outs] = run(ioc, each_until_bound(children(after(1ms, 0, t), after(1h, 1, t)), 50ms));
    BOOST_TEST(late);
    BOOST_TEST(*outs[0].value == 0);
    BOOST_TEST((outs[1].error == net::error::operation_aborted));
    BOOST_TEST(t.cancelled == 1);
}

BOOST_AUTO_TEST_CASE(as_completed_each_until_all_in_time_is_not_late) {
    net::io_context ioc;
    trace t;
    auto [late, outs] = run(ioc, each_until_bound(children(after(1ms, 0, t), after(5ms, 1, t)), 1h));
    BOOST_TEST(!late);
    BOOST_TEST(*outs[0].value == 0);
    BOOST_TEST(*outs[1].value == 1);
    BOOST_TEST(t.cancelled == 0);
    // The deadline's timer was cancelled, not left pending: run() returned well before the hour.
}

// A child that takes `linger` to stop once cancelled (the second wait is cancelled only by a new
// cancellation).
net::awaitable<int> slow_to_stop(std::chrono::milliseconds linger) {
    auto const ex = co_await net::this_coro::executor;
    net::steady_timer until_cancelled{ex, 1h};
    co_await until_cancelled.async_wait(net::as_tuple(net::use_awaitable));
    co_await net::this_coro::reset_cancellation_state();
    net::steady_timer stopping{ex, linger};
    auto [ec] = co_await stopping.async_wait(net::as_tuple(net::use_awaitable));
    co_return ec ? -1 : 7;
}

// The caller's cancellation, not the deadline, stopped the child: a deadline passing while it
// stops is not reported, and does not cancel it again.
BOOST_AUTO_TEST_CASE(as_completed_each_until_after_the_callers_cancellation_is_not_late) {
    net::io_context ioc;
    auto [late, outs] = run(ioc, each_until_bound(children(slow_to_stop(150ms)), 50ms), 10ms);
    BOOST_TEST(!late);
    BOOST_TEST(*outs[0].value == 7);
}

// The caller cancelled while it was not in next() (here: in a wait of its own): its next next()
// passes the cancellation on to the children still running, even when it takes a child that had
// already ended, without waiting.
net::awaitable<int> cancelled_away_then_next(trace& t) {
    co_await net::this_coro::throw_if_cancelled(false);
    auto const ex = co_await net::this_coro::executor;
    auto arriving = as_completed(ex, children(after(0ms, 0, t), after(1h, 1, t)));
    net::steady_timer away{ex, 1h};
    co_await away.async_wait(net::as_tuple(net::use_awaitable));  // run() cancels it
    auto const first = co_await arriving.next();
    BOOST_TEST(*first.second.value == 0);
    // The hour-long child's cancelled wait completes through the loop, not through next().
    for (int i = 0; i < 10 && t.cancelled == 0; ++i) co_await net::post(ex, net::use_awaitable);
    co_return t.cancelled;
}

BOOST_AUTO_TEST_CASE(as_completed_cancelled_between_reads_cancels_the_children_at_the_next) {
    net::io_context ioc;
    trace t;
    BOOST_TEST(run(ioc, cancelled_away_then_next(t), 20ms) == 1);
}

BOOST_AUTO_TEST_CASE(as_completed_cancelled_still_delivers_every_outcome) {
    net::io_context ioc;
    trace t;
    auto live = std::make_shared<std::size_t>(0);
    auto arrived =
        run(ioc, read_all(children(after(1ms, 0, t), after(1h, 1, t), after(1h, 2, t)), live), 50ms);
    BOOST_TEST_REQUIRE(arrived.size() == 3u);
    BOOST_TEST(arrived[0].first == 0u);
    BOOST_TEST(*arrived[0].second.value == 0);
    BOOST_TEST((arrived[1].second.error == net::error::operation_aborted));
    BOOST_TEST((arrived[2].second.error == net::error::operation_aborted));
    BOOST_TEST(*live == 0u);
}

BOOST_AUTO_TEST_CASE(as_completed_destroyed_early_cancels_the_children) {
    net::io_context ioc;
    trace t;
    auto live = std::make_shared<std::size_t>(0);
    {
        auto arriving = as_completed(ioc.get_executor(), children(after(1h, 0, t), after(1h, 1, t)), live);
        ioc.run_for(10ms);
        BOOST_TEST(*live == 2u);
    }
    for (int i = 0; i < 100 && *live > 0; ++i) ioc.run_one_for(100ms);
    BOOST_TEST(*live == 0u);
    BOOST_TEST(t.cancelled == 2);
}

BOOST_AUTO_TEST_CASE(group_errors_are_a_category_of_their_own) {
    boost::system::error_code ec = group_error::timeout;
    BOOST_TEST((ec == group_error::timeout));
    BOOST_TEST((ec != group_error::exception));
    BOOST_TEST(make_error_code(group_error::failed).message() == "completed with a value taken as a failure");
    BOOST_TEST(std::string(ec.category().name()) == "fanout.group");
    BOOST_TEST(!ec.message().empty());
    BOOST_TEST(static_cast<bool>(ec));  // a group error is never success
}

// A deferred operation is a child as an awaitable is: its error code becomes the outcome's error.
BOOST_AUTO_TEST_CASE(deferred_operations_are_children_with_their_error_codes) {
    net::io_context ioc;
    trace t;
    net::steady_timer quick{ioc, 1ms}, hung{ioc, 1h};
    auto [a, b, c] =
        run(ioc, within(
                     100ms, quick.async_wait(net::deferred), hung.async_wait(net::deferred),
                     net::co_spawn(ioc, after(2ms, 5, t), net::deferred)
                 ));
    BOOST_TEST(a.ok());
    BOOST_TEST((b.error == group_error::timeout));  // still waiting at the deadline: cancelled
    BOOST_TEST((c.ok() && *c.value == 5));
}

BOOST_AUTO_TEST_CASE(a_vector_of_deferred_operations_is_cancelled_from_outside) {
    net::io_context ioc;
    std::vector<net::steady_timer> timers;
    timers.emplace_back(ioc, 1ms);
    timers.emplace_back(ioc, 1h);
    std::vector<decltype(timers[0].async_wait(net::deferred))> waits;
    for (auto& timer : timers) waits.push_back(timer.async_wait(net::deferred));
    auto outs = run(ioc, wait_all(std::move(waits)), 50ms);  // the hung one cancelled from outside
    BOOST_TEST(outs[0].ok());
    BOOST_TEST((outs[1].error == net::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(quorum_takes_the_first_k_successes_and_cancels_the_rest) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, quorum(2, children(after(1h, 1, t), after(30ms, 2, t), after(1ms, 3, t))));
    BOOST_TEST(r.reached());
    BOOST_TEST((r.succeeded == std::vector<std::size_t>{2, 1}));
    BOOST_TEST(t.cancelled == 1);
    BOOST_TEST((r.outcomes[0].error == net::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(quorum_gives_up_as_soon_as_it_cannot_be_reached) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, quorum(2, children(throws_after(1ms, t), after(1h, 2, t), throws_after(2ms, t))));
    BOOST_TEST(!r.reached());
    BOOST_TEST(r.succeeded.empty());
    BOOST_TEST(t.cancelled == 1);  // the hung one, once two of three had failed
}

// A value with ok() false is a failure by default (as a fetch_result that failed).
struct checked {
    int value;
    bool ok() const noexcept { return value > 0; }
};
net::awaitable<checked> checked_after(std::chrono::milliseconds delay, int value, trace& t) {
    co_return checked{co_await after(delay, value, t)};
}

BOOST_AUTO_TEST_CASE(first_success_skips_failures_and_cancels_the_rest) {
    net::io_context ioc;
    trace t;
    std::vector<net::awaitable<checked>> replicas;
    replicas.push_back(checked_after(1ms, -1, t));  // fails first
    replicas.push_back(checked_after(5ms, 2, t));
    replicas.push_back(checked_after(1h, 3, t));
    auto r = run(ioc, first_success(std::move(replicas)));
    BOOST_TEST_REQUIRE(r.winner.has_value());
    BOOST_TEST(*r.winner == 1u);
    BOOST_TEST((r.outcomes[0].error == group_error::failed));
    BOOST_TEST(t.cancelled == 1);
}

// Hedging: the second replica starts after the stagger when the first is slow, the third never.
BOOST_AUTO_TEST_CASE(first_success_staggered_starts_the_next_after_the_delay) {
    net::io_context ioc;
    trace t;
    // A stagger wide enough that the third is never due before the second has answered, even on a
    // loaded machine.
    auto r =
        run(ioc,
            first_success(children(after(1h, 1, t), after(1ms, 2, t), after(1ms, 3, t)), not_ok{}, 300ms));
    BOOST_TEST_REQUIRE(r.winner.has_value());
    BOOST_TEST(*r.winner == 1u);
    BOOST_TEST(t.started == 2);  // the third never began
    BOOST_TEST((r.outcomes[2].error == net::error::operation_aborted));
}

// A failure starts the next one at once, however long the stagger.
BOOST_AUTO_TEST_CASE(first_success_staggered_starts_the_next_when_one_fails) {
    net::io_context ioc;
    trace t;
    auto r = run(ioc, first_success(children(throws_after(1ms, t), after(1ms, 2, t)), not_ok{}, 1h));
    BOOST_TEST_REQUIRE(r.winner.has_value());
    BOOST_TEST(*r.winner == 1u);
}

BOOST_AUTO_TEST_CASE(fail_fast_takes_a_value_with_ok_false_as_a_failure) {
    net::io_context ioc;
    trace t;
    std::vector<net::awaitable<checked>> c;
    c.push_back(checked_after(1h, 1, t));
    c.push_back(checked_after(1ms, -2, t));
    auto r = run(ioc, fail_fast(std::move(c)));
    BOOST_TEST((r.first_failure == std::optional<std::size_t>(1)));
    BOOST_TEST(t.cancelled == 1);
}

BOOST_AUTO_TEST_CASE(within_keeps_values_without_a_default_constructor) {
    net::io_context ioc;
    trace t;
    std::vector<net::awaitable<no_default>> c;
    c.push_back(no_default_after(1ms, 4, t));
    c.push_back(no_default_throws_after(1ms, t));
    c.push_back(no_default_after(1h, 6, t));
    auto outs = run(ioc, within(50ms, std::move(c)));
    BOOST_TEST_REQUIRE(outs.size() == 3u);
    BOOST_TEST((outs[0].ok() && outs[0].value->value == 4));
    BOOST_TEST((outs[1].error == group_error::exception));
    BOOST_TEST((outs[2].error == group_error::timeout));
    BOOST_TEST(t.cancelled == 1);
}

// Children that end without ever waiting end the group at once, not at its deadline.
BOOST_AUTO_TEST_CASE(within_of_children_that_never_wait_ends_before_its_deadline) {
    net::io_context ioc;
    auto outs = run(ioc, within(1h, children(at_once(1), at_once(2))));
    BOOST_TEST((outs[0].ok() && *outs[0].value == 1));
    BOOST_TEST((outs[1].ok() && *outs[1].value == 2));
    net::io_context another;  // run() leaves its loop stopped
    auto r = run(another, fail_fast(1h, children(at_once(1), at_once(-1)), [](int v) { return v < 0; }));
    BOOST_TEST((r.first_failure == std::optional<std::size_t>(1)));
}

// An exception from `failed` itself is no child's failure: it comes out of fail_fast, once the
// others are cancelled and have ended.
BOOST_AUTO_TEST_CASE(fail_fast_passes_on_what_its_failure_test_throws) {
    net::io_context ioc;
    trace t;
    BOOST_TEST(run(ioc, fail_fast_thrown_through(t)));
    BOOST_TEST(t.cancelled == 2);
    BOOST_TEST(t.finished == 3);
}

BOOST_AUTO_TEST_SUITE_END()
