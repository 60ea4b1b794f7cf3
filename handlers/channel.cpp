#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout {

namespace net = boost::asio;

net::awaitable<reply> channel(handler_context& ctx, aggregate_request req) {
    using namespace net::experimental::awaitable_operators;
    // The fetches run detached; the server's drain waits for the ones still running.
    std::shared_ptr<std::size_t> live(ctx.stats, &ctx.stats->channel_producers_live);
    auto const executor = co_await net::this_coro::executor;
    auto arriving = as_completed(executor, fetches(ctx.client, req, false), live);
    // Cancelling the collection (shutdown, or max_fetch passing: one timer for the group) cancels
    // the fetches, and each() still collects a value from each, so that none is left behind using
    // the client.
    std::vector<fanout::fetch_result> results(arriving.size());
    auto collect = [&](std::size_t index, outcome<fanout::fetch_result> o) {
        results[index] = result_of(std::move(o), req);
    };
    auto const bound = req.start + req.max_fetch;
    net::steady_timer timer{executor, bound};
    auto const ended =
        co_await (arriving.each(collect) || timer.async_wait(net::as_tuple(net::use_awaitable)));
    // The timer won: the fetches it cancelled missed max_fetch.
    if (ended.index() == 1 && !std::get<0>(std::get<1>(ended)))
        for (auto& r : results)
            if (!r.ok() && r.error->kind == fanout::error_kind::cancelled)
                r = timeout_failure(req.start, bound);
    co_return finish(ctx, "channel", results, partial_status(results, req), req);
}

}  // namespace fanout
