#include "wire/json_text.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <charconv>
#include <fanout/service.hpp>
#include <stdexcept>

namespace fanout {

namespace urls = boost::urls;

std::string service::url() const {
    return (tls ? "https://" : "http://") + host_header + target;
}

namespace {

// A value that, alone in a path segment, is a dot-segment (RFC 3986 §3.3).
bool dot_segment(std::string_view value) {
    return value == "." || value == "..";
}

// Names appear unescaped in JSON keys, metric labels and log fields: keep them to a safe alphabet.
void check_name(std::string_view name) {
    if (name.empty()) throw std::invalid_argument("empty service name");
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        if (!ok)
            throw std::invalid_argument(
                "service name may use [A-Za-z0-9_.-] only: " + wire::quoted_short(name)
            );
    }
}

bool is_param_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

constexpr std::string_view token_prefix = "fanout-param-";

// The URL with each placeholder replaced by a token Boost.URL accepts anywhere, so that the rest
// of it is checked as any URL; the names in `names`.
std::string without_placeholders(std::string_view url, std::vector<std::string>& names) {
    if (url.find(token_prefix) != std::string_view::npos)
        throw std::invalid_argument("upstream URL may not contain '" + std::string(token_prefix) + "'");
    std::string out;
    for (std::size_t i = 0; i < url.size(); ++i) {
        if (url[i] == '}') throw std::invalid_argument("'}' without '{' in " + wire::quoted_short(url));
        if (url[i] != '{') {
            out += url[i];
            continue;
        }
        auto const close = url.find('}', i);
        if (close == std::string_view::npos)
            throw std::invalid_argument("'{' without '}' in " + wire::quoted_short(url));
        auto const name = url.substr(i + 1, close - i - 1);
        if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), is_param_char))
            throw std::invalid_argument(
                "placeholder " + wire::quoted_short("{" + std::string(name) + "}") +
                " must be 1 to 32 of [A-Za-z0-9_]"
            );
        out += token_prefix;
        out += std::to_string(names.size());
        out += '-';
        names.emplace_back(name);
        i = close;
    }
    return out;
}

// Puts the placeholders back into a target made from the tokenised URL; false when one of them is
// not there (it was in the host or port).
bool restore_placeholders(std::string& target, std::vector<std::string> const& names) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto const token = std::string(token_prefix) + std::to_string(i) + "-";
        auto const at = target.find(token);
        if (at == std::string::npos) return false;
        target.replace(at, token.size(), "{" + names[i] + "}");
    }
    return true;
}

}  // namespace

service make_service(std::string name, std::string_view template_url) {
    check_name(name);
    std::vector<std::string> params;
    auto const tokenised = without_placeholders(template_url, params);
    std::string_view const url = tokenised;
    auto parsed = urls::parse_absolute_uri(url);
    if (!parsed) throw std::invalid_argument("not an absolute URL: " + wire::quoted_short(url));
    auto const& u = *parsed;
    if (u.scheme_id() != urls::scheme::http && u.scheme_id() != urls::scheme::https)
        throw std::invalid_argument(
            "only http:// and https:// upstreams are supported: " + wire::quoted_short(url)
        );
    if (u.has_userinfo())
        throw std::invalid_argument("credentials in upstream URL: " + wire::quoted_short(url));
    if (u.encoded_host().empty()) throw std::invalid_argument("no host in " + wire::quoted_short(url));

    service s;
    s.name = std::move(name);
    if (u.scheme_id() == urls::scheme::https) {
        s.tls.emplace();
        s.port = 443;
    }
    // encoded_host_name() keeps IPv6 literals without brackets, ready for make_address.
    s.host = u.host_type() == urls::host_type::ipv6 ? u.host_ipv6_address().to_string()
                                                    : std::string(u.encoded_host());
    if (u.has_port()) {
        auto p = u.port();
        unsigned value = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
        if (ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535)
            throw std::invalid_argument("bad port in " + wire::quoted_short(url));
        s.port = static_cast<std::uint16_t>(value);
    }
    if (u.host_type() == urls::host_type::name && s.host.find('%') != std::string::npos)
        throw std::invalid_argument("percent-encoded host in " + wire::quoted_short(url));
    // Boost.URL 1.81 takes "http://[::1]:9:02/" as port 9 and path ":02/": a path must start with '/'.
    if (!u.encoded_path().empty() && u.encoded_path().front() != '/')
        throw std::invalid_argument("malformed URL: " + wire::quoted_short(url));
    s.host_header = std::string(u.encoded_host_and_port());
    s.target = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
    if (u.has_query()) s.target += "?" + std::string(u.encoded_query());
    if (!restore_placeholders(s.target, params))
        throw std::invalid_argument(
            "placeholders may only be in the path or query: " + wire::quoted_short(template_url)
        );
    s.params = std::move(params);
    return s;
}

bool fits_placeholder(service const& svc, std::string_view name, std::string_view value) {
    if (!dot_segment(value)) return true;
    auto const path = std::string_view(svc.target).substr(0, svc.target.find('?'));
    return path.find("{" + std::string(name) + "}") == std::string_view::npos;
}

std::string expand_target(service const& svc, std::span<param const> values) {
    if (svc.params.empty()) return svc.target;
    std::string out;
    out.reserve(svc.target.size() + 32);
    auto const query = svc.target.find('?');
    for (std::size_t i = 0; i < svc.target.size(); ++i) {
        if (svc.target[i] != '{') {
            out += svc.target[i];
            continue;
        }
        auto const close = svc.target.find('}', i);
        std::string_view const name{svc.target.data() + i + 1, close - i - 1};
        auto const v =
            std::find_if(values.begin(), values.end(), [&](param const& p) { return p.name == name; });
        if (v == values.end())
            throw std::invalid_argument(
                "no value for placeholder '{" + std::string(name) + "}' of " + svc.name
            );
        if (i < query && dot_segment(v->value))
            throw std::invalid_argument(
                "'.' and '..' may not fill placeholder '{" + std::string(name) + "}' of " + svc.name +
                ", in the path"
            );
        out += urls::encode(v->value, urls::unreserved_chars);
        i = close;
    }
    return out;
}

service parse_service(std::string_view spec) {
    auto eq = spec.find('=');
    if (eq == std::string_view::npos || eq == 0)
        throw std::invalid_argument("expected NAME=URL, got " + wire::quoted_short(spec));
    return make_service(std::string(spec.substr(0, eq)), spec.substr(eq + 1));
}

}  // namespace fanout
