#pragma once

#include <string_view>

namespace fanout {

// True when text is exactly one JSON value as Boost.JSON's parser takes it with its default options
// (RFC 8259, valid UTF-8, surrounding whitespace allowed, nested at most 32 deep). Builds nothing:
// the answer embeds the upstream's text as it came, so validation is all that is needed.
bool is_valid_json(std::string_view text) noexcept;

}  // namespace fanout
