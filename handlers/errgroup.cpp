#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace fanout::handlers {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using upstream::error_kind;

namespace {

struct group_state {
    upstream::client& client;
    aggregate_request req;
    std::vector<upstream::fetch_result> results;
    std::optional<std::size_t> first_failure;
};

struct fetch_failed : std::runtime_error {
    fetch_failed() : std::runtime_error("upstream fetch failed") {}
};

// Throws on failure so that `&&` cancels the siblings, like errgroup's derived context.
net::awaitable<void> fetch_or_throw(group_state& state, std::size_t index) {
    upstream::fetch_result result;
    co_await fetch_within(state.client, index, state.req, result);
    bool const failed = !result.ok();
    // `&&` may report a sibling's cancellation instead of the cause (it rethrows the left
    // operand's exception): record the cause here.
    if (failed && result.error->kind != error_kind::cancelled && !state.first_failure)
        state.first_failure = index;
    state.results[index] = std::move(result);
    if (failed) throw fetch_failed{};
}

// Completes normally either way, so that it can race the deadline with `||`.
net::awaitable<void> fetch_all(group_state& state) {
    std::vector<net::awaitable<void>> branches;
    branches.reserve(state.results.size());
    for (std::size_t i = 0; i < state.results.size(); ++i) branches.push_back(fetch_or_throw(state, i));
    try {
        co_await join_all(std::move(branches));
    } catch (fetch_failed const&) {
    } catch (net::multiple_exceptions const&) {
    }
}

}  // namespace

net::awaitable<reply> errgroup(context& ctx, aggregate_request req) {
    auto services = ctx.client.services();
    group_state state{ctx.client, req, std::vector<upstream::fetch_result>(services.size()), std::nullopt};
    auto const deadline = req.start + req.timeout;
    auto ex = co_await net::this_coro::executor;
    net::steady_timer timer{ex, deadline};
    auto winner = co_await (fetch_all(state) || timer.async_wait(net::as_tuple(net::use_awaitable)));

    unsigned status = 200;
    if (deadline_expired(winner)) {
        // The deadline cancelled whatever was still running: those are the timeouts.
        for (auto& r : state.results)
            if (!r.ok() && r.error->kind == error_kind::cancelled) r = timeout_failure(req.start, deadline);
        status = 504;
    } else if (state.first_failure) {
        auto const& cause = state.results[*state.first_failure];
        status = cause.error->kind == error_kind::timeout ? 504 : 502;
        auto const& name = services[*state.first_failure].name;
        for (auto& r : state.results)
            if (!r.ok() && r.error->kind == error_kind::cancelled)
                r.error->message = "cancelled: " + name + " failed";
    } else if (!std::all_of(state.results.begin(), state.results.end(), [](auto const& r) {
                   return r.ok();
               })) {
        status = 502;  // cancelled from outside (client gone, shutdown) before anything failed
    }
    co_return finish(ctx, "errgroup", state.results, status, req.start);
}

}  // namespace fanout::handlers
