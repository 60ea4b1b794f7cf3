#include "server/route_config.hpp"

#include "server/setting_error.hpp"
#include "wire/json_text.hpp"

#include <boost/json/serialize.hpp>

#include <stdexcept>

namespace fanout {

namespace json = boost::json;

namespace {

using detail::bad;

std::string text(std::string const& where, json::value const& v) {
    if (!v.is_string()) throw bad(where, "expected a string");
    return std::string(v.as_string());
}

std::vector<std::string> texts(std::string const& where, json::value const& v) {
    if (!v.is_array()) throw bad(where, "expected an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.as_array().size(); ++i)
        out.push_back(text(where + "[" + std::to_string(i) + "]", v.as_array()[i]));
    return out;
}

json::object const& object(std::string const& where, json::value const& v) {
    if (!v.is_object()) throw bad(where, "expected an object");
    return v.as_object();
}

backend_config read_backend(std::string const& where, json::value const& v) {
    backend_config b;
    bool named = false;
    for (auto const& [k, value] : object(where, v)) {
        auto const at = where + "." + wire::shortened(k);
        if (k == "service") {
            b.service = text(at, value);
            named = true;
        } else if (k == "path") {
            if (!value.is_null()) b.path = text(at, value);  // null: the upstream's URL
        } else if (k == "key") {
            b.key = text(at, value);
            if (b.key.empty()) throw bad(at, "empty");
        } else if (k == "allow") {
            b.allow = texts(at, value);
        } else if (k == "deny") {
            b.deny = texts(at, value);
        } else if (k == "fallback") {
            b.fallback = json::serialize(value);
        } else if (k == "required") {
            if (!value.is_bool()) throw bad(at, "expected true or false");
            b.required = value.as_bool();
        } else {
            throw bad(at, "unknown key");
        }
    }
    if (!named) throw bad(where + ".service", "missing");
    return b;
}

route_config read_route(std::string const& where, json::value const& v) {
    route_config r;
    bool has_path = false, has_backends = false;
    for (auto const& [k, value] : object(where, v)) {
        auto const at = where + "." + wire::shortened(k);
        if (k == "path") {
            r.path = text(at, value);
            has_path = true;
        } else if (k == "pattern") {
            auto const p = text(at, value);
            if (p == "wg")
                r.pattern = pattern::wg;
            else if (p == "channel")
                r.pattern = pattern::channel;
            else if (p == "context-timeout")
                r.pattern = pattern::context_timeout;
            else if (p == "errgroup")
                r.pattern = pattern::errgroup;
            else
                throw bad(at, "expected wg|channel|context-timeout|errgroup, got " + wire::quoted_short(p));
        } else if (k == "timeout_ms") {
            if (value.is_null()) continue;  // the default, as --check prints it
            if (!value.is_int64() || value.as_int64() < 1 || value.as_int64() > 24 * 3600 * 1000)
                throw bad(at, "expected an integer from 1 to 86400000");
            r.timeout = std::chrono::milliseconds(value.as_int64());
        } else if (k == "backends") {
            if (!value.is_array()) throw bad(at, "expected an array");
            for (std::size_t i = 0; i < value.as_array().size(); ++i)
                r.backends.push_back(read_backend(at + "[" + std::to_string(i) + "]", value.as_array()[i]));
            has_backends = true;
        } else if (k == "forward_headers") {
            r.forward_headers = texts(at, value);
        } else if (k == "shape") {
            auto const s = text(at, value);
            if (s == "envelope")
                r.shape = shape::envelope;
            else if (s == "merge")
                r.shape = shape::merge;
            else
                throw bad(at, "expected envelope|merge, got " + wire::quoted_short(s));
        } else if (k == "server_timing") {
            if (!value.is_bool()) throw bad(at, "expected true or false");
            r.server_timing = value.as_bool();
        } else if (k == "stream") {
            auto const s = text(at, value);
            if (s != "ndjson") throw bad(at, "expected ndjson, got " + wire::quoted_short(s));
            r.stream = true;
        } else {
            throw bad(at, "unknown key");
        }
    }
    if (!has_path) throw bad(where + ".path", "missing");
    if (!has_backends) throw bad(where + ".backends", "missing");
    return r;
}

}  // namespace

void apply_routes(options& opts, json::value const& routes) {
    if (!routes.is_array()) throw bad("routes", "expected an array");
    opts.routes.clear();
    for (std::size_t i = 0; i < routes.as_array().size(); ++i)
        opts.routes.push_back(read_route("routes[" + std::to_string(i) + "]", routes.as_array()[i]));
}

}  // namespace fanout
