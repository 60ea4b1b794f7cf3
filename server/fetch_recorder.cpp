#include "server/fetch_recorder.hpp"

#include "server/log.hpp"
#include "server/log_limiter.hpp"

#include <fanout/metrics.hpp>
#include <spdlog/spdlog.h>

namespace fanout {

void fetch_recorder::fetched(fanout::fetch_event const& event) {
    if (metrics_) record(event);
    if (log_ && !event.result.ok()) log(event);
}

void fetch_recorder::record(fanout::fetch_event const& event) {
    // The requests of the fetch, and their failures, were counted as each ended (on_request).
    auto const& r = event.result;
    auto& m = metrics_->services[series_ ? (*series_)[event.service] : event.service];
    switch (r.connection) {
        case fanout::connection_use::none:
            break;
        case fanout::connection_use::opened:
            m.opened.add();
            break;
        case fanout::connection_use::reused:
            m.reused.add();
            break;
        case fanout::connection_use::retried:
            m.retried.add();
            if (!r.error || r.error->kind != error_kind::connect) m.opened.add();  // reconnected
            break;
    }
    if (r.attempts.refused) m.circuit_open.add();
    if (r.attempts.hedged) (r.attempts.hedge_won ? m.hedges_won : m.hedges_lost).add();
    if (r.attempts.retries) m.fetch_retries.add(r.attempts.retries);
    if (r.attempts.over_budget) m.over_budget.add();
}

void fetch_recorder::log(fanout::fetch_event const& event) {
    auto const& e = *event.result.error;
    // Cancellations follow from another event (a sibling's failure, the client leaving,
    // shutdown) that is logged itself: they are detail. Timeouts get their own event name.
    auto level = e.kind == error_kind::cancelled ? spdlog::level::debug : spdlog::level::warn;
    std::string_view const name = e.kind == error_kind::timeout ? "upstream_timeout" : "upstream_failure";
    bool const write = limit_
                           ? limit_->admit(*log_, level, name, fanout::to_string(e.kind), event.service_name)
                           : log_->should_log(level);
    if (!write) return;
    log_->log(
        level,
        R"({{"event":"{}","endpoint":"{}","service":"{}","kind":"{}","message":{},"status":{},"elapsed_ms":{:.3f},"trace_id":"{}"}})",
        name, event.endpoint, event.service_name, fanout::to_string(e.kind), json_quote(e.message), e.status,
        std::chrono::duration<double, std::milli>(event.result.elapsed).count(), event.trace_id
    );
}

}  // namespace fanout
