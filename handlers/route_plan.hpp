#pragma once

#include <chrono>
#include <cstddef>
#include <fanout/route.hpp>
#include <fanout/service.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fanout {

// A member of allow/deny, split at its dots: "address.city" is {"address", "city"}.
using member_path = std::vector<std::string>;

// A backend_config checked against the configured services, ready to run.
struct backend_plan {
    std::size_t service = 0;  // index in the client's services
    std::string key;          // its part's name in the answer
    // The service with the backend's own target in place of its URL's; none: the URL's own.
    std::optional<fanout::service> own_target;
    std::vector<member_path> allow, deny;
    std::optional<std::string> fallback;  // JSON text, validated
    bool required = true;

    bool filtered() const noexcept { return !allow.empty() || !deny.empty(); }
};

// A route_config, checked and compiled: what the handlers need of a route.
struct route_plan {
    std::string path;  // the template, e.g. "/api/users/{id}/overview": a label, never a concrete path
    fanout::pattern pattern = fanout::pattern::context_timeout;
    fanout::shape shape = fanout::shape::envelope;
    bool stream = false;
    // One of the seed's four endpoints over every upstream (no routes configured): its answers keep
    // the seed's contract byte for byte (no "route" member, no upstream status passed through).
    bool seed = false;
    std::optional<std::chrono::milliseconds> timeout;
    bool server_timing = false;                // answers carry Server-Timing
    std::vector<std::string> forward_headers;  // lower-case
    std::vector<backend_plan> backends;
    std::size_t index = 0;  // in its table: the request metrics' series

    // Whether answers need their bodies parsed (merge, or members kept or dropped).
    bool shaped() const noexcept {
        if (shape == fanout::shape::merge) return true;
        for (auto const& b : backends)
            if (b.filtered()) return true;
        return false;
    }
};

}  // namespace fanout
