#include "server/config_dump.hpp"

#include "wire/json_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace fanout {

namespace json = boost::json;

namespace {

template <class Duration>
json::value ms_or_null(std::optional<Duration> const& d) {
    return d ? json::value(d->count()) : json::value(nullptr);
}

json::value text_or_null(std::string const& text) {
    return text.empty() ? json::value(nullptr) : json::value(text);
}

std::string address(std::string const& host, std::uint16_t port) {
    bool const v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

json::object describe_service(fanout::service const& s) {
    json::object out;
    out["name"] = s.name;
    out["url"] = s.url();
    out["timeout_ms"] = ms_or_null(s.timeout);
    out["breaker_failures"] = s.breaker_failures;
    out["breaker_cooldown_ms"] = s.breaker_cooldown.count();
    out["hedge_after_ms"] = ms_or_null(s.hedge_after);
    out["hedge_quantile"] = s.hedge_quantile ? json::value(*s.hedge_quantile) : json::value(nullptr);
    out["hedge_budget"] = s.hedge_budget;
    out["max_retries"] = s.max_retries;
    out["retry_backoff_ms"] = s.retry_backoff.count();
    out["retry_budget"] = s.retry_budget;
    out["retry_min_per_s"] = s.retry_min_per_s;
    if (s.tls) {  // the TLS keys exist for https:// services only
        out["ca_file"] = text_or_null(s.tls->ca_file);
        out["client_cert"] = text_or_null(s.tls->client_cert);
        out["client_key"] = text_or_null(s.tls->client_key);
        out["server_name"] = text_or_null(s.tls->server_name);
        out["insecure_skip_verify"] = s.tls->insecure_skip_verify;
        out["tls_handshake_timeout_ms"] = s.tls->handshake_timeout.count();
    }
    return out;
}

json::array describe_upstreams(std::vector<fanout::service> const& services) {
    json::array out;
    for (auto const& s : services) out.push_back(describe_service(s));
    return out;
}

json::array strings(std::vector<std::string> const& texts) {
    return json::array(texts.begin(), texts.end());
}

json::object describe_route(route_config const& r) {
    json::object out;
    out["path"] = r.path;
    out["pattern"] = to_string(r.pattern);
    out["timeout_ms"] = ms_or_null(r.timeout);
    out["shape"] = to_string(r.shape);
    if (r.stream) out["stream"] = "ndjson";
    if (r.server_timing) out["server_timing"] = *r.server_timing;
    out["forward_headers"] = strings(r.forward_headers);
    json::array backends;
    for (auto const& b : r.backends) {
        json::object backend;
        backend["service"] = b.service;
        backend["path"] = text_or_null(b.path);
        backend["key"] = b.key.empty() ? b.service : b.key;
        backend["allow"] = strings(b.allow);
        backend["deny"] = strings(b.deny);
        if (b.fallback) backend["fallback"] = json::parse(*b.fallback);  // null is a fallback too
        backend["required"] = b.required;
        backends.push_back(std::move(backend));
    }
    out["backends"] = std::move(backends);
    return out;
}

// Without routes configured, the seed's four endpoints are served: the member is left out, since
// listing them would make them configured routes, whose answers name their route.
json::array describe_routes(std::vector<route_config> const& routes) {
    json::array out;
    for (auto const& r : routes) out.push_back(describe_route(r));
    return out;
}

}  // namespace

std::string describe(options const& opts) {
    // In the order of the example configuration. Each list of the configuration (the upstreams, and
    // any added later, such as routes) is one member here, written by a function of its own.
    json::object out;
    out["listen"] = address(opts.listen_host, opts.listen_port);
    out["admin_listen"] = opts.admin_listen_host.empty()
                              ? json::value(nullptr)
                              : json::value(address(opts.admin_listen_host, opts.admin_listen_port));
    out["threads"] = opts.threads;
    out["timeout_ms"] = opts.timeout.count();
    out["max_timeout_ms"] = opts.max_timeout.count();
    out["max_fetch_ms"] = opts.max_fetch.count();
    out["deadline_header"] = opts.deadline_header;
    out["max_upstream_body"] = opts.max_upstream_body;
    out["max_upstream_head"] = opts.max_upstream_head;
    out["upstream_pool_size"] = opts.upstream_pool_size;
    out["dns_refresh_ms"] = opts.dns_refresh.count();
    out["max_request_head"] = opts.max_request_head;
    out["max_request_body"] = opts.max_request_body;
    out["header_timeout_ms"] = opts.header_timeout.count();
    out["idle_timeout_ms"] = opts.idle_timeout.count();
    out["max_connections"] = opts.max_connections;
    out["max_background_fetches"] = opts.max_background_fetches;
    out["shutdown_grace_ms"] = opts.shutdown_grace.count();
    out["drain_delay_ms"] = opts.drain_delay.count();
    out["log_level"] = opts.log_level;
    out["log_rate_limit"] = opts.log_rate_limit;
    out["access_log"] = opts.access_log;
    out["access_log_sample"] = opts.access_log_sample;
    out["trust_forwarded_for"] = opts.trust_forwarded_for;
    out["server_timing"] = opts.server_timing;
    out["upstreams"] = describe_upstreams(opts.upstreams);
    if (!opts.routes.empty()) out["routes"] = describe_routes(opts.routes);
    std::string text;
    wire::append_json(text, out, 0);
    return text;
}

}  // namespace fanout
