#pragma once

#include "handlers/request.hpp"
#include "server/request_fields.hpp"
#include "server/response.hpp"
#include "server/route_table.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <fanout/metrics.hpp>
#include <fanout/options.hpp>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

namespace fanout {

// Where a request goes. Building it does no I/O.
struct dispatch {
    endpoint target = endpoint::other;         // a route's is its pattern's
    fanout::route_plan const* plan = nullptr;  // set for a route; the table must outlive it
    std::chrono::milliseconds timeout{};
    bool cancel_on_disconnect = false;  // the deadline-bound patterns stop when the client goes
    std::optional<response> answer;     // set when the router answers itself (404, 405, 400)
    // The placeholders' values: the route's path segments, then the query parameters they name.
    std::vector<fanout::param> params;
    // Per backend of the plan: its own target, expanded; empty for one using its service's URL.
    // Empty when no backend has one.
    std::vector<std::string> targets;
    std::string forwarded;        // the header lines the route forwards, "name: value\r\n" each
    fanout::trace_context trace;  // the request's trace, or a new one (routes)
    // Where the server says why it cancels the request (aggregate_request::cause); null: nowhere.
    fanout::cancel_cause* cause = nullptr;
};

// The longest value of a placeholder a request may give (decoded); longer is a 400.
inline constexpr std::size_t max_param_size = 1024;

// `target` as received: origin-form ("/path?query"), or absolute-form, routed by its path and query.
// HEAD is answered as GET (the server leaves the body out). The deadline is the smallest of the
// deadline header's (when sent) and ?timeout_ms= (or, without it, the route's timeout or
// options::timeout), capped by options::max_timeout.
dispatch match(
    boost::beast::http::verb method,
    std::string_view target,
    options const& opts,
    route_table const& routes,
    request_fields const& fields = {}
);

// The same against the routes of `opts` (compiled at each call: for tests and tools; a server
// keeps its route_table). The returned plan belongs to a table of this thread's, replaced at its
// next call.
dispatch match(
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

}  // namespace fanout
