#pragma once

#include "handlers/request.hpp"

#include <boost/asio/awaitable.hpp>

#include <fanout/combinators.hpp>
#include <vector>

namespace fanout {

// The four aggregation patterns, each one of the combinators of <fanout/combinators.hpp> over a
// fetch of every configured service. `ctx` must outlive the returned awaitable.

// Wait for all (wait_all): no deadline; a hung service without a timeout of its own holds the request
// until max_fetch.
boost::asio::awaitable<reply> wait_group(handler_context& ctx, aggregate_request req);

// As they complete (as_completed): each fetch sends its result into a channel; the handler
// receives N times. No deadline either (the fetches are bounded as wait_group's).
boost::asio::awaitable<reply> channel(handler_context& ctx, aggregate_request req);

// Partial results at the deadline (within): the late fetches are cancelled and reported as timeout.
boost::asio::awaitable<reply> context_timeout(handler_context& ctx, aggregate_request req);

// Fail fast under the deadline (fail_fast): the first failure cancels the other fetches.
boost::asio::awaitable<reply> errgroup(handler_context& ctx, aggregate_request req);

// One fetch per backend of the request's route (without one: per configured service). A service's own
// timeout ends its fetch as a timeout in every pattern; `bounded` (the deadline-bound patterns): it is
// also sent as the deadline, with the request's when sooner. Every fetch ends as a timeout at
// req.max_fetch at the latest: on the deadline-bound patterns here, on wg and channel by their
// handler's one timer for the group.
std::vector<boost::asio::awaitable<fanout::fetch_result>> fetches(
    fanout::client& client, aggregate_request const& req, bool bounded
);

// A fetch's outcome as a result: a late one is a timeout at the request's deadline. A fetch
// returns upstream failures as values, so what it threw (a bug, exhaustion) is reported as cancelled.
// `at`: the deadline a late one missed, when not the request's (max_fetch, on wg and channel).
fanout::fetch_result result_of(
    outcome<fanout::fetch_result>&& o,
    aggregate_request const& req,
    std::optional<clock::time_point> at = std::nullopt
);
std::vector<fanout::fetch_result> result_of(
    std::vector<outcome<fanout::fetch_result>>&& outcomes,
    aggregate_request const& req,
    std::optional<clock::time_point> at = std::nullopt
);

// partial_status() for a route: a failed backend with a fallback counts as answered.
unsigned partial_status(std::span<fanout::fetch_result const> results, aggregate_request const& req) noexcept;

// Whether a backend's failure leaves the route's answer as if it had succeeded (a fallback), or,
// on errgroup, cancels nothing (`required: false`).
bool tolerated(aggregate_request const& req, std::size_t backend) noexcept;

// The deadline of one service's fetch: the request's, or the service's own timeout if sooner.
clock::time_point service_deadline(fanout::service const& svc, aggregate_request const& req) noexcept;

fanout::fetch_result timeout_failure(clock::time_point start, clock::time_point deadline);

}  // namespace fanout
