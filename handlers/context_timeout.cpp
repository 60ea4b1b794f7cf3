#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout::handlers {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;

namespace {

net::awaitable<void> fetch_before(
    upstream::client& client,
    std::size_t index,
    clock::time_point start,
    clock::time_point deadline,
    upstream::fetch_result& out
) {
    net::steady_timer timer{co_await net::this_coro::executor, deadline};
    // Neither branch throws (see NOTES: `||` waits for the first *success*); the loser is cancelled.
    auto winner = co_await (client.fetch(index) || timer.async_wait(net::as_tuple(net::use_awaitable)));
    if (winner.index() == 0)
        out = std::move(std::get<0>(winner));
    else
        out = timeout_failure(start, deadline);
}

}  // namespace

net::awaitable<reply> context_timeout(context& ctx, aggregate_request req) {
    auto services = ctx.client.services();
    std::vector<upstream::fetch_result> results(services.size());
    std::vector<net::awaitable<void>> branches;
    branches.reserve(services.size());
    for (std::size_t i = 0; i < services.size(); ++i)
        branches.push_back(
            fetch_before(ctx.client, i, req.start, service_deadline(services[i], req), results[i])
        );
    co_await join_all(std::move(branches));
    co_return finish(ctx, "context-timeout", results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
