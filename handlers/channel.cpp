#include "handlers/handlers.hpp"

#include <boost/asio/this_coro.hpp>

namespace fanout {

namespace net = boost::asio;

net::awaitable<reply> channel(handler_context& ctx, aggregate_request req) {
    // The fetches run detached; the server's drain waits for the ones still running.
    std::shared_ptr<std::size_t> live(ctx.stats, &ctx.stats->channel_producers_live);
    auto const executor = co_await net::this_coro::executor;
    auto arriving = as_completed(executor, fetches(ctx.client, req, false), live);
    // Cancelling the collection (shutdown, or max_fetch passing) cancels the fetches, and each
    // still delivers its value, so that none is left behind using the client.
    std::vector<fanout::fetch_result> results(arriving.size());
    auto collect = [&](std::size_t index, outcome<fanout::fetch_result> o) {
        results[index] = result_of(std::move(o), req);
    };
    // max_fetch bounds the group: the fetches still running then are cancelled, and missed it.
    auto const bound = req.start + req.max_fetch;
    if (co_await arriving.each_until(bound, collect))
        for (auto& r : results)
            if (!r.ok() && r.error->kind == fanout::error_kind::cancelled)
                r = timeout_failure(req.start, bound);
    co_return finish(ctx, "channel", results, partial_status(results, req), req);
}

}  // namespace fanout
