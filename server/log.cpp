#include "server/log.hpp"

#include <mutex>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace fanout {

namespace {

// The members of a message that is one JSON object ({"event":...}): it without its opening brace,
// so that "time" and "level" come first in the same object. Any other message becomes a
// "message" member, so that a line is always one JSON object.
class json_members final : public spdlog::custom_flag_formatter {
  public:
    void format(spdlog::details::log_msg const& msg, std::tm const&, spdlog::memory_buf_t& dest) override {
        std::string_view const text{msg.payload.data(), msg.payload.size()};
        if (!text.empty() && text.front() == '{' && text.back() == '}') {
            dest.append(text.data() + 1, text.data() + text.size());
            return;
        }
        std::string const member = R"("message":)" + json_quote(text) + "}";
        dest.append(member.data(), member.data() + member.size());
    }

    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_members>(); }
};

// Hands each line to the application's callback, without time or level (the event says them).
class event_sink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    explicit event_sink(std::function<void(log_event const&)> on_event) : on_event_(std::move(on_event)) {}

  protected:
    void sink_it_(spdlog::details::log_msg const& msg) override {
        std::string_view const json{msg.payload.data(), msg.payload.size()};
        auto const level = spdlog::level::to_string_view(msg.level);
        on_event_(log_event{{level.data(), level.size()}, event_name(json), json});
    }
    void flush_() override {}

  private:
    // Every line fanout writes starts {"event":"NAME".
    static std::string_view event_name(std::string_view json) {
        constexpr std::string_view prefix = R"({"event":")";
        if (!json.starts_with(prefix)) return {};
        json.remove_prefix(prefix.size());
        return json.substr(0, json.find('"'));
    }

    std::function<void(log_event const&)> on_event_;
};

std::shared_ptr<spdlog::logger> make_event_logger(
    std::function<void(log_event const&)> on_event, std::string const& level
) {
    auto logger =
        std::make_shared<spdlog::logger>("fanout", std::make_shared<event_sink>(std::move(on_event)));
    logger->set_level(spdlog::level::from_str(level));
    return logger;
}

std::shared_ptr<spdlog::logger> make_null_logger() {
    auto logger = std::make_shared<spdlog::logger>("fanout", std::make_shared<spdlog::sinks::null_sink_mt>());
    logger->set_level(spdlog::level::off);
    return logger;
}

}  // namespace

void use_json_lines(spdlog::logger& logger) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<json_members>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%*)");
    logger.set_formatter(std::move(formatter));
}

std::shared_ptr<spdlog::logger> logger_for(options const& opts) {
    if (opts.logger) return opts.logger;
    if (opts.on_event) return make_event_logger(opts.on_event, opts.log_level);
    return make_null_logger();
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

}  // namespace fanout
