#pragma once

#include "server/request_fields.hpp"
#include "server/response.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <fanout/aggregate.hpp>
#include <fanout/metrics.hpp>
#include <fanout/options.hpp>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

namespace fanout::server {

using aggregate_handler =
    boost::asio::awaitable<handlers::reply> (*)(handlers::context&, handlers::aggregate_request);

// Where a request goes. Building it does no I/O.
struct route {
    endpoint target = endpoint::other;
    aggregate_handler handler = nullptr;  // set for the /api/aggregate/* endpoints
    std::chrono::milliseconds timeout{};
    bool cancel_on_disconnect = false;    // the deadline-bound patterns stop when the client goes
    std::optional<response> answer;       // set when the router answers itself (404, 405, 400)
    std::vector<upstream::param> params;  // the upstream targets' placeholders, from the query
    upstream::trace_context trace;        // the request's trace, or a new one (aggregate endpoints)
};

// The longest value of a placeholder a request may give (decoded); longer is a 400.
inline constexpr std::size_t max_param_size = 1024;

// `target` as received: origin-form ("/path?query"), or absolute-form, routed by its path and query.
// HEAD is answered as GET (the server leaves the body out). The deadline is the smallest of the
// deadline header's (when sent) and ?timeout_ms= (or, without it, options::timeout), capped by
// options::max_timeout.
route match(
    boost::beast::http::verb method,
    std::string_view target,
    options const& opts,
    request_fields const& fields = {}
);

// The deadline asked by ?timeout_ms= (absent: the default): a positive integer, capped at the
// maximum. Anything else is an error message for a 400.
std::variant<std::chrono::milliseconds, std::string> parse_timeout(
    std::optional<std::string_view> param,
    std::chrono::milliseconds default_timeout,
    std::chrono::milliseconds max_timeout,
    std::string_view name = "timeout_ms"
);

}  // namespace fanout::server
