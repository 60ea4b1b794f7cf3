#pragma once

#include <boost/json/fwd.hpp>

#include <string>
#include <string_view>

namespace fanout::wire {

// A JSON string literal, quotes included, for text that did not come from us: bytes that are not
// valid UTF-8 become U+FFFD, so the result is always valid JSON.
std::string json_quote(std::string_view text);

// `text` cut to its first `max` bytes (never inside a UTF-8 sequence), then "...", when it is
// longer: for repeating a value given in a message, which a huge one must not flood.
std::string shortened(std::string_view text, std::size_t max = 64);

// shortened(text) in single quotes: a value given, repeated in an error message.
inline std::string quoted_short(std::string_view text) {
    return "'" + shortened(text) + "'";
}

// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// Appends `v` as JSON text, numbers in their shortest plain form (Boost.JSON's serializer writes a
// double as 1.295E2; this writes 129.5, as an upstream most likely did). `indent` >= 0: one member
// or element a line, nested ones `indent` + 2 spaces in; < 0: on one line, without spaces.
void append_json(std::string& out, boost::json::value const& v, int indent = -1);

}  // namespace fanout::wire
