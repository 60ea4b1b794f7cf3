#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fanout {

// The header fields of a request that fanout's answer depends on.
struct request_fields {
    // The deadline header (options::deadline_header), its lines joined by ','.
    std::optional<std::string> deadline;
    // W3C Trace Context; traceparent's lines joined by ',' (more than one makes it invalid), as
    // are tracestate's.
    std::optional<std::string> traceparent;
    std::string tracestate;
    // The lines of the header fields some route forwards (route_config::forward_headers), in
    // order: name in lower case, value.
    std::vector<std::pair<std::string, std::string>> forwarded;
    // Accept, its lines joined by ',': the format of the metrics page.
    std::string accept;
};

}  // namespace fanout
