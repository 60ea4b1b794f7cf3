#include "server/log.hpp"

#include <boost/json/serialize.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace fanout::server {

void use_json_lines(spdlog::logger& logger) {
    logger.set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
}

std::shared_ptr<spdlog::logger> make_stderr_logger(std::string const& level) {
    auto logger =
        std::make_shared<spdlog::logger>("fanout", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    use_json_lines(*logger);
    logger->set_level(spdlog::level::from_str(level));
    // Failures are logged as they happen; flushing each line keeps them visible when piped.
    logger->flush_on(spdlog::level::trace);
    return logger;
}

std::string json_quote(std::string_view text) {
    return boost::json::serialize(text);
}

}  // namespace fanout::server
