#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout::handlers {

namespace net = boost::asio;

namespace {

using result_channel =
    net::experimental::channel<void(boost::system::error_code, std::size_t, upstream::fetch_result)>;

// Detached, so it holds shares of everything it touches, even when destroyed unfinished at shutdown.
net::awaitable<void> produce(
    upstream::client& client,
    std::size_t index,
    std::shared_ptr<result_channel> results,
    std::shared_ptr<handler_stats> stats
) {
    struct live_guard {
        std::shared_ptr<handler_stats> stats;
        bool live = true;
        void release() {
            if (std::exchange(live, false)) --stats->channel_producers_live;
        }
        ~live_guard() { release(); }
    } guard{stats};
    ++stats->channel_producers_live;

    auto result = co_await client.fetch(index);
    guard.release();
    // Capacity is one slot per producer, so this never blocks and never fails; nothing of the
    // producer is left pending once the handler has received its value.
    results->try_send(boost::system::error_code{}, index, std::move(result));
}

}  // namespace

net::awaitable<reply> channel(context& ctx, aggregate_request req) {
    auto ex = co_await net::this_coro::executor;
    auto services = ctx.client.services();
    auto ch = std::make_shared<result_channel>(ex, services.size());
    for (std::size_t i = 0; i < services.size(); ++i)
        net::co_spawn(ex, produce(ctx.client, i, ch, ctx.stats), net::detached);

    std::vector<upstream::fetch_result> results(services.size());
    for (std::size_t received = 0; received < services.size(); ++received) {
        auto [ec, index, result] = co_await ch->async_receive(net::as_tuple(net::use_awaitable));
        if (ec) throw boost::system::system_error(ec);  // only if cancelled, which nothing does yet
        results[index] = std::move(result);
    }
    co_return render("channel", services, results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
