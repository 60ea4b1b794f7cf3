#pragma once

#include <optional>
#include <string>

namespace fanout::server {

// The header fields of a request that fanout's answer depends on.
struct request_fields {
    // The deadline header (options::deadline_header), its lines joined by ','.
    std::optional<std::string> deadline;
    // W3C Trace Context; traceparent's lines joined by ',' (more than one makes it invalid), as
    // are tracestate's.
    std::optional<std::string> traceparent;
    std::string tracestate;
};

}  // namespace fanout::server
