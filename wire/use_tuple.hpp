#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout::wire {

// `co_await op(..., use_tuple)`: the operation's error code as a value instead of an exception.
// One definition for every file, so that a unity build (all of a target's files as one) compiles.
inline constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace fanout::wire
