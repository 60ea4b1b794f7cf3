#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace fanout::server {

// A logger writing one JSON object per line to stderr: {"time":..,"level":..,<fields>}.
// Callers log the fields as JSON members, e.g. R"("event":"upstream_failure","service":"users")".
std::shared_ptr<spdlog::logger> make_stderr_logger(std::string const& level);

// The same format into any sink (tests capture lines this way).
void use_json_lines(spdlog::logger& logger);

// A JSON string literal, quotes included, for text that did not come from us.
std::string json_quote(std::string_view text);

}  // namespace fanout::server
