#pragma once

#include "handlers/request.hpp"
#include "server/metrics_shard.hpp"

#include <memory>
#include <vector>

namespace spdlog {
class logger;
}

namespace fanout {

struct metrics_shard;
class log_limiter;

// The server's observer of the aggregate handlers: each fetch into the loop's metrics (what it
// did with the pool, hedges, retries and the breaker; its requests are counted by the client's
// on_request), and each failure one log line (timeouts included; cancellations at debug level).
class fetch_recorder final : public fanout::fetch_observer {
  public:
    // Null members are skipped: no metrics, no log, or no rate limit on the log. `series`: of each
    // service (by its index in the client), its series in `metrics`; null: the same index.
    fetch_recorder(
        metrics_shard* metrics,
        std::shared_ptr<spdlog::logger> log,
        log_limiter* limit,
        std::vector<std::size_t> const* series = nullptr
    )
        : metrics_(metrics), log_(std::move(log)), limit_(limit), series_(series) {}

    void fetched(fanout::fetch_event const& event) override;

  private:
    void record(fanout::fetch_event const& event);
    void log(fanout::fetch_event const& event);

    metrics_shard* metrics_;
    std::shared_ptr<spdlog::logger> log_;
    log_limiter* limit_;
    std::vector<std::size_t> const* series_;
};

}  // namespace fanout
