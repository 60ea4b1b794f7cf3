#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout::handlers {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using upstream::error_kind;

net::awaitable<reply> context_timeout(context& ctx, aggregate_request req) {
    auto services = ctx.client.services();
    std::vector<upstream::fetch_result> results(services.size());
    std::vector<net::awaitable<void>> branches;
    branches.reserve(services.size());
    for (std::size_t i = 0; i < services.size(); ++i)
        branches.push_back(fetch_within(ctx.client, i, req, results[i]));

    // The fetches race one shared deadline. Neither side throws (`||` waits for the first
    // *success*); when the timer wins, the fetches still running are cancelled and say so.
    auto const deadline = req.start + req.timeout;
    auto ex = co_await net::this_coro::executor;
    net::steady_timer timer{ex, deadline};
    auto winner =
        co_await (join_all(std::move(branches)) || timer.async_wait(net::as_tuple(net::use_awaitable)));
    if (deadline_expired(winner)) {
        for (auto& r : results)
            if (!r.ok() && r.error->kind == error_kind::cancelled) r = timeout_failure(req.start, deadline);
    }
    co_return finish(ctx, "context-timeout", results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
