#include "wire/json_text.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>

namespace fanout::wire {

namespace {

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    auto const c = byte(0);
    std::size_t n = c < 0x80                 ? 1
                    : c >= 0xC2 && c <= 0xDF ? 2
                    : c >= 0xE0 && c <= 0xEF ? 3
                    : c >= 0xF0 && c <= 0xF4 ? 4
                                             : 0;
    if (n == 0 || s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((byte(i) & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && byte(1) < 0xA0) || (c == 0xED && byte(1) > 0x9F))) return 0;
    if (n == 4 && ((c == 0xF0 && byte(1) < 0x90) || (c == 0xF4 && byte(1) > 0x8F))) return 0;
    return n;
}

}  // namespace

std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        auto n = utf8_sequence(text);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
            n = 1;
        } else {
            out.append(text.data(), n);
        }
        text.remove_prefix(n);
    }
    return out;
}

std::string shortened(std::string_view text, std::size_t max) {
    if (text.size() <= max) return std::string(text);
    auto cut = max;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return std::string(text.substr(0, cut)) + "...";
}

std::string json_quote(std::string_view text) {
    bool const ascii = std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; });
    return boost::json::serialize(ascii ? std::string(text) : valid_utf8(text));
}

void append_json(std::string& out, boost::json::value const& v, int indent) {
    namespace json = boost::json;
    bool const lines = indent >= 0;
    auto const next = [&](bool first, int depth) {
        if (!first) out += ',';
        if (lines) {
            out += '\n';
            out.append(static_cast<std::size_t>(depth), ' ');
        }
    };
    auto const close = [&](char c, bool empty) {
        if (lines && !empty) {
            out += '\n';
            out.append(static_cast<std::size_t>(indent), ' ');
        }
        out += c;
    };
    switch (v.kind()) {
        case json::kind::object: {
            out += '{';
            bool first = true;
            for (auto const& [key, member] : v.get_object()) {
                next(first, indent + 2);
                first = false;
                out += json_quote(key);
                out += lines ? ": " : ":";
                append_json(out, member, lines ? indent + 2 : -1);
            }
            close('}', first);
            return;
        }
        case json::kind::array: {
            out += '[';
            bool first = true;
            for (auto const& element : v.get_array()) {
                next(first, indent + 2);
                first = false;
                append_json(out, element, lines ? indent + 2 : -1);
            }
            close(']', first);
            return;
        }
        case json::kind::double_: {
            char text[32];
            auto const end = std::to_chars(text, text + sizeof text, v.get_double()).ptr;
            out.append(text, end);
            return;
        }
        default:
            out += json::serialize(v);
    }
}

}  // namespace fanout::wire
