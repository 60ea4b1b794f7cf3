#pragma once

// The join of a runtime-sized group as one operation: every child co_spawned at once, and a
// completion once all have ended. It does what the left-deep `&&` chain raced against a timer with
// `||` did (the first child to throw cancels the others; at the deadline those still running are
// cancelled; the caller's cancellation reaches every child), with one shared state for the group
// instead of a parallel group, a coroutine and two co_spawns per `&&` and per `||`.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace fanout::detail {

// Shared by the children's completion handlers: co_spawn reads a child's signal until its
// completion handler has run, so the state lives until the last of them has.
template <class Handler>
struct join_state {
    join_state(Handler h, std::size_t n)
        : handler(std::move(h)),
          signals(new boost::asio::cancellation_signal[n]),
          ended(n),
          cancelled(n),
          running(n),
          outstanding(n) {}

    Handler handler;
    std::unique_ptr<boost::asio::cancellation_signal[]> signals;
    std::vector<bool> ended;
    std::vector<bool> cancelled;  // the group cancelled it (terminal) before it ended
    std::size_t running;          // children not ended
    std::size_t outstanding;      // children not ended, and the timer's wait
    std::exception_ptr failure;
    bool several_failures = false;
    bool stopping = false;                           // the others were cancelled
    std::optional<boost::asio::steady_timer> timer;  // the deadline's, if any
    boost::asio::cancellation_slot caller;           // where the caller's cancellation comes from

    void cancel_running(boost::asio::cancellation_type type) {
        bool const terminal =
            (type & boost::asio::cancellation_type::terminal) != boost::asio::cancellation_type::none;
        for (std::size_t i = 0; i < ended.size(); ++i) {
            if (ended[i]) continue;
            cancelled[i] = cancelled[i] || terminal;
            signals[i].emit(type);
        }
    }

    // `e`: what the child's end threw (rethrown by the join); `stop`: the group is done, the others
    // are cancelled (as a throw in `&&` cancelled them).
    void child_ended(std::size_t index, std::exception_ptr e, bool stop) {
        ended[index] = true;
        --running;
        bool const threw = e != nullptr;
        if (threw) {
            if (failure)
                several_failures = true;
            else
                failure = std::move(e);
        }
        if ((threw || stop) && !stopping) {
            stopping = true;
            cancel_running(boost::asio::cancellation_type::all);
        }
        if (running == 0 && timer) timer->cancel();
        one_ended();
    }

    // However the wait ends (the deadline, or the caller's cancellation), the children still
    // running are cancelled, as they were when the timer won a `||` race.
    void timer_ended() {
        cancel_running(boost::asio::cancellation_type::terminal);
        one_ended();
    }

    void one_ended() {
        if (--outstanding > 0) return;
        if (caller.is_connected()) caller.clear();
        auto e = several_failures ? std::make_exception_ptr(boost::asio::multiple_exceptions(failure))
                                  : std::move(failure);
        boost::asio::dispatch(boost::asio::append(std::move(handler), std::move(e)));
    }
};

// What a child's completion handler reports to the group.
template <class Handler>
struct join_child_end {
    boost::asio::cancellation_slot slot() const noexcept { return state->signals[index].slot(); }
    bool cancelled() const noexcept { return state->cancelled[index]; }
    void operator()(std::exception_ptr e, bool stop) { state->child_ended(index, std::move(e), stop); }

    std::shared_ptr<join_state<Handler>> state;
    std::size_t index;
};

// In the caller's slot until the join completes (it clears the slot then).
template <class Handler>
struct join_cancel {
    void operator()(boost::asio::cancellation_type type) {
        state->cancel_running(type);
        if (state->timer) state->timer->cancel();
    }
    join_state<Handler>* state;
};

// Runs `start(executor, index, end)` for each of `n` children (a co_spawn of child `index` whose
// completion handler calls `end` and takes its cancellation slot from it), and completes once all
// have ended, rethrowing what the first `end` given an exception had (multiple_exceptions when
// several had). With a deadline, the children still running then are cancelled. n > 0.
template <class Start>
boost::asio::awaitable<void> join_all(
    std::size_t n, std::optional<std::chrono::steady_clock::time_point> deadline, Start start
) {
    namespace net = boost::asio;
    return net::async_initiate<decltype(net::use_awaitable), void(std::exception_ptr)>(
        [n, deadline](auto handler, Start spawn) {
            using handler_type = decltype(handler);
            auto ex = net::get_associated_executor(handler);
            auto caller = net::get_associated_cancellation_slot(handler);
            auto state = std::make_shared<join_state<handler_type>>(std::move(handler), n);
            // The timer first: children that all end at once cancel it.
            if (deadline) {
                state->timer.emplace(ex, *deadline);
                ++state->outstanding;
                state->timer->async_wait([state](boost::system::error_code) { state->timer_ended(); });
            }
            if (caller.is_connected()) {
                state->caller = caller;
                caller.template emplace<join_cancel<handler_type>>(join_cancel<handler_type>{state.get()});
            }
            for (std::size_t i = 0; i < n; ++i) spawn(ex, i, join_child_end<handler_type>{state, i});
        },
        net::use_awaitable, std::move(start)
    );
}

}  // namespace fanout::detail
