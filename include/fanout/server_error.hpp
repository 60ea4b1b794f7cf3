#pragma once

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace fanout {

// How an operation of the server's own (http_server::async_run, aggregator::async_handle) failed,
// besides Boost.System's and Asio's codes (a system_error it met: an accept that cannot go on...).
// Upstream failures are never among them: they are in the answer.
enum class server_error {
    internal = 1,  // an exception that is not a boost::system::system_error: a bug, logged
};

// The category "fanout.server".
boost::system::error_category const& server_category() noexcept;

inline boost::system::error_code make_error_code(server_error e) noexcept {
    return {static_cast<int>(e), server_category()};
}

}  // namespace fanout

template <>
struct boost::system::is_error_code_enum<fanout::server_error> : std::true_type {};
