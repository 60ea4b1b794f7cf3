#pragma once

#include <algorithm>
#include <cstddef>
#include <fanout/request_fields.hpp>
#include <string_view>

namespace fanout::server {

// Adds one line of a field that may be repeated, as RFC 9110 §5.3 combines them, keeping at most
// `max` bytes: what is longer than what is accepted or forwarded need not be stored to be refused.
inline void add_line(std::string& to, std::string_view value, std::size_t max) {
    if (!to.empty() && to.size() < max) to += ',';
    to.append(value.substr(0, max - std::min(max, to.size())));
}

// Keeps the field in `fields` if it is one of theirs. `deadline_header`: empty for none.
void take_field(
    request_fields& fields, std::string_view deadline_header, std::string_view name, std::string_view value
);

}  // namespace fanout::server
