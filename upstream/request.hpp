#pragma once

// The bytes of an upstream request: no I/O, so a test reads exactly what would be sent.

#include <chrono>
#include <fanout/client.hpp>
#include <fanout/service.hpp>
#include <fanout/trace.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace fanout {

// The request line and the headers every GET of a service has: built once, unless the target has
// placeholders. The headers of one fetch (fetch_headers) and the final empty line follow.
std::string request_head(service const& svc, std::string_view target);

// What one fetch adds to its service's request head, copied into the fetch's frame: no allocation
// unless a tracestate is forwarded.
struct fetch_headers {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    trace_context trace;
    // Not sent: what tells why a request of the fetch ended cancelled (see fetch_context).
    cancel_cause const* cause = nullptr;
    std::optional<std::chrono::steady_clock::time_point> timeout_at = {};

    // The whole request into `out`: the head, then a traceparent with a new parent id (each
    // attempt is an upstream call of its own), the tracestate, and the time left as of `now` in
    // `deadline_header` (none if empty), whole milliseconds, at least 1.
    void write(
        std::string& out,
        std::string_view head,
        std::string_view deadline_header,
        std::chrono::steady_clock::time_point now
    ) const;
};

}  // namespace fanout
