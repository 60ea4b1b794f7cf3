#include "server/request_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <fanout/trace.hpp>

namespace fanout {

namespace {

bool digit(char c) {
    return c >= '0' && c <= '9';
}

// A dotted IPv4 address of four decimal octets (0 to 255, no leading zero).
bool dotted_ipv4(std::string_view s) {
    for (int octet = 0; octet < 4; ++octet) {
        if (octet > 0) {
            if (s.empty() || s.front() != '.') return false;
            s.remove_prefix(1);
        }
        std::size_t n = 0;
        unsigned value = 0;
        while (n < s.size() && n < 3 && digit(s[n])) value = value * 10 + unsigned(s[n++] - '0');
        if (n == 0 || value > 255 || (n > 1 && s.front() == '0')) return false;
        s.remove_prefix(n);
    }
    return s.empty();
}

// The Host values clients send (a name, or an IPv4 address, and a port), told valid without the
// URL parser, which costs as much as the rest of the request's parsing. A name starting with a
// letter cannot begin with an IPv4 address (which Boost.URL would take and then refuse the rest).
bool plainly_valid_host(std::string_view value) {
    auto const colon = value.find(':');
    auto const host = value.substr(0, colon);
    if (colon != std::string_view::npos &&
        !std::all_of(value.begin() + colon + 1, value.end(), [](char c) { return digit(c); }))
        return false;
    if (host.empty()) return false;
    auto const letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!letter(host.front())) return dotted_ipv4(host);
    return std::all_of(host.begin(), host.end(), [&](char c) {
        return letter(c) || digit(c) || c == '.' || c == '-' || c == '_' || c == '~';
    });
}

}  // namespace

bool request_parser::valid_host(string_view value) {
    if (value.empty()) return false;
    if (plainly_valid_host({value.data(), value.size()})) return true;
    auto authority = boost::urls::parse_authority({value.data(), value.size()});
    return authority && !authority->has_userinfo();
}

std::size_t request_parser::first_address(std::string_view list, std::array<char, 46>& to) noexcept {
    auto first = list.substr(0, list.find(','));
    auto const blank = [](char c) { return c == ' ' || c == '\t'; };
    while (!first.empty() && blank(first.front())) first.remove_prefix(1);
    while (!first.empty() && blank(first.back())) first.remove_suffix(1);
    if (first.empty() || first.size() >= to.size()) return 0;
    first.copy(to.data(), first.size());
    to[first.size()] = '\0';
    // inet_pton, not make_address: that looks up a zone's interface (fe80::1%eth0) and may allocate.
    in6_addr parsed;
    if (inet_pton(AF_INET, to.data(), &parsed) != 1 && inet_pton(AF_INET6, to.data(), &parsed) != 1) return 0;
    return first.size();
}

void take_field(
    request_fields& fields,
    std::string_view deadline_header,
    std::string_view name,
    std::string_view value,
    std::span<std::string const> forwarded
) {
    using boost::beast::iequals;
    // Bounded by what is accepted: a deadline of 64 bytes, a traceparent of 128, a tracestate of
    // what is forwarded.
    auto add = [value](std::optional<std::string>& to, std::size_t max) {
        if (!to) to.emplace();
        add_line(*to, value, max);
    };
    if (!deadline_header.empty() && iequals(name, deadline_header))
        add(fields.deadline, 64);
    else if (iequals(name, "traceparent"))
        add(fields.traceparent, 128);
    else if (iequals(name, "tracestate"))
        add_line(fields.tracestate, value, fanout::max_tracestate);
    else if (iequals(name, "accept"))
        add_line(fields.accept, value, 512);
    // Kept as received (the request head's limit bounds them all); a value with a byte that could
    // end a header line is not forwarded at all.
    if (forwarded.empty() || value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return;
    for (auto const& f : forwarded)
        if (iequals(name, f)) {
            fields.forwarded.emplace_back(f, value);
            return;
        }
}

std::string_view path_without_query(std::string_view target) noexcept {
    if (target.starts_with('/')) return target.substr(0, target.find('?'));
    auto const scheme = target.find("://");
    if (scheme == std::string_view::npos || scheme == 0) return {};
    auto const rest = target.substr(scheme + 3);
    auto const path = rest.find_first_of("/?");
    if (path == std::string_view::npos || rest[path] == '?') return "/";
    return rest.substr(path, rest.find('?', path) - path);
}

unsigned unsupported_version(std::string_view head) noexcept {
    auto const line = head.substr(0, head.find('\n'));
    auto const at = line.rfind(" HTTP/");
    if (at == std::string_view::npos) return 0;
    auto v = line.substr(at + 6);
    if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
    if (v.size() != 3 || v[0] < '2' || v[0] > '9' || v[1] != '.' || v[2] < '0' || v[2] > '9') return 0;
    return static_cast<unsigned>((v[0] - '0') * 10 + (v[2] - '0'));
}

}  // namespace fanout
