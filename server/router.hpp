#pragma once

#include "handlers/aggregate.hpp"
#include "server/options.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <optional>
#include <string_view>
#include <variant>

namespace fanout::server {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

// The deadline asked by ?timeout_ms= (absent: the default): a positive integer, capped at the
// maximum. Anything else is an error message for a 400.
std::variant<std::chrono::milliseconds, std::string> parse_timeout(
    std::optional<std::string_view> param,
    std::chrono::milliseconds default_timeout,
    std::chrono::milliseconds max_timeout
);

// A JSON error answer: {"error": message}.
response error_response(unsigned status, std::string_view message);

// Answers one request: routes it to an aggregate handler or answers 400/404/405 itself.
// Version and keep-alive of the answer are left to the caller.
boost::asio::awaitable<response> route(handlers::context& ctx, options const& opts, request const& req);

}  // namespace fanout::server
