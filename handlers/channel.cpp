#include "handlers/handlers.hpp"

#include <boost/asio/this_coro.hpp>

#include <fanout/detail/cancellation.hpp>

namespace fanout::handlers {

boost::asio::awaitable<reply> channel(context& ctx, aggregate_request req) {
    // The fetches run detached; the server's drain waits for the ones still running.
    std::shared_ptr<std::size_t> live(ctx.stats, &ctx.stats->channel_producers_live);
    auto arriving =
        as_completed(co_await boost::asio::this_coro::executor, fetches(ctx.client, req, false), live);
    // Cancelling the handler (shutdown) cancels the fetches, and the handler still collects a
    // value from each (it does not throw at its next co_await), so that none is left behind using
    // the client.
    std::vector<upstream::fetch_result> results(arriving.size());
    auto collect = [&](std::size_t index, outcome<upstream::fetch_result> o) {
        results[index] = settled(std::move(o), req);
    };
    co_await fanout::detail::cancellation_not_thrown(arriving.each(collect));
    co_return finish(ctx, "channel", results, partial_status(results, req), req);
}

}  // namespace fanout::handlers
