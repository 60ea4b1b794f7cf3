#pragma once

// Running a section of a coroutine with `this_coro::throw_if_cancelled` turned off, and the flag put
// back however the section ends.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace fanout::detail {

// Awaits `section` with throw_if_cancelled off: a cancellation of the calling coroutine does not
// make the section's co_awaits throw, so that it can collect what cancelled operations still
// deliver. The flag belongs to the whole chain of coroutines (co_spawn's), not to one frame, so a
// section that threw and left it off would keep the caller's next co_awaits from throwing on
// cancellation. It is restored here on every path: a destructor cannot do it, as Asio 1.81 lets a
// coroutine change the flag only with co_await, which neither a destructor nor a catch block may use.
template <class T, class Executor>
boost::asio::awaitable<T, Executor> cancellation_not_thrown(boost::asio::awaitable<T, Executor> section) {
    namespace net = boost::asio;
    bool const throwing = co_await net::this_coro::throw_if_cancelled();
    co_await net::this_coro::throw_if_cancelled(false);
    std::exception_ptr failure;
    if constexpr (std::is_void_v<T>) {
        try {
            co_await std::move(section);
        } catch (...) {
            failure = std::current_exception();
        }
        co_await net::this_coro::throw_if_cancelled(throwing);
        if (failure) std::rethrow_exception(failure);
    } else {
        std::optional<T> value;
        try {
            T v = co_await std::move(section);
            value.emplace(std::move(v));
        } catch (...) {
            failure = std::current_exception();
        }
        co_await net::this_coro::throw_if_cancelled(throwing);
        if (failure) std::rethrow_exception(failure);
        co_return std::move(*value);
    }
}

}  // namespace fanout::detail
