#pragma once

#include "handlers/aggregate.hpp"
#include "server/fetch_recorder.hpp"
#include "server/log_limiter.hpp"
#include "server/metrics_shard.hpp"
#include "server/response.hpp"
#include "server/route_table.hpp"
#include "server/router.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <fanout/client.hpp>
#include <fanout/options.hpp>
#include <memory>
#include <string>
#include <vector>

namespace fanout {

struct metrics_shard;
class metrics_registry;

// The names of the configured services, in order: the metrics registry's labels.
std::vector<std::string> service_names(options const& opts);

// Claims shard `shard` of `reg` for one executor. Throws std::invalid_argument when the registry
// was made for other services (as metrics_registry::claim throws for a bad or taken shard).
metrics_shard& claim_shard(metrics_registry& reg, std::size_t shard, options const& opts);

// What answers the aggregate endpoints on one executor: its metrics shard, logger, the upstream
// client and its pool, the handlers' context, and the recorder of each fetch. http_server has
// one, and so has aggregator (the same endpoints in an application's own server).
class aggregator_core {
  public:
    // `registry` null: one of its own. Throws as claim_shard.
    aggregator_core(
        boost::asio::any_io_executor ex,
        options const& opts,
        std::shared_ptr<metrics_registry> registry,
        std::size_t shard
    );
    aggregator_core(aggregator_core const&) = delete;
    aggregator_core& operator=(aggregator_core const&) = delete;
    ~aggregator_core();

    // The answer of a route (a dispatch with a plan). Never throws: a failure of the handler
    // itself is logged and answered 500. `parts` set: the parts go there as they complete (and
    // done() is called even on a failure), the response has no body.
    boost::asio::awaitable<response> answer(dispatch const& r, fanout::part_sink* parts = nullptr);

    // GET /metrics: the registry's page (every loop sharing it, summed), in the format `accept`
    // (the request's Accept header) asks for.
    response metrics_page(std::string_view accept) const;

    route_table routes;  // first: it checks the options (throws std::invalid_argument)
    std::shared_ptr<metrics_registry> registry;
    std::size_t shard_index;
    metrics_shard& metrics;
    std::shared_ptr<spdlog::logger> log;
    log_limiter log_limit;  // the loop's: also for the owner's own log lines
    fanout::client client;
    fetch_recorder recorder;
    fanout::handler_context ctx;
    std::chrono::milliseconds max_fetch;  // options::max_fetch

  private:
    void breaker_changed(fanout::breaker_change const& c);
    void request_ended(fanout::request_report const& r);
};

}  // namespace fanout
