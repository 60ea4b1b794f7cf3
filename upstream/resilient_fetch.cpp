// Hedging and retries around attempts (attempt.cpp): when to send a second request or another
// try is decided by the policies in policy.hpp, with the time passed in; this file runs them.

#include "upstream/client_impl.hpp"
#include "upstream/failure.hpp"
#include "wire/use_tuple.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>

namespace fanout {

namespace net = boost::asio;

net::awaitable<fetch_result> client::impl::resilient_fetch(
    std::size_t index, std::string head, fetch_headers headers
) {
    using clock = std::chrono::steady_clock;
    auto const& svc = services[index];
    auto& state = states[index]->resilience;
    auto const start = clock::now();
    if (hedges(svc)) state.hedges.deposit(svc.hedge_budget);
    if (svc.max_retries) state.retries.deposit(svc.retry_budget);
    fetch_result out;
    fetch_attempts attempts;
    try {
        for (;;) {
            bool const closed =
                !svc.breaker_failures || states[index]->breaker.state() == breaker_state::closed;
            auto const delay = hedge_delay(svc, state.latencies, closed, headers.deadline, clock::now());
            fetch_result next;
            if (delay)
                next = co_await hedged(index, head, headers, *delay, attempts);
            else
                next = co_await attempt(index, head, headers);
            attempts.refused = next.attempts.refused;
            // A retry refused by the circuit that the requests before it opened: not sent, and the
            // fetch failed as they did, which says why (circuit_open would not).
            if (attempts.refused && attempts.retries) {
                --attempts.retries;
                break;
            }
            out = std::move(next);
            if (!retryable(out)) break;
            auto const now = clock::now();
            auto const backoff = retry_backoff(
                svc, out, attempts.retries, std::uniform_real_distribution(0.5, 1.5)(jitter),
                headers.deadline, now
            );
            if (!backoff) break;
            if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none)
                throw boost::system::system_error(net::error::operation_aborted);
            if (!state.retries.take(svc.retry_min_per_s, now)) {
                attempts.over_budget = true;
                break;
            }
            ++attempts.retries;
            net::steady_timer timer{ex, *backoff};
            co_await timer.async_wait(net::use_awaitable);
        }
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted) throw;
        out = cancelled_result();
    }
    out.elapsed = clock::now() - start;
    out.attempts = attempts;
    co_return out;
}

net::awaitable<fetch_result> client::impl::hedged(
    std::size_t index,
    std::string const& head,
    fetch_headers const& headers,
    std::chrono::steady_clock::duration delay,
    fetch_attempts& attempts
) {
    hedge_race race;
    auto const pair_start = std::chrono::steady_clock::now();
    auto [order, e0, first, e1, second] =
        co_await net::experimental::make_parallel_group(
            net::co_spawn(ex, attempt(index, head, headers, &race.decided), net::deferred),
            net::co_spawn(ex, hedge(index, head, headers, delay, race), net::deferred)
        )
            .async_wait(hedge_race::first_success{&race}, net::use_awaitable);
    if (e0) first = cancelled_or_rethrow(e0);
    if (e1) second = cancelled_or_rethrow(e1);
    attempts.hedged = attempts.hedged || race.sent;
    attempts.over_budget = attempts.over_budget || race.declined;
    if (race.sent && second.ok() && (order[0] == 1 || !first.ok())) {
        attempts.hedge_won = true;
        // The first request took at least this long: without it the slow answers the hedge cut
        // short would leave the histogram, and the quantile would drift down.
        if (!first.ok() && services[index].hedge_quantile)
            states[index]->resilience.latencies.add(std::chrono::steady_clock::now() - pair_start);
        co_return second;
    }
    co_return first;
}

net::awaitable<fetch_result> client::impl::hedge(
    std::size_t index,
    std::string const& head,
    fetch_headers const& headers,
    std::chrono::steady_clock::duration delay,
    hedge_race& race
) {
    net::steady_timer timer{ex, delay};
    auto [ec] = co_await timer.async_wait(wire::use_tuple);
    // The first request may have won while the timer's completion waited to run.
    auto const cs = co_await net::this_coro::cancellation_state;
    if (ec || cs.cancelled() != net::cancellation_type::none) co_return cancelled_result();
    if (!states[index]->resilience.hedges.take(0, std::chrono::steady_clock::now())) {
        race.declined = true;
        co_return make_failure(error_kind::cancelled, "hedge over budget");
    }
    race.sent = true;
    co_return co_await attempt(index, head, headers, &race.decided);
}

}  // namespace fanout
