#pragma once

// An awaitable run as an Asio initiating function: any completion token, completing with an
// error_code first (the code of what the awaitable threw) instead of co_spawn's exception_ptr.

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>

#include <exception>
#include <fanout/detail/group.hpp>
#include <type_traits>
#include <utility>

namespace fanout::detail {

// Asio 1.81 has no default token for any_io_executor; `deferred` is the one later Asio chose.
template <class Executor>
using default_token_t = std::conditional_t<
    std::is_void_v<boost::asio::default_completion_token_t<Executor>>,
    boost::asio::deferred_t,
    boost::asio::default_completion_token_t<Executor>>;

template <class T>
struct spawn_signature {
    using type = void(boost::system::error_code, T);
};
template <>
struct spawn_signature<void> {
    using type = void(boost::system::error_code);
};

// No error but an exception's.
struct no_value_error {
    template <class V>
    boost::system::error_code operator()(V const&) const noexcept {
        return {};
    }
};

// The handler's cancellation slot is the awaitable's (co_spawn supports terminal cancellation),
// and it completes on the handler's associated executor. `error_of(value)` is the error of a
// value (e.g. an upstream failure returned as a value).
template <class T, class Executor, class CompletionToken, class ErrorOf = no_value_error>
auto async_spawn(Executor ex, boost::asio::awaitable<T> op, CompletionToken&& token, ErrorOf error_of = {}) {
    return boost::asio::async_initiate<CompletionToken, typename spawn_signature<T>::type>(
        [error_of](auto handler, Executor run_on, boost::asio::awaitable<T> run) {
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            auto handler_ex = boost::asio::get_associated_executor(handler, run_on);
            boost::asio::co_spawn(
                run_on, std::move(run),
                boost::asio::bind_cancellation_slot(
                    slot,
                    boost::asio::bind_executor(
                        handler_ex,
                        [h = std::move(handler), error_of](std::exception_ptr e, auto&&... value) mutable {
                            auto ec = code_of(e);
                            if (!ec) ((ec = error_of(value)), ...);
                            std::move(h)(ec, std::forward<decltype(value)>(value)...);
                        }
                    )
                )
            );
        },
        token, std::move(ex), std::move(op)
    );
}

}  // namespace fanout::detail
