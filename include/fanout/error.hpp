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
    timeout = 1,   // the request deadline passed first
    connect,       // refused, unreachable, name resolution failed
    status,        // non-2xx answer
    invalid_json,  // 2xx answer whose body is not one JSON value
    too_large,     // body over --max-upstream-body
    protocol,      // malformed HTTP, or the connection closed early
    circuit_open,  // not tried: the service's circuit breaker is open (service::breaker_failures)
    tls,           // the TLS handshake failed: certificate not trusted, expired, for another name, ...
    cancelled,     // stopped by us: a sibling failed, or the client went away
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
