#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// How an https:// service's connections are secured. Verification is on unless opted out: the
// certificate must chain to the system's trust store (or ca_file) and name the host.
struct tls_settings {
    std::string ca_file{};      // a trust store of the service's own (PEM), instead of the system's
    std::string client_cert{};  // PEM certificate chain and key for mutual TLS; both or neither
    std::string client_key{};
    std::string server_name{};          // sent as SNI and verified, when it is not the URL's host
    bool insecure_skip_verify = false;  // no certificate or name check: for tests only
    // A handshake not done by then fails as error_kind::timeout, whatever the fetch's deadline.
    std::chrono::milliseconds handshake_timeout{10000};

    bool operator==(tls_settings const&) const = default;
};

// One upstream service, from configuration only (never from a request).
struct service {
    std::string name;
    std::string host;  // connect to this (an IP literal or a name to resolve)
    std::uint16_t port = 80;
    std::optional<tls_settings> tls;  // set for https:// URLs
    // Origin-form request target: path and query. It may hold placeholders, `{name}`, each
    // replaced per request by a value the request gives (see params), percent-encoded.
    std::string target;
    std::vector<std::string> params;  // the placeholders' names, in the order they appear
    std::string host_header;          // value of the Host header
    // Bounds this service's fetches in every pattern (with a deadline: the smaller of it and the deadline).
    std::optional<std::chrono::milliseconds> timeout;
    // Circuit breaker, off at 0: after this many consecutive failures (see client), fetches fail at
    // once as error_kind::circuit_open for breaker_cooldown; then one fetch probes the service.
    unsigned breaker_failures = 0;
    std::chrono::milliseconds breaker_cooldown{5000};
    // Hedged requests, off unless one of the two delays is set: a fetch still unanswered after the
    // delay sends a second request, the first success wins and the other is cancelled (its
    // connection closed). The delay is hedge_quantile of the service's recent latencies (once
    // 100 have been seen; never below hedge_after when both are set), else hedge_after.
    std::optional<std::chrono::milliseconds> hedge_after;
    std::optional<double> hedge_quantile;  // in (0, 1), e.g. 0.95
    double hedge_budget = 0.1;             // extra requests, as a fraction of fetches (see client)
    // Retries, off at 0: a fetch that failed to connect, or whose connection failed before any
    // byte of an answer, is sent again up to this many times, after a jittered backoff (about
    // retry_backoff, doubling), never past its deadline, within a retry budget.
    unsigned max_retries = 0;
    std::chrono::milliseconds retry_backoff{10};
    double retry_budget = 0.2;      // retries, as a fraction of fetches ...
    unsigned retry_min_per_s = 10;  // ... plus this many per second in any case

    std::string url() const;

    bool operator==(service const&) const = default;  // every setting
};

// Parses "http[s]://host[:port][/path][?query]"; the name may use [A-Za-z0-9_.-] only. The path and
// query may hold placeholders `{name}` ([A-Za-z0-9_], at most 32 characters), not the host or
// port. Throws std::invalid_argument saying what is wrong.
service make_service(std::string name, std::string_view url);

// Parses "NAME=URL", as given to --upstream. Throws std::invalid_argument.
service parse_service(std::string_view spec);

// A placeholder's value for one request.
struct param {
    std::string name;
    std::string value;
};

// Whether `value` may fill the placeholder `name` of the service's target. In the path "." and
// ".." may not: percent-encoding leaves them as they are ('.' is unreserved) and the upstream would
// take them as a dot-segment (RFC 3986 §5.2.4), out of the placeholder's segment. In the query
// they are values like any other.
bool fits_placeholder(service const& svc, std::string_view name, std::string_view value);

// The service's target with each placeholder replaced by its value in `values`, every byte but
// RFC 3986's unreserved ones percent-encoded (so a value stays one path segment or query value).
// Throws std::invalid_argument naming a placeholder without a value, or one that a value does not
// fit (fits_placeholder()).
std::string expand_target(service const& svc, std::span<param const> values);

}  // namespace fanout
