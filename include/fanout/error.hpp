#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fanout::upstream {

// Expected upstream failures are data (they end up in the "errors" object of an answer), not exceptions.
enum class error_kind {
    timeout,       // the request deadline passed first
    connect,       // refused, unreachable, name resolution failed
    status,        // non-2xx answer
    invalid_json,  // 2xx answer whose body is not one JSON value
    too_large,     // body over --max-upstream-body
    protocol,      // malformed HTTP, or the connection closed early
    cancelled,     // stopped by us: a sibling failed, or the client went away
};
// Arrays indexed by error_kind have this size: keep `cancelled` the last kind.
inline constexpr std::size_t error_kind_count = static_cast<std::size_t>(error_kind::cancelled) + 1;

std::string_view to_string(error_kind kind) noexcept;

struct fetch_error {
    error_kind kind;
    std::string message;
    unsigned status = 0;  // the upstream's status, for error_kind::status
};

// How a fetch used the connection pool.
enum class connection_use : std::uint8_t {
    none,     // failed before a connection was had
    opened,   // a new connection
    reused,   // a pooled one
    retried,  // a pooled one had been closed by the upstream; then a new one
};

struct fetch_result {
    std::string body;  // the upstream's JSON text, validated, when ok()
    std::optional<fetch_error> error;
    std::chrono::steady_clock::duration elapsed{};
    connection_use connection = connection_use::none;

    bool ok() const noexcept { return !error.has_value(); }
};

inline fetch_result make_failure(error_kind kind, std::string message, unsigned status = 0) {
    return fetch_result{{}, fetch_error{kind, std::move(message), status}};
}

}  // namespace fanout::upstream
