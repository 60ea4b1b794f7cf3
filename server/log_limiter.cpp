#include "server/log_limiter.hpp"

#include "server/log.hpp"

#include <spdlog/spdlog.h>

namespace fanout {

bool log_limiter::admit(
    spdlog::logger& log,
    spdlog::level::level_enum level,
    std::string_view event,
    std::string_view detail,
    std::string_view service,
    clock::time_point now
) {
    if (!log.should_log(level)) return false;
    if (per_second_ == 0) return true;
    kind* k = nullptr;
    for (auto& candidate : kinds_)
        if (candidate.event == event && candidate.detail == detail && candidate.service == service)
            k = &candidate;
    if (!k) k = &kinds_.emplace_back(kind{event, detail, std::string(service), now});
    if (now - k->window_start >= std::chrono::seconds(1)) {
        k->window_start = now;
        k->written = 0;
    }
    if (k->written >= per_second_) {
        ++k->dropped;
        ++suppressed_total_;
        return false;
    }
    ++k->written;
    if (k->dropped > 0) {
        auto const of_service = service.empty() ? std::string() : R"(,"service":)" + json_quote(service);
        log.log(
            level, R"({{"event":"log_suppressed","of":"{}","detail":"{}"{},"count":{}}})", event, detail,
            of_service, k->dropped
        );
        k->dropped = 0;
    }
    return true;
}

}  // namespace fanout
