#include <algorithm>
#include <array>
#include <cstring>
#include <fanout/trace.hpp>
#include <random>

namespace fanout {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

// A table lookup per character: this runs on the 32 digits of every upstream request's trace id.
constexpr auto hex_table = [] {
    std::array<bool, 256> t{};
    for (char c : std::string_view{hex_digits}) t[static_cast<unsigned char>(c)] = true;
    return t;
}();

bool lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return hex_table[static_cast<unsigned char>(c)]; });
}

bool printable_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool all_zeros(std::string_view s) {
    return s.find_first_not_of('0') == std::string_view::npos;
}

int hex_value(char c) {
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

// Ids must be unique, not secret: splitmix64 per thread, seeded once from the system (a few
// instructions an id; std::mt19937_64 cost as much as the rest of the trace handling).
std::uint64_t random_bits() {
    thread_local std::uint64_t state = [] {
        std::random_device device;
        return (std::uint64_t{device()} << 32) ^ device();
    }();
    std::uint64_t z = (state += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

// The 8 nibbles in the low halves of `v`'s bytes as 8 lowercase hex digits, all bytes at once:
// '0' + n, and 39 more ('a' - '0' - 10) where n > 9.
std::uint64_t hex_bytes(std::uint64_t v) {
    constexpr std::uint64_t ones = 0x0101010101010101;
    std::uint64_t const over_9 = ((v + 6 * ones) >> 4) & ones;
    return v + '0' * ones + over_9 * 39;
}

// 16 × `words` random lowercase hex digits, not all zero.
void random_hex(char* out, std::size_t words) {
    constexpr std::uint64_t low_nibbles = 0x0f0f0f0f0f0f0f0f;
    bool nonzero = false;
    while (!nonzero) {
        for (std::size_t w = 0; w < words; ++w) {
            auto const bits = random_bits();
            nonzero = nonzero || bits != 0;
            auto const low = hex_bytes(bits & low_nibbles);
            auto const high = hex_bytes((bits >> 4) & low_nibbles);
            std::memcpy(out + w * 16, &low, 8);
            std::memcpy(out + w * 16 + 8, &high, 8);
        }
    }
}

}  // namespace

std::optional<trace_context> parse_trace_context(std::string_view traceparent, std::string_view tracestate) {
    // version "-" trace-id "-" parent-id "-" trace-flags: a later version may append fields.
    auto const& tp = traceparent;
    if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    auto const version = tp.substr(0, 2);
    if (!lower_hex(version) || version == "ff") return std::nullopt;
    if (version == "00" ? tp.size() != 55 : tp.size() > 55 && tp[55] != '-') return std::nullopt;
    auto const trace_id = tp.substr(3, 32);
    auto const parent_id = tp.substr(36, 16);
    auto const flags = tp.substr(53, 2);
    if (!lower_hex(trace_id) || all_zeros(trace_id) || !lower_hex(parent_id) || all_zeros(parent_id) ||
        !lower_hex(flags))
        return std::nullopt;

    trace_context t;
    std::copy(trace_id.begin(), trace_id.end(), t.trace_id.begin());
    // Only `sampled` is defined for version 00, which is what fanout sends: the rest must be zero.
    t.flags = static_cast<std::uint8_t>(hex_value(flags[0]) * 16 + hex_value(flags[1])) & 0x01;
    if (tracestate.size() <= max_tracestate && printable_ascii(tracestate)) t.tracestate = tracestate;
    return t;
}

bool well_formed(trace_context const& t) noexcept {
    return t.empty() || (lower_hex(t.id()) && printable_ascii(t.tracestate));
}

trace_context new_trace() {
    trace_context t;
    random_hex(t.trace_id.data(), 2);
    t.flags = 0x00;  // fanout records no spans: the sampling decision is left to the services
    return t;
}

std::array<char, 55> child_traceparent(trace_context const& trace) {
    std::array<char, 55> out;
    auto* p = out.data();
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    p = std::copy(trace.trace_id.begin(), trace.trace_id.end(), p);
    *p++ = '-';
    random_hex(p, 1);
    p += 16;
    *p++ = '-';
    *p++ = hex_digits[trace.flags >> 4];
    *p++ = hex_digits[trace.flags & 0xf];
    return out;
}

}  // namespace fanout
