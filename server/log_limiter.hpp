#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
namespace level {
enum level_enum : int;
}
}  // namespace spdlog

namespace fanout {

// Bounds the log lines of one event loop: of each kind of event (`event`, `detail` and `service`:
// e.g. "upstream_failure", "timeout", "users") the first `per_second` in each second are written,
// the rest only counted; the next line of that kind written in a later second is preceded by one
// "log_suppressed" line with the count. Keyed by service too, so that a noisy service never hides
// another's failures. Metrics still count every event. Not thread-safe: one per event loop.
// `per_second` 0: no limit.
class log_limiter {
  public:
    using clock = std::chrono::steady_clock;

    explicit log_limiter(std::uint32_t per_second) : per_second_(per_second) {}

    // Whether to write this event now; when it is, first writes the "log_suppressed" line owed
    // for its kind. `event` and `detail` must outlive the limiter (string literals); `service` is copied.
    bool admit(
        spdlog::logger& log,
        spdlog::level::level_enum level,
        std::string_view event,
        std::string_view detail = {},
        std::string_view service = {},
        clock::time_point now = clock::now()
    );

    std::uint64_t suppressed_total() const noexcept { return suppressed_total_; }
    // A new limit (a reload), from the next line on.
    void per_second(std::uint32_t n) noexcept { per_second_ = n; }

  private:
    struct kind {
        std::string_view event, detail;
        std::string service;
        clock::time_point window_start;
        std::uint32_t written = 0;
        std::uint64_t dropped = 0;
    };
    std::uint32_t per_second_;
    std::vector<kind> kinds_;  // a handful: a linear search is cheapest
    std::uint64_t suppressed_total_ = 0;
};

}  // namespace fanout
