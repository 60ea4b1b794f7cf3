#pragma once

// W3C Trace Context (Level 1): the trace an incoming request belongs to, forwarded on every
// upstream request made for it, each with a parent id of its own.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fanout {

struct trace_context {
    std::array<char, 32> trace_id{};  // lowercase hex; all '\0' until set
    std::uint8_t flags = 0;           // trace-flags: `sampled` (bit 0) as received; the others zero
    std::string tracestate;           // forwarded as received; empty: none

    bool empty() const noexcept { return trace_id[0] == '\0'; }
    std::string_view id() const noexcept {
        return empty() ? std::string_view{} : std::string_view{trace_id.data(), 32};
    }
};

// The longest tracestate forwarded (the specification asks to propagate at least 512 characters);
// a longer one, or one with characters outside printable ASCII, is dropped.
inline constexpr std::size_t max_tracestate = 512;

// The context of `traceparent` (with `tracestate`, its lines joined by commas), or nothing when
// traceparent is not valid: version ff, upper-case hex, an all-zero id, a wrong length.
std::optional<trace_context> parse_trace_context(
    std::string_view traceparent, std::string_view tracestate = {}
);

// Safe to write into a request: empty, or an id of lower-case hex and a tracestate of printable
// ASCII (what parse_trace_context and new_trace make; an application may fill one by hand).
bool well_formed(trace_context const& t) noexcept;

// A new trace: a random trace id, not flagged sampled (fanout records no spans of its own).
trace_context new_trace();

// "00-<trace id>-<new random parent id>-<flags>", the traceparent of one upstream request.
std::array<char, 55> child_traceparent(trace_context const& trace);

}  // namespace fanout
