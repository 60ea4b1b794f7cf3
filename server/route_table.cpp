#include "server/route_table.hpp"

#include "server/setting_error.hpp"
#include "wire/json_text.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/pct_string_view.hpp>

#include <algorithm>
#include <array>
#include <fanout/client.hpp>
#include <stdexcept>

namespace fanout {

std::string_view to_string(pattern p) noexcept {
    switch (p) {
        case pattern::wg:
            return "wg";
        case pattern::channel:
            return "channel";
        case pattern::context_timeout:
            return "context-timeout";
        case pattern::errgroup:
            return "errgroup";
    }
    return "?";
}

std::string_view to_string(shape s) noexcept {
    return s == shape::merge ? "merge" : "envelope";
}

std::vector<route_config> default_routes(std::vector<std::string> const& service_names) {
    std::vector<backend_config> every;
    for (auto const& name : service_names) every.push_back({.service = name});
    return {
        {.path = "/api/aggregate/wg", .pattern = pattern::wg, .backends = every},
        {.path = "/api/aggregate/channel", .pattern = pattern::channel, .backends = every},
        {.path = "/api/aggregate/channel-with-context-timeout",
         .pattern = pattern::context_timeout,
         .backends = every},
        {.path = "/api/aggregate/errgroup", .pattern = pattern::errgroup, .backends = every},
    };
}

namespace {

namespace json = boost::json;
namespace urls = boost::urls;

constexpr std::size_t max_routes = 1000;
constexpr std::size_t max_backends = 64;
constexpr std::size_t max_segments = 32;
constexpr std::size_t max_template = 1024;

using detail::bad;

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// RFC 3986 pchar without '%': a template's literal is matched as written (after the request's
// percent-decoding), and quoted nowhere.
bool literal_char(char c) {
    return name_char(c) || std::string_view("-.~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

// Headers that frame the message, belong to one hop, or that fanout writes itself.
bool unforwardable(std::string_view name, std::string_view deadline_header) {
    static constexpr std::array<std::string_view, 17> reserved{
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-authenticate",
        "user-agent",
        "accept",
        "traceparent",
        "tracestate",
        "x-aggregate-complete"};
    if (!deadline_header.empty() && boost::beast::iequals(name, deadline_header)) return true;
    return std::any_of(reserved.begin(), reserved.end(), [&](auto r) {
        return boost::beast::iequals(name, r);
    });
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::vector<fanout::member_path> member_paths(
    std::string const& where, std::vector<std::string> const& names
) {
    std::vector<fanout::member_path> out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto const& name = names[i];
        auto const at = where + "[" + std::to_string(i) + "]";
        if (name.empty() || name.size() > 256) throw bad(at, "expected a member name of 1 to 256 characters");
        fanout::member_path path;
        std::size_t from = 0;
        for (;;) {
            auto const dot = name.find('.', from);
            auto part = name.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
            if (part.empty()) throw bad(at, "empty member name in " + wire::quoted_short(name));
            path.push_back(std::move(part));
            if (dot == std::string::npos) break;
            from = dot + 1;
        }
        if (path.size() > 16) throw bad(at, "more than 16 levels in " + wire::quoted_short(name));
        out.push_back(std::move(path));
    }
    return out;
}

}  // namespace

route_table::route_table(options const& opts) {
    std::vector<std::string> names;
    for (auto const& s : opts.upstreams) names.push_back(s.name);
    bool const seed = opts.routes.empty();
    auto const configs = seed ? default_routes(names) : opts.routes;
    if (configs.size() > max_routes)
        throw bad("routes", "more than " + std::to_string(max_routes) + " routes");

    for (std::size_t r = 0; r < configs.size(); ++r) {
        auto const& config = configs[r];
        auto const where = "routes[" + std::to_string(r) + "]";
        fanout::route_plan plan;
        plan.seed = seed;
        plan.index = r;
        plan.path = config.path;
        plan.pattern = config.pattern;
        plan.shape = config.shape;
        plan.stream = config.stream;
        plan.server_timing = config.server_timing.value_or(opts.server_timing);

        // The template.
        auto const& path = config.path;
        if (path.size() < 2 || path.front() != '/' || path.size() > max_template)
            throw bad(
                where + ".path", "expected a path like /api/users/{id}, got " + wire::quoted_short(path)
            );
        std::vector<segment> segments;
        for (std::size_t from = 1;;) {
            auto const slash = path.find('/', from);
            auto const text = std::string_view(path).substr(
                from, slash == std::string::npos ? std::string::npos : slash - from
            );
            segment s;
            if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
                auto const name = text.substr(1, text.size() - 2);
                if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), name_char))
                    throw bad(
                        where + ".path",
                        "placeholder " + wire::quoted_short(text) + " must be 1 to 32 of [A-Za-z0-9_]"
                    );
                for (auto const& other : segments)
                    if (other.placeholder && other.text == name)
                        throw bad(
                            where + ".path", "placeholder " + wire::quoted_short(text) + " given twice"
                        );
                s = {std::string(name), true};
            } else {
                if (text.empty() || text == "." || text == ".." ||
                    !std::all_of(text.begin(), text.end(), literal_char))
                    throw bad(
                        where + ".path", "segment " + wire::quoted_short(text) +
                                             " must be a literal (letters, digits, -._~!$&'()*+,;=:@; not . "
                                             "or ..) or one {name}"
                    );
                s = {std::string(text), false};
            }
            segments.push_back(std::move(s));
            if (segments.size() > max_segments) throw bad(where + ".path", "more than 32 segments");
            if (slash == std::string::npos) break;
            from = slash + 1;
        }
        auto const overlaps = [&](std::vector<segment> const& other) {
            if (other.size() != segments.size()) return false;
            for (std::size_t i = 0; i < other.size(); ++i)
                if (!other[i].placeholder && !segments[i].placeholder && other[i].text != segments[i].text)
                    return false;
            return true;
        };
        for (std::string_view own : {"healthz", "metrics"})
            if (overlaps({{std::string(own), false}}))
                throw bad(where + ".path", wire::quoted_short(path) + " would shadow /" + std::string(own));
        for (std::size_t o = 0; o < segments_.size(); ++o)
            if (overlaps(segments_[o]))
                throw bad(
                    where + ".path", wire::quoted_short(path) + " and routes[" + std::to_string(o) +
                                         "].path " + wire::quoted_short(plans_[o].path) +
                                         " can match the same path"
                );

        if (config.timeout) {
            if (config.timeout->count() < 1) throw bad(where + ".timeout_ms", "must be at least 1");
            if (*config.timeout > opts.max_timeout)
                throw bad(
                    where + ".timeout_ms", std::to_string(config.timeout->count()) +
                                               " must not exceed max_timeout_ms (" +
                                               std::to_string(opts.max_timeout.count()) + ")"
                );
            plan.timeout = config.timeout;
        }
        if (config.stream && config.pattern == pattern::wg)
            throw bad(where + ".stream", "not with pattern wg, which answers once every backend has");
        if (config.stream && config.shape == shape::merge)
            throw bad(where + ".stream", "not with shape merge: a streamed answer is one line per backend");

        for (std::size_t h = 0; h < config.forward_headers.size(); ++h) {
            auto const& name = config.forward_headers[h];
            auto const at = where + ".forward_headers[" + std::to_string(h) + "]";
            if (!fanout::valid_field_name(name))
                throw bad(at, "expected a header name, got " + wire::quoted_short(name));
            if (unforwardable(name, opts.deadline_header))
                throw bad(
                    at,
                    wire::quoted_short(name) +
                        " cannot be forwarded (it frames the request, belongs to one hop, or fanout sets it)"
                );
            auto l = lower(name);
            if (std::find(plan.forward_headers.begin(), plan.forward_headers.end(), l) !=
                plan.forward_headers.end())
                throw bad(at, wire::quoted_short(name) + " given twice");
            plan.forward_headers.push_back(l);
            if (std::find(forwarded_.begin(), forwarded_.end(), l) == forwarded_.end())
                forwarded_.push_back(l);
        }

        if (config.backends.empty() && !seed) throw bad(where + ".backends", "expected at least one backend");
        if (config.backends.size() > max_backends)
            throw bad(where + ".backends", "more than " + std::to_string(max_backends) + " backends");
        for (std::size_t b = 0; b < config.backends.size(); ++b) {
            auto const& bc = config.backends[b];
            auto const at = where + ".backends[" + std::to_string(b) + "]";
            fanout::backend_plan bp;
            auto const svc = std::find_if(opts.upstreams.begin(), opts.upstreams.end(), [&](auto const& s) {
                return s.name == bc.service;
            });
            if (svc == opts.upstreams.end())
                throw bad(at + ".service", "unknown upstream " + wire::quoted_short(bc.service));
            bp.service = static_cast<std::size_t>(svc - opts.upstreams.begin());
            if (!bc.path.empty()) {
                if (bc.path.front() != '/')
                    throw bad(
                        at + ".path",
                        "expected an origin-form path starting with '/', got " + wire::quoted_short(bc.path)
                    );
                try {
                    auto parsed = fanout::make_service(
                        svc->name, (svc->tls ? "https://" : "http://") + svc->host_header + bc.path
                    );
                    bp.own_target = *svc;
                    bp.own_target->target = std::move(parsed.target);
                    bp.own_target->params = std::move(parsed.params);
                } catch (std::invalid_argument const& e) {
                    throw bad(at + ".path", e.what());
                }
            }
            bp.key = bc.key.empty() ? bc.service : bc.key;
            if (bp.key.size() > 64 || !std::all_of(bp.key.begin(), bp.key.end(), [](char c) {
                    return name_char(c) || c == '-' || c == '.';
                }))
                throw bad(
                    at + ".key", "may use 1 to 64 of [A-Za-z0-9_.-], got " + wire::quoted_short(bp.key)
                );
            if (config.shape == shape::merge && bp.key == "_errors")
                throw bad(at + ".key", "'_errors' is where a merged answer lists failures");
            for (std::size_t o = 0; o < plan.backends.size(); ++o)
                if (plan.backends[o].key == bp.key)
                    throw bad(
                        at + ".key", wire::quoted_short(bp.key) + " is also the key of backends[" +
                                         std::to_string(o) +
                                         "] (give each backend of one service its own key)"
                    );
            if (!bc.allow.empty() && !bc.deny.empty())
                throw bad(at, "allow and deny go not together: give one");
            bp.allow = member_paths(at + ".allow", bc.allow);
            bp.deny = member_paths(at + ".deny", bc.deny);
            if (bc.fallback) {
                json::error_code ec;
                auto value = json::parse(*bc.fallback, ec);
                if (ec) throw bad(at + ".fallback", "not valid JSON: " + ec.message());
                bp.fallback = json::serialize(value);
            }
            bp.required = bc.required;
            plan.backends.push_back(std::move(bp));
        }
        plans_.push_back(std::move(plan));
        segments_.push_back(std::move(segments));
    }
}

fanout::route_plan const* route_table::find(std::string_view path, std::vector<fanout::param>& values) const {
    if (path.size() < 2 || path.front() != '/') return nullptr;
    // The request's segments, still encoded; one past the most a template has matches none.
    std::array<std::string_view, max_segments + 1> parts;
    std::size_t count = 0;
    for (std::size_t from = 1;;) {
        if (count == parts.size()) return nullptr;
        auto const slash = path.find('/', from);
        parts[count++] =
            path.substr(from, slash == std::string_view::npos ? std::string_view::npos : slash - from);
        if (slash == std::string_view::npos) break;
        from = slash + 1;
    }
    auto const decoded = [](std::string_view encoded) -> std::optional<std::string> {
        auto pct = urls::make_pct_string_view(encoded);
        if (!pct) return std::nullopt;
        return pct->decode();
    };
    for (std::size_t p = 0; p < plans_.size(); ++p) {
        auto const& segments = segments_[p];
        if (segments.size() != count) continue;
        bool match = true;
        for (std::size_t i = 0; i < count && match; ++i) {
            if (segments[i].placeholder) {
                match = !parts[i].empty();
            } else if (parts[i].find('%') == std::string_view::npos) {
                match = parts[i] == segments[i].text;
            } else {
                auto d = decoded(parts[i]);
                match = d && *d == segments[i].text;
            }
        }
        if (!match) continue;
        auto const first = values.size();
        for (std::size_t i = 0; i < count; ++i) {
            if (!segments[i].placeholder) continue;
            auto d = decoded(parts[i]);
            if (!d) {
                values.resize(first);
                return nullptr;
            }
            values.push_back({segments[i].text, std::move(*d)});
        }
        return &plans_[p];
    }
    return nullptr;
}

}  // namespace fanout
