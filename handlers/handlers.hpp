#pragma once

#include <boost/asio/awaitable.hpp>

#include <fanout/aggregate.hpp>

namespace fanout::handlers {

// The four aggregation patterns; each fetches every configured service concurrently.
// `ctx` must outlive the returned awaitable.

// Wait for all: the fetches joined with `&&`; no deadline, a hung service hangs the request.
boost::asio::awaitable<reply> wait_group(context& ctx, aggregate_request req);

// One producer per service sends its result into a channel; the handler receives N times.
// No deadline either.
boost::asio::awaitable<reply> channel(context& ctx, aggregate_request req);

// The fetches raced with `||` against one shared deadline (a steady_timer); the late ones are
// cancelled and reported as timeout.
boost::asio::awaitable<reply> context_timeout(context& ctx, aggregate_request req);

// Fail fast under the deadline: the first failure cancels the other fetches.
boost::asio::awaitable<reply> errgroup(context& ctx, aggregate_request req);

}  // namespace fanout::handlers
