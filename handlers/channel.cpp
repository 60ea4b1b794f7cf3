#include "handlers/handlers.hpp"

#include <boost/asio/this_coro.hpp>

namespace fanout::handlers {

boost::asio::awaitable<reply> channel(context& ctx, aggregate_request req) {
    // The fetches run detached; the server's drain waits for the ones still running.
    std::shared_ptr<std::size_t> live(ctx.stats, &ctx.stats->channel_producers_live);
    auto arriving =
        as_completed(co_await boost::asio::this_coro::executor, fetches(ctx.client, req, false), live);
    // Cancelling the handler (shutdown) cancels the fetches, and the handler still collects a
    // value from each (it does not throw at its next co_await), so that none is left behind using
    // the client.
    bool const throwing = co_await boost::asio::this_coro::throw_if_cancelled();
    co_await boost::asio::this_coro::throw_if_cancelled(false);
    std::vector<upstream::fetch_result> results(arriving.size());
    co_await arriving.each([&](std::size_t index, outcome<upstream::fetch_result> o) {
        results[index] = settled(std::move(o), req);
    });
    co_await boost::asio::this_coro::throw_if_cancelled(throwing);
    co_return finish(ctx, "channel", results, partial_status(results, req), req);
}

}  // namespace fanout::handlers
