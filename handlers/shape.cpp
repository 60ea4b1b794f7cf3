#include "handlers/shape.hpp"

#include "wire/json_text.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>

namespace fanout::handlers {

namespace json = boost::json;
using upstream::error_kind;

void append_error(std::string& out, upstream::fetch_error const& e) {
    out += R"({"kind":")";
    out += upstream::to_string(e.kind);
    out += R"(","message":)";
    out += wire::json_quote(e.message);
    if (e.kind == error_kind::status) {
        out += R"(,"status":)";
        out += std::to_string(e.status);
    }
    out += '}';
}

namespace {

// Whether some path in `paths`, from `depth`, starts with `name`; `whole`: one of them ends there.
bool named(std::span<member_path const> paths, std::size_t depth, std::string_view name, bool& whole) {
    bool any = false;
    whole = false;
    for (auto const& p : paths) {
        if (p.size() <= depth || p[depth] != name) continue;
        any = true;
        whole = whole || p.size() == depth + 1;
    }
    return any;
}

// Keeps the members `paths` name, descending into nested objects; what is not an object (an
// array included) is kept whole once its name is reached.
void keep(json::object& object, std::span<member_path const> paths, std::size_t depth) {
    for (auto it = object.begin(); it != object.end();) {
        bool whole = false;
        if (!named(paths, depth, it->key(), whole)) {
            it = object.erase(it);
            continue;
        }
        if (!whole && it->value().is_object()) keep(it->value().as_object(), paths, depth + 1);
        ++it;
    }
}

// Drops the members `paths` name, descending into nested objects (not into arrays).
void drop(json::object& object, std::span<member_path const> paths, std::size_t depth) {
    for (auto it = object.begin(); it != object.end();) {
        bool whole = false;
        if (named(paths, depth, it->key(), whole)) {
            if (whole) {
                it = object.erase(it);
                continue;
            }
            if (it->value().is_object()) drop(it->value().as_object(), paths, depth + 1);
        }
        ++it;
    }
}

void filter(json::value& body, backend_plan const& backend) {
    if (!body.is_object()) return;  // allow and deny name members: anything else is placed whole
    if (!backend.allow.empty()) keep(body.as_object(), backend.allow, 0);
    if (!backend.deny.empty()) drop(body.as_object(), backend.deny, 0);
}

}  // namespace

bool append_part(std::string& out, backend_plan const& backend, upstream::fetch_result const& result) {
    if (!result.ok()) {
        if (!backend.fallback) return false;
        out += *backend.fallback;
        return true;
    }
    if (!backend.filtered()) {
        out += result.body;  // validated JSON, embedded as it came
        return true;
    }
    unsigned char buffer[4096];
    json::monotonic_resource arena(buffer, sizeof buffer);
    auto body = json::parse(result.body, &arena);
    filter(body, backend);
    wire::append_json(out, body);
    return true;
}

std::string merged(route_plan const& route, std::span<upstream::fetch_result const> results) {
    json::monotonic_resource arena;
    json::object answer(&arena);
    bool failed = false;
    for (std::size_t i = 0; i < results.size(); ++i) {
        auto const& backend = route.backends[i];
        auto const& result = results[i];
        failed = failed || !result.ok();
        json::value part;
        if (result.ok())
            part = json::parse(result.body, &arena);
        else if (backend.fallback)
            part = json::parse(*backend.fallback, &arena);
        else
            continue;
        if (result.ok()) filter(part, backend);
        if (!part.is_object()) {
            answer[backend.key] = std::move(part);
            continue;
        }
        for (auto& member : part.as_object()) answer[member.key()] = std::move(member.value());
    }
    if (failed) answer.erase("_errors");  // a body's own member of that name gives way
    std::string out;
    wire::append_json(out, answer);
    if (!failed) return out;
    // "_errors" last, written as the envelope writes its errors.
    out.pop_back();
    out += answer.empty() ? R"("_errors":{)" : R"(,"_errors":{)";
    bool first = true;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i].ok()) continue;
        if (!first) out += ',';
        first = false;
        out += wire::json_quote(route.backends[i].key);
        out += ':';
        append_error(out, *results[i].error);
    }
    out += "}}";
    return out;
}

std::string part_line(backend_plan const& backend, upstream::fetch_result const& result) {
    std::string out = R"({"key":)";
    out += wire::json_quote(backend.key);
    if (append_part(out.append(R"(,"result":)"), backend, result)) {
        if (result.ok()) return out += "}\n";
    } else {
        out.resize(out.size() - std::string_view(R"(,"result":)").size());
    }
    out += R"(,"error":)";
    append_error(out, *result.error);
    return out += "}\n";
}

std::string summary_line(bool complete, unsigned status, std::chrono::steady_clock::duration elapsed) {
    char ms[32];
    auto [end, ec] = std::to_chars(
        ms, ms + sizeof ms, std::chrono::duration<double, std::milli>(elapsed).count(),
        std::chars_format::fixed, 3
    );
    return std::string(R"({"complete":)") + (complete ? "true" : "false") + R"(,"status":)" +
           std::to_string(status) + R"(,"elapsed_ms":)" + std::string(ms, ec == std::errc{} ? end : ms) +
           "}\n";
}

}  // namespace fanout::handlers
