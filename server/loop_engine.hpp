#pragma once

#include "handlers/request.hpp"
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
class loop_engine;

// The names of the configured services, in order: the metrics registry's labels.
std::vector<std::string> service_names(options const& opts);

// Claims shard `shard` of `reg` for one executor. Throws std::out_of_range or std::logic_error
// as metrics_registry::claim does.
metrics_shard& claim_shard(metrics_registry& reg, std::size_t shard);

// Throws what making a server or aggregator with `opts` would (std::invalid_argument naming the
// route or setting; a TLS file that cannot be loaded), without binding or starting anything.
void check_servable(options const& opts);

// One configuration as one event loop serves it: its options, routes and upstream client, and the
// metrics series of its services and routes. A reload makes a new one; a request holds the one it
// started with until it ends, so that it finishes as it began. Only the client's state changes.
class loop_config {
    loop_engine& engine_;
    bool current_ = true;  // until replaced (install)
    friend class loop_engine;

  public:
    // `previous`: the one in use, whose client's state is carried over (fanout::client's
    // constructor says what). Throws as check_servable.
    loop_config(loop_engine& engine, options o, loop_config* previous);
    loop_config(loop_config const&) = delete;
    loop_config& operator=(loop_config const&) = delete;

    options const opts;
    route_table const routes;
    std::vector<std::size_t> const service_series;  // of each upstream, in the metrics shard
    std::vector<std::size_t> const route_series;    // of each route (its plan's index)
    fanout::client client;
    fetch_recorder recorder;
    fanout::handler_context ctx;

    // The series of a request's route in the metrics (count_request), if it has one.
    std::optional<std::size_t> series_of(route_plan const* plan) const {
        return plan ? std::optional(route_series[plan->index]) : std::nullopt;
    }

  private:
    void breaker_changed(fanout::breaker_change const& c);
    void request_ended(fanout::request_report const& r);
};

// What answers the aggregate endpoints on one executor: its metrics shard, logger and log limiter,
// and the configuration in use (loop_config). http_server has one, and so has aggregator (the same
// endpoints in an application's own server). Everything is called on its executor.
class loop_engine {
  public:
    // `registry` null: one of its own. Throws as claim_shard and check_servable.
    loop_engine(
        boost::asio::any_io_executor ex,
        options const& opts,
        std::shared_ptr<metrics_registry> registry,
        std::size_t shard
    );
    loop_engine(loop_engine const&) = delete;
    loop_engine& operator=(loop_engine const&) = delete;
    ~loop_engine();

    // The configuration new requests take.
    std::shared_ptr<loop_config> const& config() const noexcept { return config_; }
    // A configuration made from `opts` (its listening settings, logger and on_event are not used)
    // that carries over the current one's state, not in use yet. Throws as check_servable.
    std::shared_ptr<loop_config> prepare(options opts);
    // Makes `next` (from prepare()) the configuration new requests take. The one it replaces
    // serves on the requests that hold it; the services `next` did not carry over stop pooling
    // connections (its idle ones are closed now).
    void install(std::shared_ptr<loop_config> next);

    // The answer of a route (a dispatch with a plan of `cfg`'s). Never throws: a failure of the
    // handler itself is logged and answered 500. `parts` set: the parts go there as they complete
    // (and done() is called even on a failure), the response has no body.
    boost::asio::awaitable<response> answer(
        loop_config& cfg, dispatch const& r, fanout::part_sink* parts = nullptr
    );

    // GET /metrics: the registry's page (every loop sharing it, summed), in the format `accept`
    // (the request's Accept header) asks for.
    response metrics_page(std::string_view accept) const;

    boost::asio::any_io_executor const ex;
    std::shared_ptr<metrics_registry> registry;
    std::size_t shard_index;
    metrics_shard& metrics;
    std::shared_ptr<spdlog::logger> log;
    log_limiter log_limit;  // the loop's: also for the owner's own log lines
    // Of every configuration's handlers (channel producers still running, for a drain).
    std::shared_ptr<fanout::handler_stats> stats = std::make_shared<fanout::handler_stats>();

  private:
    std::shared_ptr<loop_config> config_;
    bool own_logger_;  // made from on_event at log_level, which a reload may change
};

}  // namespace fanout
