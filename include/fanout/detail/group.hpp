#pragma once

// What the combinators of <fanout/combinators.hpp> share: how a child's end is recorded, and the
// `&&` / `||` compositions each pattern is made of.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <fanout/detail/join.hpp>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace fanout {

// Why a child of a combinator has no value, besides the error it completed with itself.
enum class group_error {
    timeout = 1,  // it was still running at the group's deadline (and was cancelled)
    exception,    // it threw an exception that is not a boost::system::system_error
    failed,       // fail_fast: its value is one that fail_fast's `failed` says is a failure (kept)
};

boost::system::error_category const& group_category() noexcept;

inline boost::system::error_code make_error_code(group_error e) noexcept {
    return {static_cast<int>(e), group_category()};
}

}  // namespace fanout

template <>
struct boost::system::is_error_code_enum<fanout::group_error> : std::true_type {};

namespace fanout {

using deadline_clock = std::chrono::steady_clock;

// A point in time on the steady clock, or a duration from now.
struct deadline {
    deadline(deadline_clock::time_point at) noexcept : when(at) {}
    template <class Rep, class Period>
    deadline(std::chrono::duration<Rep, Period> from_now)
        : when(deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(from_now)) {}

    deadline_clock::time_point when;
};

// How one child ended: a value, or why not. Children returning void get a std::monostate value.
template <class T>
struct outcome {
    using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

    std::optional<value_type> value;
    // Without a value: the code of the boost::system::system_error it threw (an Asio operation
    // cancelled by the group throws boost::asio::error::operation_aborted), or a group_error.
    // With a value: group_error::failed when fail_fast's `failed` rejected it; else none.
    boost::system::error_code error;
    std::exception_ptr exception;  // what it threw, if it threw

    // A value that is no failure.
    bool ok() const noexcept { return value.has_value() && !error; }
};

template <class Outcomes>
struct fail_fast_result {
    Outcomes outcomes;
    std::optional<std::size_t> first_failure;  // the child whose failure stopped the group
};

// The default failure test of fail_fast, quorum and first_success: besides a thrown exception (or
// an operation's error code), a value is a failure when it has an ok() that says false (a
// fanout::fetch_result that failed); any other value is a success.
struct not_ok {
    template <class V>
    bool operator()(V const& v) const noexcept {
        if constexpr (requires { static_cast<bool>(v.ok()); })
            return !v.ok();
        else
            return false;
    }
};

// A failure test for which only a thrown exception (or an operation's error code) is a failure.
struct never_failed {
    template <class V>
    bool operator()(V const&) const noexcept {
        return false;
    }
};

template <class Outcomes>
struct quorum_result {
    Outcomes outcomes;
    std::vector<std::size_t> succeeded;  // the children that succeeded, in the order they did
    std::size_t needed = 0;
    bool reached() const noexcept { return succeeded.size() >= needed; }
};

template <class Outcomes>
struct first_success_result {
    Outcomes outcomes;
    std::optional<std::size_t> winner;  // the first child to succeed; empty: none did
};

namespace detail {
template <class C>
struct is_awaitable : std::false_type {};
template <class T>
struct is_awaitable<boost::asio::awaitable<T>> : std::true_type {};
}  // namespace detail

// What a combinator takes as a child: an awaitable, or any Asio asynchronous operation given
// boost::asio::deferred: `timer.async_wait(deferred)`, `socket.async_read_some(buf, deferred)`,
// `client.async_fetch(0, deferred)`, `co_spawn(ex, coroutine(), deferred)`, a Boost.MySQL or
// Boost.Redis call... Its value is what `use_awaitable` makes of its completion: an error code
// first becomes the outcome's error (void(error_code) has no value; void(error_code, T) a T),
// an exception_ptr the exception; void(T) is a T.
template <class C>
concept async_child =
    detail::is_awaitable<std::decay_t<C>>::value || boost::asio::is_deferred<std::decay_t<C>>::value;

namespace detail {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;

template <class C>
auto as_awaitable(C child) {
    if constexpr (is_awaitable<C>::value)
        return child;
    else
        return std::move(child)(net::use_awaitable);
}

// The value of a child of type C. Empty for anything else, so that an overload whose return type
// names it is dropped quietly for a non-child (a duration, a vector), also where a compiler
// substitutes the return type before it checks the constraints.
template <class C, class = void>
struct child_traits {};
template <class T>
struct child_traits<net::awaitable<T>, void> {
    using value_type = T;
};
template <class C>
struct child_traits<C, std::enable_if_t<net::is_deferred<C>::value>> {
    using value_type = typename decltype(std::declval<C>()(net::use_awaitable))::value_type;
};
template <class C>
using child_value_t = typename child_traits<std::decay_t<C>>::value_type;

template <class C>
std::vector<net::awaitable<child_value_t<C>>> as_awaitables(std::vector<C> children) {
    if constexpr (is_awaitable<C>::value) {
        return children;
    } else {
        std::vector<net::awaitable<child_value_t<C>>> out;
        out.reserve(children.size());
        for (auto& c : children) out.push_back(as_awaitable(std::move(c)));
        return out;
    }
}

template <class Failed = not_ok>
struct group_control {
    group_control() = default;
    explicit group_control(
        std::optional<deadline_clock::time_point> at, bool stop_on_failure = false, Failed f = {}
    )
        : deadline(at), fail_fast(stop_on_failure), failed(std::move(f)) {}

    std::optional<deadline_clock::time_point> deadline;
    bool fail_fast = false;
    Failed failed{};
    std::optional<std::size_t> first_failure;
    // A quorum: the group ends once `needed` children succeeded, or once too many failed for it.
    std::size_t needed = 0;  // 0: not a quorum
    std::size_t children = 0;
    std::size_t failures = 0;
    std::vector<std::size_t> succeeded;
    // first_success with a stagger: child i starts at `stagger_from + i * stagger`, or as soon as
    // every child started before it has failed.
    deadline_clock::duration stagger{};
    deadline_clock::time_point stagger_from{};
    std::vector<bool> released;
    std::vector<net::steady_timer*> waiting;

    // Lets the first child still waiting for its turn start now.
    void release_next() {
        for (std::size_t i = 0; i < released.size(); ++i) {
            if (released[i]) continue;
            released[i] = true;
            if (waiting[i]) waiting[i]->cancel();
            return;
        }
    }

    // `failed` may take the child's index too, when children differ in what is a failure.
    template <class V>
    bool is_failure(std::size_t index, V const& value) {
        if constexpr (std::is_invocable_v<Failed&, std::size_t, V const&>)
            return failed(index, value);
        else
            return failed(value);
    }
};

// Thrown by a failed child of a fail-fast group, so that `&&` cancels its siblings.
struct stop_group {};

// The error of what an operation threw: a system_error's code, or group_error::exception.
inline boost::system::error_code code_of(std::exception_ptr const& e) noexcept {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (boost::system::system_error const& se) {
        return se.code();
    } catch (...) {
        return group_error::exception;
    }
}

template <class T>
void record_exception(outcome<T>& out, std::exception_ptr e) {
    out.error = code_of(e);
    out.exception = std::move(e);
}

// What a child's end makes of its outcome (its value or `thrown` already in it) and of its group;
// true: the group is done (the others are to be cancelled). `cancelled`: the group had cancelled
// the child before it ended, so that a failure is its consequence, not a cause.
template <class T, class Control>
bool settle_child(
    outcome<T>& out, Control& control, std::size_t index, std::exception_ptr thrown, bool cancelled
) {
    if (control.deadline && deadline_clock::now() >= *control.deadline) {
        out.value.reset();
        out.error = group_error::timeout;
        return false;
    }
    if (thrown) record_exception(out, thrown);
    if (control.needed) {
        bool const ok = !thrown && !control.is_failure(index, *out.value);
        if (!ok && !thrown) out.error = group_error::failed;
        if (ok) {
            control.succeeded.push_back(index);
            return control.succeeded.size() == control.needed;
        }
        if (++control.failures == control.children - control.needed + 1) return true;
        control.release_next();
        return false;
    }
    if (!control.fail_fast) return false;
    if (!thrown) {
        if (!control.is_failure(index, *out.value)) return false;
        out.error = group_error::failed;
    }
    if (!control.first_failure && !cancelled) control.first_failure = index;
    return true;
}

// Runs one child into its outcome. Throws only stop_group, and only in a fail-fast group.
template <class T, class Control>
net::awaitable<void> run_child(
    net::awaitable<T> child, outcome<T>& out, Control& control, std::size_t index
) {
    std::exception_ptr thrown;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(child);
            out.value.emplace();
        } else {
            out.value.emplace(co_await std::move(child));
        }
    } catch (...) {
        thrown = std::current_exception();
    }
    auto cs = co_await net::this_coro::cancellation_state;
    if (settle_child(out, control, index, thrown, cs.cancelled() != net::cancellation_type::none))
        throw stop_group{};
}

// A child of a join, co_spawned: its completion handler settles its outcome (no coroutine frame of
// its own, unlike run_child).
template <class T, class Control, class End, bool Wrapped = false>
struct child_end {
    using cancellation_slot_type = net::cancellation_slot;
    cancellation_slot_type get_cancellation_slot() const noexcept { return end.slot(); }

    template <class... V>
    void operator()(std::exception_ptr thrown, V&&... value) {
        if (!thrown) {
            if constexpr (sizeof...(V) == 0)
                out->value.emplace();
            else if constexpr (Wrapped)
                out->value.emplace(std::move(*value)...);
            else
                out->value.emplace(std::forward<V>(value)...);
        }
        bool stop = false;
        std::exception_ptr failure;
        try {
            stop = settle_child(*out, *control, index, thrown, end.cancelled());
        } catch (...) {  // from `failed`: the join throws it, as run_child's caller did
            failure = std::current_exception();
        }
        end(std::move(failure), stop);
    }

    outcome<T>* out;
    Control* control;
    std::size_t index;
    End end;
};

// co_spawn completes a coroutine that threw with a default-constructed value.
template <class T>
net::awaitable<std::optional<T>> as_optional(net::awaitable<T> child) {
    co_return std::optional<T>(co_await std::move(child));
}

// A child of a staggered first_success: waits for its turn, then runs. Cancelled while waiting
// (the group ended), it never starts and ends as operation_aborted.
template <class T, class Control>
net::awaitable<T> in_turn(net::awaitable<T> child, std::size_t index, Control& control) {
    net::steady_timer timer{
        co_await net::this_coro::executor, control.stagger_from + control.stagger * index};
    control.waiting[index] = &timer;
    while (!control.released[index] && deadline_clock::now() < timer.expiry()) {
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) {
            control.waiting[index] = nullptr;
            throw boost::system::system_error(net::error::operation_aborted);
        }
    }
    control.waiting[index] = nullptr;
    control.released[index] = true;
    co_return co_await std::move(child);
}

template <class T, class Control>
std::vector<net::awaitable<T>> staggered(std::vector<net::awaitable<T>> children, Control& control) {
    control.released.assign(children.size(), false);
    control.waiting.assign(children.size(), nullptr);
    for (std::size_t i = 0; i < children.size(); ++i)
        children[i] = in_turn(std::move(children[i]), i, control);
    return children;
}

inline net::awaitable<void> nothing_to_join() {
    co_return;
}

// The children joined: all run at once, and the join completes when all have, or (in a fail-fast
// group or a quorum) cancels the others once the group is done. With the control's deadline, the
// children still running at it are cancelled. One operation for the group (join.hpp), not a chain
// of `&&` with a coroutine per child; it throws only what `failed` threw.
template <class T, class Control>
net::awaitable<void> join(
    std::vector<net::awaitable<T>> children, std::vector<outcome<T>>& outs, Control& control
) {
    if (children.empty()) return nothing_to_join();
    auto const n = children.size();
    return join_all(
        n, control.deadline,
        [children = std::move(children), &outs, &control](auto const& ex, std::size_t i, auto end) mutable {
            using End = decltype(end);
            if constexpr (std::is_void_v<T> || std::is_default_constructible_v<T>)
                net::co_spawn(
                    ex, std::move(children[i]),
                    child_end<T, Control, End>{&outs[i], &control, i, std::move(end)}
                );
            else
                net::co_spawn(
                    ex, as_optional(std::move(children[i])),
                    child_end<T, Control, End, true>{&outs[i], &control, i, std::move(end)}
                );
        }
    );
}

template <class Control, class Outcomes, std::size_t... I, class... T>
net::awaitable<void> join_fixed(
    Control& control, Outcomes& outs, std::index_sequence<I...>, net::awaitable<T>... children
) {
    return (run_child(std::move(children), std::get<I>(outs), control, I) && ...);
}

// A fail-fast join that completes normally when a child failed, so that it can race a timer
// with `||` (which waits for the first *success*: a join that throws would always lose). When
// both sides of an `&&` throw (the failed child, and a sibling failing as it is cancelled), `&&`
// throws multiple_exceptions.
inline net::awaitable<void> stop_quietly(net::awaitable<void> all) {
    try {
        co_await std::move(all);
    } catch (stop_group const&) {
    } catch (net::multiple_exceptions const&) {
    }
}

// The deadline's side of a `||` race against the join: when the timer wins, `||` cancels the
// children still running. Cancelled from outside, both sides end early and no one timed out.
inline auto expiry(net::steady_timer& timer) {
    return timer.async_wait(net::as_tuple(net::use_awaitable));
}

template <class T, class Failed>
net::awaitable<quorum_result<std::vector<outcome<T>>>> run_quorum(
    std::size_t needed,
    std::optional<deadline_clock::time_point> at,
    std::vector<net::awaitable<T>> children,
    Failed failed,
    deadline_clock::duration stagger = {}
) {
    quorum_result<std::vector<outcome<T>>> r{std::vector<outcome<T>>(children.size()), {}, needed};
    if (needed == 0) co_return r;  // reached before anything ran
    group_control<Failed> control{at, false, std::move(failed)};
    control.needed = needed;
    control.children = children.size();
    if (stagger > deadline_clock::duration::zero()) {
        control.stagger = stagger;
        control.stagger_from = deadline_clock::now();
        children = staggered(std::move(children), control);
    }
    co_await join(std::move(children), r.outcomes, control);
    r.succeeded = std::move(control.succeeded);
    co_return r;
}

template <class T, class Failed>
net::awaitable<first_success_result<std::vector<outcome<T>>>> run_first_success(
    std::optional<deadline_clock::time_point> at,
    std::vector<net::awaitable<T>> children,
    Failed failed,
    deadline_clock::duration stagger
) {
    auto q = co_await run_quorum(1, at, std::move(children), std::move(failed), stagger);
    first_success_result<std::vector<outcome<T>>> r{std::move(q.outcomes), {}};
    if (!q.succeeded.empty()) r.winner = q.succeeded.front();
    co_return r;
}

// Counts a detached child as running for as long as it exists.
struct live_guard {
    explicit live_guard(std::shared_ptr<std::size_t> c) : count(std::move(c)) {
        if (count) ++*count;
    }
    live_guard(live_guard const&) = delete;
    live_guard& operator=(live_guard const&) = delete;
    ~live_guard() {
        if (count) --*count;
    }
    std::shared_ptr<std::size_t> count;
};

}  // namespace detail
}  // namespace fanout
