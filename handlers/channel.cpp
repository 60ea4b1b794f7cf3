#include "handlers/handlers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>

namespace fanout::handlers {

namespace net = boost::asio;

namespace {

using result_channel =
    net::experimental::channel<void(boost::system::error_code, std::size_t, upstream::fetch_result)>;

// Shared by the handler and its detached producers, so that it lives as long as the last of them.
struct request_state {
    request_state(net::any_io_executor ex, std::size_t producers)
        : results(ex, producers), cancel(producers) {}

    result_channel results;
    std::deque<net::cancellation_signal> cancel;  // one per producer; deque: signals do not move
};

net::awaitable<void> produce(
    upstream::client& client,
    std::size_t index,
    std::shared_ptr<request_state> state,
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

    upstream::fetch_result result;
    try {
        co_await client.fetch_to(index, result);
    } catch (std::exception const& e) {
        // Not an upstream failure (those are values) but a bug or exhaustion: the handler still
        // gets its N values, or it would wait for ever.
        result =
            upstream::make_failure(upstream::error_kind::cancelled, std::string("fetch failed: ") + e.what());
    }
    guard.release();
    // Capacity is one slot per producer, so this never blocks and never fails; nothing of the
    // producer is left pending once the handler has received its value.
    state->results.try_send(boost::system::error_code{}, index, std::move(result));
}

}  // namespace

net::awaitable<reply> channel(context& ctx, aggregate_request req) {
    auto ex = co_await net::this_coro::executor;
    auto services = ctx.client.services();
    auto state = std::make_shared<request_state>(ex, services.size());
    for (std::size_t i = 0; i < services.size(); ++i) {
        net::co_spawn(
            ex, produce(ctx.client, i, state, ctx.stats),
            net::bind_cancellation_slot(state->cancel[i].slot(), net::detached)
        );
    }

    std::vector<upstream::fetch_result> results(services.size());
    bool cancelled = false;
    for (std::size_t received = 0; received < services.size();) {
        auto [ec, index, result] = co_await state->results.async_receive(net::as_tuple(net::use_awaitable));
        if (ec) {
            // The handler itself was cancelled (shutdown): cancel the producers too, then collect
            // what they send, so that none is left behind.
            if (cancelled) throw boost::system::system_error(ec);
            cancelled = true;
            co_await net::this_coro::reset_cancellation_state();
            for (auto& signal : state->cancel) signal.emit(net::cancellation_type::terminal);
            continue;
        }
        results[index] = std::move(result);
        ++received;
    }
    co_return finish(ctx, "channel", results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
