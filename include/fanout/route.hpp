#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// How a route waits for its backends: the four patterns of the seed endpoints, with their semantics.
enum class pattern {
    wg,               // every backend, however long (a backend's own timeout_ms bounds it)
    channel,          // the same, each result collected as it arrives
    context_timeout,  // partial results at the deadline
    errgroup,         // the first failure of a required backend cancels the others
};
std::string_view to_string(pattern p) noexcept;  // "wg", "channel", "context-timeout", "errgroup"

// What a route answers with.
enum class shape {
    envelope,  // {"pattern","route","results":{key:body},"errors":{key:error},"complete","elapsed_ms"}
    merge,     // the object bodies merged member by member in backend order; failures in "_errors"
};
std::string_view to_string(shape s) noexcept;

// One upstream call of a route.
struct backend_config {
    std::string service;  // the name of a configured upstream
    // Origin-form path and query replacing the upstream URL's ("/users/{id}?fields=all"); empty:
    // the upstream's URL. Placeholders are filled from the route's path, then from the query.
    std::string path{};
    std::string key{};  // its part's name in the answer; empty: the service's name
    // Members of an object body kept (allow) or dropped (deny) before it is placed; a dotted name
    // reaches into nested objects ("address.city"). At most one of the two.
    std::vector<std::string> allow{};
    std::vector<std::string> deny{};
    std::optional<std::string> fallback{};  // JSON text placed as its part when it fails
    bool required = true;                   // errgroup: false, its failure cancels nothing
};

// One endpoint of the API: GET (or HEAD) `path` fetches every backend under `pattern`.
struct route_config {
    // Segments each literal or one `{name}` ([A-Za-z0-9_], 1 to 32): "/api/users/{id}/overview".
    std::string path;
    enum pattern pattern = pattern::context_timeout;
    std::optional<std::chrono::milliseconds> timeout{};  // the route's deadline; none: options::timeout
    std::vector<backend_config> backends;
    // Request headers copied to every backend request (e.g. Authorization); nothing else is.
    std::vector<std::string> forward_headers{};
    enum shape shape = shape::envelope;
    // application/x-ndjson, one line per backend as it completes, then a summary (not with wg).
    bool stream = false;
    std::optional<bool> server_timing{};  // none: options::server_timing
};

// The seed's four endpoints over every configured upstream, in order: the routes served when
// options::routes is empty.
std::vector<route_config> default_routes(std::vector<std::string> const& service_names);

}  // namespace fanout
