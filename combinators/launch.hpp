#pragma once

// The library's half of every fanout initiating function: the public templates only call
// boost::asio::async_initiate with a type-erased handler, so that an application's translation
// units instantiate none of this (co_spawn and the coroutine frames are compiled once, here).

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>

#include <exception>
#include <utility>

namespace fanout::detail {

// Runs `op` on `ex`, then completes `handler` on its associated executor (by default `ex`) with
// `complete(exception, value...)`'s arguments. The handler's cancellation slot is the coroutine's:
// terminal cancellation, as co_spawn supports.
template <class Signature, class T, class Complete>
void launch(
    boost::asio::any_io_executor ex,
    boost::asio::awaitable<T> op,
    boost::asio::any_completion_handler<Signature> handler,
    Complete complete
) {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    auto handler_ex = boost::asio::get_associated_executor(handler, ex);
    boost::asio::co_spawn(
        ex, std::move(op),
        boost::asio::bind_cancellation_slot(
            slot, boost::asio::bind_executor(
                      handler_ex,
                      [h = std::move(handler), complete](std::exception_ptr e, auto&&... value) mutable {
                          complete(std::move(h), std::move(e), std::forward<decltype(value)>(value)...);
                      }
                  )
        )
    );
}

}  // namespace fanout::detail
