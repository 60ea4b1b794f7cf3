#pragma once

#include <algorithm>
#include <cstddef>
#include <fanout/request_fields.hpp>
#include <span>
#include <string>
#include <string_view>

namespace fanout {

// Adds one line of a field that may be repeated, as RFC 9110 §5.3 combines them. Past `max` bytes
// the field is stored as just "\x7f", which no parser of it accepts: a value too long to be valid
// need not be kept to be refused, and cut short it could read as another.
inline void add_line(std::string& to, std::string_view value, std::size_t max) {
    if (to == "\x7f") return;
    if (to.size() + value.size() + (to.empty() ? 0 : 1) > max) {
        to.assign(1, '\x7f');  // not `to = "\x7f"`: g++ 12 warns falsely of an overlapping copy (-Wrestrict)
        return;
    }
    if (!to.empty()) to += ',';
    to.append(value);
}

// Keeps the field in `fields` if it is one of theirs. `deadline_header`: empty for none.
// `forwarded`: the names (lower-case) of the fields some route forwards.
void take_field(
    request_fields& fields,
    std::string_view deadline_header,
    std::string_view name,
    std::string_view value,
    std::span<std::string const> forwarded = {}
);

}  // namespace fanout
