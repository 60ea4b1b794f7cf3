#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace fanout::server {

// A logger writing one JSON object per line to stderr: {"time":..,"level":..,<fields>}.
// Callers log the fields as JSON members, e.g. R"("event":"upstream_failure","service":"users")".
std::shared_ptr<spdlog::logger> make_stderr_logger(std::string const& level);

// The same format into any sink (tests capture lines this way).
void use_json_lines(spdlog::logger& logger);

// A JSON string literal, quotes included, for text that did not come from us: bytes that are not
// valid UTF-8 become U+FFFD, so the result is always valid JSON.
std::string json_quote(std::string_view text);

// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

}  // namespace fanout::server
