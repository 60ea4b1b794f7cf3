#pragma once

#include <chrono>
#include <cstdint>
#include <fanout/old_namespaces.hpp>
#include <fanout/route.hpp>
#include <fanout/service.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace fanout {

using std::chrono::milliseconds;

// One log line as an event: the application's to render or count.
struct log_event {
    std::string_view level;  // "trace", "debug", "info", "warning", "error", "critical"
    std::string_view name;   // "access", "upstream_failure", "upstream_timeout", "shutdown", ...
    std::string_view json;   // the whole event, one JSON object: {"event":"NAME",...}
};

// Everything fanout can be told, from flags or a --config file. Defaults are the documented ones
// (docs/operations.md; `fanout --check` prints them all).
struct options {
    std::string listen_host = "127.0.0.1";  // loopback unless told otherwise
    std::uint16_t listen_port = 8080;       // 0: any free port
    // The operators' port: /healthz, /metrics and /config (the effective configuration, as
    // `fanout --check` prints it) on connections of their own, at most 16, never counted in
    // max_connections. Empty host: none. Of several http_servers sharing a metrics registry, the
    // one with shard 0 opens it, and its /metrics shows them all.
    std::string admin_listen_host;
    std::uint16_t admin_listen_port = 0;     // 0: any free port
    unsigned threads = 1;                    // event loops (the command line defaults to the cores)
    std::vector<fanout::service> upstreams;  // empty on the command line: the embedded demo services
    // The API served; empty: the seed's four endpoints over every upstream (default_routes()).
    // Checked when a server or aggregator is made (std::invalid_argument naming the route's key).
    std::vector<route_config> routes;
    // Each aggregate answer carries Server-Timing: one entry per backend (its duration and outcome)
    // and the total, for browser dev tools. Off by default: it reveals the API's internals.
    // A route's own server_timing, when set, wins.
    bool server_timing = false;
    milliseconds timeout{1000};       // default deadline
    milliseconds max_timeout{10000};  // cap of ?timeout_ms=
    // Every fetch of every pattern ends as a timeout after it, whatever else bounds it or not.
    milliseconds max_fetch{60000};
    // Sent to the upstreams of the deadline-bound endpoints with the milliseconds left; an incoming
    // request's value shortens its deadline. Empty: neither.
    std::string deadline_header = "X-Request-Timeout-Ms";
    std::size_t max_upstream_body = 1024 * 1024;
    std::size_t max_upstream_head = 16 * 1024;  // an answer's head, a chunk-size line, the trailers
    std::size_t upstream_pool_size = 256;       // idle connections kept per service and event loop
    milliseconds dns_refresh{30000};            // upstream names resolved again once this old (0: never)
    std::size_t max_request_head = 8 * 1024;    // over it: 431; a chunk-size line or trailers: 400
    std::size_t max_request_body = 64 * 1024;   // over it: 413
    milliseconds header_timeout{10000};         // a started request must be complete within it (slowloris)
    milliseconds idle_timeout{60000};           // keep-alive connections with no request are closed after it
    std::size_t max_connections = 10000;        // open client connections, whole process
    // wg and channel requests whose client left while their fetches go on, whole process; over it
    // the oldest of the event loop is cancelled.
    std::size_t max_background_fetches = 10000;
    milliseconds shutdown_grace{5000};  // in-flight requests may finish within it at shutdown
    milliseconds drain_delay{0};        // at shutdown, serve on this long with /healthz 503 first
    std::string log_level = "info";     // trace, debug, info, warn, error, off
    std::uint32_t log_rate_limit = 5;   // lines a second of each kind of failure, per thread
    // The access log: one "access" line at info per answered request (client address, method, path
    // without its query, route, status, bytes, duration, trace id).
    bool access_log = false;
    double access_log_sample = 1;  // (0, 1]: the fraction of access lines written; 5xx always are
    // The access log shows the first X-Forwarded-For address too: set it only behind a proxy that
    // sets the header itself, since a client can send any.
    bool trust_forwarded_for = false;
    // Where log lines go. Each line's message is one JSON object, {"event":"NAME",...}, so any
    // pattern works (fanout's own stderr logger puts "time" and "level" first in the object).
    // Neither set: no log (the fanout executable sets a stderr logger at log_level).
    std::shared_ptr<spdlog::logger> logger;          // any logger; its level, not log_level, applies
    std::function<void(log_event const&)> on_event;  // or each line handed over, at log_level
};

// Applies a JSON configuration file's text onto opts: the settings of the command line in snake_case;
// "upstreams", a list of objects each with a "name", a "url" and any of the keys of a service
// (`service` and `tls_settings` say what each does): timeout_ms, breaker_failures,
// breaker_cooldown_ms, hedge_after_ms, hedge_quantile, hedge_budget, max_retries, retry_backoff_ms,
// retry_budget, retry_min_per_s and, for an https:// URL only, ca_file, client_cert, client_key,
// server_name, insecure_skip_verify, tls_handshake_timeout_ms; and "routes", a list of route_config.
// null is taken for what is off unless given (admin_listen; a service's timeout_ms, hedge delays,
// TLS files, server_name), as `fanout --check` prints them. Throws std::invalid_argument naming the
// key (`upstreams[1].timeout: unknown key`).
// Checks each value; checks across settings (timeout_ms <= max_timeout_ms) are the caller's (the fanout
// program makes them after applying its flags, which win over the file).
void apply_config(options& opts, std::string_view json_text);

}  // namespace fanout
