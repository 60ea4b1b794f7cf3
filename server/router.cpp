#include "server/router.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>

namespace fanout {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace urls = boost::urls;

std::variant<std::chrono::milliseconds, std::string> parse_timeout(
    std::optional<std::string_view> param,
    std::chrono::milliseconds default_timeout,
    std::chrono::milliseconds max_timeout,
    std::string_view name
) {
    if (!param) return default_timeout;
    auto s = *param;
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || s.front() == '-' || s.front() == '+' || end != s.data() + s.size() ||
        (ec != std::errc{} && ec != std::errc::result_out_of_range) || (ec == std::errc{} && value <= 0))
        return std::string(name) + " must be a positive integer (milliseconds)";
    if (ec == std::errc::result_out_of_range || value > max_timeout.count()) return max_timeout;
    return std::chrono::milliseconds(value);
}

dispatch match(
    http::verb method,
    std::string_view target,
    options const& opts,
    route_table const& routes,
    request_fields const& fields
) {
    dispatch r;
    // Beast has checked the characters. An absolute-form target (RFC 9112 §3.2.2, as proxies send
    // it) is routed by its path and query; nothing else of it is used.
    std::string origin_form;
    if (!target.empty() && target.front() != '/') {
        auto uri = urls::parse_absolute_uri(target);
        if (!uri || (uri->scheme_id() != urls::scheme::http && uri->scheme_id() != urls::scheme::https)) {
            r.answer = error_response(400, "malformed request target");
            return r;
        }
        origin_form = uri->encoded_path().empty() ? "/" : std::string(uri->encoded_path());
        if (uri->has_query()) origin_form += "?" + std::string(uri->encoded_query());
        target = origin_form;
    }
    if (target.empty() || target.front() != '/') {
        r.answer = error_response(400, "malformed request target");
        return r;
    }
    auto const question = target.find('?');
    auto const path = target.substr(0, question);
    if (path == "/healthz")
        r.target = endpoint::healthz;
    else if (path == "/metrics")
        r.target = endpoint::metrics;
    else if ((r.plan = routes.find(path, r.params)))
        r.target = endpoint_of(r.plan->pattern);
    if (r.target == endpoint::other) {
        r.answer = error_response(404, "no such endpoint: " + std::string(path));
        return r;
    }
    if (method != http::verb::get && method != http::verb::head) {
        r.answer = error_response(405, "method not allowed; use GET or HEAD");
        r.answer->allow_get_head = true;
        return r;
    }
    if (!r.plan) return r;
    auto const& plan = *r.plan;

    std::optional<std::string> timeout_param;
    urls::params_encoded_view query;  // empty without a '?'
    if (question != std::string_view::npos) {
        auto parsed = urls::parse_query(target.substr(question + 1));
        if (!parsed) {
            r.answer = error_response(400, "malformed query");
            return r;
        }
        query = *parsed;
        // The key is compared decoded; the value is decoded here (`?timeout_ms=%32%30` is 20).
        if (auto it = query.find("timeout_ms"); it != query.end()) timeout_param = (*it).value.decode();
    }
    for (auto const& p : r.params)
        if (p.value.size() > max_param_size) {
            r.answer = error_response(
                400, "path segment '" + p.name + "' over " + std::to_string(max_param_size) + " bytes"
            );
            return r;
        }
    // The placeholders' values: a path segment's, else the query parameter of the same name.
    auto const from_path = r.params.size();
    auto const services = std::span(opts.upstreams);
    for (std::size_t b = 0; b < plan.backends.size(); ++b) {
        auto const& backend = plan.backends[b];
        auto const& svc = backend.own_target ? *backend.own_target : services[backend.service];
        for (auto const& name : svc.params) {
            auto known =
                std::find_if(r.params.begin(), r.params.end(), [&](auto const& p) { return p.name == name; });
            if (known == r.params.end()) {
                auto it = query.find(name);
                if (it == query.end() || !(*it).has_value) {
                    r.answer = error_response(
                        400, "missing query parameter '" + name + "' (for " + backend.key + ")"
                    );
                    return r;
                }
                if ((*it).value.decoded_size() > max_param_size) {
                    r.answer = error_response(
                        400,
                        "query parameter '" + name + "' over " + std::to_string(max_param_size) + " bytes"
                    );
                    return r;
                }
                r.params.push_back({name, (*it).value.decode()});
                known = std::prev(r.params.end());
            }
            // Checked for each backend: a value may fit one's query and not another's path.
            if (!fanout::fits_placeholder(svc, name, known->value)) {
                auto const source = static_cast<std::size_t>(known - r.params.begin()) < from_path
                                        ? "path segment '"
                                        : "query parameter '";
                r.answer = error_response(
                    400, source + name + "' may not be '.' or '..' (a path segment for " + backend.key + ")"
                );
                return r;
            }
        }
    }
    for (std::size_t b = 0; b < plan.backends.size(); ++b) {
        auto const& backend = plan.backends[b];
        if (!backend.own_target) continue;
        r.targets.resize(plan.backends.size());
        r.targets[b] = fanout::expand_target(*backend.own_target, r.params);
    }
    for (auto const& [name, value] : fields.forwarded)
        if (std::find(plan.forward_headers.begin(), plan.forward_headers.end(), name) !=
            plan.forward_headers.end()) {
            r.forwarded += name;
            r.forwarded += ": ";
            r.forwarded += value;
            r.forwarded += "\r\n";
        }
    auto const route_timeout = plan.timeout.value_or(opts.timeout);
    auto timeout = parse_timeout(
        timeout_param ? std::optional<std::string_view>(*timeout_param) : std::nullopt, route_timeout,
        opts.max_timeout
    );
    if (auto* message = std::get_if<std::string>(&timeout)) {
        r.answer = error_response(400, *message);
        return r;
    }
    r.timeout = std::get<std::chrono::milliseconds>(timeout);
    // A caller's own deadline (e.g. a fanout in front of this one): what is left of it bounds ours.
    if (fields.deadline && !opts.deadline_header.empty()) {
        auto left = parse_timeout(*fields.deadline, route_timeout, opts.max_timeout, opts.deadline_header);
        if (auto* message = std::get_if<std::string>(&left)) {
            r.answer = error_response(400, *message);
            return r;
        }
        r.timeout = std::min(r.timeout, std::get<std::chrono::milliseconds>(left));
    }
    auto trace = fields.traceparent ? fanout::parse_trace_context(*fields.traceparent, fields.tracestate)
                                    : std::nullopt;
    r.trace = trace ? std::move(*trace) : fanout::new_trace();
    r.cancel_on_disconnect =
        plan.stream || plan.pattern == pattern::context_timeout || plan.pattern == pattern::errgroup;
    return r;
}

dispatch match(
    http::verb method, std::string_view target, options const& opts, request_fields const& fields
) {
    thread_local std::optional<route_table> routes;
    routes.emplace(opts);
    return match(method, target, opts, *routes, fields);
}

}  // namespace fanout
