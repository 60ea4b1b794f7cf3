#pragma once

// The aggregation patterns as combinators over any asynchronous operation: an awaitable (a
// coroutine of the application's own, or an Asio operation given `use_awaitable`), or an Asio
// operation given `boost::asio::deferred` (see async_child). fanout's HTTP endpoints are built on
// these; an upstream fetch is one kind of child among others.
//
//   wait_all      every child runs to its end; errors are values           (WaitGroup)
//   as_completed  each child's outcome as it completes, through a channel  (buffered channel)
//   within        partial results at a deadline; late children cancelled   (context + timeout)
//   fail_fast     the first failure cancels the others and is reported     (errgroup)
//   quorum        the first k successes; the others cancelled
//   first_success the first success, the others cancelled; optionally staggered (hedging)
//
// wait_all, within and fail_fast take a fixed set (`within(50ms, a, b, c)`, a tuple of outcomes)
// or a runtime-sized std::vector of one child type (a vector of outcomes, in the children's
// order); the others a vector. All children start at once on the caller's executor (but for a
// staggered first_success). Terminal cancellation of the awaiting coroutine (e.g. a
// `cancellation_signal` bound with `co_spawn`, or losing a `||` race) is passed on to every child
// still running, and the combinator still completes, with each child's outcome; a combinator
// never leaves a child running when it completes, except `as_completed` when its `completions`
// object is destroyed early (the children are then cancelled and finish in the background).
// Children must not need more than the executor to finish: each runs on its own. A combinator is
// itself a coroutine: `co_spawn(ex, within(...), token)` gives it any completion token.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <fanout/detail/cancellation.hpp>
#include <fanout/detail/group.hpp>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace fanout {

// ---- wait for all: errors as values; a child that never completes holds the group for ever.

template <async_child C>
boost::asio::awaitable<std::vector<outcome<detail::child_value_t<C>>>> wait_all(std::vector<C> children) {
    std::vector<outcome<detail::child_value_t<C>>> outcomes(children.size());
    detail::group_control<> control;
    co_await detail::join(detail::as_awaitables(std::move(children)), outcomes, control);
    co_return outcomes;
}

template <async_child... C>
requires(sizeof...(C) > 0)
    boost::asio::awaitable<std::tuple<outcome<detail::child_value_t<C>>...>> wait_all(C... children) {
    std::tuple<outcome<detail::child_value_t<C>>...> outcomes;
    detail::group_control<> control;
    co_await detail::join_fixed(
        control, outcomes, std::index_sequence_for<C...>{}, detail::as_awaitable(std::move(children))...
    );
    co_return outcomes;
}

// ---- partial results at a deadline: the children still running then are cancelled, and every
// child that completes at or after the deadline is reported as group_error::timeout.

template <async_child C>
boost::asio::awaitable<std::vector<outcome<detail::child_value_t<C>>>> within(
    deadline at, std::vector<C> children
) {
    std::vector<outcome<detail::child_value_t<C>>> outcomes(children.size());
    detail::group_control<> control{at.when};
    co_await detail::join(detail::as_awaitables(std::move(children)), outcomes, control);
    co_return outcomes;
}

template <async_child... C>
requires(sizeof...(C) > 0) boost::asio::awaitable<std::tuple<outcome<detail::child_value_t<C>>...>> within(
    deadline at, C... children
) {
    std::tuple<outcome<detail::child_value_t<C>>...> outcomes;
    detail::group_control<> control{at.when};
    using namespace boost::asio::experimental::awaitable_operators;
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, at.when};
    co_await (
        detail::join_fixed(
            control, outcomes, std::index_sequence_for<C...>{}, detail::as_awaitable(std::move(children))...
        ) ||
        detail::expiry(timer)
    );
    co_return outcomes;
}

// ---- fail fast: a child fails by throwing (an operation: by completing with an error code), or
// by completing with a value `failed` says is a failure (its outcome keeps the value, with error
// group_error::failed, so ok() is false); the first failure cancels the others (whose outcomes
// then say how they ended) and its index is `first_failure`. A failure caused by the group's own
// cancellation (a sibling's failure, the deadline, the caller's cancellation) is never the first
// failure. With a deadline, as `within`; `first_failure` is then empty when the deadline came
// first. `failed(value)`, or `failed(index, value)` when children differ in what counts as a
// failure; by default not_ok (a fetch_result that failed is a failure).

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<fail_fast_result<std::vector<outcome<detail::child_value_t<C>>>>> fail_fast(
    std::vector<C> children, Failed failed = {}
) {
    using T = detail::child_value_t<C>;
    fail_fast_result<std::vector<outcome<T>>> r{std::vector<outcome<T>>(children.size()), {}};
    detail::group_control<Failed> control{std::nullopt, true, std::move(failed)};
    co_await detail::join(detail::as_awaitables(std::move(children)), r.outcomes, control);
    r.first_failure = control.first_failure;
    co_return r;
}

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<fail_fast_result<std::vector<outcome<detail::child_value_t<C>>>>> fail_fast(
    deadline at, std::vector<C> children, Failed failed = {}
) {
    using T = detail::child_value_t<C>;
    fail_fast_result<std::vector<outcome<T>>> r{std::vector<outcome<T>>(children.size()), {}};
    detail::group_control<Failed> control{at.when, true, std::move(failed)};
    co_await detail::join(detail::as_awaitables(std::move(children)), r.outcomes, control);
    r.first_failure = control.first_failure;
    co_return r;
}

template <async_child... C>
requires(sizeof...(C) > 0) boost::asio::awaitable<
    fail_fast_result<std::tuple<outcome<detail::child_value_t<C>>...>>> fail_fast(C... children) {
    fail_fast_result<std::tuple<outcome<detail::child_value_t<C>>...>> r;
    detail::group_control<> control{std::nullopt, true};
    co_await detail::stop_quietly(detail::join_fixed(
        control, r.outcomes, std::index_sequence_for<C...>{}, detail::as_awaitable(std::move(children))...
    ));
    r.first_failure = control.first_failure;
    co_return r;
}

template <async_child... C>
requires(sizeof...(C) > 0)
    boost::asio::awaitable<fail_fast_result<std::tuple<outcome<detail::child_value_t<C>>...>>> fail_fast(
        deadline at, C... children
    ) {
    fail_fast_result<std::tuple<outcome<detail::child_value_t<C>>...>> r;
    detail::group_control<> control{at.when, true};
    using namespace boost::asio::experimental::awaitable_operators;
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, at.when};
    co_await (
        detail::stop_quietly(detail::join_fixed(
            control, r.outcomes, std::index_sequence_for<C...>{}, detail::as_awaitable(std::move(children))...
        )) ||
        detail::expiry(timer)
    );
    r.first_failure = control.first_failure;
    co_return r;
}

// ---- a quorum: the first `needed` successes (a value `failed` does not reject); the others
// still running are then cancelled. It also ends, cancelling the rest, as soon as too many
// children failed for `needed` to be reached; reached() says which. With a deadline, as `within`
// (children cancelled by it end as group_error::timeout). `needed` above the number of children
// can never be reached: every child runs to its end.

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<quorum_result<std::vector<outcome<detail::child_value_t<C>>>>> quorum(
    std::size_t needed, std::vector<C> children, Failed failed = {}
) {
    return detail::run_quorum(
        needed, std::nullopt, detail::as_awaitables(std::move(children)), std::move(failed)
    );
}

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<quorum_result<std::vector<outcome<detail::child_value_t<C>>>>> quorum(
    std::size_t needed, deadline at, std::vector<C> children, Failed failed = {}
) {
    return detail::run_quorum(needed, at.when, detail::as_awaitables(std::move(children)), std::move(failed));
}

// ---- the first success, the others cancelled: hedging as a combinator. With `stagger` above
// zero, child i starts `i * stagger` after the first, or as soon as every child started before
// it has failed; the children that had not started when one succeeded never start (their
// outcome: boost::asio::error::operation_aborted). E.g. replicas of one request:
// `first_success(replicas, not_ok{}, 20ms)`.

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<first_success_result<std::vector<outcome<detail::child_value_t<C>>>>> first_success(
    std::vector<C> children, Failed failed = {}, deadline_clock::duration stagger = {}
) {
    return detail::run_first_success(
        std::nullopt, detail::as_awaitables(std::move(children)), std::move(failed), stagger
    );
}

template <async_child C, class Failed = not_ok>
boost::asio::awaitable<first_success_result<std::vector<outcome<detail::child_value_t<C>>>>> first_success(
    deadline at, std::vector<C> children, Failed failed = {}, deadline_clock::duration stagger = {}
) {
    return detail::run_first_success(
        at.when, detail::as_awaitables(std::move(children)), std::move(failed), stagger
    );
}

// ---- as they complete: each child runs detached and sends (index, outcome) into a channel with a
// slot per child, so no child ever waits for the reader. Cancelling the coroutine that waits in
// next() cancels every child still running; next() then keeps delivering their outcomes, to a
// coroutine that turned `this_coro::throw_if_cancelled` off (otherwise Asio makes its next
// co_await throw, and destroying the completions leaves the cancelled children to finish alone).
template <class T>
class completions {
  public:
    // `live`, if given, counts the children still running (e.g. for a server's drain to wait on).
    completions(
        boost::asio::any_io_executor ex,
        std::vector<boost::asio::awaitable<T>> children,
        std::shared_ptr<std::size_t> live = nullptr
    )
        : state_(std::make_shared<state>(ex, children.size())), remaining_(children.size()) {
        // co_spawn uses a child's signal until the child's completion handler has run, after the
        // child's body has ended (and released its share of the state): the handler keeps a share.
        for (std::size_t i = 0; i < children.size(); ++i) {
            boost::asio::co_spawn(
                ex, produce(std::move(children[i]), i, state_, live),
                boost::asio::bind_cancellation_slot(
                    state_->cancel[i].slot(), boost::asio::consign(boost::asio::detached, state_)
                )
            );
        }
    }
    completions(completions&&) noexcept = default;
    completions& operator=(completions&&) = delete;
    ~completions() {
        if (state_) state_->cancel_running();
    }

    std::size_t size() const noexcept { return state_->cancel.size(); }
    std::size_t remaining() const noexcept { return remaining_; }

    // The next child to complete: its index and outcome. At most size() times.
    boost::asio::awaitable<std::pair<std::size_t, outcome<T>>> next() {
        return detail::cancellation_not_thrown(receive_next());
    }

    // Calls on_each(index, outcome) for each child still to complete, as it completes; done when
    // all have. One coroutine for them all: cheaper than next() in a loop.
    // An exception from on_each comes out of each(), throw_if_cancelled as it was before the call.
    template <class OnEach>
    boost::asio::awaitable<void> each(OnEach on_each) {
        return detail::cancellation_not_thrown(receive_each(std::move(on_each)));
    }

    // each(), bounded: at `at` the children still running are cancelled (terminal), and their
    // outcomes still come. True if the deadline came while a child was running. One timer wait for
    // the group, where a `||` race against a timer would take a parallel group and two coroutines.
    template <class OnEach>
    boost::asio::awaitable<bool> each_until(deadline at, OnEach on_each) {
        return detail::cancellation_not_thrown(receive_each_until(at.when, std::move(on_each)));
    }

    // Cancels every child still running (terminal cancellation); their outcomes still come.
    void cancel() { state_->cancel_running(); }

  private:
    boost::asio::awaitable<std::pair<std::size_t, outcome<T>>> receive_next() {
        auto cs = co_await boost::asio::this_coro::cancellation_state;
        auto index = take_sent(cs);
        if (!index) index = std::get<1>(co_await receive(cs));
        co_return std::pair{*index, std::move(state_->outcomes[*index])};
    }

    template <class OnEach>
    boost::asio::awaitable<void> receive_each(OnEach on_each) {
        auto cs = co_await boost::asio::this_coro::cancellation_state;
        while (remaining_ > 0) {
            auto index = take_sent(cs);
            if (!index) index = std::get<1>(co_await receive(cs));
            on_each(*index, std::move(state_->outcomes[*index]));
        }
    }

    template <class OnEach>
    boost::asio::awaitable<bool> receive_each_until(deadline_clock::time_point at, OnEach on_each) {
        namespace net = boost::asio;
        auto& timer = state_->deadline.emplace(state_->channel.get_executor(), at);
        state_->deadline_passed = false;
        // The handler holds the state: it may run after each_until has returned (then cancelled).
        // A deadline passing after the caller's cancellation is not what cancelled the children.
        timer.async_wait([st = state_](boost::system::error_code ec) {
            if (!ec && !st->caller_cancelled && st->cancel_running()) st->deadline_passed = true;
        });
        struct stop_timer {
            net::steady_timer& timer;
            ~stop_timer() { timer.cancel(); }
        } stop{timer};
        auto cs = co_await net::this_coro::cancellation_state;
        while (remaining_ > 0) {
            auto index = take_sent(cs);
            if (!index) index = std::get<1>(co_await receive(cs));
            on_each(*index, std::move(state_->outcomes[*index]));
        }
        co_return state_->deadline_passed;
    }

    // A child that completed while the reader was busy is taken from the channel at once: waiting
    // for a value already there would still cost a trip through the scheduler, behind every
    // handler queued meanwhile. The caller's cancellation reaches the children first, as before
    // a wait.
    std::optional<std::size_t> take_sent(boost::asio::cancellation_state cs) {
        if (cs.cancelled() != boost::asio::cancellation_type::none && !state_->caller_cancelled)
            state_->caller_cancels();
        std::optional<std::size_t> index;
        if (state_->channel.try_receive([&](boost::system::error_code, std::size_t i) { index = i; }))
            --remaining_;
        return index;
    }

    // The receive itself is never cancelled: on Boost 1.81 a cancelled receive leaves the channel
    // refusing try_send. The reader's cancellation reaches the children instead, who then
    // complete at once. Asio clears the coroutine's slot each time it resumes, so the handler is
    // put back before each wait (the caller has turned throw_if_cancelled off). Called after
    // take_sent(), which passed on a cancellation that came before.
    auto receive(boost::asio::cancellation_state cs) {
        namespace net = boost::asio;
        if (cs.slot().is_connected())
            cs.slot().assign([state = state_](net::cancellation_type) { state->caller_cancels(); });
        --remaining_;
        return state_->channel.async_receive(
            net::bind_cancellation_slot(net::cancellation_slot(), net::as_tuple(net::use_awaitable))
        );
    }

    // Only the index goes through the channel: an outcome moved through its payload and handlers
    // was moved several times over.
    using channel_type = boost::asio::experimental::channel<void(boost::system::error_code, std::size_t)>;

    // Shared with the detached children, so that it lives as long as the last of them.
    struct state {
        state(boost::asio::any_io_executor ex, std::size_t n) : channel(ex, n), cancel(n) {}
        channel_type channel;
        std::deque<boost::asio::cancellation_signal> cancel;  // deque: signals do not move
        std::vector<bool> sent = std::vector<bool>(cancel.size());
        std::vector<outcome<T>> outcomes = std::vector<outcome<T>>(cancel.size());  // by child, once sent
        std::optional<boost::asio::steady_timer> deadline;                          // each_until's
        bool deadline_passed = false;
        bool caller_cancelled = false;

        void caller_cancels() {
            caller_cancelled = true;
            cancel_running();
        }

        // True if a child was still running.
        bool cancel_running() {
            bool any = false;
            for (std::size_t i = 0; i < cancel.size(); ++i) {
                if (sent[i]) continue;
                any = true;
                cancel[i].emit(boost::asio::cancellation_type::terminal);
            }
            return any;
        }
    };

    static boost::asio::awaitable<void> produce(
        boost::asio::awaitable<T> child,
        std::size_t index,
        std::shared_ptr<state> st,
        std::shared_ptr<std::size_t> live
    ) {
        detail::live_guard guard{std::move(live)};
        auto& out = st->outcomes[index];
        // As detail::run_child without deadline or fail-fast, inline: one coroutine frame less.
        try {
            if constexpr (std::is_void_v<T>) {
                co_await std::move(child);
                out.value.emplace();
            } else {
                out.value.emplace(co_await std::move(child));
            }
        } catch (...) {
            detail::record_exception(out, std::current_exception());
        }
        // One slot per child: never blocks, never fails. The child ends right after it (the guard
        // counts it gone), before the reader can resume with the value.
        st->sent[index] = true;
        st->channel.try_send(boost::system::error_code{}, index);
    }

    std::shared_ptr<state> state_;
    std::size_t remaining_;
};

template <async_child C>
completions<detail::child_value_t<C>> as_completed(
    boost::asio::any_io_executor ex, std::vector<C> children, std::shared_ptr<std::size_t> live = nullptr
) {
    return completions<detail::child_value_t<C>>(
        std::move(ex), detail::as_awaitables(std::move(children)), std::move(live)
    );
}

}  // namespace fanout
