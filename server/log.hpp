#pragma once

#include "wire/json_text.hpp"

#include <fanout/options.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace fanout {

using wire::json_quote;

// Every line fanout logs is one JSON object, {"event":"NAME",...}, whatever the logger's pattern.

// A logger writing one JSON object per line to stderr: {"time":..,"level":..,"event":..,...},
// the message's members after time and level.
std::shared_ptr<spdlog::logger> make_stderr_logger(std::string const& level);

// The same format into any sink (tests capture lines this way).
void use_json_lines(spdlog::logger& logger);

// The server's logger for `opts`: opts.logger; else one calling opts.on_event at opts.log_level;
// else none (an embedded server never writes to stderr on its own).
std::shared_ptr<spdlog::logger> logger_for(options const& opts);

}  // namespace fanout
