#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fanout {

// Expected upstream failures are data (they end up in the "errors" object of an answer), not
// exceptions. They are error codes of their own category too, so that callers compare with `==`;
// none is 0 (success).
enum class error_kind {
    timeout = 1,   // a bound passed first: the request deadline, the service timeout, max_fetch, the TLS
                   // handshake limit
    connect,       // refused, unreachable, name resolution failed
    status,        // non-2xx answer
    invalid_json,  // 2xx answer whose body is not one JSON value
    too_large,     // body over --max-upstream-body
    protocol,      // malformed HTTP, or the connection closed early
    circuit_open,  // not tried: the service's circuit breaker is open (service::breaker_failures)
    tls,           // the TLS handshake failed: certificate not trusted, expired, for another name, ...
    cancelled,     // stopped by us: a sibling failed, the client went away (cancel_reason says)
};
// Arrays indexed by kind_index() have this size: keep `timeout` the first kind, `cancelled` the last.
inline constexpr std::size_t error_kind_count = static_cast<std::size_t>(error_kind::cancelled);
constexpr std::size_t kind_index(error_kind kind) noexcept {
    return static_cast<std::size_t>(kind) - 1;
}
constexpr error_kind kind_at(std::size_t index) noexcept {
    return static_cast<error_kind>(index + 1);
}

// The name in the "errors" object of an answer and in metrics: "timeout", "connect", ...
std::string_view to_string(error_kind kind) noexcept;

// Why a request to a service was stopped before its answer: each request of a fetch that ends as
// error_kind::cancelled is one of these (client_options::on_request).
enum class cancel_reason : std::uint8_t {
    client_gone,     // whoever awaited the fetch stopped waiting: the client left (the default)
    sibling_failed,  // errgroup: another fetch of the request failed
    deadline,        // the request's deadline passed (fetch_context::deadline)
    shutdown,        // the server's shutdown grace ended
    hedge_lost,      // the other request of a hedged pair answered first
};
// Arrays indexed by cancel_reason have this size: keep `hedge_lost` the last one.
inline constexpr std::size_t cancel_reason_count = static_cast<std::size_t>(cancel_reason::hedge_lost) + 1;

// The name in metrics: "client_gone", "sibling_failed", ...
std::string_view to_string(cancel_reason reason) noexcept;

// How a request to a service ended (client_options::on_request).
enum class request_outcome : std::uint8_t { ok, error, cancelled };
inline constexpr std::size_t request_outcome_count = 3;
std::string_view to_string(request_outcome outcome) noexcept;

// The category "fanout.upstream"; its messages are the names of to_string().
boost::system::error_category const& upstream_category() noexcept;

inline boost::system::error_code make_error_code(error_kind kind) noexcept {
    return {static_cast<int>(kind), upstream_category()};
}

}  // namespace fanout

template <>
struct boost::system::is_error_code_enum<fanout::error_kind> : std::true_type {};

namespace fanout {

struct fetch_error {
    error_kind kind;
    std::string message;
    unsigned status = 0;  // the upstream's status, for error_kind::status

    boost::system::error_code code() const noexcept { return kind; }
};

// How a fetch used the connection pool.
enum class connection_use : std::uint8_t {
    none,     // failed before a connection was had
    opened,   // a new connection
    reused,   // a pooled one
    retried,  // a pooled one had been closed by the upstream; then a new one
};

// What a service's hedging and retry settings did for one fetch.
struct fetch_attempts {
    std::uint8_t retries = 0;  // requests sent again after a failure (service::max_retries)
    bool hedged = false;       // a second request was sent (service::hedge_after, hedge_quantile)
    bool hedge_won = false;    // ... and its answer is the result
    bool over_budget = false;  // a hedge or a retry was due, but its budget was spent
    // A request was refused by the open circuit breaker: the fetch's first (the fetch failed as
    // circuit_open), or a retry (the fetch failed as the request before it did).
    bool refused = false;
};

struct fetch_result {
    std::string body;  // the upstream's JSON text, validated, when ok()
    std::optional<fetch_error> error;
    std::chrono::steady_clock::duration elapsed{};
    connection_use connection = connection_use::none;
    // Some of an answer arrived. A failure before any (error_kind::connect, or protocol when the
    // connection failed first) can be sent again, for a GET (service::max_retries).
    bool answer_started = false;
    fetch_attempts attempts{};

    bool ok() const noexcept { return !error.has_value(); }
};

inline fetch_result make_failure(error_kind kind, std::string message, unsigned status = 0) {
    fetch_result r;
    r.error = fetch_error{kind, std::move(message), status};
    return r;
}

}  // namespace fanout
