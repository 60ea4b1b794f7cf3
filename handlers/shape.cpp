#include "handlers/shape.hpp"

#include "wire/json_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <deque>
#include <vector>

namespace fanout {

namespace json = boost::json;

void append_error(std::string& out, fanout::fetch_error const& e) {
    out += R"({"kind":")";
    out += fanout::to_string(e.kind);
    out += R"(","message":)";
    out += wire::json_quote(e.message);
    if (e.kind == error_kind::status) {
        out += R"(,"status":)";
        out += std::to_string(e.status);
    }
    out += '}';
}

namespace {

// Shaping works on the text as the upstream sent it, already validated: members are found by a
// scan, copied as they came (numbers, escapes and all), and only what allow and deny reach into
// is scanned further. No document is built.

std::size_t skip_space(std::string_view text, std::size_t i) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    return i;
}

// The end of the string literal starting at text[i] ('"').
std::size_t string_end(std::string_view text, std::size_t i) {
    for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    return i + 1;
}

// The end of the value starting at text[i].
std::size_t value_end(std::string_view text, std::size_t i) {
    if (text[i] == '"') return string_end(text, i);
    if (text[i] != '{' && text[i] != '[') {
        while (i < text.size() && std::string_view(",}] \t\n\r").find(text[i]) == std::string_view::npos) ++i;
        return i;
    }
    std::size_t depth = 0;
    for (; i < text.size(); ++i) {
        char const c = text[i];
        if (c == '"') {
            i = string_end(text, i) - 1;
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return i;
}

struct member {
    std::string_view key;    // as written, quotes included
    std::string_view name;   // decoded
    std::string_view value;  // as written
};

// Keys with escapes, decoded; they stay put while the members that point into them are used.
using decoded_keys = std::deque<std::string>;

// The members of `text` when it is an object; false when it is another value.
bool members_of(std::string_view text, std::vector<member>& out, decoded_keys& keys) {
    auto i = skip_space(text, 0);
    if (i >= text.size() || text[i] != '{') return false;
    i = skip_space(text, i + 1);
    while (i < text.size() && text[i] == '"') {
        auto const key_end = string_end(text, i);
        member m;
        m.key = text.substr(i, key_end - i);
        m.name = m.key.substr(1, m.key.size() - 2);
        if (m.name.find('\\') != std::string_view::npos)
            m.name = keys.emplace_back(std::string_view(json::parse(m.key).as_string()));
        i = skip_space(text, skip_space(text, key_end) + 1);  // past ':'
        auto const end = value_end(text, i);
        m.value = text.substr(i, end - i);
        out.push_back(m);
        i = skip_space(text, end);
        if (i < text.size() && text[i] == ',') i = skip_space(text, i + 1);
    }
    return true;
}

bool is_object(std::string_view value) {
    auto const i = skip_space(value, 0);
    return i < value.size() && value[i] == '{';
}

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

// Appends the object `text` with only the members `paths` name (allow) or without them (deny),
// descending into nested objects; what is not an object (an array included) is kept or dropped
// whole once its name is reached.
void append_filtered(
    std::string& out, std::string_view text, std::span<member_path const> paths, bool allow, std::size_t depth
) {
    std::vector<member> found;
    decoded_keys keys;
    members_of(text, found, keys);
    out += '{';
    bool first = true;
    for (auto const& m : found) {
        bool whole = false;
        bool const hit = named(paths, depth, m.name, whole);
        if (allow ? !hit : hit && whole) continue;
        if (!first) out += ',';
        first = false;
        out += m.key;
        out += ':';
        if (hit && !whole && is_object(m.value))
            append_filtered(out, m.value, paths, allow, depth + 1);
        else
            out += m.value;
    }
    out += '}';
}

// A backend's answered body, with allow or deny applied to an object.
void append_body(std::string& out, backend_plan const& backend, std::string_view body) {
    if (!backend.filtered() || !is_object(body)) {
        out += body;  // validated JSON, embedded as it came
        return;
    }
    bool const allow = !backend.allow.empty();
    append_filtered(out, body, allow ? backend.allow : backend.deny, allow, 0);
}

}  // namespace

bool append_part(std::string& out, backend_plan const& backend, fanout::fetch_result const& result) {
    if (!result.ok()) {
        if (!backend.fallback) return false;
        out += *backend.fallback;
        return true;
    }
    append_body(out, backend, result.body);
    return true;
}

std::string merged(route_plan const& route, std::span<fanout::fetch_result const> results) {
    std::deque<std::string> texts;  // shaped parts and quoted keys, which members point into
    decoded_keys keys;
    std::vector<member> answer, part;
    bool failed = false;
    // A later member replaces an earlier one of the same name, in its place.
    auto const put = [&](member const& m) {
        for (auto& a : answer)
            if (a.name == m.name) {
                a = m;
                return;
            }
        answer.push_back(m);
    };
    for (std::size_t i = 0; i < results.size(); ++i) {
        auto const& backend = route.backends[i];
        auto const& result = results[i];
        failed = failed || !result.ok();
        std::string_view text;
        if (result.ok() && backend.filtered()) {
            append_body(texts.emplace_back(), backend, result.body);
            text = texts.back();
        } else if (result.ok()) {
            text = result.body;
        } else if (backend.fallback) {
            text = *backend.fallback;
        } else {
            continue;
        }
        part.clear();
        if (members_of(text, part, keys)) {
            for (auto const& m : part) put(m);
        } else {
            std::string_view const quoted = texts.emplace_back(wire::json_quote(backend.key));
            put({quoted, backend.key, text});
        }
    }
    std::string out;
    std::size_t size = 16;
    for (auto const& m : answer) size += m.key.size() + m.value.size() + 2;
    out.reserve(size);
    out += '{';
    bool first = true;
    for (auto const& m : answer) {
        if (failed && m.name == "_errors") continue;  // a body's own member of that name gives way
        if (!first) out += ',';
        first = false;
        out += m.key;
        out += ':';
        out += m.value;
    }
    if (failed) {
        // "_errors" last, written as the envelope writes its errors.
        out += first ? R"("_errors":{)" : R"(,"_errors":{)";
        bool first_error = true;
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (results[i].ok()) continue;
            if (!first_error) out += ',';
            first_error = false;
            out += wire::json_quote(route.backends[i].key);
            out += ':';
            append_error(out, *results[i].error);
        }
        out += '}';
    }
    out += '}';
    return out;
}

std::string part_line(backend_plan const& backend, fanout::fetch_result const& result) {
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

}  // namespace fanout
