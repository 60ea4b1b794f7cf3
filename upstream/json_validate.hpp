#pragma once

#include <memory>
#include <string_view>

namespace fanout::upstream {

// Checks that a text is exactly one JSON value (surrounding whitespace allowed), building no DOM:
// the answer embeds the upstream's text as it came, so validation is all that is needed. Keeps
// its parser's memory from one call to the next; not thread-safe (one per event loop).
class json_validator {
  public:
    json_validator();
    ~json_validator();
    json_validator(json_validator const&) = delete;
    json_validator& operator=(json_validator const&) = delete;

    bool valid(std::string_view text) noexcept;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The same with a parser of its own, for occasional use.
bool is_valid_json(std::string_view text) noexcept;

}  // namespace fanout::upstream
