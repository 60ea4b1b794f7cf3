#include <boost/url/parse.hpp>

#include <charconv>
#include <fanout/service.hpp>
#include <stdexcept>

namespace fanout::upstream {

namespace urls = boost::urls;

std::string service::url() const {
    return "http://" + host_header + target;
}

namespace {

// Names appear unescaped in JSON keys, metric labels and log fields: keep them to a safe alphabet.
void check_name(std::string_view name) {
    if (name.empty()) throw std::invalid_argument("empty service name");
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        if (!ok)
            throw std::invalid_argument(
                "service name may use [A-Za-z0-9_.-] only: '" + std::string(name) + "'"
            );
    }
}

}  // namespace

service make_service(std::string name, std::string_view url) {
    check_name(name);
    auto parsed = urls::parse_absolute_uri(url);
    if (!parsed) throw std::invalid_argument("not an absolute URL: '" + std::string(url) + "'");
    auto const& u = *parsed;
    if (u.scheme_id() != urls::scheme::http)
        throw std::invalid_argument("only http:// upstreams are supported: '" + std::string(url) + "'");
    if (u.has_userinfo())
        throw std::invalid_argument("credentials in upstream URL: '" + std::string(url) + "'");
    if (u.encoded_host().empty()) throw std::invalid_argument("no host in '" + std::string(url) + "'");

    service s;
    s.name = std::move(name);
    // encoded_host_name() keeps IPv6 literals without brackets, ready for make_address.
    s.host = u.host_type() == urls::host_type::ipv6 ? u.host_ipv6_address().to_string()
                                                    : std::string(u.encoded_host());
    if (u.has_port()) {
        auto p = u.port();
        unsigned value = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
        if (ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535)
            throw std::invalid_argument("bad port in '" + std::string(url) + "'");
        s.port = static_cast<std::uint16_t>(value);
    }
    if (u.host_type() == urls::host_type::name && s.host.find('%') != std::string::npos)
        throw std::invalid_argument("percent-encoded host in '" + std::string(url) + "'");
    // Boost.URL 1.81 takes "http://[::1]:9:02/" as port 9 and path ":02/": a path must start with '/'.
    if (!u.encoded_path().empty() && u.encoded_path().front() != '/')
        throw std::invalid_argument("malformed URL: '" + std::string(url) + "'");
    s.host_header = std::string(u.encoded_host_and_port());
    s.target = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
    if (u.has_query()) s.target += "?" + std::string(u.encoded_query());
    return s;
}

service parse_service(std::string_view spec) {
    auto eq = spec.find('=');
    if (eq == std::string_view::npos || eq == 0)
        throw std::invalid_argument("expected NAME=URL, got '" + std::string(spec) + "'");
    return make_service(std::string(spec.substr(0, eq)), spec.substr(eq + 1));
}

}  // namespace fanout::upstream
