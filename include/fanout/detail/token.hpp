#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <type_traits>

namespace fanout::detail {

// The completion token of an initiating function given none: the executor's default if it has one;
// `deferred` otherwise (Asio 1.81 has no default for any_io_executor; later Asio chose deferred).
template <class Executor>
using default_token_t = std::conditional_t<
    std::is_void_v<boost::asio::default_completion_token_t<Executor>>,
    boost::asio::deferred_t,
    boost::asio::default_completion_token_t<Executor>>;

}  // namespace fanout::detail
