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
    std::vector<bool> sent = std::vector<bool>(cancel.size());  // by producer: done, not to be cancelled

    void cancel_producers() {
        for (std::size_t i = 0; i < cancel.size(); ++i)
            if (!sent[i]) cancel[i].emit(net::cancellation_type::terminal);
    }
};

net::awaitable<void> produce(
    upstream::client& client,
    std::size_t index,
    std::shared_ptr<request_state> state,
    std::shared_ptr<handler_stats> stats
) {
    struct live_guard {
        std::shared_ptr<handler_stats> stats;
        ~live_guard() { --stats->channel_producers_live; }
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
    // Capacity is one slot per producer, so this never blocks and never fails. The producer ends
    // right after it (the guard counts it gone), before the handler can resume with the value.
    state->sent[index] = true;
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

    // Cancelling the handler (shutdown) cancels the producers, and the handler still collects a
    // value from each, so that none is left behind using the client. The receive itself is never
    // cancelled: on Boost 1.81 a cancelled receive leaves the channel refusing try_send. Asio
    // clears the coroutine's slot each time it resumes, so the handler is put back before each wait.
    bool const throwing = co_await net::this_coro::throw_if_cancelled();
    co_await net::this_coro::throw_if_cancelled(false);
    auto cs = co_await net::this_coro::cancellation_state;
    std::vector<upstream::fetch_result> results(services.size());
    for (std::size_t received = 0; received < services.size(); ++received) {
        if (cs.cancelled() != net::cancellation_type::none) state->cancel_producers();  // while unwatched
        if (cs.slot().is_connected())
            cs.slot().assign([state](net::cancellation_type) { state->cancel_producers(); });
        auto [ec, index, result] = co_await state->results.async_receive(
            net::bind_cancellation_slot(net::cancellation_slot(), net::as_tuple(net::use_awaitable))
        );
        results[index] = std::move(result);
    }
    co_await net::this_coro::throw_if_cancelled(throwing);
    co_return finish(ctx, "channel", results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
