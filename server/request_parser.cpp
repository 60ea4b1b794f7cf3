#include "server/request_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>

#include <arpa/inet.h>
#include <fanout/trace.hpp>

namespace fanout {

bool request_parser::valid_host(string_view value) {
    if (value.empty()) return false;
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
